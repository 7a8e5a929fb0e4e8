"""Twilio calls end to end over real HTTP: the simulated Twilio posts signed webhooks to the running
app and follows its TwiML; the center's twilio client moves the caller through the fake REST API."""
from __future__ import annotations

import asyncio

import pytest

from callcenter.app import build_store
from callcenter.settings import load_settings
from tests.callcenter.twilio.harness import running_twilio, sip
from tests.callcenter.twilio.sim import ACCOUNT_SID
from tests.callcenter.voice_harness import REGULAR_PHONE, VIP_PHONE, Console, seed_people

pytestmark = pytest.mark.timeout(60)


def _store(database):
    return build_store(load_settings(env={}), database)


async def _kinds(store, interaction_id: int) -> list[str]:
    return [e.kind for e in await store.timeline(interaction_id)]


async def _ready(rc, store, username: str) -> Console:
    console = await Console.open(rc.center, store, username)
    await console.send("set_state", state="ready")
    await console.next("agent_state", state="ready")
    return console


async def test_vip_call_pop_ack_connect_answer_hangup_wrapup_survey(database):
    store = _store(database)
    people = await seed_people(store)
    async with running_twilio(database) as rc:
        rc.twilio.agent(sip("1001"), answer_after=0.05)
        console = await _ready(rc, store, "agent1")
        call = rc.twilio.call(VIP_PHONE, digits=["1", "5"])  # English; after the call, a 5
        offer = await console.next("offer")
        assert offer["pop"]["known"] is True
        card = offer["pop"]["card"]
        assert card["customer"]["name"] == "Victoria Important" and card["customer"]["tier"] == "vip"
        assert card["open_tickets"][0]["subject"] == "Move the line to the new address"
        assert {"node": "choose_language", "digits": "1"} in offer["ivr_path"]
        assert offer["queue"] == "vip" and offer["caller"] == VIP_PHONE
        # the caller waits in the Twilio queue; nothing moves before the console shows the pop
        assert any(v == "Enqueue" and text == "vip" for v, _a, text in call.verbs)
        assert rc.twilio.rest.requests == []
        await console.send("ack_offer", offer_id=offer["offer_id"])
        await console.next("contact_state", state="ringing")
        await console.next("contact_state", state="talking")
        await console.next("agent_state", state="busy")
        [req] = rc.twilio.rest.requests
        assert req["sid"] == call.sid and req["user"] == ACCOUNT_SID and req["password_ok"]
        assert req["form"]["Url"] == "https://cc.example.com/voice/twilio/connect?a=1"
        dial = [a for v, a, _t in call.verbs if v == "Dial"]
        assert dial and dial[0]["answerOnBridge"] == "true"
        assert ("Sip", sip("1001")) in [(v, t) for v, _a, t in call.verbs]

        call.agent_hangup()
        await console.next("contact_state", state="ended")
        await console.next("wrapup", interaction_id=offer["interaction_id"])
        await console.next("agent_state", state="wrap_up")
        await console.send("submit_wrapup", interaction_id=offer["interaction_id"], disposition="resolved",
                           notes="moved the line")
        await console.next("wrapup_saved")
        await console.next("agent_state", state="ready")
        await call.wait_ended()

    iid = offer["interaction_id"]
    i = await store.get_interaction(iid)
    assert i.state == "wrapup_done" and i.customer_id == people["vip"].id and i.queue == "vip"
    assert i.answered_at and i.ended_at and i.external_id == call.sid
    kinds = await _kinds(store, iid)
    for step in ("arrive", "identify", "ivr", "queue", "offer", "pop_ack", "dial", "ring", "answer",
                 "hangup", "wrapup", "survey"):
        assert step in kinds, (step, kinds)
    assert kinds.index("pop_ack") < kinds.index("dial") < kinds.index("ring") < kinds.index("answer")
    hangup = [e for e in await store.timeline(iid) if e.kind == "hangup"][0]
    assert hangup.data["by"] == "agent"
    survey = [e for e in await store.timeline(iid) if e.kind == "survey"][0]
    assert survey.ok and survey.data["score"] == 5
    card = await store.customer_card(people["vip"].id)
    assert card.csat_count == 1


async def test_no_answer_requeues_keeping_the_place_then_the_next_agent(database):
    store = _store(database)
    await seed_people(store, agents=2)
    async with running_twilio(database) as rc:
        rc.twilio.agent(sip("1001"), never_answer=True)
        a1 = await _ready(rc, store, "agent1")
        call = rc.twilio.call(REGULAR_PHONE, digits=["1", "0"])
        offer = await a1.next("offer")
        await a1.send("ack_offer", offer_id=offer["offer_id"])
        await a1.next("contact_state", state="ringing")
        gone = await a1.next("offer_withdrawn", timeout=20)
        assert gone["reason"] == "no_answer"
        assert (await a1.next("agent_state", state="not_ready"))["reason"] == "no-answer"
        a2 = await Console.open(rc.center, store, "agent2")
        await a2.send("set_state", state="ready")
        offer2 = await a2.next("offer")
        assert offer2["interaction_id"] == offer["interaction_id"]
        await a2.send("ack_offer", offer_id=offer2["offer_id"])
        await a2.next("contact_state", state="talking")
        assert [r["form"]["Url"].rsplit("?", 1)[1] for r in rc.twilio.rest.requests] == ["a=1", "a=2"]
        # back in the Twilio queue between the two attempts
        assert [v for v, _a, _t in call.verbs].count("Enqueue") == 2
        call.hangup()
        await a2.next("contact_state", state="ended")
        await call.wait_ended()
    kinds = await _kinds(store, offer["interaction_id"])
    assert "rona" in kinds and "requeue" in kinds and kinds.count("offer") == 2
    hangup = [e for e in await store.timeline(offer["interaction_id"]) if e.kind == "hangup"][0]
    assert hangup.data["by"] == "caller"


async def test_abandon_while_queued_is_logged_with_the_wait(database):
    store = _store(database)
    await seed_people(store)
    async with running_twilio(database) as rc:
        call = rc.twilio.call(REGULAR_PHONE, digits=["1", "0"])
        for _ in range(500):  # no agent: the caller holds, hearing the position and music
            if any(v == "wait:Play" for v, _a, _t in call.verbs):
                break
            await asyncio.sleep(0.02)
        assert "You are number 1 in the queue." in [t for v, _a, t in call.verbs if v == "wait:Say"]
        call.hangup()
        await call.wait_ended()
        i = await store.find_interaction(call.sid)
        for _ in range(200):
            i = await store.get_interaction(i.id)
            if i.state == "abandoned":
                break
            await asyncio.sleep(0.02)
    assert i.state == "abandoned" and i.ended_at is not None
    ev = [e for e in await store.timeline(i.id) if e.kind == "abandon"]
    assert ev and ev[0].ok is False and ev[0].data["wait_s"] >= 0


async def test_rest_api_down_the_wait_url_answers_leave(database):
    store = _store(database)
    await seed_people(store)
    async with running_twilio(database) as rc:
        rc.twilio.rest.fail_next = 1  # the Calls API refuses the update once
        console = await _ready(rc, store, "agent1")
        call = rc.twilio.call(REGULAR_PHONE, digits=["1", "0"])
        offer = await console.next("offer")
        await console.send("ack_offer", offer_id=offer["offer_id"])
        await console.next("contact_state", state="talking")
        assert len(rc.twilio.rest.requests) == 1
        assert ("wait:Leave", {}, "") in call.verbs
        dequeued = [h for h in rc.twilio.webhooks if "/twilio/dequeued" in h.url]
        assert dequeued and dequeued[0].params["QueueResult"] == "leave"
        call.hangup()
        await console.next("wrapup")
        await call.wait_ended()
    events = await store.timeline(offer["interaction_id"])
    failed = [e for e in events if e.kind == "redirect"]
    assert failed and failed[0].ok is False and "TwilioRestException" in failed[0].data["error"]
    assert "answer" in [e.kind for e in events]


async def test_hang_up_in_the_ivr_is_abandoned_with_the_path(database):
    store = _store(database)
    await seed_people(store)
    async with running_twilio(database) as rc:
        call = rc.twilio.call(REGULAR_PHONE, digits=["1"])  # English, then silence at the main menu
        await call.gathered.get()
        await call.gathered.get()
        call.hangup()
        await call.wait_ended()
        i = await store.find_interaction(call.sid)
        assert i is not None
        i = await store.get_interaction(i.id)
    assert i.state == "abandoned"
    ivr = [e for e in await store.timeline(i.id) if e.kind == "ivr"][0]
    assert ivr.data["result"] == "abandoned at main_menu"
    assert i.ivr_path and i.ivr_path[-1]["event"] == "finished"


async def test_decline_while_the_phone_rings_takes_the_caller_back_to_the_queue(database):
    store = _store(database)
    await seed_people(store, agents=2)
    async with running_twilio(database, CC_TWILIO__DIAL_TIMEOUT_S="200") as rc:  # rings 4 s here
        rc.twilio.agent(sip("1001"), answer_after=2.0)
        a1 = await _ready(rc, store, "agent1")
        call = rc.twilio.call(REGULAR_PHONE, digits=["1", "0"])
        offer = await a1.next("offer")
        await a1.send("ack_offer", offer_id=offer["offer_id"])
        await a1.next("contact_state", state="ringing")
        await a1.send("decline_offer", offer_id=offer["offer_id"])
        await a1.next("offer_withdrawn")
        # the agent's phone is answered anyway: the caller is taken back to the queue, not bridged
        for _ in range(300):
            if len(rc.twilio.rest.requests) == 2:
                break
            await asyncio.sleep(0.02)
        assert rc.twilio.rest.requests[1]["form"]["Url"].endswith("/twilio/connect?a=2")
        for _ in range(300):
            if [v for v, _a, _t in call.verbs].count("Enqueue") == 2:
                break
            await asyncio.sleep(0.02)
        assert [v for v, _a, _t in call.verbs].count("Enqueue") == 2
        a2 = await Console.open(rc.center, store, "agent2")
        await a2.send("set_state", state="ready")
        offer2 = await a2.next("offer")
        await a2.send("ack_offer", offer_id=offer2["offer_id"])
        await a2.next("contact_state", state="talking")
        call.hangup()
        await a2.next("wrapup")
    kinds = await _kinds(store, offer["interaction_id"])
    assert kinds.count("answer") == 1 and "requeue" in kinds


async def test_caller_hangs_up_while_the_agent_phone_rings(database):
    store = _store(database)
    await seed_people(store)
    async with running_twilio(database) as rc:
        rc.twilio.agent(sip("1001"), never_answer=True)
        console = await _ready(rc, store, "agent1")
        call = rc.twilio.call(REGULAR_PHONE, digits=["1", "0"])
        offer = await console.next("offer")
        await console.send("ack_offer", offer_id=offer["offer_id"])
        await console.next("contact_state", state="ringing")
        call.hangup()
        gone = await console.next("offer_withdrawn")
        assert gone["reason"] == "caller_abandoned"
        await console.next("agent_state", state="ready")
        await call.wait_ended()
    i = await store.get_interaction(offer["interaction_id"])
    assert i.state == "abandoned"


async def test_the_console_over_its_real_websocket_sees_the_twilio_call(database):
    """The same console page protocol (every frame checked against its schema) for a Twilio call;
    a console that reloads while the agent talks gets the call back."""
    from tests.callcenter.test_console_ws import cookie_for, open_console

    store = _store(database)
    await seed_people(store)
    async with running_twilio(database) as rc:
        cookie = await cookie_for(rc.base, "agent1")
        ws, c = await open_console(rc.base, cookie)
        await c.next("hello")
        await c.send("set_state", state="ready")
        await c.next("agent_state", state="ready")
        call = rc.twilio.call(REGULAR_PHONE, digits=["1", "2", "4"])  # English, support; survey: 4
        offer = await c.next("offer")
        assert offer["queue"] == "support" and offer["pop"]["card"]["customer"]["name"] == "Rob Regular"
        await c.send("ack_offer", offer_id=offer["offer_id"])
        await c.next("contact_state", state="talking")
        await ws.close()
        ws, c = await open_console(rc.base, cookie)
        await c.next("hello")
        again = await c.next("contact_state")
        assert again["state"] == "talking" and again["interaction_id"] == offer["interaction_id"]
        await c.send("hold", interaction_id=offer["interaction_id"], request_id="h")
        refused = await c.next("error", request_id="h")
        assert refused["code"] == "conflict"  # call controls are Asterisk's; a clear refusal
        await c.send("answer", interaction_id=offer["interaction_id"], request_id="a")
        assert (await c.next("error", request_id="a"))["code"] == "invalid"  # the agent's own phone
        # the console's Hang up: the REST API ends the agent's leg; the caller goes on to the survey
        await c.send("hangup", interaction_id=offer["interaction_id"])
        await c.next("contact_state", state="ended")
        ended = [r for r in rc.twilio.rest.requests if r["form"].get("Status") == "completed"]
        assert ended and ended[0]["sid"] == call.agent_leg
        await c.next("wrapup", interaction_id=offer["interaction_id"])
        await c.send("submit_wrapup", interaction_id=offer["interaction_id"], disposition="resolved",
                     notes="router reset")
        await c.next("wrapup_saved")
        await ws.close()
        await call.wait_ended()
    i = await store.get_interaction(offer["interaction_id"])
    assert i.state == "wrapup_done" and i.disposition_code == "resolved"
    events = await store.timeline(i.id)
    assert [e.data["by"] for e in events if e.kind == "hangup"] == ["agent"]
    assert [e.data.get("score") for e in events if e.kind == "survey"] == [4]


async def test_a_busy_agent_leg_requeues_like_no_answer(database):
    store = _store(database)
    await seed_people(store)
    async with running_twilio(database) as rc:
        rc.twilio.agent(sip("1001"), busy=True)
        console = await _ready(rc, store, "agent1")
        call = rc.twilio.call(REGULAR_PHONE, digits=["1", "0"])
        offer = await console.next("offer")
        await console.send("ack_offer", offer_id=offer["offer_id"])
        gone = await console.next("offer_withdrawn")
        assert gone["reason"] == "no_answer"
        call.hangup()
        await call.wait_ended()
    rona = [e for e in await store.timeline(offer["interaction_id"]) if e.kind == "rona"]
    assert rona and rona[0].data["dial_status"] == "BUSY"


async def test_waiting_callers_hear_their_place_in_the_routing_queue(database):
    store = _store(database)
    await seed_people(store)
    async with running_twilio(database) as rc:
        async def hears(call, place: int) -> None:
            want = f"You are number {place} in the queue."
            for _ in range(500):
                if want in [t for v, _a, t in call.verbs if v == "wait:Say"]:
                    return
                await asyncio.sleep(0.02)
            raise AssertionError(call.verbs)

        first = rc.twilio.call(REGULAR_PHONE, digits=["1", "0"])
        await hears(first, 1)
        second = rc.twilio.call("+12025559876", digits=["1", "0"])  # behind the first
        await hears(second, 2)
        first.hangup()
        await first.wait_ended()
        await hears(second, 1)  # moved up once the first left
        second.hangup()
        await second.wait_ended()


async def test_an_agent_twilio_cannot_dial_is_refused_and_the_call_requeued(database):
    store = _store(database)
    await seed_people(store)
    await store.create_user("pbxonly", "agent-password", roles=["agent"], display_name="PBX only",
                            extension="PJSIP/1009", skills={"billing": 5, "support": 5})
    async with running_twilio(database) as rc:
        await rc.center.load_agents()
        console = await _ready(rc, store, "pbxonly")
        call = rc.twilio.call(REGULAR_PHONE, digits=["1", "0"])
        offer = await console.next("offer")
        await console.send("ack_offer", offer_id=offer["offer_id"])
        gone = await console.next("offer_withdrawn")
        assert gone["reason"] == "no_answer"
        assert rc.twilio.rest.requests == []  # nothing was asked of Twilio
        call.hangup()
        await call.wait_ended()
    dial = [e for e in await store.timeline(offer["interaction_id"]) if e.kind == "dial"]
    assert dial and dial[0].ok is False and dial[0].data["error"] == "no number or SIP address"


async def test_closed_hours_voicemail_is_recorded_on_the_timeline(database):
    from datetime import UTC, datetime

    sunday = datetime(2026, 11, 29, 17, 0, tzinfo=UTC)  # the demo flow is closed on Sundays
    store = _store(database)
    await seed_people(store)
    async with running_twilio(database, ivr_clock=lambda: sunday) as rc:
        call = rc.twilio.call(REGULAR_PHONE, digits=["1", "2"])  # English; closed: leave a message
        await call.wait_ended()
        assert [v for v, _a, _t in call.verbs].count("Record") == 1  # recorded once, then hung up
    i = await store.find_interaction(call.sid)
    events = await store.timeline(i.id)
    vm = [e for e in events if e.kind == "voicemail"]
    assert vm and vm[0].ok and vm[0].data["duration_s"] == 7
    assert vm[0].data["recording_url"].startswith("https://api.twilio.com/")
    assert (await store.get_interaction(i.id)).state == "wrapup_done"


async def test_an_ami_resync_leaves_live_twilio_calls_alone(database):
    store = _store(database)
    await seed_people(store)
    async with running_twilio(database) as rc:
        rc.twilio.agent(sip("1001"), answer_after=0.05)
        console = await _ready(rc, store, "agent1")
        call = rc.twilio.call(VIP_PHONE, digits=["1", "5"])  # English; after the call, a 5
        offer = await console.next("offer")
        await console.send("ack_offer", offer_id=offer["offer_id"])
        await console.next("contact_state", state="talking")
        await rc.center.voice.ami_resynced(set())  # the PBX link came back knowing no calls
        call.agent_hangup()
        ended = await console.next("contact_state")
        assert ended["state"] == "ended"
        await call.wait_ended()
    kinds = await _kinds(store, offer["interaction_id"])
    assert "ami_gap" not in kinds and kinds.count("hangup") == 1
