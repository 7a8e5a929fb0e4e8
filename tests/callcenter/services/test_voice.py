"""Voice end to end through the services: the simulator's AMI and FastAGI over real TCP, the IVR,
the routing engine, the offer with its pop, the console's acknowledgement, wrap-up, the CRM."""
from __future__ import annotations

import asyncio

import pytest

from callcenter.app import build_store
from callcenter.facade import MessageRefused
from callcenter.settings import load_settings
from tests.callcenter.voice_harness import REGULAR_PHONE, VIP_PHONE, Console, running_center, seed_people

pytestmark = pytest.mark.timeout(60)


def _store(database):
    return build_store(load_settings(env={}), database)


async def _kinds(store, interaction_id: int) -> list[str]:
    return [e.kind for e in await store.timeline(interaction_id)]


async def test_vip_call_pop_before_ring_answer_hangup_wrapup(database):
    store = _store(database)
    people = await seed_people(store)
    async with running_center(database) as rc:
        console = await Console.open(rc.center, store, "agent1")
        hello = await console.next("hello")
        assert {"code": "resolved", "label": "Resolved"} in hello["dispositions"]
        assert (await console.next("agent_state"))["state"] == "offline"
        await console.send("set_state", state="ready")
        await console.next("agent_state", state="ready")

        events = rc.sim.subscribe()
        call = rc.sim.call(VIP_PHONE, digits=["1"])  # English; the VIP lane skips the menu
        offer = await console.next("offer")
        assert offer["pop"]["known"] is True
        card = offer["pop"]["card"]
        assert card["customer"]["name"] == "Victoria Important" and card["customer"]["tier"] == "vip"
        assert "resolved" in [i["disposition_code"] for i in card["recent_interactions"]]
        assert card["open_tickets"][0]["subject"] == "Move the line to the new address"
        assert {"node": "choose_language", "digits": "1"} in offer["ivr_path"]
        assert offer["queue"] == "vip" and offer["reasons"]

        # The pop comes before the ring: nothing is dialled until the console acknowledges.
        assert not any(e.name == "DialBegin" for e in _drain(events))
        await console.send("ack_offer", offer_id=offer["offer_id"])
        ring = await console.next("contact_state", state="ringing")
        assert ring["interaction_id"] == offer["interaction_id"]

        await console.send("answer", interaction_id=offer["interaction_id"])
        await console.next("contact_state", state="talking")
        await console.next("agent_state", state="busy")
        call.hangup()
        await console.next("contact_state", state="ended")
        await console.next("wrapup", interaction_id=offer["interaction_id"])
        await console.next("agent_state", state="wrap_up")

        with pytest.raises(MessageRefused):
            await console.send("submit_wrapup", interaction_id=offer["interaction_id"],
                               disposition="resolved", notes="  ")
        await console.send("submit_wrapup", interaction_id=offer["interaction_id"], disposition="escalated",
                           notes="Customer upset about roaming charges",
                           ticket={"type": "complaint", "subject": "Roaming charges", "description": "x"})
        saved = await console.next("wrapup_saved")
        assert saved["ticket"]["type"] == "complaint"
        await console.next("agent_state", state="ready")

    iid = offer["interaction_id"]
    i = await store.get_interaction(iid)
    assert i.state == "wrapup_done" and i.customer_id == people["vip"].id
    assert i.disposition_code == "escalated" and i.notes == "Customer upset about roaming charges"
    assert i.queue == "vip" and i.answered_at and i.ended_at and i.wrapup_done_at
    kinds = await _kinds(store, iid)
    for step in ("arrive", "identify", "ivr", "queue", "offer", "pop_ack", "dial", "ring", "answer",
                 "hangup", "wrapup"):
        assert step in kinds, (step, kinds)
    assert kinds.index("pop_ack") < kinds.index("ring") < kinds.index("answer") < kinds.index("hangup")
    ticket = (await store.list_tickets(people["vip"].id, open_only=True))
    assert any(t.type == "complaint" and t.subject == "Roaming charges" for t in ticket)


async def test_unknown_caller_pop_says_new_caller_then_link(database):
    store = _store(database)
    people = await seed_people(store)
    async with running_center(database) as rc:
        console = await Console.open(rc.center, store, "agent1")
        await console.send("set_state", state="ready")
        rc.sim.call("+12025559876", digits=["1", "0"])
        offer = await console.next("offer")
        assert offer["pop"] == {"known": False, "card": None}
        assert offer["caller"] == "+12025559876"
        found = await console.send("search", q="Rob")
        hit = [x for x in found["items"] if x["id"] == people["regular"].id]
        assert hit and hit[0]["phones"] == [REGULAR_PHONE]
        await console.send("link_number", customer_id=people["regular"].id,
                           interaction_id=offer["interaction_id"])
        linked = await console.next("customer")
        assert linked["card"]["customer"]["id"] == people["regular"].id
    again = await store.identify(phone="(202) 555-9876")
    assert again is not None and again.id == people["regular"].id
    i = await store.get_interaction(offer["interaction_id"])
    assert i.customer_id == people["regular"].id
    assert "identify" in await _kinds(store, i.id)


async def test_ring_no_answer_requeues_with_place_and_agent_goes_not_ready(database):
    store = _store(database)
    await seed_people(store, agents=2)
    async with running_center(database) as rc:
        a1 = await Console.open(rc.center, store, "agent1")
        await a1.send("set_state", state="ready")
        await a1.next("agent_state", state="ready")
        rc.sim.agent("1001", never_answer=True)  # agent1's phone rings out
        rc.sim.call(REGULAR_PHONE, digits=["1", "0"])
        offer = await a1.next("offer")
        await a1.send("ack_offer", offer_id=offer["offer_id"])
        await a1.next("contact_state", state="ringing")
        gone = await a1.next("offer_withdrawn", timeout=20)
        assert gone["reason"] == "no_answer"
        st = await a1.next("agent_state", state="not_ready")
        assert st["reason"] == "no-answer"

        a2 = await Console.open(rc.center, store, "agent2")
        await a2.send("set_state", state="ready")
        offer2 = await a2.next("offer")
        assert offer2["interaction_id"] == offer["interaction_id"]
    kinds = await _kinds(store, offer["interaction_id"])
    assert "rona" in kinds and "requeue" in kinds
    assert kinds.count("offer") == 2


async def test_abandon_while_queued_is_logged_with_wait(database):
    store = _store(database)
    await seed_people(store)
    async with running_center(database) as rc:
        call = rc.sim.call(REGULAR_PHONE, digits=["1", "0"])
        while True:  # wait until queued (no agent is ready)
            i = await store.find_interaction(call.linkedid)
            if i is not None and i.state == "queued":
                break
            await asyncio.sleep(0.02)
        call.hangup()
        await call.wait_hangup(5)
        for _ in range(200):
            i = await store.get_interaction(i.id)
            if i.state == "abandoned":
                break
            await asyncio.sleep(0.02)
    assert i.state == "abandoned" and i.ended_at is not None
    ev = [e for e in await store.timeline(i.id) if e.kind == "abandon"]
    assert ev and ev[0].ok is False and ev[0].data["wait_s"] >= 0


async def test_pop_ack_timeout_still_rings_and_is_logged(database):
    store = _store(database)
    await seed_people(store)
    async with running_center(database, CC_VOICE__ACK_TIMEOUT_S="0.2") as rc:
        console = await Console.open(rc.center, store, "agent1")
        await console.send("set_state", state="ready")
        rc.sim.call(REGULAR_PHONE, digits=["1", "0"])
        offer = await console.next("offer")
        await console.next("contact_state", state="ringing")  # no ack: the timeout lets it ring
    kinds = await _kinds(store, offer["interaction_id"])
    assert "pop_ack_timeout" in kinds and "pop_ack" not in kinds


def _drain(q: asyncio.Queue) -> list:
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out


async def test_ami_drops_mid_call_and_resync_completes_the_interaction(database):
    store = _store(database)
    await seed_people(store)
    async with running_center(database) as rc:
        console = await Console.open(rc.center, store, "agent1")
        await console.send("set_state", state="ready")
        call = rc.sim.call(REGULAR_PHONE, digits=["1", "0"])
        offer = await console.next("offer")
        await console.send("ack_offer", offer_id=offer["offer_id"])
        await console.next("contact_state", state="ringing")
        await console.send("answer", interaction_id=offer["interaction_id"])
        await console.next("contact_state", state="talking")
        for session in list(rc.sim.ami.sessions):  # the manager link drops...
            session.close()
        call.hangup()  # ...and the call ends while the center cannot see it
        await console.next("contact_state", state="ended", timeout=20)  # after reconnect + resync
        await console.next("wrapup")
    kinds = [e for e in await store.timeline(offer["interaction_id"])]
    gap = [e for e in kinds if e.kind == "ami_gap"]
    assert gap and gap[0].ok is False and gap[0].data["state"] == "talking"
    i = await store.get_interaction(offer["interaction_id"])
    assert i.state == "ended" and i.ended_at is not None


async def test_post_call_survey_and_billing_balance_through_the_simulator(database):
    store = _store(database)
    people = await seed_people(store)
    async with running_center(database) as rc:
        rc.sim.agent("1001", answer_after=0.2, talk_time=1)  # the agent hangs up first
        console = await Console.open(rc.center, store, "agent1")
        await console.send("set_state", state="ready")
        # English, billing, account number, hear the balance, then an agent; after the call the
        # survey asks for a score and the caller presses 4
        call = rc.sim.call(REGULAR_PHONE, digits=["1", "1", "1234567", "1", "4"])
        offer = await console.next("offer")
        assert offer["queue"] == "billing"
        path = offer["ivr_path"]
        assert [row.get("digits") for row in path if row["node"] == "main_menu"] == ["1"]
        assert "1234567" not in str(path)  # the account number is sensitive: masked on the path
        assert any(row["node"] == "account_number" and row.get("digits") for row in path)
        await console.send("ack_offer", offer_id=offer["offer_id"])
        await console.next("contact_state", state="talking", timeout=20)
        await console.next("contact_state", state="ended", timeout=20)
        await call.wait_hangup(20)
    surveys = [e for e in await store.timeline(offer["interaction_id"]) if e.kind == "survey"]
    assert surveys and surveys[0].data["score"] == 4
    card = await store.customer_card(people["regular"].id)
    assert card.csat_count == 1 and str(card.csat_average) == "4.00"


async def test_without_survey_the_caller_is_hung_up_after_the_agent_leaves_never_redialled(database):
    store = _store(database)
    await seed_people(store)
    async with running_center(database, CC_VOICE__SURVEY="false") as rc:
        rc.sim.agent("1001", answer_after=0.2, talk_time=1)  # the agent hangs up first
        console = await Console.open(rc.center, store, "agent1")
        await console.send("set_state", state="ready")
        call = rc.sim.call(REGULAR_PHONE, digits=["1", "2"])
        offer = await console.next("offer")
        await console.send("ack_offer", offer_id=offer["offer_id"])
        await console.next("contact_state", state="ended", timeout=20)
        await call.wait_hangup(20)  # the dialplan ends the call instead of dialling ROUTE_TO again
    kinds = await _kinds(store, offer["interaction_id"])
    assert kinds.count("answer") == 1 and "survey" not in kinds
