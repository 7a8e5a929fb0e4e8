"""Callbacks end to end (issue 10): scheduled by the IVR or from the console, routed at their
time to an agent with the skills, offered with the pop, placed through Originate when the agent
accepts, retried by policy when the customer is busy or does not answer, and given up after the
last attempt. Over the real console websocket (every frame checked against its schema) against
the simulated PBX (AMI and FastAGI over TCP), on SQLite and PostgreSQL. The scheduler's UTC clock
is injected and driven by the test (`tick()`), never by sleeping."""
from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest

from crm_core.callbacks import CallbackStore
from routing import OfferCallbackStep
from tests.callcenter.test_console_ws import _store, cookie_for, open_console
from tests.callcenter.voice_harness import REGULAR_PHONE, running_center, seed_people

pytestmark = pytest.mark.timeout(120)
T0 = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
# the scheduler is driven by the test; no demo chat site (it would bind a fixed port)
ENV = {"CC_CALLBACKS__POLL_S": "0", "CC_CHAT__DEMO_SITE_PORT": ""}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def _subsequence(wanted: list[str], kinds: list[str]) -> bool:
    it = iter(kinds)
    return all(any(k == w for k in it) for w in wanted)


async def _ready(rc, username: str):
    ws, c = await open_console(rc.base, await cookie_for(rc.base, username))
    await c.next("hello")
    await c.send("set_state", state="ready")
    await c.next("agent_state", state="ready")
    return ws, c


async def _accept_and_pick_up(c, offer) -> int:
    """Accept the callback offer; the agent's (soft) phone rings first and is answered."""
    await c.send("accept_callback", offer_id=offer["offer_id"])
    iid = offer["interaction_id"]
    await c.next("contact_state", interaction_id=iid, state="ringing")
    await c.send("answer", interaction_id=iid)
    return iid


async def test_ivr_callback_offered_to_an_agent_accepted_and_connected(database):
    store = _store(database)
    people = await seed_people(store, agents=1)
    clock = Clock(T0)
    async with running_center(database, **ENV) as rc:
        cbs = rc.center.callbacks
        cbs.utc = clock
        # The caller asks for a callback in the IVR (English, "call me back", confirm the number).
        call = rc.sim.call(REGULAR_PHONE, digits=["1", "3", "1"])
        await call.wait_hangup(timeout=20)
        inbound = int(call.vars["CC_INTERACTION"])
        scheduled = [e for e in await store.timeline(inbound) if e.kind == "callback_scheduled"]
        assert scheduled and scheduled[0].ok and scheduled[0].data["number"] == REGULAR_PHONE
        cb = await CallbackStore(database).get(scheduled[0].data["callback_id"])
        assert (cb.origin, cb.status, cb.customer_id) == ("ivr", "scheduled", people["regular"].id)
        assert cb.queue == "general"  # the flow's `callbacks` queue is not in the catalog: the default
        assert (await store.get_interaction(cb.interaction_id)).state == "queued"

        ws, c = await _ready(rc, "agent1")
        assert await cbs.tick() == 1
        offer = await c.next("offer")
        assert offer["kind"] == "callback" and offer["interaction_id"] == cb.interaction_id
        # a console that reloads gets the pending callback offer again
        await ws.close()
        ws, c = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        again = await c.next("offer")
        assert again["offer_id"] == offer["offer_id"] and again["callback"] == offer["callback"]
        assert offer["caller"] == REGULAR_PHONE and offer["callback"]["origin"] == "ivr"
        assert offer["callback"]["attempt"] == 1 and offer["callback"]["max_attempts"] == 3
        assert offer["pop"]["known"] and offer["pop"]["card"]["customer"]["name"] == "Rob Regular"
        events = rc.sim.subscribe()
        await c.send("ack_offer", offer_id=offer["offer_id"])  # the console acks every pop: no dial yet
        await c.send("search", q="Rob", request_id="q")
        await c.next("search_results", request_id="q")
        assert events.empty()

        rc.sim.agent(REGULAR_PHONE.lstrip("+"), answer_after=1.0, talk_time=None)
        iid = await _accept_and_pick_up(c, offer)
        connected = await c.next("callback_state", interaction_id=iid)  # stored, then the state
        await c.next("contact_state", interaction_id=iid, state="talking")
        assert connected["state"] == "connected" and connected["attempts"] == 1
        dials = []
        while not events.empty():
            e = events.get_nowait()
            if e.name == "DialBegin":
                dials.append(e.get("DestChannel") or "")
        assert dials[0].startswith("PJSIP/1001") and "12025550144" in dials[1]  # the agent first
        await c.send("hangup", interaction_id=iid)
        await c.next("wrapup", interaction_id=iid)
        await c.send("submit_wrapup", interaction_id=iid, disposition="resolved", notes="Called back")
        await c.next("wrapup_saved", interaction_id=iid)
        await c.next("agent_state", state="ready")
        await ws.close()
    done = await CallbackStore(database).get(cb.id)
    assert (done.status, done.attempts, done.last_outcome) == ("connected", 1, "answered")
    i = await store.get_interaction(iid)
    assert i.direction == "outbound" and i.state == "wrapup_done" and i.answered_at is not None
    assert i.agent_id == (await store.get_user("agent1")).id and i.customer_id == people["regular"].id
    kinds = [e.kind for e in await store.timeline(iid)]
    order = ["callback_scheduled", "callback_due", "offer", "pop_ack", "callback_attempt", "dial", "ring",
             "agent_answered", "ring", "callback_connected", "answer", "hangup", "wrapup"]
    assert _subsequence(order, kinds), " ".join(kinds)


async def test_console_callback_waits_for_its_time_and_a_skilled_agent(database):
    store = _store(database)
    people = await seed_people(store, agents=1)
    await store.create_user("agent9", "agent-password", roles=["agent"], display_name="Agent 9",
                            extension="1009", skills={"support": 5})  # no billing skill
    await store.create_user("super", "agent-password", roles=["supervisor"], display_name="Sue")
    clock = Clock(T0)
    async with running_center(database, **ENV) as rc:
        cbs = rc.center.callbacks
        cbs.utc = clock
        wss, s = await open_console(rc.base, await cookie_for(rc.base, "super"))
        await s.next("hello")
        await s.send("schedule_callback", customer_id=people["vip"].id, queue="billing",
                     at=(T0 + timedelta(minutes=30)).isoformat(), note="after the meeting", request_id="s")
        sched = await s.next("callback_scheduled", request_id="s")
        assert sched["number"] == "+12025550143" and sched["queue"] == "billing"
        assert sched["due_at"] == (T0 + timedelta(minutes=30)).isoformat()
        tl = await store.timeline(sched["interaction_id"])
        assert tl[-1].kind == "callback_scheduled" and tl[-1].data["by"] == "super"

        ws9, c9 = await _ready(rc, "agent9")
        assert await cbs.tick() == 0
        clock.advance(minutes=29)
        assert await cbs.tick() == 0
        clock.advance(minutes=1)
        assert await cbs.tick() == 1  # routed now, but agent9 cannot take billing: it waits
        assert (await CallbackStore(database).get(sched["callback_id"])).status == "routing"

        ws1, c1 = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        await c1.next("hello")
        await c1.send("set_state", state="ready")  # offered at once (before the new agent_state)
        offer = await c1.next("offer", interaction_id=sched["interaction_id"])
        assert offer["queue"] == "billing" and offer["callback"]["note"] == "after the meeting"
        assert offer["callback"]["origin"] == "console"
        assert offer["pop"]["card"]["customer"]["tier"] == "vip"
        await c9.send("search", q="Rob", request_id="q")  # everything sent to agent9 before this
        await c9.next("search_results", request_id="q")
        assert not [m for m in c9.seen if m["type"] == "offer"]

        # Declined: back in the queue (the interaction too), the agent not ready.
        await c1.send("decline_offer", offer_id=offer["offer_id"])
        await c1.next("offer_withdrawn", offer_id=offer["offer_id"], reason="declined")
        await c1.next("agent_state", state="not_ready")
        assert (await CallbackStore(database).get(sched["callback_id"])).status == "routing"
        assert (await store.get_interaction(sched["interaction_id"])).state == "queued"
        for w in (wss, ws1, ws9):
            await w.close()
    kinds = [e.kind for e in await store.timeline(sched["interaction_id"])]
    assert [k for k in kinds if k not in ("opened", "state")] == [
        "callback_scheduled", "callback_due", "offer", "requeue"]


async def test_failed_callback_retried_per_policy_then_given_up(database):
    store = _store(database)
    people = await seed_people(store, agents=1)
    clock = Clock(T0)
    number = REGULAR_PHONE.lstrip("+")
    async with running_center(database, **ENV, CC_CALLBACKS__MAX_ATTEMPTS="2",
                              CC_CALLBACKS__RETRY_S__BUSY="60", CC_CALLBACKS__RETRY_S__NO_ANSWER="600") as rc:
        cbs = rc.center.callbacks
        cbs.utc = clock
        ws, c = await _ready(rc, "agent1")
        await c.send("schedule_callback", customer_id=people["regular"].id, request_id="s")
        sched = await c.next("callback_scheduled", request_id="s")
        assert sched["max_attempts"] == 2

        # Attempt 1: the customer's line is busy.
        rc.sim.agent(number, busy=True)
        assert await cbs.tick() == 1
        offer = await c.next("offer", interaction_id=sched["interaction_id"])
        iid = await _accept_and_pick_up(c, offer)
        retry = await c.next("callback_state", interaction_id=iid)
        assert (retry["state"], retry["outcome"], retry["attempts"]) == ("retry", "busy", 1)
        assert retry["next_at"] == (T0 + timedelta(seconds=60)).isoformat()
        await c.next("agent_state", state="ready")  # no wrap-up for a call that never connected

        # Not before the policy's delay for a busy line; then attempt 2: no answer.
        clock.advance(seconds=59)
        assert await cbs.tick() == 0
        clock.advance(seconds=1)
        rc.sim.agent(number, never_answer=True)
        assert await cbs.tick() == 1
        offer2 = await c.next("offer", interaction_id=iid)
        assert offer2["callback"]["attempt"] == 2 and offer2["callback"]["last_outcome"] == "busy"
        await _accept_and_pick_up(c, offer2)
        gone = await c.next("callback_state", interaction_id=iid, timeout=30)
        assert (gone["state"], gone["outcome"], gone["attempts"]) == ("failed", "no_answer", 2)
        assert gone["next_at"] is None

        # Given up: nothing more is routed, however late it gets.
        clock.advance(days=1)
        assert await cbs.tick() == 0
        await ws.close()
    cb = await CallbackStore(database).get(sched["callback_id"])
    assert (cb.status, cb.attempts, cb.last_outcome) == ("failed", 2, "no_answer")
    assert (await store.get_interaction(iid)).state == "failed"
    tl = await store.timeline(iid)
    attempts = [e.data["attempt"] for e in tl if e.kind == "callback_attempt"]
    assert attempts == [1, 2]
    failed_dials = [e.data.get("dial_status") for e in tl if e.kind == "dial" and not e.ok]
    assert failed_dials == ["BUSY", "NOANSWER"]
    retries = [e for e in tl if e.kind == "callback_retry"]
    assert len(retries) == 1 and not retries[0].ok and retries[0].data["outcome"] == "busy"
    assert retries[0].data["delay_s"] == 60
    given_up = [e for e in tl if e.kind == "callback_given_up"]
    assert len(given_up) == 1 and given_up[0].data == {
        "callback_id": cb.id, "attempts": 2, "outcome": "no_answer", "detail": "dial status NOANSWER"}
    assert not any(e.kind == "state_failed" for e in tl)


async def test_schedule_callback_refusals(database):
    store = _store(database)
    people = await seed_people(store, agents=1)
    nophone = await store.create_customer("No Phone", emails=["np@example.com"])
    async with running_center(database, **ENV) as rc:
        ws, c = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        await c.next("hello")
        for i, (fields, code) in enumerate([
                ({"customer_id": nophone.id}, "invalid"),
                ({"customer_id": 999999}, "not_found"),
                ({"customer_id": people["vip"].id, "queue": "nowhere"}, "invalid"),
                ({"number": "+11234567"}, "invalid"),  # the right shape, but no such number
                ({"number": "+12025550100", "at": "2999-01-01T00:00:00Z"}, "invalid")]):
            await c.send("schedule_callback", request_id=f"r{i}", **fields)
            assert (await c.next("error", request_id=f"r{i}"))["code"] == code, fields
        await c.ws.send(json.dumps({"type": "schedule_callback", "number": "+12025550100",
                                    "at": "2026-11-25T17:00:00", "request_id": "tz"}))  # no time zone
        assert (await c.next("error", request_id="tz"))["code"] == "bad_message"
        await c.send("accept_callback", offer_id="nope", request_id="a")
        assert (await c.next("error", request_id="a"))["code"] == "not_found"
        await ws.close()
    assert await CallbackStore(database).list_open() == []


async def test_routing_escalation_offers_a_callback_the_caller_takes_it(database):
    store = _store(database)
    people = await seed_people(store, agents=1)
    async with running_center(database, **ENV) as rc:
        # The general queue's escalation policy offers a callback after half a second of waiting.
        queues = rc.center.runner.engine.config.queues
        queues["general"] = dataclasses.replace(queues["general"], escalation=(OfferCallbackStep(0.5),))
        # English, "0" for an agent (nobody is ready), then "1" when offered a callback.
        call = rc.sim.call(REGULAR_PHONE, digits=["1", "0", "1"])
        await call.wait_hangup(timeout=20)
        inbound = int(call.vars["CC_INTERACTION"])
    tl = await store.timeline(inbound)
    kinds = [e.kind for e in tl]
    assert _subsequence(["queue", "offercallback", "callback_offered", "callback_scheduled", "end"], kinds), \
        " ".join(kinds)
    i = await store.get_interaction(inbound)
    assert i.state == "wrapup_done" and i.answered_at is None
    sched = next(e for e in tl if e.kind == "callback_scheduled")
    cb = await CallbackStore(database).get(sched.data["callback_id"])
    assert (cb.origin, cb.number, cb.queue) == ("escalation", REGULAR_PHONE, "general")
    assert cb.status == "scheduled"
    assert cb.customer_id == people["regular"].id and cb.origin_interaction_id == inbound


async def test_agents_phone_not_answering_is_not_an_attempt(database):
    store = _store(database)
    people = await seed_people(store, agents=1)
    clock = Clock(T0)
    async with running_center(database, **ENV) as rc:
        cbs = rc.center.callbacks
        cbs.utc = clock
        ws, c = await _ready(rc, "agent1")
        await c.send("schedule_callback", customer_id=people["vip"].id, request_id="s")
        sched = await c.next("callback_scheduled", request_id="s")
        assert await cbs.tick() == 1
        offer = await c.next("offer", interaction_id=sched["interaction_id"])
        await c.send("accept_callback", offer_id=offer["offer_id"])
        iid = offer["interaction_id"]
        await c.next("contact_state", interaction_id=iid, state="ringing")
        # nobody picks up the agent's phone: the Originate times out (OriginateResponse Reason 3)
        state = await c.next("callback_state", interaction_id=iid, timeout=30)
        assert (state["state"], state["outcome"], state["attempts"]) == ("retry", "agent_unavailable", 0)
        assert state["next_at"] == (T0 + timedelta(seconds=30)).isoformat()
        await c.next("agent_state", state="not_ready")  # as after a ring-no-answer
        await ws.close()
    cb = await CallbackStore(database).get(sched["callback_id"])
    assert (cb.status, cb.attempts, cb.last_outcome) == ("scheduled", 0, "agent_unavailable")
    tl = await store.timeline(iid)
    assert (await store.get_interaction(iid)).state == "queued", " | ".join(
        f"{e.kind} {e.ok} {e.data.get('to') or e.data.get('reason') or e.data.get('by') or ''}" for e in tl)
    assert [e.data.get("code") for e in tl if e.kind == "dial" and not e.ok] == ["3"]
    assert [e.data["outcome"] for e in tl if e.kind == "callback_retry"] == ["agent_unavailable"]
    assert not any(e.kind == "state_failed" for e in tl)


async def test_ivr_callback_to_an_invalid_number_is_logged_not_scheduled(database):
    store = _store(database)
    await seed_people(store, agents=1)
    async with running_center(database, **ENV) as rc:
        # English, "call me back", "another number", then seven digits that are no phone number
        call = rc.sim.call(REGULAR_PHONE, digits=["1", "3", "2", "1234567#"])
        await call.wait_hangup(timeout=20)
        inbound = int(call.vars["CC_INTERACTION"])
    tl = await store.timeline(inbound)
    refused = [e for e in tl if e.kind == "callback_scheduled"]
    assert len(refused) == 1 and not refused[0].ok and refused[0].data["error"] == "not a valid phone number"
    assert refused[0].data["digits"] == "4567"  # only the end of what was keyed is kept
    assert await CallbackStore(database).list_open() == []
    assert (await store.get_interaction(inbound)).state == "wrapup_done"


async def test_a_callback_routed_by_another_process_is_offered_here(database):
    """With shared routing state, the process where an agent becomes ready performs the offer of
    a callback another process put in the queue: it reads the callback from the store."""
    store = _store(database)
    people = await seed_people(store, agents=1)
    async with running_center(database, **ENV) as rc:
        cbs = rc.center.callbacks
        cbs.utc = lambda: T0
        ws, c = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        await c.next("hello")
        await c.send("schedule_callback", customer_id=people["vip"].id, request_id="s")
        sched = await c.next("callback_scheduled", request_id="s")
        assert await cbs.tick() == 1  # in the queue; nobody is ready
        cbs.live.clear()  # as if this process had not routed it
        await c.send("set_state", state="ready")
        offer = await c.next("offer", interaction_id=sched["interaction_id"])
        assert offer["kind"] == "callback" and offer["callback"]["callback_id"] == sched["callback_id"]
        await c.send("decline_offer", offer_id=offer["offer_id"])
        await c.next("offer_withdrawn", offer_id=offer["offer_id"])
        await ws.close()


async def test_a_connected_callback_transferred_on_frees_the_first_agent(database):
    store = _store(database)
    people = await seed_people(store, agents=2)
    async with running_center(database, **ENV) as rc:
        cbs = rc.center.callbacks
        cbs.utc = lambda: T0
        ws, a = await _ready(rc, "agent1")
        await a.send("schedule_callback", customer_id=people["vip"].id, request_id="s")
        sched = await a.next("callback_scheduled", request_id="s")
        rc.sim.agent("12025550143", answer_after=0.2, talk_time=None)
        assert await cbs.tick() == 1
        offer = await a.next("offer", interaction_id=sched["interaction_id"])
        iid = await _accept_and_pick_up(a, offer)
        await a.next("callback_state", interaction_id=iid, state="connected")
        await a.next("contact_state", interaction_id=iid, state="talking")
        ws2, b = await _ready(rc, "agent2")
        customer = rc.center.voice.calls[iid].caller_channel
        await a.send("transfer", interaction_id=iid, target_type="agent", target="agent2", notes="VIP desk")
        await a.next("contact_state", interaction_id=iid, state="ended")
        await a.next("wrapup", interaction_id=iid)
        await a.send("submit_wrapup", interaction_id=iid, disposition="resolved", notes="Handed to agent2")
        await a.next("wrapup_saved", interaction_id=iid)
        await a.next("agent_state", state="ready")  # the callback's routing contact is finished
        offer2 = await b.next("offer", interaction_id=iid)
        assert offer2["transfer"]["notes"] == "VIP desk"
        await b.next("contact_state", interaction_id=iid, state="ringing")
        await b.send("answer", interaction_id=iid)
        await b.next("contact_state", interaction_id=iid, state="talking")
        rc.sim.pbx.request_hangup(rc.sim.pbx.find_channel(customer))
        await b.next("wrapup", interaction_id=iid)
        await b.send("submit_wrapup", interaction_id=iid, disposition="resolved", notes="Done")
        await b.next("wrapup_saved", interaction_id=iid)
        await ws2.close()
        await ws.close()
    cb = await CallbackStore(database).get(sched["callback_id"])
    assert (cb.status, cb.attempts) == ("connected", 1)
    kinds = [e.kind for e in await store.timeline(iid)]
    wanted = ["callback_connected", "transfer", "offer", "answer", "hangup"]
    assert _subsequence(wanted, kinds), " ".join(kinds)
    assert [e.data for e in await store.timeline(iid) if e.kind == "routing_refused"] == []
    assert (await store.get_interaction(iid)).state == "wrapup_done"
