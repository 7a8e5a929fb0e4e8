# ruff: noqa: E501
"""Warm transfer -> three-way conference (ConfBridge), a consultation with a supervisor, and call
controls on click-to-dial calls, over the real console websocket against the simulated PBX (AMI
over TCP), on SQLite and PostgreSQL. Every frame either way is checked against its JSON Schema;
each step shows only after the PBX confirms it (ConfbridgeJoin/Leave, MusicOnHoldStart, ...)."""
from __future__ import annotations

import asyncio

import pytest

from tests.callcenter.test_call_controls import _talking
from tests.callcenter.test_call_controls_2 import _all, _answer
from tests.callcenter.test_console_ws import _store, cookie_for, open_console
from tests.callcenter.voice_harness import REGULAR_PHONE, running_center, seed_people

pytestmark = pytest.mark.timeout(90)
NO_DEMO_SITE = {"CC_CHAT__DEMO_SITE_PORT": "0"}  # the chat demo's fixed port clashes across parallel runs


async def _consulting(rc, a, iid: int) -> None:
    await a.send("consult", interaction_id=iid, target_type="agent", target="agent2")
    await _answer(rc, "1002")
    await _all(a, ("contact_state", {"state": "held"}), ("consult_state", {"state": "dialing"}),
               ("consult_state", {"state": "talking"}))


async def _confbridge(rc, name: str) -> list[str]:
    return [e.name for e in rc.sim.pbx.history if e.name.startswith("Confbridge") and e.get("Conference") == name]


async def test_conference_agent_leaves_then_the_consulted_agent_owns_the_call(database, tmp_path):
    store = _store(database)
    await seed_people(store, agents=2)
    async with running_center(database, CC_VOICE__RECORDINGS_DIR=str(tmp_path / "rec"), **NO_DEMO_SITE) as rc:
        rc.sim.pbx.keep_history = True
        ws, a = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        call, iid = await _talking(rc, a, REGULAR_PHONE, ("2",))
        ws2, b = await open_console(rc.base, await cookie_for(rc.base, "agent2"))
        await b.next("hello")

        # not before the consulted party answers; never by someone else
        await a.send("consult_conference", interaction_id=iid, request_id="early")
        assert (await a.next("error", request_id="early"))["code"] == "conflict"
        await _consulting(rc, a, iid)
        await b.send("consult_conference", interaction_id=iid, request_id="x")
        assert (await b.next("error", request_id="x"))["code"] in ("forbidden", "not_found")

        await a.send("consult_conference", interaction_id=iid)
        _, active = await _all(a, ("contact_state", {"state": "talking"}), ("conference_state", {"state": "active"}))
        assert active["parties"] == ["agent", "caller", "consulted"] and active["target"] == "agent2"
        assert await _confbridge(rc, f"cc-{iid}") == ["ConfbridgeStart"] + ["ConfbridgeJoin"] * 3
        # a console that comes back is told about the conference after the contact state
        ws3, a3 = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        await a3.next("contact_state", state="talking")
        assert (await a3.next("conference_state"))["parties"] == ["agent", "caller", "consulted"]
        await ws3.close()
        # other controls wait until the conference is over
        await a.send("hold", interaction_id=iid, request_id="h")
        assert (await a.next("error", request_id="h"))["code"] == "conflict"

        await a.send("conference_leave", interaction_id=iid)
        left = await a.next("conference_state", state="left")
        assert left["parties"] == ["caller", "consulted"]
        await a.next("contact_state", state="ended")
        await a.next("wrapup", interaction_id=iid)
        await _all(b, ("contact_state", {"state": "talking", "interaction_id": iid}),
                   ("conference_state", {"state": "active"}))
        await a.send("submit_wrapup", interaction_id=iid, disposition="resolved", notes="Conferenced agent2")
        await a.next("wrapup_saved", interaction_id=iid)

        call.hangup()  # the caller leaves: the consulted agent is kicked (end_marked), the conference ends
        await b.next("conference_state", state="ended")
        await b.next("contact_state", state="ended")
        await b.next("wrapup", interaction_id=iid)
        await b.send("submit_wrapup", interaction_id=iid, disposition="resolved", notes="Done")
        await b.next("wrapup_saved", interaction_id=iid)
        assert (await _confbridge(rc, f"cc-{iid}"))[-1] == "ConfbridgeEnd"
        await ws2.close()
        await ws.close()
    timeline = await store.timeline(iid)
    kinds = [e.kind for e in timeline]
    assert kinds.index("consult_answered") < kinds.index("conference") < kinds.index("conference_end")
    joins = [e.data["role"] for e in timeline if e.kind == "conference_join"]
    assert sorted(joins) == ["agent", "caller", "consulted"]
    leaves = [e.data["role"] for e in timeline if e.kind == "conference_leave"]
    assert leaves[:1] == ["agent"] and "caller" in leaves
    assert kinds.count("wrapup") == 2 and "routing_refused" not in kinds
    assert (await store.get_interaction(iid)).agent_id == (await store.get_user("agent2")).id


async def test_conference_ends_when_the_caller_leaves(database, tmp_path):
    store = _store(database)
    await seed_people(store, agents=2)
    async with running_center(database, CC_VOICE__RECORDINGS_DIR=str(tmp_path / "rec"), **NO_DEMO_SITE) as rc:
        ws, a = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        call, iid = await _talking(rc, a, REGULAR_PHONE, ("2",))
        await _consulting(rc, a, iid)
        await a.send("consult_conference", interaction_id=iid)
        await a.next("conference_state", state="active")
        call.hangup()
        ended = await a.next("conference_state", state="ended")
        assert ended["parties"] == []
        await a.next("contact_state", state="ended")
        await a.next("wrapup", interaction_id=iid)
        await a.send("conference_leave", interaction_id=iid, request_id="late")
        assert (await a.next("error", request_id="late"))["code"] in ("conflict", "not_found")
        await a.send("submit_wrapup", interaction_id=iid, disposition="resolved", notes="Three-way")
        await a.next("wrapup_saved", interaction_id=iid)
        # agent2's phone was hung up by the conference's end (end_marked), not left ringing/talking
        assert not rc.sim.pbx.device_channels("1002")
        await ws.close()
    kinds = [e.kind for e in await store.timeline(iid)]
    assert kinds.count("conference_join") == 3 and kinds.count("conference_leave") == 3
    assert kinds.index("conference") < kinds.index("conference_end") < kinds.index("wrapup")
    hangup = [e for e in await store.timeline(iid) if e.kind == "hangup"]
    assert hangup and hangup[-1].data["by"] == "caller"


async def test_conference_refused_by_the_pbx_changes_nothing(database, tmp_path):
    store = _store(database)
    await seed_people(store, agents=2)
    async with running_center(database, CC_VOICE__RECORDINGS_DIR=str(tmp_path / "rec"), **NO_DEMO_SITE) as rc:
        ws, a = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        call, iid = await _talking(rc, a, REGULAR_PHONE, ("2",))
        await _consulting(rc, a, iid)
        del rc.sim.pbx.dialplan.contexts["cc-conference"]  # a PBX without the shipped context
        await a.send("consult_conference", interaction_id=iid, request_id="r")
        err = await a.next("error", request_id="r")
        assert err["code"] == "invalid" and "Extension does not exist" in err["message"]
        # still consulting: the agent can complete the warm transfer as before
        assert rc.center.voice.calls[iid].consult is not None
        await a.send("consult_cancel", interaction_id=iid)
        await a.next("consult_state", state="ended")
        await a.next("contact_state", state="talking")
        call.hangup()
        await a.next("wrapup", interaction_id=iid)
        await ws.close()
    events = [(e.kind, e.ok) for e in await store.timeline(iid)]
    assert ("conference", False) in events and ("conference", True) not in events


async def test_warm_transfer_to_a_supervisor_with_an_extension(database, tmp_path):
    """Supervisors take no routed calls (they are not in the agent directory), but one with an
    extension can be consulted and take the call over; the interaction stays open until the
    caller hangs up."""
    store = _store(database)
    await seed_people(store, agents=1)
    await store.create_user("sue", "agent-password", roles=["supervisor"], display_name="Sue Visor",
                            extension="1900")
    await store.create_user("norm", "agent-password", roles=["supervisor"], display_name="No Phone")
    async with running_center(database, CC_VOICE__RECORDINGS_DIR=str(tmp_path / "rec"), **NO_DEMO_SITE) as rc:
        rc.sim.agent("1900", manual=True)
        ws, a = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        call, iid = await _talking(rc, a, REGULAR_PHONE, ("2",))
        for who, rid in (("agent1", "s1"), ("norm", "s2"), ("nobody", "s3")):
            await a.send("consult", interaction_id=iid, target_type="supervisor", target=who, request_id=rid)
            assert (await a.next("error", request_id=rid))["code"] == "not_found"
        await a.send("consult", interaction_id=iid, target_type="supervisor", target="sue")
        await _answer(rc, "1900")
        await _all(a, ("contact_state", {"state": "held"}), ("consult_state", {"state": "talking", "target": "sue"}))
        await a.send("consult_complete", interaction_id=iid)
        await a.next("consult_state", state="ended")
        await a.next("contact_state", state="ended")
        await a.next("wrapup", interaction_id=iid)
        await a.send("submit_wrapup", interaction_id=iid, disposition="resolved", notes="To Sue")
        await a.next("wrapup_saved", interaction_id=iid)
        assert iid in rc.center.voice.calls  # still tracked: Sue talks with the caller
        call.hangup()
        await call.wait_hangup(10)
        for _ in range(200):
            if iid not in rc.center.voice.calls:
                break
            await asyncio.sleep(0.01)
        assert iid not in rc.center.voice.calls
        await ws.close()
    timeline = await store.timeline(iid)
    kinds = [e.kind for e in timeline]
    assert kinds.index("consult") < kinds.index("consult_answered") < kinds.index("complete") < kinds.index("hangup")
    assert [e.data.get("target") for e in timeline if e.kind == "complete"] == ["sue"]
    assert (await store.get_interaction(iid)).state == "ended"


# ---------------------------------------------------------------------------- controls on click-to-dial calls
async def _dialled(rc, a, customer_id: int) -> int:
    """agent1 click-to-dials the VIP (who answers and stays on the line) and talks."""
    rc.sim.agent("12025550143", answer_after=0.2, talk_time=None)
    await a.send("set_state", state="not_ready", reason="after-call")
    await a.next("agent_state", state="not_ready")
    await a.send("dial", customer_id=customer_id)
    iid = (await a.next("contact_state", state="ringing"))["interaction_id"]
    await a.send("answer", interaction_id=iid)
    await a.next("contact_state", state="talking")
    return iid


async def test_hold_and_consult_on_a_click_to_dial_call(database, tmp_path):
    store = _store(database)
    people = await seed_people(store, agents=2)
    async with running_center(database, CC_VOICE__RECORDINGS_DIR=str(tmp_path / "rec"), **NO_DEMO_SITE) as rc:
        ws, a = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        iid = await _dialled(rc, a, people["vip"].id)
        call = rc.center.voice.calls[iid]
        assert call.caller_channel and call.caller_channel.startswith("PJSIP/12025550143@trunk-")
        await a.send("hold", interaction_id=iid)
        await a.next("contact_state", state="held")  # the customer's MusicOnHoldStart
        await a.send("retrieve", interaction_id=iid)
        await a.next("contact_state", state="talking")  # the customer's BridgeEnter
        await a.send("consult", interaction_id=iid, target_type="agent", target="agent2")
        await _answer(rc, "1002")
        await _all(a, ("contact_state", {"state": "held"}), ("consult_state", {"state": "talking"}))
        await a.send("consult_cancel", interaction_id=iid)
        await a.next("consult_state", state="ended")
        await a.next("contact_state", state="talking")
        rc.sim.pbx.request_hangup(rc.sim.pbx.find_channel(call.caller_channel))  # the customer hangs up
        await a.next("contact_state", state="ended")
        await a.next("wrapup", interaction_id=iid)
        await ws.close()
    kinds = [e.kind for e in await store.timeline(iid)]
    for step in ("dial", "answer", "hold", "retrieve", "consult", "consult_answered", "cancel", "hangup"):
        assert step in kinds, (step, kinds)
    hangup = [e for e in await store.timeline(iid) if e.kind == "hangup"]
    assert hangup[-1].data["by"] == "caller" and "routing_refused" not in kinds


async def test_blind_transfer_of_a_click_to_dial_call_to_another_agent(database, tmp_path):
    store = _store(database)
    people = await seed_people(store, agents=2)
    async with running_center(database, CC_VOICE__RECORDINGS_DIR=str(tmp_path / "rec"), **NO_DEMO_SITE) as rc:
        ws, a = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        ws2, b = await open_console(rc.base, await cookie_for(rc.base, "agent2"))
        await b.send("set_state", state="ready")
        await b.next("agent_state", state="ready")
        iid = await _dialled(rc, a, people["vip"].id)
        customer = rc.center.voice.calls[iid].caller_channel
        await a.send("transfer", interaction_id=iid, target_type="agent", target="agent2", notes="Outbound follow-up")
        await a.next("contact_state", state="ended")
        await a.next("wrapup", interaction_id=iid)
        offer = await b.next("offer", interaction_id=iid)
        assert offer["transfer"]["notes"] == "Outbound follow-up"
        await b.next("contact_state", state="ringing")
        await b.send("answer", interaction_id=iid)
        await b.next("contact_state", state="talking")
        rc.sim.pbx.request_hangup(rc.sim.pbx.find_channel(customer))
        await b.next("contact_state", state="ended")
        await b.next("wrapup", interaction_id=iid)
        await ws2.close()
        await ws.close()
    kinds = [e.kind for e in await store.timeline(iid)]
    assert kinds.index("transfer") < kinds.index("offer") and "routing_refused" not in kinds
    assert kinds.count("answer") == 2
    assert kinds.index("hangup", max(i for i, k in enumerate(kinds) if k == "answer")) > 0


async def test_conference_consulted_leaves_then_the_agent_leaves(database, tmp_path):
    """The consulted party hangs up first (caller and agent go on in the conference); when the
    agent leaves too, the caller would be alone: the center hangs the caller up and the call ends."""
    store = _store(database)
    await seed_people(store, agents=2)
    async with running_center(database, CC_VOICE__RECORDINGS_DIR=str(tmp_path / "rec"), **NO_DEMO_SITE) as rc:
        ws, a = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        call, iid = await _talking(rc, a, REGULAR_PHONE, ("2",))
        await _consulting(rc, a, iid)
        await a.send("consult_conference", interaction_id=iid)
        await a.next("conference_state", state="active")
        assert rc.sim.hangup_phone("1002")  # the consulted agent hangs up their phone
        for _ in range(400):
            kinds = [e.kind for e in await store.timeline(iid)]
            if "conference_leave" in kinds:
                break
            await asyncio.sleep(0.01)
        assert rc.center.voice.calls[iid].state == "talking"  # caller and agent go on
        await a.send("conference_leave", interaction_id=iid)
        await a.next("conference_state", state="left")
        await a.next("wrapup", interaction_id=iid)
        await call.wait_hangup(10)  # hung up by the center: nobody is left to talk to
        for _ in range(400):
            if iid not in rc.center.voice.calls:
                break
            await asyncio.sleep(0.01)
        assert iid not in rc.center.voice.calls
        await ws.close()
    timeline = await store.timeline(iid)
    leaves = [e.data["role"] for e in timeline if e.kind == "conference_leave"]
    assert leaves == ["consulted", "agent", "caller"]
    assert [e.kind for e in timeline].count("conference_end") == 1
    assert (await store.get_interaction(iid)).state in ("ended", "wrapup_done")


async def test_conference_with_a_supervisor_the_agent_leaves(database, tmp_path):
    """A supervisor (not a routed agent) is conferenced in; when the agent leaves, the caller and
    the supervisor go on, tracked without an agent, until the caller hangs up."""
    store = _store(database)
    await seed_people(store, agents=1)
    await store.create_user("sue", "agent-password", roles=["supervisor"], display_name="Sue Visor",
                            extension="1900")
    async with running_center(database, CC_VOICE__RECORDINGS_DIR=str(tmp_path / "rec"), **NO_DEMO_SITE) as rc:
        rc.sim.agent("1900", manual=True)
        ws, a = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        call, iid = await _talking(rc, a, REGULAR_PHONE, ("2",))
        await a.send("consult", interaction_id=iid, target_type="supervisor", target="sue")
        await _answer(rc, "1900")
        await _all(a, ("contact_state", {"state": "held"}), ("consult_state", {"state": "talking"}))
        await a.send("consult_conference", interaction_id=iid)
        assert (await a.next("conference_state", state="active"))["target"] == "sue"
        await a.send("conference_leave", interaction_id=iid)
        await a.next("conference_state", state="left")
        await a.next("wrapup", interaction_id=iid)
        assert rc.center.voice.calls[iid].agent_id is None  # Sue and the caller talk on
        call.hangup()
        await call.wait_hangup(10)
        for _ in range(400):
            if iid not in rc.center.voice.calls:
                break
            await asyncio.sleep(0.01)
        assert iid not in rc.center.voice.calls and not rc.sim.pbx.device_channels("1900")
        await ws.close()
    timeline = await store.timeline(iid)
    assert [e.data["role"] for e in timeline if e.kind == "conference_leave"] == ["agent", "caller", "consulted"]
    assert (await store.get_interaction(iid)).state == "ended"


async def test_consulted_party_hangs_up_before_joining(database, tmp_path):
    """The consulted party hangs up just as it is redirected into the conference: the caller and
    the agent have a two-way conference, shown once their ConfbridgeJoins arrive."""
    store = _store(database)
    await seed_people(store, agents=2)
    async with running_center(database, CC_VOICE__RECORDINGS_DIR=str(tmp_path / "rec"), **NO_DEMO_SITE) as rc:
        ws, a = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        call, iid = await _talking(rc, a, REGULAR_PHONE, ("2",))
        await _consulting(rc, a, iid)
        consulted = rc.center.voice.calls[iid].consult["channel"]
        pbx = rc.sim.pbx

        def drop(ev) -> None:  # the consulted phone hangs up as it enters [cc-conference]
            if ev.name == "Newexten" and ev.get("Channel") == consulted and ev.get("Context") == "cc-conference":
                pbx.request_hangup(pbx.find_channel(consulted))

        pbx.listeners.append(drop)
        await a.send("consult_conference", interaction_id=iid)
        _, active = await _all(a, ("contact_state", {"state": "talking"}), ("conference_state", {"state": "active"}))
        assert active["parties"] == ["agent", "caller"]
        call.hangup()
        await a.next("conference_state", state="ended")
        await a.next("wrapup", interaction_id=iid)
        await ws.close()
    kinds = [e.kind for e in await store.timeline(iid)]
    assert kinds.count("conference_join") == 2 and "conference" in kinds and "conference_end" in kinds
