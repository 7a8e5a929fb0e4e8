"""The whole voice path in Debian's Chromium: a real center, the simulated PBX over AMI and
FastAGI, the real console page. Playwright `expect` waits; no sleeps."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from callcenter.app import build_store
from callcenter.settings import load_settings
from crm_core.models import Interaction
from tests.callcenter.voice_harness import VIP_PHONE, running_center, seed_people
from tests.services import need_chromium

pytestmark = pytest.mark.timeout(120)
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


async def test_vip_call_from_ring_to_disposition_in_the_browser(database):
    chromium = need_chromium()
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    store = build_store(load_settings(env={}), database)
    people = await seed_people(store)
    # The agent must click Answer while the phone rings: 20 s of dialplan ring time are 5 s here,
    # long enough on a loaded machine (at the default 0.02 scale they are 0.4 s).
    async with running_center(database, CC_DEMO__TIME_SCALE="0.25") as rc, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=ARGS, headless=True)
        page = await browser.new_page(viewport={"width": 1366, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        tid = page.get_by_test_id
        name = f"voice-{database.dialect}"
        try:
            # 1. The agent signs in and goes ready.
            await page.goto(f"{rc.base}/console")
            await tid("login-username").fill("agent1")
            await tid("login-password").fill("agent-password")
            await tid("login-submit").click()
            await expect(tid("connection")).to_have_attribute("data-status", "connected")
            await expect(tid("state-select")).to_have_value("offline")
            await tid("state-select").select_option("ready")
            await expect(tid("state-select")).to_have_value("ready")

            # 2. A known VIP calls and presses 1 (English) in the IVR.
            call = rc.sim.call(VIP_PHONE, digits=["1"])

            # 3. The pop: name, tier, history, IVR digits, why this agent.
            await expect(tid("customer-name")).to_have_text("Victoria Important")
            await expect(tid("tier-badge")).to_have_attribute("data-tier", "vip")
            await expect(tid("timeline")).to_contain_text("asked about an invoice")
            await expect(tid("tickets")).to_contain_text("Move the line to the new address")
            await expect(tid("ivr-path").locator("kbd").first).to_have_text("1")
            await expect(tid("contact-state")).to_contain_text("Ringing")  # after the console's ack
            await page.screenshot(path=str(ARTIFACTS / f"{name}-pop.png"), full_page=True)

            # 4. The agent answers; the caller hangs up.
            await tid("answer").click()
            await expect(tid("contact-state")).to_contain_text("Talking")
            call.hangup()
            await expect(tid("wrapup")).to_be_visible()

            # 5. Disposition, notes and a complaint ticket.
            await tid("wrapup-disposition").select_option("escalated")
            await tid("wrapup-notes").fill("Upset about roaming charges; refund promised.")
            await tid("wrapup-ticket-toggle").check()
            await tid("wrapup-ticket-type").select_option("complaint")
            await tid("wrapup-ticket-subject").fill("Roaming charges")
            await page.screenshot(path=str(ARTIFACTS / f"{name}-wrapup.png"), full_page=True)
            await tid("wrapup-submit").click()
            await expect(tid("idle")).to_be_visible()
            await expect(tid("toasts")).to_contain_text("T-")
            await expect(tid("state-select")).to_have_value("ready")
            assert errors == []
        except Exception:
            await page.screenshot(path=str(ARTIFACTS / f"{name}-failure.png"), full_page=True)
            raise
        finally:
            await browser.close()

    # 6. One interaction with the complete timeline, and the ticket.
    vip = people["vip"]
    card = await store.customer_card(vip.id)
    latest = card.recent_interactions[0]
    assert latest.state == "wrapup_done" and latest.disposition_code == "escalated"
    kinds = [e.kind for e in await store.timeline(latest.id)]
    for step in ("arrive", "identify", "ivr", "queue", "offer", "pop_ack", "dial", "ring", "answer",
                 "hangup", "wrapup"):
        assert step in kinds, (step, kinds)
    assert any(t.type == "complaint" and t.subject == "Roaming charges" for t in card.open_tickets)
    count = select(func.count()).select_from(Interaction).where(Interaction.external_id == call.linkedid)
    assert await store.db.read(lambda c: c.execute(count).scalar()) == 1
