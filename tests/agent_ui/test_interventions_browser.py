"""Supervisors step in, in Debian's Chromium (issue 15): a supervisor barges into a live call
from the wallboard (the simulated PBX, watched over its own AMI TCP session, shows the Originate
into ChanSpy with the barge option), and takes a chat over, seen from the agent's console and the
customer's widget. Playwright `expect` waits; no sleeps."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from callcenter.channels.chat.setup import demo_page
from tests.callcenter.chat.harness import seed_chat_agents, store_for
from tests.callcenter.test_interventions import ami_event, ami_watch
from tests.callcenter.voice_harness import VIP_PHONE, running_center
from tests.http import serve
from tests.services import need_chromium

pytestmark = pytest.mark.timeout(180)
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


async def seed(store: Any) -> None:
    await seed_chat_agents(store, n=2)
    for team in ("red", "blue"):
        await store.create_team(team)
    await store.add_team_member("red", (await store.get_user("agent1")).id)
    await store.add_team_member("blue", (await store.get_user("agent2")).id)
    await store.create_user("sup_red", "agent-password", roles=["supervisor"], display_name="Sam Red",
                            team="red", extension="2001")


async def sign_in(page: Any, base: str, username: str, then: str) -> None:
    await page.goto(f"{base}/login")
    await page.get_by_test_id("login-username").fill(username)
    await page.get_by_test_id("login-password").fill("agent-password")
    await page.get_by_test_id("login-submit").click()
    await page.wait_for_url(f"{base}/console")
    if then != "/console":
        await page.goto(base + then)


async def test_supervisor_barges_into_a_call_from_the_wallboard(database):
    chromium = need_chromium()
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    store = store_for(database)
    await seed(store)
    expect.set_options(timeout=20_000)  # a loaded machine: waits are on events, just longer
    # the simulated PBX at half speed: the agent's phone rings 10 s (not 0.4 s) on a loaded machine
    async with running_center(database, CC_VOICE__ACK_TIMEOUT_S="20", CC_DEMO__TIME_SCALE="0.5") as rc, \
            async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=ARGS, headless=True)
        agent = await (await browser.new_context(viewport={"width": 1366, "height": 900})).new_page()
        sup = await (await browser.new_context(viewport={"width": 1366, "height": 1000})).new_page()
        errors: list[str] = []
        for p in (agent, sup):
            p.on("pageerror", lambda e: errors.append(str(e)))
        a, s = agent.get_by_test_id, sup.get_by_test_id
        client, ami = await ami_watch(rc)
        try:
            await sign_in(agent, rc.base, "agent1", "/console")
            await expect(a("connection")).to_have_attribute("data-status", "connected")
            await a("state-select").select_option("ready")
            await expect(a("state-select")).to_have_value("ready")
            call = rc.sim.call(VIP_PHONE, digits=["1"])
            await expect(a("contact-state")).to_contain_text("Ringing")
            await a("answer").click()
            await expect(a("contact-state")).to_contain_text("Talking")
            iid = next(iter(rc.center.voice.calls))
            agent_channel = rc.center.voice.calls[iid].agent_channel

            await sign_in(sup, rc.base, "sup_red", "/wallboard")
            await expect(sup.locator("body")).to_have_attribute("data-supervise-socket", "open")
            # the agent's row shows the call: a click on it picks the contact
            row = sup.locator(f'[data-testid=wb-agents] [data-interaction="{iid}"]')
            await row.click()
            await expect(s("sv-interaction")).to_have_value(str(iid))
            await s("sv-barge").click()
            state = s("sv-spy-state")
            await expect(state).to_have_attribute("data-state", "active")
            await expect(state).to_have_attribute("data-mode", "barge")
            await expect(state).to_contain_text("Barged in")
            resp = await ami_event(ami, "OriginateResponse", Application="ChanSpy")
            assert resp["Response"] == "Success" and resp["Data"] == f"{agent_channel},qEdB"
            start = await ami_event(ami, "ChanSpyStart", SpyerChannel=resp["Channel"])
            assert start["SpyeeChannel"] == agent_channel
            await sup.screenshot(path=str(ARTIFACTS / f"barge-{database.dialect}.png"), full_page=True)

            await s("sv-whisper").click()  # switch mode: DTMF 5 on the spying channel
            await expect(state).to_have_attribute("data-mode", "whisper")
            await expect(state).to_contain_text("Whispering to the agent")
            dtmf = await ami_event(ami, "DTMFEnd", Channel=resp["Channel"])
            assert dtmf["Digit"] == "5"

            call.hangup()
            await expect(state).to_have_attribute("data-state", "ended")
            await expect(a("contact-state")).to_contain_text("Ended")
            assert errors == []
        except Exception:
            await sup.screenshot(path=str(ARTIFACTS / f"barge-{database.dialect}-failure.png"),
                                 full_page=True)
            await agent.screenshot(path=str(ARTIFACTS / f"barge-agent-{database.dialect}-failure.png"))
            for i in list(rc.center.voice.calls):
                print("timeline", i, [(e.kind, e.data) for e in await store.timeline(i)])
            raise
        finally:
            await client.close()
            await browser.close()
    kinds = [(e.kind, (e.data or {}).get("action")) for e in await store.timeline(iid)]
    assert ("supervisor", "spy") in kinds and ("supervisor", "spy_mode") in kinds


async def test_chat_takeover_seen_by_the_agent_and_the_customer(database):
    chromium = need_chromium()
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    store = store_for(database)
    await seed(store)
    center: dict[str, str] = {}
    shop = web.Application()

    async def page_handler(request: web.Request) -> web.Response:
        text = demo_page(center["base"], center["origin"], "shop")
        return web.Response(text=text, content_type="text/html")

    shop.router.add_get("/", page_handler)
    expect.set_options(timeout=20_000)
    async with serve(shop) as shop_base:
        origin = shop_base.replace("127.0.0.1", "localhost")
        env = {"CC_CHAT__SITES": json.dumps([{"id": "shop", "origins": [origin], "secret": "s3cret"}]),
               "CC_CHAT__DEMO_SITE_PORT": ""}
        async with running_center(database, **env) as rc, async_playwright() as pw:
            center.update(base=rc.base, origin=origin)
            browser = await pw.chromium.launch(executable_path=chromium, args=ARGS, headless=True)
            agent = await (await browser.new_context(viewport={"width": 1366, "height": 900})).new_page()
            cust = await (await browser.new_context(viewport={"width": 1100, "height": 760})).new_page()
            sup_ctx = await browser.new_context(viewport={"width": 1366, "height": 1000})
            board, sup = await sup_ctx.new_page(), await sup_ctx.new_page()
            errors: list[str] = []
            for p in (agent, cust, board, sup):
                p.on("pageerror", lambda e: errors.append(str(e)))
            a, c, b, s = (p.get_by_test_id for p in (agent, cust, board, sup))
            try:
                await sign_in(agent, rc.base, "agent1", "/console")
                await expect(a("connection")).to_have_attribute("data-status", "connected")
                await a("state-select").select_option("ready")
                await expect(a("state-select")).to_have_value("ready")
                await cust.goto(origin + "/")
                await c("chat-launcher").click()
                await c("prechat-name").fill("Carla Customer")
                await c("prechat-email").fill("carla@example.com")
                await c("prechat-submit").click()
                await a("chat-accept").click()
                await expect(c("chat-status")).to_contain_text("Agent 1 is chatting with you")
                await c("chat-input").fill("Where is my parcel?")
                await c("chat-send").click()
                await expect(a("chat-log").get_by_text("Where is my parcel?")).to_be_visible()
                iid = next(iter(rc.center.chat.chats))

                # the supervisor: console in one tab (for the chat), wallboard in another
                await sign_in(sup, rc.base, "sup_red", "/console")
                await expect(s("connection")).to_have_attribute("data-status", "connected")
                await board.goto(f"{rc.base}/wallboard")
                await expect(board.locator("body")).to_have_attribute("data-supervise-socket", "open")
                await b("sv-interaction").fill(str(iid))
                await b("sv-observe").click()
                await expect(b("sv-observed")).to_contain_text("Where is my parcel?")
                await b("sv-whisper-text").fill("Offer express shipping")
                await b("sv-chat-whisper").click()
                await expect(a("whisper")).to_contain_text("Sam Red (to you only): Offer express shipping")
                await b("sv-takeover").click()
                await expect(b("sv-status")).to_contain_text("You took the chat over")

                # the agent's tab closes and they are told; the customer sees the new name
                await expect(a("supervisor-notice")).to_contain_text("Sam Red took over the chat")
                await expect(a("chat-log")).to_have_count(0)
                await expect(c("chat-status")).to_contain_text("Sam Red is chatting with you")
                await expect(c("chat-log").get_by_text("Sam Red joined the chat.")).to_be_visible()
                # the supervisor answers from their console; the customer never saw the whisper
                await expect(s("chat-log").get_by_text("Where is my parcel?")).to_be_visible()
                await s("chat-input").fill("It ships express today, on us.")
                await s("chat-send").click()
                await expect(c("chat-log").get_by_text("It ships express today, on us.")).to_be_visible()
                await expect(c("chat-log").get_by_text("Offer express shipping")).to_have_count(0)
                await expect(a("state-select")).to_have_value("ready")  # released, no wrap-up
                await cust.screenshot(path=str(ARTIFACTS / f"takeover-customer-{database.dialect}.png"))
                assert errors == []
            except Exception:
                for n, p in (("agent", agent), ("customer", cust), ("board", board), ("sup", sup)):
                    await p.screenshot(path=str(ARTIFACTS / f"takeover-{n}-{database.dialect}-failure.png"))
                raise
            finally:
                await browser.close()
    timeline = [(e.kind, (e.data or {}).get("action")) for e in await store.timeline(iid)]
    assert ("takeover", None) in timeline and ("supervisor", "chat_takeover") in timeline
