# ruff: noqa: E501
"""Call controls with two agents in Debian's Chromium (issue 10): a real center, the simulated PBX
over AMI and FastAGI, two browser contexts on the real console page. Playwright `expect` waits.

A answers a VIP (whose queue records), holds, blind-transfers to B with notes; B's pop carries
them; B answers and warm-transfers to a supervisor (consult, then complete); the caller hangs up.
One interaction holds the whole timeline and the recording reference."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from callcenter.app import build_store
from callcenter.settings import load_settings
from crm_core.models import Interaction
from tests.callcenter.voice_harness import VIP_PHONE, running_center, seed_people
from tests.services import need_chromium

pytestmark = pytest.mark.timeout(150)
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "var" / "test-artifacts"
SHOTS = ROOT / "docs" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
NOTES = "Wants the roaming charges refunded; identity checked."


async def _sign_in(page, base: str, username: str) -> None:
    from playwright.async_api import expect

    tid = page.get_by_test_id
    await page.goto(f"{base}/console")
    await tid("login-username").fill(username)
    await tid("login-password").fill("agent-password")
    await tid("login-submit").click()
    await expect(tid("connection")).to_have_attribute("data-status", "connected")
    await expect(tid("state-select")).to_have_value("offline")


async def _ready(page) -> None:
    from playwright.async_api import expect

    await page.get_by_test_id("state-select").select_option("ready")
    await expect(page.get_by_test_id("state-select")).to_have_value("ready")


async def _answer_phone(rc, number: str) -> None:
    """The supervisor presses Answer on their ringing phone (the simulator's soft-phone)."""
    for _ in range(400):
        if rc.sim.answer_phone(number):
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{number} never rang")


async def test_hold_blind_transfer_then_warm_transfer_to_a_supervisor(database, tmp_path):
    chromium = need_chromium()
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    store = build_store(load_settings(env={}), database)
    await seed_people(store, agents=2)
    await store.create_user("sue", "agent-password", roles=["supervisor"], display_name="Sue Visor",
                            extension="1900")
    shots = SHOTS if database.dialect == "sqlite" else ARTIFACTS  # one set for the README
    async with running_center(database, CC_VOICE__RECORDINGS_DIR=str(tmp_path / "rec"),
                              CC_CHAT__DEMO_SITE_PORT="0", CC_DEMO__TIME_SCALE="0.1") as rc, async_playwright() as pw:
        rc.sim.agent("1900", manual=True)  # the supervisor's phone
        browser = await pw.chromium.launch(executable_path=chromium, args=ARGS, headless=True)
        ctx_a = await browser.new_context(viewport={"width": 1366, "height": 900})
        ctx_b = await browser.new_context(viewport={"width": 1366, "height": 900})
        a, b = await ctx_a.new_page(), await ctx_b.new_page()
        errors: list[str] = []
        for p in (a, b):
            p.on("pageerror", lambda e: errors.append(str(e)))
        ta, tb = a.get_by_test_id, b.get_by_test_id
        try:
            await _sign_in(a, rc.base, "agent1")
            await _sign_in(b, rc.base, "agent2")

            # 1. A answers a known VIP (the VIP desk records its calls) and holds.
            await _ready(a)
            call = rc.sim.call(VIP_PHONE, digits=["1"])
            await expect(ta("customer-name")).to_have_text("Victoria Important")
            await expect(ta("contact-state")).to_contain_text("Ringing")
            await ta("answer").click()
            await expect(ta("contact-state")).to_contain_text("Talking")
            await expect(ta("recording-state")).to_contain_text("Recording")  # MixMonitorStart
            await ta("hold").click()
            await expect(ta("contact-state")).to_contain_text("On hold")  # MusicOnHoldStart
            await expect(ta("retrieve")).to_be_visible()

            # 2. A blind-transfers to B with notes; B's pop carries them.
            await _ready(b)
            await ta("transfer-type").select_option("agent")
            await ta("transfer-target").fill("agent2")
            await ta("transfer-notes").fill(NOTES)
            await ta("transfer-submit").click()
            await expect(ta("wrapup")).to_be_visible()  # A's leg is gone: A wraps up
            await expect(tb("contact-state")).to_contain_text("Ringing")
            await tb("answer").click()  # B answers (the ring timeout is short at this time scale)
            await expect(tb("contact-state")).to_contain_text("Talking")
            await expect(tb("customer-name")).to_have_text("Victoria Important")
            await expect(tb("handoff")).to_contain_text("Transferred by agent1")
            await expect(tb("handoff")).to_contain_text(NOTES)
            await expect(tb("recording-state")).to_contain_text("Recording")  # still recording
            await b.screenshot(path=str(shots / "call-controls-transfer-pop.png"), full_page=True)
            await ta("wrapup-disposition").select_option("resolved")
            await ta("wrapup-notes").fill("Transferred to agent2 for the refund.")
            await ta("wrapup-submit").click()
            await expect(ta("idle")).to_be_visible()

            # 3. B warm-transfers to the supervisor: consult, then complete.
            await tb("consult-type").select_option("supervisor")
            await tb("consult-target").fill("sue")
            await tb("consult-submit").click()
            await expect(tb("contact-state")).to_contain_text("On hold")
            await expect(tb("consult-state")).to_contain_text("sue")
            await _answer_phone(rc, "1900")
            await expect(tb("consult-state")).to_contain_text("talking")
            await expect(tb("consult-complete")).to_be_enabled()
            await expect(tb("consult-conference")).to_be_enabled()
            await b.screenshot(path=str(shots / "call-controls-consult.png"), full_page=True)
            await tb("consult-complete").click()
            await expect(tb("wrapup")).to_be_visible()
            await expect(tb("consult")).to_be_hidden()

            # 4. The caller hangs up (talking with the supervisor).
            call.hangup()
            await call.wait_hangup(10)
            await tb("wrapup-disposition").select_option("resolved")
            await tb("wrapup-notes").fill("Sue approved the refund.")
            await tb("wrapup-submit").click()
            await expect(tb("idle")).to_be_visible()
            assert errors == []
        except Exception:
            for who, p in (("a", a), ("b", b)):
                await p.screenshot(path=str(ARTIFACTS / f"call-controls-{database.dialect}-{who}-failure.png"),
                                   full_page=True)
            raise
        finally:
            await browser.close()
        for _ in range(400):  # the caller's Hangup reaches the center over AMI
            if not rc.center.voice.calls:
                break
            await asyncio.sleep(0.005)

    # 5. One interaction: the whole timeline and the recording reference.
    rows = await store.db.read(lambda c: c.execute(
        select(Interaction.id).where(Interaction.external_id == call.linkedid)).scalars().all())
    assert len(rows) == 1
    iid = rows[0]
    kinds = [e.kind for e in await store.timeline(iid)]
    order = ["answer", "hold", "transfer", "answer", "consult", "consult_answered", "complete", "hangup"]
    pos = -1
    for step in order:
        assert step in kinds[pos + 1:], (step, kinds)
        pos = kinds.index(step, pos + 1)
    inter = await store.get_interaction(iid)
    assert inter.recording_ref == f"interaction-{iid}.wav"
    assert (tmp_path / "rec" / inter.recording_ref).is_file()
    timeline = await store.timeline(iid)
    wraps = [(e.data.get("agent"), e.data.get("notes")) for e in timeline if e.kind == "wrapup"]
    assert wraps == [("agent1", "Transferred to agent2 for the refund."), ("agent2", "Sue approved the refund.")]
    transfer = next(e for e in timeline if e.kind == "transfer")
    assert transfer.data.get("target") == "agent2" and transfer.data.get("notes") == NOTES
    assert [e.data.get("target") for e in timeline if e.kind == "complete"] == ["sue"]
    assert inter.state == "ended"
    assert inter.agent_id == (await store.get_user("agent2")).id  # the agent who took the transfer
    assert "state_failed" not in [e.kind for e in timeline]  # routed again without lifecycle errors


async def test_warm_transfer_becomes_a_three_way_conference(database, tmp_path):
    """A consults B (B's phone rings, B answers it), makes it a conference, then leaves: B's
    console gets the call; the caller hangs up and the conference ends."""
    chromium = need_chromium()
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    store = build_store(load_settings(env={}), database)
    await seed_people(store, agents=2)
    shots = SHOTS if database.dialect == "sqlite" else ARTIFACTS
    async with running_center(database, CC_VOICE__RECORDINGS_DIR=str(tmp_path / "rec"),
                              CC_CHAT__DEMO_SITE_PORT="0", CC_DEMO__TIME_SCALE="0.1") as rc, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=ARGS, headless=True)
        ctx_a = await browser.new_context(viewport={"width": 1366, "height": 900})
        ctx_b = await browser.new_context(viewport={"width": 1366, "height": 900})
        a, b = await ctx_a.new_page(), await ctx_b.new_page()
        errors: list[str] = []
        for p in (a, b):
            p.on("pageerror", lambda e: errors.append(str(e)))
        ta, tb = a.get_by_test_id, b.get_by_test_id
        try:
            await _sign_in(a, rc.base, "agent1")
            await _sign_in(b, rc.base, "agent2")
            await _ready(a)
            call = rc.sim.call(VIP_PHONE, digits=["1"])
            await expect(ta("contact-state")).to_contain_text("Ringing")
            await ta("answer").click()
            await expect(ta("contact-state")).to_contain_text("Talking")

            await ta("consult-type").select_option("agent")
            await ta("consult-target").fill("agent2")
            await ta("consult-submit").click()
            await expect(ta("consult-state")).to_contain_text("agent2")
            await _answer_phone(rc, "1002")  # B picks up the consultation on their phone
            await expect(ta("consult-state")).to_contain_text("talking")
            await expect(ta("conference")).to_be_hidden()
            await ta("consult-conference").click()
            # shown only once the three ConfbridgeJoin events arrived
            await expect(ta("conference-state")).to_contain_text("Conference with agent2 (agent, caller, consulted)")
            await expect(ta("contact-state")).to_contain_text("Talking")
            await expect(ta("consult")).to_be_hidden()
            await a.screenshot(path=str(shots / "call-controls-conference.png"), full_page=True)

            await ta("conference-leave").click()
            await expect(ta("wrapup")).to_be_visible()
            await expect(tb("contact-state")).to_contain_text("Talking")  # the call is B's now
            await expect(tb("conference-state")).to_contain_text("(caller, consulted)")
            call.hangup()
            await expect(tb("wrapup")).to_be_visible()
            await expect(tb("conference")).to_be_hidden()
            assert errors == []
        except Exception:
            for who, p in (("a", a), ("b", b)):
                await p.screenshot(path=str(ARTIFACTS / f"conference-{database.dialect}-{who}-failure.png"),
                                   full_page=True)
            raise
        finally:
            await browser.close()
    rows = await store.db.read(lambda c: c.execute(
        select(Interaction.id).where(Interaction.external_id == call.linkedid)).scalars().all())
    kinds = [e.kind for e in await store.timeline(rows[0])]
    for step in ("consult", "consult_answered", "conference_join", "conference", "conference_leave", "conference_end"):
        assert step in kinds, (step, kinds)
