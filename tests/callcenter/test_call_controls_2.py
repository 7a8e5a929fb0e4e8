"""Call controls, continued (issue 10): recording (policy per queue, pause/resume, playback,
retention). Over the real console websocket against the simulated PBX (AMI over TCP); every
frame either way is checked against its JSON Schema."""
from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from agent_ui import schemas
from callcenter.services.recordings import purge_recordings
from tests.callcenter.test_call_controls import _talking
from tests.callcenter.test_console_ws import _store, cookie_for, open_console
from tests.callcenter.voice_harness import REGULAR_PHONE, running_center, seed_people

pytestmark = pytest.mark.timeout(90)


async def _get(base: str, path: str, cookie: str | None) -> tuple[int, bytes, str]:
    async with aiohttp.ClientSession() as http:
        r = await http.get(base + path, headers={"Cookie": cookie} if cookie else {},
                           allow_redirects=False)
        return r.status, await r.read(), r.headers.get("Content-Type", "")


async def test_recording_on_answer_pause_resume_and_playback(database, tmp_path):
    store = _store(database)
    await seed_people(store, agents=2)
    await store.create_user("super", "agent-password", roles=["supervisor"], display_name="Sue")
    async with running_center(database, CC_VOICE__RECORDINGS_DIR=str(tmp_path / "rec")) as rc:
        ws, c = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        call, iid = await _talking(rc, c)  # the VIP desk: its policy is to record
        assert rc.center.voice.calls[iid].queue == "vip"
        started = await c.next("recording_state", interaction_id=iid)
        assert started["state"] == "recording"
        path = tmp_path / "rec" / f"interaction-{iid}.wav"
        assert path.is_file() and path.read_bytes().startswith(b"RIFF")  # the simulator's placeholder
        assert (await store.get_interaction(iid)).recording_ref == path.name

        ws2, c2 = await open_console(rc.base, await cookie_for(rc.base, "agent2"))
        await c2.next("hello")
        await c2.send("recording", interaction_id=iid, action="pause", request_id="x")
        assert (await c2.next("error", request_id="x"))["code"] == "forbidden"

        await c.send("recording", interaction_id=iid, action="pause")
        assert (await c.next("recording_state", interaction_id=iid))["state"] == "paused"
        await c.send("recording", interaction_id=iid, action="pause", request_id="p2")
        assert (await c.next("error", request_id="p2"))["code"] == "conflict"
        await c.send("recording", interaction_id=iid, action="resume")
        assert (await c.next("recording_state", interaction_id=iid))["state"] == "recording"

        # A console that comes back is told the recording state after the contact state.
        ws3, c3 = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        await c3.next("contact_state", state="talking")
        assert (await c3.next("recording_state", interaction_id=iid))["state"] == "recording"
        await ws3.close()

        call.hangup()
        await c.next("wrapup", interaction_id=iid)

        agent1, agent2 = await cookie_for(rc.base, "agent1"), await cookie_for(rc.base, "agent2")
        status, body, ctype = await _get(rc.base, f"/recordings/{iid}", agent1)
        assert status == 200 and body == path.read_bytes() and ctype == "audio/wav"
        assert (await _get(rc.base, f"/recordings/{iid}", agent2))[0] == 403
        assert (await _get(rc.base, f"/recordings/{iid}", await cookie_for(rc.base, "super")))[0] == 200
        assert (await _get(rc.base, "/recordings/999999", agent1))[0] == 404
        assert (await _get(rc.base, f"/recordings/{iid}", None))[0] == 401
        await ws2.close()
        await ws.close()
    recs = [(e.data.get("action"), e.ok) for e in await store.timeline(iid) if e.kind == "recording"]
    assert recs == [("start", True), ("pause", True), ("resume", True)]


async def test_no_recording_without_the_queue_policy(database, tmp_path):
    store = _store(database)
    await seed_people(store)
    async with running_center(database, CC_VOICE__RECORDINGS_DIR=str(tmp_path / "rec")) as rc:
        ws, c = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        call, iid = await _talking(rc, c, REGULAR_PHONE, ("2",))
        assert rc.center.voice.calls[iid].queue not in rc.center.voice.options.record_queues
        await c.send("recording", interaction_id=iid, action="pause", request_id="p")
        err = await c.next("error", request_id="p")
        assert err["code"] == "conflict" and "not being recorded" in err["message"]
        call.hangup()
        await c.next("wrapup", interaction_id=iid)
        assert (await _get(rc.base, f"/recordings/{iid}", await cookie_for(rc.base, "agent1")))[0] == 404
        await ws.close()
    assert "recording_state" not in [m["type"] for m in c.seen]
    assert not list((tmp_path / "rec").iterdir())
    assert all(e.kind != "recording" for e in await store.timeline(iid))


async def test_refused_recording_control_changes_nothing(database, tmp_path):
    store = _store(database)
    await seed_people(store)
    async with running_center(database, CC_VOICE__RECORDINGS_DIR=str(tmp_path / "rec")) as rc:
        ws, c = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        call, iid = await _talking(rc, c)
        await c.next("recording_state", state="recording")
        live = rc.center.voice.calls[iid]
        real, live.caller_channel = live.caller_channel, "PJSIP/gone-00000000"
        await c.send("recording", interaction_id=iid, action="pause", request_id="r1")
        err = await c.next("error", request_id="r1")
        assert err["code"] == "invalid" and "refused" in err["message"]
        assert live.recording == "recording" and live.rec_pending is None
        live.caller_channel = real
        await asyncio.sleep(0.2)
        assert [m["state"] for m in c.seen if m["type"] == "recording_state"] == ["recording"]
        call.hangup()
        await c.next("contact_state", state="ended")
        await ws.close()
    recs = [(e.data.get("action"), e.ok) for e in await store.timeline(iid) if e.kind == "recording"]
    assert recs == [("start", True), ("pause", False)]


async def test_purge_recordings_after_the_retention(database, tmp_path):
    store = _store(database)
    await seed_people(store)
    tmp_path = tmp_path / "rec"
    tmp_path.mkdir()
    c = await store.create_customer("Old Caller", phones=["+12025550177"])
    old = await store.open_interaction("voice", "inbound", c.id)
    new = await store.open_interaction("voice", "inbound", c.id)
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    for i, age in ((old, 91), (new, 89)):
        p = tmp_path / f"interaction-{i.id}.wav"
        p.write_bytes(b"RIFF")
        t = (now - timedelta(days=age)).timestamp()
        os.utime(p, (t, t))
        await store.update_interaction(i.id, recording_ref=p.name)
    (tmp_path / "notes.txt").write_text("not a recording")
    os.utime(tmp_path / "notes.txt", (0, 0))

    purged = await purge_recordings(store, tmp_path, 90, now=lambda: now)
    assert purged == [old.id]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"interaction-{new.id}.wav", "notes.txt"]
    assert (await store.get_interaction(old.id)).recording_ref is None
    assert (await store.get_interaction(new.id)).recording_ref == f"interaction-{new.id}.wav"
    ev = [e for e in await store.timeline(old.id) if e.kind == "recording_purged"]
    assert len(ev) == 1 and ev[0].data["retention_days"] == 90
    assert not [e for e in await store.timeline(new.id) if e.kind == "recording_purged"]


# ---------------------------------------------------------------------------- warm transfer
async def _all(c, *wanted: tuple[str, dict]) -> list[dict]:
    """The next messages matching every (type, fields) in `wanted`, in whatever order they come
    (the caller's MusicOnHoldStart and the agent leg's DialBegin race)."""
    found: list[dict | None] = [None] * len(wanted)

    async def run() -> None:
        while not all(found):
            m = json.loads(await c.ws.recv())
            schemas.validate(m, direction="server")
            c.seen.append(m)
            for i, (t, f) in enumerate(wanted):
                if found[i] is None and m["type"] == t and all(m.get(k) == v for k, v in f.items()):
                    found[i] = m
                    break
    try:
        await asyncio.wait_for(run(), 15)
    except TimeoutError:
        raise AssertionError(f"wanted {wanted}, got {c.seen[-8:]}") from None
    return found  # type: ignore[return-value]


async def _answer(rc, number: str) -> None:
    """Answer the consulted phone as soon as it rings (the ring timeout is scaled down)."""
    for _ in range(200):
        if rc.sim.answer_phone(number):
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{number} never rang")


async def test_warm_transfer_consult_then_complete_to_an_agent(database, tmp_path):
    store = _store(database)
    await seed_people(store, agents=2)
    async with running_center(database, CC_VOICE__RECORDINGS_DIR=str(tmp_path / "rec")) as rc:
        ws, a = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        call, iid = await _talking(rc, a)
        ws2, b = await open_console(rc.base, await cookie_for(rc.base, "agent2"))
        await b.next("hello")
        await b.send("consult_complete", interaction_id=iid, request_id="x")
        assert (await b.next("error", request_id="x"))["code"] in ("forbidden", "not_found")
        await a.send("consult_complete", interaction_id=iid, request_id="c0")
        assert (await a.next("error", request_id="c0"))["code"] == "conflict"
        await a.send("consult", interaction_id=iid, target_type="agent", target="nobody", request_id="n")
        assert (await a.next("error", request_id="n"))["code"] == "not_found"

        await a.send("consult", interaction_id=iid, target_type="agent", target="agent2")
        await a.send("consult_complete", interaction_id=iid, request_id="c1")  # not answered yet
        _, dialing, err = await _all(a, ("contact_state", {"state": "held"}),
                                     ("consult_state", {"state": "dialing"}), ("error", {"request_id": "c1"}))
        assert dialing["target"] == "agent2" and err["code"] == "conflict"
        await _answer(rc, "1002")
        await a.next("consult_state", state="talking")

        await a.send("consult_complete", interaction_id=iid)
        await a.next("consult_state", state="ended")
        await a.next("contact_state", state="ended")
        await a.next("wrapup", interaction_id=iid)
        await b.next("contact_state", state="talking", interaction_id=iid)
        await a.send("submit_wrapup", interaction_id=iid, disposition="resolved", notes="Warm to agent2")
        await a.next("wrapup_saved", interaction_id=iid)

        call.hangup()
        await b.next("contact_state", state="ended")
        await b.next("wrapup", interaction_id=iid)
        await b.send("submit_wrapup", interaction_id=iid, disposition="resolved", notes="Done")
        await b.next("wrapup_saved", interaction_id=iid)
        await ws2.close()
        await ws.close()
    kinds = [e.kind for e in await store.timeline(iid)]
    assert kinds.index("consult") < kinds.index("consult_answered") < kinds.index("complete")
    assert kinds.count("wrapup") == 2 and "routing_refused" not in kinds
    assert (await store.get_interaction(iid)).agent_id == (await store.get_user("agent2")).id


async def test_warm_transfer_cancel_goes_back_to_the_caller(database, tmp_path):
    store = _store(database)
    await seed_people(store, agents=2)
    async with running_center(database, CC_VOICE__RECORDINGS_DIR=str(tmp_path / "rec")) as rc:
        ws, a = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        call, iid = await _talking(rc, a, REGULAR_PHONE, ("2",))
        await a.send("consult", interaction_id=iid, target_type="agent", target="agent2")
        await _answer(rc, "1002")
        await _all(a, ("contact_state", {"state": "held"}), ("consult_state", {"state": "dialing"}),
                   ("consult_state", {"state": "talking"}))
        await a.send("consult_cancel", interaction_id=iid)
        await a.next("consult_state", state="ended")
        await a.next("contact_state", state="talking")  # bridged back, confirmed by BridgeEnter
        assert rc.center.voice.calls[iid].consult is None

        # a consultation nobody answers: failed, and back to the caller
        await a.send("consult", interaction_id=iid, target_type="agent", target="agent2")
        # nobody answers (the ring timeout is 20 s, scaled down): failed, back to the caller
        await _all(a, ("consult_state", {"state": "dialing"}), ("consult_state", {"state": "failed"}),
                   ("contact_state", {"state": "talking"}))

        call.hangup()
        await a.next("contact_state", state="ended")
        await a.next("wrapup", interaction_id=iid)
        await ws.close()
    events = [(e.kind, e.ok) for e in await store.timeline(iid)]
    assert ("cancel", True) in events and ("consult", False) in events
    assert [k for k, _ in events].count("retrieve") == 2


# ---------------------------------------------------------------------------- click-to-dial
async def test_click_to_dial_a_customer(database, tmp_path):
    store = _store(database)
    people = await seed_people(store, agents=2)
    async with running_center(database, CC_VOICE__RECORDINGS_DIR=str(tmp_path / "rec")) as rc:
        events = rc.sim.subscribe()
        ws, a = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        await a.send("set_state", state="ready")
        await a.next("agent_state", state="ready")
        await a.send("dial", customer_id=people["vip"].id, request_id="r")
        assert (await a.next("error", request_id="r"))["code"] == "conflict"  # ready: inbound may come
        await a.send("set_state", state="not_ready", reason="after-call")
        await a.next("agent_state", state="not_ready")
        await a.send("dial", customer_id=people["vip"].id)
        ringing = await a.next("contact_state", state="ringing")
        iid = ringing["interaction_id"]
        await a.send("answer", interaction_id=iid)
        await a.next("contact_state", state="talking")
        names = []
        while not events.empty():
            e = events.get_nowait()
            names.append((e.name, e.get("DestChannel") or ""))
        assert any(n == "DialBegin" and "12025550143" in d for n, d in names)  # the VIP's phone
        await a.send("hangup", interaction_id=iid)
        await a.next("contact_state", state="ended")
        await a.next("wrapup", interaction_id=iid)
        await a.send("submit_wrapup", interaction_id=iid, disposition="resolved", notes="Called back")
        await a.next("wrapup_saved", interaction_id=iid)
        await ws.close()
    i = await store.get_interaction(iid)
    assert i.direction == "outbound" and i.customer_id == people["vip"].id and i.to_address == "+12025550143"
    assert i.agent_id == (await store.get_user("agent1")).id
    kinds = [e.kind for e in await store.timeline(iid)]
    assert kinds.index("dial") < kinds.index("ring") < kinds.index("answer") < kinds.index("hangup")
    assert "wrapup" in kinds and "routing_refused" not in kinds


async def test_click_to_dial_the_agent_does_not_answer(database, tmp_path):
    store = _store(database)
    await seed_people(store)
    async with running_center(database, CC_VOICE__RECORDINGS_DIR=str(tmp_path / "rec")) as rc:
        ws, a = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        await a.send("set_state", state="not_ready", reason="after-call")
        await a.next("agent_state", state="not_ready")
        await a.ws.send(json.dumps({"type": "dial", "number": "12025550100", "request_id": "bad"}))
        assert (await a.next("error", request_id="bad"))["code"] == "bad_message"
        await a.send("dial", number="+12025550100")
        iid = (await a.next("contact_state", state="ringing"))["interaction_id"]
        # the Originate timed out: OriginateResponse Failure, Reason 3
        _, err = await _all(a, ("contact_state", {"state": "ended", "interaction_id": iid}), ("error", {}))
        assert err["code"] == "invalid" and "no answer" in err["message"]
        assert iid not in rc.center.voice.calls
        await ws.close()
    failed = [e for e in await store.timeline(iid) if e.kind == "dial" and not e.ok]
    assert failed and failed[0].data["code"] == "3"
    assert (await store.get_interaction(iid)).state == "failed"


# ---------------------------------------------------------------------------- escalation
async def test_escalate_to_a_specialist_queue_escalates_the_ticket(database, tmp_path):
    store = _store(database)
    people = await seed_people(store, agents=2)
    async with running_center(database, CC_VOICE__RECORDINGS_DIR=str(tmp_path / "rec")) as rc:
        ws, a = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        call, iid = await _talking(rc, a)
        ws2, b = await open_console(rc.base, await cookie_for(rc.base, "agent2"))
        await b.send("escalate", interaction_id=iid, queue="support", reason="x", request_id="f")
        assert (await b.next("error", request_id="f"))["code"] == "forbidden"
        await b.send("set_state", state="ready")
        await b.next("agent_state", state="ready")
        await a.send("escalate", interaction_id=iid, queue="nowhere", reason="x", request_id="q")
        assert (await a.next("error", request_id="q"))["code"] == "not_found"
        await a.send("escalate", interaction_id=iid, supervisor="agent2", reason="x", request_id="s")
        assert (await a.next("error", request_id="s"))["code"] == "invalid"  # not a supervisor

        await a.send("escalate", interaction_id=iid, queue="support", reason="Line fault, needs tier 2")
        await a.next("contact_state", state="ended")
        await a.next("wrapup", interaction_id=iid)
        offer = await b.next("offer")
        assert offer["interaction_id"] == iid and offer["queue"] == "support"
        assert offer["transfer"] == {"from": "agent1", "notes": "Line fault, needs tier 2"}
        assert offer["pop"]["card"]["customer"]["id"] == people["vip"].id
        call.hangup()
        await b.next("offer_withdrawn", interaction_id=iid)
        await ws2.close()
        await ws.close()
    esc = [e for e in await store.timeline(iid) if e.kind == "escalate"]
    assert len(esc) == 1 and esc[0].data["target"] == "support"
    tickets = await store.list_tickets(people["vip"].id)
    assert esc[0].data["ticket"] == tickets[0].number and tickets[0].escalation_queue == "support"


async def test_escalate_to_a_supervisor(database, tmp_path):
    store = _store(database)
    await seed_people(store)
    await store.create_user("sue", "agent-password", roles=["agent", "supervisor"], display_name="Sue",
                            extension="1009", skills={"billing": 5, "support": 5})
    async with running_center(database, CC_VOICE__RECORDINGS_DIR=str(tmp_path / "rec")) as rc:
        ws, a = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        call, iid = await _talking(rc, a, REGULAR_PHONE, ("2",))
        ws2, s = await open_console(rc.base, await cookie_for(rc.base, "sue"))
        await s.send("set_state", state="ready")
        await s.next("agent_state", state="ready")
        await a.send("escalate", interaction_id=iid, supervisor="sue", reason="Asks for a manager")
        await a.next("wrapup", interaction_id=iid)
        offer = await s.next("offer")
        assert offer["interaction_id"] == iid and offer["transfer"]["notes"] == "Asks for a manager"
        call.hangup()
        await s.next("offer_withdrawn", interaction_id=iid)
        await ws2.close()
        await ws.close()
    esc = [e for e in await store.timeline(iid) if e.kind == "escalate"]
    assert esc and esc[0].data["target"] == "sue" and esc[0].data["ticket"] is None
