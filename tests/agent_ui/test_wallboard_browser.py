"""The supervisor's wallboard in Debian's Chromium, live: simulated calls (the PBX simulator over
AMI and FastAGI) arrive, wait, are answered and abandoned, and the page follows each change from
pushed frames (it never polls). The abandoned caller is called back in one click.
Playwright `expect` waits; no sleeps."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.callcenter.test_console_ws import _store, cookie_for, open_console
from tests.callcenter.voice_harness import VIP_PHONE, running_center
from tests.callcenter.wallboard.harness import seed_board
from tests.services import need_chromium

pytestmark = pytest.mark.timeout(150)
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "var" / "test-artifacts"
SHOTS = ROOT / "docs" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


async def test_the_wallboard_follows_calls_live(database):
    chromium = need_chromium()
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    store = _store(database)
    await seed_board(store)
    ann_id = (await store.get_user("ann")).id
    async with running_center(database) as rc, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=ARGS, headless=True)
        page = await browser.new_page(viewport={"width": 1366, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        tid = page.get_by_test_id
        name = f"wallboard-{database.dialect}"
        try:
            await page.goto(f"{rc.base}/wallboard")  # anonymous: to the sign-in form
            await tid("login-username").fill("sue")
            await tid("login-password").fill("agent-password")
            await tid("login-submit").click()
            await page.goto(f"{rc.base}/wallboard")
            await expect(tid("wb-conn")).to_have_text("live")
            await expect(tid("wb-formula")).to_contain_text("answered within the queue's target time")
            ann = page.locator(f"tr[data-agent='{ann_id}']")
            await expect(ann.locator("[data-field=state]")).to_contain_text("offline")
            await expect(page.locator("tr[data-agent]")).to_have_count(1)  # team red: Ann only
            await expect(ann.locator("[data-slot=agent-actions]")).to_have_count(1)
            vip = page.locator("tr[data-queue=vip][data-channel=voice]")

            # A VIP calls while Ann is on a break: the call waits, the VIP alert shows.
            ws, console = await open_console(rc.base, await cookie_for(rc.base, "ann"))
            await console.send("set_state", state="not_ready", reason="break")
            await console.next("agent_state", state="not_ready")
            await expect(ann.locator("[data-field=state]")).to_contain_text("not ready (break)")
            call = rc.sim.call(VIP_PHONE, digits=["1"])
            await expect(vip.locator("[data-field=waiting]")).to_have_text("1")
            await expect(tid("wb-waiting")).to_contain_text("Victoria Important")
            await expect(tid("wb-alerts").locator("[data-alert=vip_waiting]")).to_be_visible()

            # Ann goes ready and answers: she is busy with the VIP, nobody waits.
            await console.send("set_state", state="ready")
            offer = await console.next("offer")
            await console.send("ack_offer", offer_id=offer["offer_id"])
            await console.next("contact_state", state="ringing")
            await console.send("answer", interaction_id=offer["interaction_id"])
            await console.next("contact_state", state="talking")
            await expect(ann.locator("[data-field=state]")).to_contain_text("busy")
            await expect(ann.locator(f"[data-interaction='{offer['interaction_id']}']")).to_contain_text(
                "Victoria Important")
            await expect(vip.locator("[data-field=waiting]")).to_have_text("0")
            await expect(tid("wb-alerts")).to_contain_text("No alerts")
            await page.screenshot(path=str(ARTIFACTS / f"{name}-busy.png"), full_page=True)
            call.hangup()
            await expect(vip.locator("[data-field=handled]")).to_have_text("1")
            await expect(ann.locator("[data-field=handled]")).to_have_text("1")
            await expect(vip.locator("[data-field=sl]")).to_contain_text("target 90% in 10")
            await console.next("wrapup")
            await console.send("submit_wrapup", interaction_id=offer["interaction_id"],
                               disposition="resolved", notes="ok")
            await console.next("wrapup_saved")

            # Another caller gives up waiting; the supervisor calls them back in one click.
            await console.send("set_state", state="not_ready", reason="break")
            await console.next("agent_state", state="not_ready")
            call = rc.sim.call(VIP_PHONE, digits=["1"])
            await expect(vip.locator("[data-field=waiting]")).to_have_text("1")
            call.hangup()
            await expect(vip.locator("[data-field=abandoned]")).to_contain_text("(1)")
            row = tid("wb-abandoned").locator("li[data-interaction]")
            await expect(row).to_contain_text("Victoria Important")
            await row.locator("button[data-action=callback]").click()
            await expect(row.locator("[data-field=callback]")).to_contain_text("scheduled")
            await expect(tid("wb-status")).to_contain_text("Callback #")
            SHOTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SHOTS / "wallboard.png"), full_page=True)
            assert errors == []
            # pushed, never polled: the page asked for itself and its assets, nothing more
            assert not [u for u in requests
                        if "/api/" in u or u.endswith("/wallboard") and requests.count(u) > 2]
            await ws.close()
        except Exception:
            await page.screenshot(path=str(ARTIFACTS / f"{name}-failure.png"), full_page=True)
            raise
        finally:
            await browser.close()
