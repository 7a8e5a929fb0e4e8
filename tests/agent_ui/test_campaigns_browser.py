"""Campaigns in Debian's Chromium: a real center, the simulated PBX over AMI, the campaigns page.
A progressive call: the supervisor starts the campaign and watches it, the agent's page shows the
pop (customer and script) as the customer answers, the agent ends it with a disposition and the
supervisor's progress shows it. A preview call: the agent sees the record and the script, dials,
answers their phone, hangs up and ends the record. Playwright `expect` waits, no sleeps."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from callcenter.app import build_store
from callcenter.asterisk.simulator.outbound import OutboundScript
from callcenter.settings import load_settings
from crm_core.campaigns import CampaignStore
from tests.callcenter.voice_harness import running_center, seed_people
from tests.services import need_chromium

pytestmark = pytest.mark.timeout(150)
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "screenshots"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
NOON_NY = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
ENV = {"CC_CALLBACKS__POLL_S": "0", "CC_CHAT__DEMO_SITE_PORT": ""}


async def _page(browser, base: str, username: str):
    from playwright.async_api import expect

    page = await (await browser.new_context(viewport={"width": 1280, "height": 900})).new_page()
    await page.goto(f"{base}/console")
    await page.get_by_test_id("login-username").fill(username)
    await page.get_by_test_id("login-password").fill("agent-password")
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("connection")).to_have_attribute("data-status", "connected")
    await page.goto(f"{base}/campaigns")
    await expect(page.get_by_test_id("campaigns")).to_have_attribute("data-socket", "open")
    return page


async def _setup(database, mode: str):
    store = build_store(load_settings(env={}), database)
    people = await seed_people(store)
    await store.create_user("sup", "agent-password", roles=["supervisor"], display_name="Sam Sup")
    cs = CampaignStore(database)
    camp = await cs.create(
        name=f"renewals-{mode}",
        mode=mode,
        script="Hello, this is about your renewal.",
        dispositions=["sale", "no_sale"],
    )
    await cs.add_segment(camp.id, {"tier": ["vip"]})
    return store, people, cs, camp


async def test_progressive_call_with_the_pop(database):
    chromium = need_chromium()
    from playwright.async_api import async_playwright, expect

    store, people, cs, camp = await _setup(database, "progressive")
    async with running_center(database, **ENV) as rc, async_playwright() as pw:
        rc.center.campaigns.utc = lambda: NOON_NY
        rc.sim.outbound(OutboundScript(answer=1.0, machine=0, busy=0, ring_s=1, talk_s=3600, seed=1))
        rc.sim.agent("1001", answer_after=0.2, talk_time=None)
        browser = await pw.chromium.launch(executable_path=chromium, args=ARGS, headless=True)
        errors: list[str] = []
        agent = await _page(browser, rc.base, "agent1")
        sup = await _page(browser, rc.base, "sup")
        for p in (agent, sup):
            p.on("pageerror", lambda e: errors.append(str(e)))
        a, s = agent.get_by_test_id, sup.get_by_test_id
        await s("campaign-id").fill(str(camp.id))
        await s("watch").click()
        await expect(s("sup-status")).to_have_text("draft")
        await expect(s("remaining")).to_have_text("1")
        await a("campaign-id").fill(str(camp.id))
        await a("join").click()
        await expect(a("agent-campaign")).to_contain_text("renewals-progressive")
        await expect(s("agents")).to_have_text("1 free of 1")
        await s("start").click()
        await expect(s("sup-status")).to_have_text("running")
        # the pop arrives as the customer answers
        await expect(a("record")).to_have_attribute("data-kind", "pop")
        await expect(a("record-name")).to_have_text("Victoria Important")
        await expect(a("record-tier")).to_have_text("vip")
        await expect(a("script")).to_have_text("Hello, this is about your renewal.")
        await expect(s("connected")).to_have_text("1")
        SHOTS.mkdir(parents=True, exist_ok=True)
        await agent.screenshot(path=str(SHOTS / "campaign-progressive-pop.png"))
        customer = next(
            ch
            for ch in rc.sim.pbx.channels.values()
            if ch.name.startswith("PJSIP/12025550143@trunk") and not ch.hungup
        )
        rc.sim.pbx.request_hangup(customer)
        await expect(a("agent-state")).to_have_text("wrap")
        await a("dispo-code").select_option("sale")
        await a("dispo-notes").fill("renewed for a year")
        await a("dispo-submit").click()
        await expect(a("agent-state")).to_have_text("done")
        await expect(a("record")).to_be_hidden()
        await expect(s("dispositions")).to_contain_text("sale: 1")
        await expect(s("remaining")).to_have_text("0")
        await sup.screenshot(path=str(SHOTS / "campaign-supervisor.png"))
        await s("stop").click()
        await expect(s("sup-status")).to_have_text("stopped")
        assert errors == []
        await browser.close()
    rec = (await cs.records(camp.id))[0]
    assert (rec.status, rec.disposition) == ("done", "sale")
    i = await store.get_interaction(rec.interaction_id)
    assert i.direction == "outbound" and i.customer_id == people["vip"].id and i.state == "wrapup_done"


async def test_preview_call(database):
    chromium = need_chromium()
    from playwright.async_api import async_playwright, expect

    store, people, cs, camp = await _setup(database, "preview")
    async with running_center(database, **ENV) as rc, async_playwright() as pw:
        rc.center.campaigns.utc = lambda: NOON_NY
        await rc.center.campaigns.control(camp.id, "start")
        rc.sim.agent("12025550143", answer_after=0.5, talk_time=None)  # the customer
        browser = await pw.chromium.launch(executable_path=chromium, args=ARGS, headless=True)
        errors: list[str] = []
        agent = await _page(browser, rc.base, "agent1")
        agent.on("pageerror", lambda e: errors.append(str(e)))
        a = agent.get_by_test_id
        await a("campaign-id").fill(str(camp.id))
        await a("join").click()
        await expect(a("record")).to_have_attribute("data-kind", "preview")
        await expect(a("record-name")).to_have_text("Victoria Important")
        await expect(a("record-phone")).to_have_text("+12025550143")
        await expect(a("script")).to_have_text("Hello, this is about your renewal.")
        await expect(a("dispo")).to_be_hidden()
        await agent.screenshot(path=str(SHOTS / "campaign-preview.png"))
        await a("dial").click()
        await expect(a("agent-state")).to_have_text("ringing")  # the agent's phone first
        await a("answer").click()
        await expect(a("agent-state")).to_have_text("talking")
        await a("hangup").click()
        await expect(a("agent-state")).to_have_text("ended")
        await a("dispo-code").select_option("no_sale")
        await a("dispo-submit").click()
        await expect(a("agent-state")).to_have_text("empty")  # done, and nothing else is due
        assert errors == []
        await browser.close()
    rec = (await cs.records(camp.id))[0]
    assert (rec.status, rec.disposition) == ("done", "no_sale")
    i = await store.get_interaction(rec.interaction_id)
    assert i.direction == "outbound" and i.answered_at is not None and i.customer_id == people["vip"].id
