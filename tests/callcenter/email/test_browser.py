"""An agent answers an email in Debian's Chromium: smtplib -> the center's SMTP listener -> the
real console page -> reply -> the aiosmtpd sink gets it with the threading headers and the ticket
token. Playwright `expect` waits; no sleeps."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.callcenter.email.harness import email_center
from tests.callcenter.email.harness import mail as make_mail
from tests.services import need_chromium

pytestmark = pytest.mark.timeout(120)
# email-sqlite-replied.png is docs/screenshots/console-email.png
ARTIFACTS = Path(__file__).resolve().parents[3] / "var" / "test-artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


async def test_agent_answers_an_email_in_the_console(database, tmp_path):
    chromium = need_chromium()
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with email_center(database, tmp_path) as ec, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=ARGS, headless=True)
        page = await browser.new_page(viewport={"width": 1366, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        tid = page.get_by_test_id
        name = f"email-{database.dialect}"
        try:
            await page.goto(f"{ec.base}/console")
            await tid("login-username").fill("agent1")
            await tid("login-password").fill("agent-password")
            await tid("login-submit").click()
            await expect(tid("connection")).to_have_attribute("data-status", "connected")
            await tid("state-select").select_option("ready")
            await expect(tid("state-select")).to_have_value("ready")

            first = make_mail("Wrong amount on my invoice", "Hello,\nI was charged twice.\nAnn")
            first.add_alternative("<p>Hello,<br>I was <b>charged twice</b>.<script>alert(1)</script>"
                                  "<img src='http://tracker.example.net/p.gif'></p>", subtype="html")
            await asyncio.to_thread(ec.send, first)
            _f, _r, ack = await ec.sink.next()
            token = ack["Subject"].split("]")[0].lstrip("[")

            # The offer pops the customer created from the address; the agent opens the email.
            await expect(tid("contact-channel")).to_have_text("Email")
            await expect(tid("customer-name")).to_have_text("Ann Customer")
            await tid("email-accept").click()
            await expect(tid("email-subject")).to_have_text("Wrong amount on my invoice")
            await expect(tid("email-ticket")).to_have_text(f"Ticket {token}")
            frame = page.frame_locator('[data-testid="email-html"]').first
            await expect(frame.locator("b")).to_have_text("charged twice")
            assert await frame.locator("script, img").count() == 0
            await page.screenshot(path=str(ARTIFACTS / f"{name}-open.png"), full_page=True)

            await tid("email-reply-body").fill("Dear Ann,\nwe refunded the second charge.")
            await tid("email-send").click()
            await expect(tid("email-message").last).to_contain_text("we refunded the second charge")
            await expect(tid("email-message").last).to_have_attribute("data-direction", "outbound")
            _f, rcpts, reply = await ec.sink.next()
            assert rcpts == ["ann@example.org"]
            assert reply["In-Reply-To"] == first["Message-ID"]
            assert first["Message-ID"] in reply["References"].split()
            assert f"[{token}]" in reply["Subject"]
            assert "we refunded the second charge" in reply.get_content()
            await page.screenshot(path=str(ARTIFACTS / f"{name}-replied.png"), full_page=True)

            await tid("email-ticket-status").select_option("solved")
            await tid("email-done").click()
            await expect(tid("wrapup")).to_be_visible()
            await tid("wrapup-disposition").select_option("resolved")
            await tid("wrapup-notes").fill("Refunded the double charge.")
            await tid("wrapup-submit").click()
            await expect(tid("email-panel")).to_be_hidden()
            await expect(tid("idle")).to_be_visible()
            assert errors == []
        except Exception:
            await page.screenshot(path=str(ARTIFACTS / f"{name}-failure.png"), full_page=True)
            raise
        finally:
            await browser.close()

    ticket = await ec.store.get_ticket(token)
    assert ticket.status == "solved"
