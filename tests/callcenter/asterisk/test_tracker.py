# ruff: noqa: E501
"""The call tracker against every capture and against the simulator (over real TCP)."""
from __future__ import annotations

import asyncio

import pytest

from callcenter.asterisk.ami import Event
from callcenter.asterisk.ami_client import AMIClient
from callcenter.asterisk.simulator import Simulator
from callcenter.asterisk.tracker import CallTracker
from tests.callcenter.asterisk.test_conformance import load
from tests.captures import CAPTURES

ALL = sorted(p.stem for p in CAPTURES.glob("ami-*.raw"))


def events(name: str) -> list[Event]:
    return [m for m in load(name).messages if isinstance(m, Event)]


@pytest.mark.parametrize("name", ALL)
def test_every_capture_feeds_cleanly(name: str) -> None:
    t = CallTracker()
    changes = t.feed_all(events(name))
    for call in t.calls.values():
        assert call.channels and all(c.linkedid == call.linkedid for c in call.channels.values())
    started = [c for c in changes if c.kind == "call_started"]
    ended = [c for c in changes if c.kind == "call_ended"]
    assert len(ended) <= len(started) + 0 or name.startswith("ami-stream")


def test_ring_no_answer_call() -> None:
    t = CallTracker()
    kinds = [c.kind for c in t.feed_all(events("ami-ring-no-answer"))]
    assert kinds.count("call_started") == kinds.count("call_ended")
    assert "queue_join" in kinds and "agent_connect" in kinds and not t.calls
    ended = t.ended[0]
    assert ended.answered and ended.agent_interface == "Local/3002@agents"
    assert t.queues["q-rna"].completed == 1


def test_queue_abandon_and_members() -> None:
    t = CallTracker()
    kinds = [c.kind for c in t.feed_all(events("ami-queue-abandon"))]
    assert "queue_abandon" in kinds and t.queues["q-abandon"].abandoned == 1
    assert not t.queues["q-abandon"].entries


def test_queue_status_list_builds_members_and_entries() -> None:
    t = CallTracker()
    evs = events("ami-queue-admin")
    items = [e for e in evs if e.action_id == "qstatus-1"]
    t.resync([], items)
    q = t.queues["q-admin"]
    assert set(q.members) == {"Local/6001@agents", "Local/6002@agents"}
    assert q.members["Local/6002@agents"].paused and q.members["Local/6002@agents"].reason == "lunch"
    assert len(q.entries) == 2


def test_transfers_hold_recording_spy() -> None:
    t = CallTracker()
    t.feed_all(events("ami-transfer-blind"))
    assert any(c.transfers and c.transfers[0].kind == "blind" for c in [*t.ended, *t.calls.values()])
    t = CallTracker()
    t.feed_all(events("ami-transfer-atxfer"))
    assert any(tr.kind == "attended" for c in [*t.ended, *t.calls.values()] for tr in c.transfers)
    t = CallTracker()
    kinds = [c.kind for c in t.feed_all(events("ami-hold-and-record"))]
    assert "recording" in kinds and "hold" in kinds and "unhold" in kinds
    t = CallTracker()
    seen: list[str] = []
    for e in events("ami-chanspy-whisper"):
        t.feed(e)
        seen += [c.spying_on for c in t.channels.values() if c.spying_on]
    assert seen and seen[0].startswith("Local/4001@agents")


def test_device_state_callbacks() -> None:
    t = CallTracker()
    got: list[tuple[str, str]] = []
    t.on_device_state.append(lambda d, s: got.append((d, s)))
    t.feed_all(events("ami-edge"))
    assert ("Local/2001@agents", "INUSE") in got and ("Local/2001@agents", "NOT_INUSE") in got


def test_park_and_bridge_captures() -> None:
    t = CallTracker()
    t.feed_all(events("ami-bridge-action"))
    assert not t.bridges  # created and destroyed
    t = CallTracker()
    kinds = [c.kind for c in t.feed_all(events("ami-park-retrieve"))]
    assert "hold" in kinds and "call_ended" in kinds


async def test_tracker_against_simulator_and_resync() -> None:
    sim = Simulator(agi_target="agi://127.0.0.1:9", time_scale=0.01)  # nothing listens: fallback queue
    sim.agent("1001", answer_after=1, talk_time=None)
    async with sim:
        client = AMIClient("127.0.0.1", sim.ami_port, "cc", "ccsecret", ping_interval=None, reconnect=False)
        await client.start()
        tracker = CallTracker()
        sub = client.subscribe()
        await client.send_action("QueueAdd", Queue="cc-fallback", Interface="PJSIP/1001", MemberName="Agent 1001")
        call = sim.call("+14155550123")

        async def follow() -> None:
            async for ev in sub:
                if isinstance(ev, Event):
                    tracker.feed(ev)
                    if ev.name == "BridgeEnter" and len(tracker.bridges.get(ev["BridgeUniqueid"], ())
                                                        .channels) == 2:
                        return
        await asyncio.wait_for(follow(), 5)
        live = tracker.call_of(call.name)
        assert live is not None and live.answered and len(live.channels) == 2
        # rebuild from scratch, as after a reconnect
        chans = await client.send_action("CoreShowChannels")
        queues = await client.send_action("QueueStatus")
        fresh = CallTracker()
        fresh.resync(chans.events, queues.events)
        assert {c.name for c in fresh.channels.values()} == {c.name for c in tracker.channels.values()}
        assert fresh.call_of(call.name) is not None
        assert "PJSIP/1001" in fresh.queues["cc-fallback"].members
        assert len(fresh.bridges) == 1
        call.hangup()
        await call.wait_hangup(5)
        await client.close()
