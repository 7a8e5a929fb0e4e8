"""The console in Debian's Chromium (Playwright, never `playwright install`).

The console half of the facade is StubConsoleFacade (see conftest): this checks that the page
signs in, connects, and renders exactly what the server sends, with nothing optimistic. The real
ConsoleService end to end is for its own tests.
"""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.agent_ui.conftest import PASSWORD
from tests.services import need_chromium

ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]

CARD = {
    "customer": {
        "id": 41, "name": "Ada Lovelace", "tier": "vip", "tier_override": None, "loyalty": "loyal",
        "type": "blacklisted", "tags": ["premium", "early-adopter"], "language": "en",
        "lifetime_value": "12500.00", "notes": "Prefers email.", "contact_count": 3,
        "last_contact_at": "2026-11-20T10:00:00+00:00", "created_at": "2025-01-01T00:00:00+00:00",
    },
    "contact_points": [{"id": 1, "kind": "phone", "value": "+12025550143", "label": "mobile"}],
    "recent_interactions": [
        {"id": 9, "channel": "email", "direction": "inbound", "state": "wrapup_done",
         "created_at": "2026-11-20T10:00:00+00:00", "answered_at": None, "ended_at": None,
         "queue": "billing", "agent_id": 2, "disposition_code": "resolved", "csat_score": 5,
         "notes": "Refund sent <b>twice</b>"},
        {"id": 8, "channel": "voice", "direction": "inbound", "state": "wrapup_done",
         "created_at": "2026-11-10T10:00:00+00:00", "answered_at": None, "ended_at": None,
         "queue": "support", "agent_id": 3, "disposition_code": "callback", "csat_score": None},
    ],
    "open_tickets": [{
        "id": 3, "number": "T-000003", "type": "complaint", "status": "open", "priority": "high",
        "subject": "Double charge", "sla_due_at": "2026-11-27T10:00:00+00:00", "assignee_id": None,
        "created_at": "2026-11-20T10:00:00+00:00",
    }],
    "csat_average": "4.50", "csat_count": 2,
}


async def eventually(predicate, timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


async def test_sign_in_and_console_renders_only_what_the_server_says(ws_server, ws_facade):
    chromium = need_chromium()
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    facade = ws_facade
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=ARGS, headless=True)
        page = await browser.new_page(viewport={"width": 1366, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        # CSP violations and script errors land here; the 401 of the failed sign-in does not count
        page.on("console", lambda m: errors.append(m.text)
                if m.type == "error" and "status of 401" not in m.text else None)
        tid = page.get_by_test_id
        try:
            # --- sign in
            await page.goto(f"{ws_server}/console")
            await expect(page).to_have_url(f"{ws_server}/login")
            await tid("login-username").fill("alice")
            await tid("login-password").fill("wrong password")
            await tid("login-submit").click()
            await expect(tid("login-error")).to_have_text("Invalid username or password.")
            await tid("login-password").fill(PASSWORD)
            await tid("login-submit").click()
            await expect(page).to_have_url(f"{ws_server}/console")
            await expect(tid("agent-name")).to_have_text("Alice Agent")
            await expect(tid("connection")).to_have_attribute("data-status", "connected")

            # --- presence: offline until the server says otherwise
            state = tid("state-select")
            await expect(state).to_have_value("offline")
            await expect(state).to_be_enabled()
            await state.select_option("ready")
            msg = await facade.wait_for("set_state")
            assert msg["state"] == "ready"
            await expect(state).to_have_value("offline")  # nothing optimistic
            await expect(tid("state-pending")).to_be_visible()
            facade.apply_state("ready")
            await expect(state).to_have_value("ready")
            await expect(tid("state-pending")).to_be_hidden()
            await state.select_option("not_ready:lunch")
            await eventually(lambda: len([m for m in facade.received if m["type"] == "set_state"]) == 2)
            assert facade.received[-1] == {"type": "set_state", "state": "not_ready", "reason": "lunch",
                                           "request_id": facade.received[-1]["request_id"]}
            await expect(state).to_have_value("ready")

            # --- an offer: the screen pop, then the contact state only from contact_state
            link = facade.links[-1]
            link.push("offer", offer_id="o-1", interaction_id=77, channel="voice", queue="billing",
                      caller="+12025550143", pop={"known": True, "card": CARD},
                      ivr_path=[{"node": "main", "label": "Main menu", "digits": "2"},
                                {"node": "acct", "label": "Account number", "digits": "1234",
                                 "result": "****34"}],
                      reasons=[{"name": "matched", "value": 0, "note": "billing"},
                               {"name": "wait_s", "value": 42},
                               {"name": "sticky", "value": 1, "note": "the customer's last agent"}],
                      expires_at=None)
            await expect(tid("customer-name")).to_have_text("Ada Lovelace")
            await expect(tid("tier-badge")).to_have_text("VIP")
            await expect(tid("tier-badge")).to_have_attribute("data-tier", "vip")
            await expect(tid("blacklist-warning")).to_be_visible()
            await expect(tid("customer-ltv")).to_contain_text("12,500")
            await expect(tid("timeline").locator("li")).to_have_count(2)
            await expect(tid("timeline")).to_contain_text("Refund sent <b>twice</b>")  # text, not HTML
            await expect(tid("tickets")).to_contain_text("T-000003")
            await expect(tid("ivr-path").locator("kbd")).to_have_count(5)
            await expect(tid("reasons")).to_contain_text("Caller waited")
            ack = await facade.wait_for("ack_offer")
            assert ack["offer_id"] == "o-1"
            await expect(tid("contact-state")).to_have_text("Offered")
            await expect(tid("answer")).to_be_disabled()
            link.push("contact_state", interaction_id=77, state="ringing", at="2026-11-26T09:00:01+00:00")
            await expect(tid("contact-state")).to_contain_text("Ringing")
            await tid("answer").click()
            assert (await facade.wait_for("answer"))["interaction_id"] == 77
            await expect(tid("contact-state")).to_contain_text("Ringing")  # until the PBX says so
            link.push("contact_state", interaction_id=77, state="talking", at="2026-11-26T09:00:05+00:00")
            await expect(tid("contact-state")).to_contain_text("Talking")
            await page.screenshot(path=str(ARTIFACTS / "console-pop.png"), full_page=True)

            # --- wrap-up stays until wrapup_saved
            link.push("contact_state", interaction_id=77, state="ended", at="2026-11-26T09:03:00+00:00")
            facade.apply_state("wrap_up")
            link.push("wrapup", interaction_id=77, required={"disposition": True, "notes": False},
                      until="2099-01-01T00:00:00+00:00")
            await expect(tid("wrapup")).to_be_visible()
            await expect(tid("wrapup-countdown")).to_contain_text("left")
            await tid("wrapup-disposition").select_option("resolved")
            await tid("wrapup-notes").fill("Explained the charge.")
            await tid("wrapup-ticket-toggle").check()
            await tid("wrapup-ticket-type").select_option("complaint")
            await tid("wrapup-ticket-subject").fill("Charged twice")
            await tid("wrapup-submit").click()
            sub = await facade.wait_for("submit_wrapup")
            assert sub["ticket"] == {"type": "complaint", "subject": "Charged twice"}
            assert sub["disposition"] == "resolved" and sub["notes"] == "Explained the charge."
            await expect(tid("wrapup")).to_be_visible()
            await expect(tid("wrapup-submit")).to_be_disabled()
            link.push("wrapup_saved", interaction_id=77, disposition="resolved",
                      ticket={"number": "T-000009", "type": "complaint", "status": "open"})
            await expect(tid("idle")).to_be_visible()
            await expect(tid("toasts")).to_contain_text("T-000009")

            # --- a new caller
            link.push("offer", offer_id="o-2", interaction_id=78, channel="voice", queue="sales",
                      caller="+12025550100", pop={"known": False, "card": None}, ivr_path=[],
                      reasons=[], expires_at=None)
            await expect(tid("new-caller")).to_be_visible()
            await expect(tid("create-phone")).to_have_value("+12025550100")
            await tid("search-input").fill("nobody")
            await tid("search-submit").click()
            await expect(tid("search-results")).to_contain_text("No customer matches")

            # --- the server drops the stream: the console reconnects and renders the resume
            facade.apply_state("not_ready", "lunch")
            await expect(state).to_have_value("not_ready:lunch")
            link.end()
            await eventually(lambda: len(facade.links) == 2)
            await expect(tid("connection")).to_have_attribute("data-status", "connected")
            await expect(tid("idle")).to_be_visible()  # hello cleared the old pop
            await expect(state).to_have_value("not_ready:lunch")  # resume: agent_state from the server
            await page.screenshot(path=str(ARTIFACTS / "console-resumed.png"), full_page=True)

            # --- sign out
            await tid("logout").click()
            await expect(page).to_have_url(f"{ws_server}/login")
            assert errors == []
        except Exception:
            await page.screenshot(path=str(ARTIFACTS / "console-failure.png"), full_page=True)
            raise
        finally:
            await browser.close()


@pytest.mark.parametrize("width", [1024])
async def test_login_page_screenshot(ws_server, width):
    chromium = need_chromium()
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": width, "height": 700})
            await page.goto(f"{ws_server}/login")
            await expect(page.get_by_test_id("login-form")).to_be_visible()
            await page.screenshot(path=str(ARTIFACTS / "login.png"))
        finally:
            await browser.close()
