"""Web chat in Debian's Chromium: a customer chats in the widget embedded (one script tag) on a
host page of another origin, an agent answers in the console; both reconnect mid-conversation,
hostile payloads stay inert, and the survey runs at the end. Playwright `expect` waits; no sleeps."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import select

from callcenter.channels.chat.setup import demo_page
from crm_core.chat import ChatMessageRow
from tests.callcenter.chat.harness import seed_chat_agents, store_for
from tests.callcenter.voice_harness import running_center
from tests.http import serve
from tests.services import need_chromium

pytestmark = pytest.mark.timeout(150)
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "var" / "test-artifacts"
SCREENSHOTS = ROOT / "docs" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
PAYLOADS = [
    "<script>window.__pwned = 1; fetch('http://evil.example.test/s')</script>",
    '<img src="http://evil.example.test/i.png" onerror="window.__pwned = 2">',
    '<a href="javascript:window.__pwned=3">click</a>',
    '<svg onload="window.__pwned = 4"><image href="http://evil.example.test/x.svg"/></svg>',
]


async def test_customer_and_agent_chat_across_origins(database):
    chromium = need_chromium()
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    store = store_for(database)
    await seed_chat_agents(store)
    await store.create_customer("Carla Customer", emails=["carla@example.com"], lifetime_value="60000")

    center: dict[str, str] = {}
    shop = web.Application()

    async def page_handler(request: web.Request) -> web.Response:
        text = demo_page(center["base"], center["origin"], "shop")
        return web.Response(text=text, content_type="text/html")

    shop.router.add_get("/", page_handler)
    async with serve(shop) as shop_base:
        origin = shop_base.replace("127.0.0.1", "localhost")  # another host and port: another origin
        env = {"CC_CHAT__SITES": json.dumps([{"id": "shop", "origins": [origin], "secret": "s3cret"}]),
               "CC_CHAT__DEMO_SITE_PORT": "", "CC_CHAT__RESUME_S": "60"}
        async with running_center(database, **env) as rc, async_playwright() as pw:
            center.update(base=rc.base, origin=origin)
            browser = await pw.chromium.launch(executable_path=chromium, args=ARGS, headless=True)
            agent_ctx = await browser.new_context(viewport={"width": 1366, "height": 900})
            cust_ctx = await browser.new_context(viewport={"width": 1100, "height": 760})
            agent, cust = await agent_ctx.new_page(), await cust_ctx.new_page()
            errors: list[str] = []
            dialogs: list[str] = []
            outside: list[str] = []
            for p in (agent, cust):
                p.on("pageerror", lambda e: errors.append(str(e)))
                p.on("dialog", lambda d: dialogs.append(d.message))
                p.on("request", lambda r: outside.append(r.url)
                     if not r.url.startswith((rc.base, origin, "data:")) else None)
            a, c = agent.get_by_test_id, cust.get_by_test_id
            name = f"chat-{database.dialect}"
            try:
                # 1. The agent signs in and goes ready.
                await agent.goto(f"{rc.base}/console")
                await a("login-username").fill("agent1")
                await a("login-password").fill("agent-password")
                await a("login-submit").click()
                await expect(a("connection")).to_have_attribute("data-status", "connected")
                await a("state-select").select_option("ready")
                await expect(a("state-select")).to_have_value("ready")

                # 2. The customer opens the shop's page (another origin) and starts a chat.
                await cust.goto(origin + "/")
                await c("chat-launcher").click()
                await expect(c("prechat-form")).to_be_visible()
                await c("prechat-name").fill("Carla Customer")
                await c("prechat-email").fill("carla@example.com")
                await c("prechat-submit").click()

                # 3. The offer pops with the customer's record; the agent accepts.
                offer = a("chat-offer")
                await expect(offer).to_contain_text("Carla Customer")
                await expect(offer.locator('[data-tier="vip"]')).to_be_visible()
                await a("chat-accept").click()
                await expect(a("chat-card-name")).to_have_text("Carla Customer")
                await expect(a("chat-card-tier")).to_have_attribute("data-tier", "vip")
                await expect(c("chat-status")).to_contain_text("Agent 1 is chatting with you")

                # 4. They talk: typing indicator, messages, receipts.
                await c("chat-input").fill("Hi, my bill looks wrong")
                await expect(a("chat-typing")).to_contain_text("is typing")
                await c("chat-send").click()
                await expect(a("chat-log").get_by_text("Hi, my bill looks wrong")).to_be_visible()
                await expect(c("chat-receipt")).to_have_text("Read")
                await a("chat-canned").select_option(index=1)
                await expect(a("chat-input")).to_have_value("Hello! How can I help you today?")
                await a("chat-input").fill("Let me look at it, one moment.")
                await a("chat-send").click()
                await expect(c("chat-log").get_by_text("Let me look at it, one moment.")).to_be_visible()
                await expect(a("chat-receipt")).to_have_text("Read")

                # 5. Both reconnect mid-conversation: the customer's socket drops and the agent
                #    writes meanwhile; the agent reloads the console. Nothing lost, nothing twice.
                await cust.evaluate("window.ccChatWidget.reconnect()")
                await a("chat-input").fill("I found the problem.")
                await a("chat-send").click()
                await expect(c("chat-log").get_by_text("I found the problem.")).to_have_count(1)
                await agent.reload()
                await expect(a("connection")).to_have_attribute("data-status", "connected")
                await expect(a("chat-log").locator('[data-testid="chat-message"]')).to_have_count(3)
                await c("chat-input").fill("Great, thanks!")
                await c("chat-send").click()
                await expect(a("chat-log").get_by_text("Great, thanks!")).to_have_count(1)
                await expect(c("chat-log").locator('[data-testid="chat-message"]')).to_have_count(4)
                await cust.screenshot(path=str(ARTIFACTS / f"{name}-widget.png"))
                await agent.screenshot(path=str(ARTIFACTS / f"{name}-console.png"), full_page=True)

                # 6. Hostile payloads: shown as text on both sides, nothing runs, nothing loads.
                for text in PAYLOADS:
                    await c("chat-input").fill(text)
                    await c("chat-send").click()
                    await expect(a("chat-log").get_by_text(text, exact=True)).to_be_visible()
                    await expect(c("chat-log").get_by_text(text, exact=True)).to_be_visible()
                await a("chat-input").fill("<b>bold?</b> see https://example.org/help")
                await a("chat-send").click()
                link = c("chat-log").locator('a[href="https://example.org/help"]')
                await expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
                for p in (agent, cust):
                    assert await p.evaluate("window.__pwned") is None
                assert await cust.evaluate(
                    "document.querySelector('[data-cc-chat]').shadowRoot"
                    ".querySelectorAll('.log script, .log img, .log svg, .log [onerror]').length") == 0
                assert await agent.evaluate(
                    "document.querySelectorAll('.chat-log script, .chat-log img, .chat-log svg').length") == 0

                # 7. The agent ends the chat; the customer answers the survey; the agent wraps up.
                await a("chat-end").click()
                await expect(c("survey")).to_be_visible()
                await c("survey-4").click()
                await expect(c("chat-note")).to_contain_text("Thank you")
                await expect(a("chat-wrapup")).to_be_visible()
                await a("chat-wrapup-disposition").select_option("resolved")
                await a("chat-wrapup-notes").fill("Billing error explained")
                await a("chat-wrapup-submit").click()
                await expect(a("chats")).to_be_hidden()
                assert errors == [] and dialogs == []
                assert outside == [], outside
            except Exception:
                await cust.screenshot(path=str(ARTIFACTS / f"{name}-widget-failure.png"))
                await agent.screenshot(path=str(ARTIFACTS / f"{name}-console-failure.png"), full_page=True)
                raise
            finally:
                await browser.close()

    # 8. The interaction, its transcript and the survey are in the database.
    customer = await store.identify(email="carla@example.com")
    card = await store.customer_card(customer.id)
    chat = next(i for i in card.recent_interactions if i.channel == "chat")
    assert chat.state == "wrapup_done" and chat.disposition_code == "resolved" and chat.csat_score == 4
    async with database.session() as s:
        rows = (await s.execute(select(ChatMessageRow.sender, ChatMessageRow.body)
                                .where(ChatMessageRow.interaction_id == chat.id)
                                .order_by(ChatMessageRow.seq))).all()
    bodies = [b for _s, b in rows]
    assert bodies[:4] == ["Hi, my bill looks wrong", "Let me look at it, one moment.", "I found the problem.",
                          "Great, thanks!"]
    assert bodies[4:8] == PAYLOADS and len(bodies) == len(set(bodies))
    if database.dialect == "sqlite":  # the README's pictures
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(ARTIFACTS / f"{name}-widget.png", SCREENSHOTS / "chat-widget.png")
        shutil.copy(ARTIFACTS / f"{name}-console.png", SCREENSHOTS / "console-chat.png")
