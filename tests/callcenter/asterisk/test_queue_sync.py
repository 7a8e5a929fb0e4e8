# ruff: noqa: E501
"""Fallback-queue sync: the pure plan, and over real TCP against the simulator: with the
FastAGI server down, fallback calls reach only ready agents."""
from __future__ import annotations

import asyncio

from callcenter.asterisk.ami import Event
from callcenter.asterisk.ami_client import AMIClient
from callcenter.asterisk.queue_sync import AgentState, CurrentMember, DesiredAgent, QueueSync, plan
from callcenter.asterisk.simulator import Simulator
from callcenter.asterisk.tracker import CallTracker

R, N, OFF = AgentState.READY, AgentState.NOT_READY, AgentState.OFFLINE


def test_plan_adds_pauses_removes() -> None:
    desired = {"a1": DesiredAgent(R, "PJSIP/1001"), "a2": DesiredAgent(N, "PJSIP/1002"),
               "a3": DesiredAgent(OFF, "PJSIP/1003"), "a4": DesiredAgent(R, "PJSIP/1004")}
    current = [CurrentMember("PJSIP/1002", False), CurrentMember("PJSIP/1003", False),
               CurrentMember("PJSIP/1004", False)]
    acts = plan("cc-fallback", desired, current)
    got = [(a.name, a["Interface"], a.get("Paused")) for a in acts]
    assert got == [("QueueAdd", "PJSIP/1001", "false"), ("QueuePause", "PJSIP/1002", "true"),
                   ("QueueRemove", "PJSIP/1003", None)]
    assert plan("cc-fallback", desired, [CurrentMember("PJSIP/1001", False), CurrentMember("PJSIP/1002", True),
                                         CurrentMember("PJSIP/1004", False)]) == []


async def test_fallback_calls_reach_only_ready_agents() -> None:
    sim = Simulator(agi_target="agi://127.0.0.1:9", time_scale=0.01)  # FastAGI down -> fallback queue
    for n in ("1001", "1002", "1003"):
        sim.agent(n, answer_after=0.5, talk_time=None)
    async with sim:
        client = AMIClient("127.0.0.1", sim.ami_port, "cc", "ccsecret", ping_interval=None, reconnect=False)
        await client.start()
        tracker = CallTracker()
        devices: list[tuple[str, str]] = []
        sync = QueueSync(client, "cc-fallback", tracker)
        sync.on_device_state.append(lambda d, s: devices.append((d, s)))
        sub = client.subscribe(callback=lambda ev: tracker.feed(ev) if isinstance(ev, Event) else None)
        desired = {"ann": DesiredAgent(R, "PJSIP/1001"), "bob": DesiredAgent(N, "PJSIP/1002"),
                   "cy": DesiredAgent(OFF, "PJSIP/1003")}
        await sync.apply(desired, resync=True)
        status = await client.send_action("QueueStatus", Queue="cc-fallback")
        members = {e["Location"]: e["Paused"] for e in status.events if e.name == "QueueMember"}
        assert members == {"PJSIP/1001": "0", "PJSIP/1002": "1"}

        called = client.subscribe("AgentCalled")
        first = sim.call("+14155550001")
        ev = await asyncio.wait_for(called.get(), 5)
        assert ev["Interface"] == "PJSIP/1001"
        await asyncio.wait_for(first.channel.answered.wait(), 5)
        # ann is now on a call: the next fallback call must wait, not ring bob (paused) or cy (offline)
        second = sim.call("+14155550002")
        joined = client.subscribe("QueueCallerJoin")
        await asyncio.wait_for(joined.get(), 5)
        # bob becomes ready: the waiting call goes to him
        desired["bob"] = DesiredAgent(R, "PJSIP/1002")
        await sync.apply(desired)
        ev = await asyncio.wait_for(called.get(), 5)
        assert ev["Interface"] == "PJSIP/1002"
        assert ("PJSIP/1001", "INUSE") in devices and sync.agent_of_device("PJSIP/1001") == "ann"
        # the device state feeds back: ann counts as busy
        assert "PJSIP/1001" in tracker.busy_devices()
        # after a reconnect-style resync nothing needs sending
        await sync.resync()
        assert await sync.apply(desired) == []
        first.hangup()
        second.hangup()
        await asyncio.gather(first.wait_hangup(5), second.wait_hangup(5))
        sub.unsubscribe()
        await client.close()
