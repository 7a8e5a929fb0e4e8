"""A Twilio call in Debian's Chromium: the real console page pops the caller before the agent's
phone rings, then shows talking, hang-up and wrap-up as Twilio's callbacks confirm them.
Playwright `expect` waits; no sleeps."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from callcenter.app import build_store
from callcenter.settings import load_settings
from tests.callcenter.twilio.harness import running_twilio, sip
from tests.callcenter.voice_harness import VIP_PHONE, seed_people
from tests.services import need_chromium

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "var" / "test-artifacts"
SCREENSHOTS = ROOT / "docs" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


async def test_twilio_call_pop_talk_wrapup_in_the_browser(database):
    chromium = need_chromium()
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    store = build_store(load_settings(env={}), database)
    await seed_people(store)
    async with running_twilio(database) as rc, async_playwright() as pw:
        rc.twilio.agent(sip("1001"), answer_after=0.3)  # the agent picks up their SIP phone
        browser = await pw.chromium.launch(executable_path=chromium, args=ARGS, headless=True)
        page = await browser.new_page(viewport={"width": 1366, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        tid = page.get_by_test_id
        name = f"twilio-{database.dialect}"
        try:
            await page.goto(f"{rc.base}/console")
            await tid("login-username").fill("agent1")
            await tid("login-password").fill("agent-password")
            await tid("login-submit").click()
            await expect(tid("connection")).to_have_attribute("data-status", "connected")
            await tid("state-select").select_option("ready")
            await expect(tid("state-select")).to_have_value("ready")

            call = rc.twilio.call(VIP_PHONE, digits=["1", "5"])  # English; 5 in the survey
            await expect(tid("customer-name")).to_have_text("Victoria Important")
            await expect(tid("tier-badge")).to_have_attribute("data-tier", "vip")
            await expect(tid("tickets")).to_contain_text("Move the line to the new address")
            await expect(tid("ivr-path").locator("kbd").first).to_have_text("1")
            await expect(tid("contact-state")).to_contain_text("Talking")  # Twilio said in-progress
            await page.screenshot(path=str(ARTIFACTS / f"{name}-talking.png"), full_page=True)
            if database.dialect == "sqlite":  # the one in docs/twilio.md
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                shutil.copy(ARTIFACTS / f"{name}-talking.png", SCREENSHOTS / "console-twilio-call.png")
            assert [r["form"]["Url"].rsplit("/", 1)[1] for r in rc.twilio.rest.requests] == ["connect?a=1"]

            await tid("hangup").click()  # the REST API ends the agent's leg
            await expect(tid("wrapup")).to_be_visible()
            await tid("wrapup-disposition").select_option("resolved")
            await tid("wrapup-notes").fill("Line moved.")
            await tid("wrapup-submit").click()
            await expect(tid("idle")).to_be_visible()
            await expect(tid("state-select")).to_have_value("ready")
            await call.wait_ended()
            assert errors == []
        except Exception:
            await page.screenshot(path=str(ARTIFACTS / f"{name}-failure.png"), full_page=True)
            raise
        finally:
            await browser.close()
