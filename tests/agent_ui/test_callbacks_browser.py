"""Callbacks and supervisor alerts in Debian's Chromium: a real center, the simulated PBX over AMI
and FastAGI, the real console page. The agent schedules a callback from the caller's card, it is
offered back (kind callback) and placed with "Call back now"; a supervisor sees an SLA alert and
acknowledges it. Playwright `expect` waits; the scheduler's clocks are injected, no sleeps."""
from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from callcenter.app import build_store
from callcenter.settings import load_settings
from crm_core.callbacks import CallbackStore
from tests.callcenter.voice_harness import VIP_PHONE, running_center, seed_people
from tests.services import need_chromium

pytestmark = pytest.mark.timeout(150)
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "var" / "test-artifacts"
SHOTS = ROOT / "docs" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
T0 = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)


async def _sign_in(browser, base: str, username: str):
    from playwright.async_api import expect

    page = await (await browser.new_context(viewport={"width": 1366, "height": 900})).new_page()
    await page.goto(f"{base}/console")
    await page.get_by_test_id("login-username").fill(username)
    await page.get_by_test_id("login-password").fill("agent-password")
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("connection")).to_have_attribute("data-status", "connected")
    return page


async def test_callback_from_the_card_called_back_and_a_supervisor_alert(database, tmp_path):
    chromium = need_chromium()
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    store = build_store(load_settings(env={}), database)
    people = await seed_people(store)
    await store.create_user("super", "agent-password", roles=["supervisor"], display_name="Sue")
    for t in await store.list_tickets(people["vip"].id):
        await store.update_ticket_status(t.id, "closed")
    ticket = await store.create_ticket(people["regular"].id, "complaint", "Billed twice", at=T0)  # 8 h
    name = f"callbacks-{database.dialect}"
    async with running_center(database, CC_CALLBACKS__POLL_S="0", CC_SLA__POLL_S="0",
                              CC_VOICE__RECORDINGS_DIR=str(tmp_path / "rec")) as rc, async_playwright() as pw:
        rc.center.callbacks.utc = lambda: T0
        rc.center.sla.utc = lambda: T0 + timedelta(hours=7)
        browser = await pw.chromium.launch(executable_path=chromium, args=ARGS, headless=True)
        errors: list[str] = []
        page = await _sign_in(browser, rc.base, "agent1")
        page.on("pageerror", lambda e: errors.append(str(e)))
        tid = page.get_by_test_id
        try:
            # 1. On a call with the VIP, the agent schedules a callback from the card.
            await tid("state-select").select_option("ready")
            await expect(tid("state-select")).to_have_value("ready")
            call = rc.sim.call(VIP_PHONE, digits=["1"])
            await expect(tid("customer-name")).to_have_text("Victoria Important")
            await expect(tid("contact-state")).to_contain_text("Ringing")
            await tid("answer").click()
            await expect(tid("contact-state")).to_contain_text("Talking")
            await tid("callback-note").fill("Confirm the refund went through")
            await tid("callback-schedule").click()
            await expect(tid("toasts")).to_contain_text("Callback to +12025550143 scheduled")
            call.hangup()
            await expect(tid("wrapup")).to_be_visible()
            await tid("wrapup-disposition").select_option("callback")
            await tid("wrapup-notes").fill("Refund promised; calling back to confirm.")
            await tid("wrapup-submit").click()
            await expect(tid("idle")).to_be_visible()
            await expect(tid("state-select")).to_have_value("ready")

            # 2. Its time comes: offered back with the pop; nothing rings until "Call back now".
            rc.sim.agent(VIP_PHONE.lstrip("+"), answer_after=1.0, talk_time=None)
            assert await rc.center.callbacks.tick() == 1
            await expect(tid("callback-offer")).to_contain_text("Callback to +12025550143 · attempt 1 of 3")
            await expect(tid("callback-offer")).to_contain_text("Confirm the refund went through")
            await expect(tid("customer-name")).to_have_text("Victoria Important")
            await expect(tid("accept-callback")).to_be_visible()
            await expect(tid("contact-state")).to_contain_text("Offered")
            await page.screenshot(path=str(ARTIFACTS / f"{name}-offer.png"), full_page=True)
            await tid("accept-callback").click()
            await expect(tid("contact-state")).to_contain_text("Ringing")  # the agent's phone first
            await tid("answer").click()
            await expect(tid("contact-state")).to_contain_text("Talking")  # the customer answered
            await tid("hangup").click()
            await expect(tid("wrapup")).to_be_visible()
            await tid("wrapup-disposition").select_option("resolved")
            await tid("wrapup-notes").fill("Refund confirmed.")
            await tid("wrapup-submit").click()
            await expect(tid("idle")).to_be_visible()

            # 3. A supervisor sees the SLA alert and acknowledges it.
            sup = await _sign_in(browser, rc.base, "super")
            sup.on("pageerror", lambda e: errors.append(str(e)))
            assert [e.number for e in await rc.center.sla.check()] == [ticket.number]
            await expect(sup.get_by_test_id("alerts")).to_contain_text(f"Ticket {ticket.number} is at 88 %")
            await sup.screenshot(path=str(ARTIFACTS / f"{name}-alert.png"), full_page=True)
            # The VIP who waited earlier raised alerts too (wallboard rules): acknowledge every one.
            acks = sup.get_by_test_id("alerts").get_by_role("button", name="Acknowledge")
            for left in range(await acks.count(), 0, -1):
                await expect(acks).to_have_count(left)
                await acks.first.click()
            await expect(sup.get_by_test_id("alerts-panel")).to_be_hidden()
            assert errors == []
        except Exception:
            await page.screenshot(path=str(ARTIFACTS / f"{name}-failure.png"), full_page=True)
            raise
        finally:
            await browser.close()
    cbs = await CallbackStore(database).list_open()
    assert cbs == []
    latest = (await store.customer_card(people["vip"].id)).recent_interactions[0]
    assert latest.direction == "outbound" and latest.state == "wrapup_done"
    kinds = [e.kind for e in await store.timeline(latest.id)]
    assert "callback_scheduled" in kinds and "callback_connected" in kinds, kinds
    assert await CallbackStore(database).open_alerts() == []
    if database.dialect == "sqlite":
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(ARTIFACTS / f"{name}-offer.png", SHOTS / "console-callback.png")
        shutil.copy(ARTIFACTS / f"{name}-alert.png", SHOTS / "console-alert.png")
