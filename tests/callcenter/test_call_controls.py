"""Call controls over the real console websocket against the simulated PBX (AMI over TCP): every
control is authorized, confirmed by AMI events before the console hears of it, and logged on the
interaction's timeline. Frames either way are checked against their JSON Schemas."""
from __future__ import annotations

import asyncio

import pytest

from tests.callcenter.test_console_ws import _store, cookie_for, open_console
from tests.callcenter.voice_harness import REGULAR_PHONE, VIP_PHONE, running_center, seed_people

pytestmark = pytest.mark.timeout(90)


async def _talking(rc, c, phone=VIP_PHONE, digits=("1",)):
    await c.send("set_state", state="ready")
    await c.next("agent_state", state="ready")
    call = rc.sim.call(phone, digits=list(digits))
    offer = await c.next("offer")
    await c.send("ack_offer", offer_id=offer["offer_id"])
    await c.next("contact_state", state="ringing")
    await c.send("answer", interaction_id=offer["interaction_id"])
    await c.next("contact_state", state="talking")
    return call, offer["interaction_id"]


async def test_hold_and_retrieve_confirmed_by_ami(database):
    store = _store(database)
    await seed_people(store, agents=2)
    async with running_center(database) as rc:
        events = rc.sim.subscribe()
        ws, c = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        call, iid = await _talking(rc, c)

        # Another agent may not touch agent1's call.
        ws2, c2 = await open_console(rc.base, await cookie_for(rc.base, "agent2"))
        await c2.next("hello")
        await c2.send("hold", interaction_id=iid, request_id="x1")
        err = await c2.next("error", request_id="x1")
        assert err["code"] == "forbidden"

        caller_channel = rc.center.voice.calls[iid].caller_channel
        await c.send("hold", interaction_id=iid)
        held = await c.next("contact_state", state="held")
        assert held["interaction_id"] == iid
        names = [(e.name, e.get("Channel", "")) for e in _drain(events)]
        moh = [ch for n, ch in names if n == "MusicOnHoldStart"]
        assert moh and moh[-1] == caller_channel  # the caller hears music
        await c.send("hold", interaction_id=iid, request_id="again")
        assert (await c.next("error", request_id="again"))["code"] == "conflict"

        await c.send("retrieve", interaction_id=iid)
        await c.next("contact_state", state="talking")
        assert "BridgeEnter" in [e.name for e in _drain(events)]
        call.hangup()
        await c.next("contact_state", state="ended")
        await c.next("wrapup", interaction_id=iid)
        await ws2.close()
        await ws.close()
    kinds = [e.kind for e in await store.timeline(iid)]
    assert kinds.index("answer") < kinds.index("hold") < kinds.index("retrieve") < kinds.index("hangup")


async def test_refused_control_gives_a_clear_error_and_changes_nothing(database):
    store = _store(database)
    await seed_people(store)
    async with running_center(database) as rc:
        ws, c = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        call, iid = await _talking(rc, c, REGULAR_PHONE, ("1", "0"))
        live = rc.center.voice.calls[iid]
        live.caller_channel = "PJSIP/gone-00000000"  # the PBX answers Response: Error
        await c.send("hold", interaction_id=iid, request_id="h1")
        err = await c.next("error", request_id="h1")
        assert err["code"] == "invalid" and "refused" in err["message"]
        assert live.state == "talking" and live.pending is None
        await asyncio.sleep(0.2)
        assert all(m.get("state") != "held" for m in c.seen if m["type"] == "contact_state")
        call.hangup()
        await c.next("contact_state", state="ended")
        await ws.close()
    hold = [e for e in await store.timeline(iid) if e.kind == "hold"]
    assert len(hold) == 1 and hold[0].ok is False


async def test_blind_transfer_to_agent_with_notes_then_wrapup(database):
    store = _store(database)
    people = await seed_people(store, agents=2)
    async with running_center(database) as rc:
        ws, a = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        call, iid = await _talking(rc, a)
        ws2, b = await open_console(rc.base, await cookie_for(rc.base, "agent2"))
        await b.send("set_state", state="ready")
        await b.next("agent_state", state="ready")

        await a.send("hold", interaction_id=iid)
        await a.next("contact_state", state="held")
        await a.send("transfer", interaction_id=iid, target_type="agent", target="nobody", request_id="t0")
        assert (await a.next("error", request_id="t0"))["code"] == "not_found"
        await a.send("transfer", interaction_id=iid, target_type="agent", target="agent2",
                     notes="Wants the roaming plan changed")
        await a.next("contact_state", state="ended")
        await a.next("wrapup", interaction_id=iid)

        offer = await b.next("offer")
        assert offer["interaction_id"] == iid
        assert offer["pop"]["card"]["customer"]["id"] == people["vip"].id
        assert offer["transfer"] == {"from": "agent1", "notes": "Wants the roaming plan changed"}
        await b.send("ack_offer", offer_id=offer["offer_id"])
        await b.next("contact_state", state="ringing")
        await b.send("answer", interaction_id=iid)
        await b.next("contact_state", state="talking")

        await a.send("submit_wrapup", interaction_id=iid, disposition="resolved", notes="Passed to agent2")
        await a.next("wrapup_saved", interaction_id=iid)
        call.hangup()
        await b.next("contact_state", state="ended")
        await b.next("wrapup", interaction_id=iid)
        await b.send("submit_wrapup", interaction_id=iid, disposition="resolved", notes="Plan changed")
        await b.next("wrapup_saved", interaction_id=iid)
        await ws2.close()
        await ws.close()
    timeline = await store.timeline(iid)
    kinds = [e.kind for e in timeline]
    assert kinds.index("hold") < kinds.index("transfer") < len(kinds) - 1
    assert kinds.count("answer") == 2 and kinds.count("wrapup") == 2 and kinds.count("offer") == 2
    i = await store.get_interaction(iid)
    assert i.notes == "Plan changed" and i.customer_id == people["vip"].id
    assert i.agent_id == (await store.get_user("agent2")).id


async def test_blind_transfer_to_a_queue_routes_again(database):
    store = _store(database)
    await seed_people(store, agents=2)
    async with running_center(database) as rc:
        ws, a = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        call, iid = await _talking(rc, a, REGULAR_PHONE, ("1", "0"))
        ws2, b = await open_console(rc.base, await cookie_for(rc.base, "agent2"))
        await b.send("set_state", state="ready")
        await b.next("agent_state", state="ready")
        await a.send("transfer", interaction_id=iid, target_type="queue", target="no-such-queue",
                     request_id="q0")
        assert (await a.next("error", request_id="q0"))["code"] == "not_found"
        queue = rc.center.voice.calls[iid].queue
        await a.send("transfer", interaction_id=iid, target_type="queue", target=queue)
        await a.next("wrapup", interaction_id=iid)
        offer = await b.next("offer")
        assert offer["interaction_id"] == iid and offer["transfer"] == {"from": "agent1", "notes": None}
        call.hangup()
        await b.next("offer_withdrawn", interaction_id=iid)
        await ws2.close()
        await ws.close()
    kinds = [e.kind for e in await store.timeline(iid)]
    assert kinds.count("queue") == 2 and "transfer" in kinds


async def test_blind_transfer_to_an_external_number(database):
    store = _store(database)
    await seed_people(store)
    async with running_center(database) as rc:
        events = rc.sim.subscribe()
        ws, a = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        call, iid = await _talking(rc, a, REGULAR_PHONE, ("1", "0"))
        await a.send("transfer", interaction_id=iid, target_type="external", target="+12025550999")
        await a.next("contact_state", state="ended")
        await a.next("wrapup", interaction_id=iid)

        async def dialled() -> None:
            while True:
                e = await events.get()
                if e.name == "DialBegin" and "12025550999" in (e.get("DestChannel") or ""):
                    return
        await asyncio.wait_for(dialled(), 10)
        await a.send("submit_wrapup", interaction_id=iid, disposition="resolved", notes="Sent to partner")
        await a.next("wrapup_saved")
        await ws.close()
    kinds = [e.kind for e in await store.timeline(iid)]
    assert "transfer" in kinds and kinds.index("transfer") < kinds.index("wrapup")


def _drain(q: asyncio.Queue) -> list:
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out
