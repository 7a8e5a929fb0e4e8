"""The center keeps the PBX's fallback queue in step with its agents, and when its FastAGI server
dies mid-traffic the dialplan's fallback calls ring only ready agents and are still logged."""
from __future__ import annotations

import asyncio

import pytest

from callcenter.app import build_store
from callcenter.keys import TELEPHONY
from callcenter.settings import load_settings
from tests.callcenter.voice_harness import REGULAR_PHONE, VIP_PHONE, Console, running_center, seed_people

pytestmark = pytest.mark.timeout(60)


async def until(predicate, timeout: float = 10.0) -> None:
    async def poll() -> None:
        while not await predicate():
            await asyncio.sleep(0.02)
    await asyncio.wait_for(poll(), timeout)


async def test_fastagi_down_fallback_rings_only_ready_agents_and_is_logged(database):
    store = build_store(load_settings(env={}), database)
    people = await seed_people(store, agents=3)
    async with running_center(database) as rc:
        tel = rc.app[TELEPHONY]
        a1 = await Console.open(rc.center, store, "agent1")
        a2 = await Console.open(rc.center, store, "agent2")
        await a1.send("set_state", state="ready")
        await a2.send("set_state", state="not_ready", reason="lunch")
        # agent3 stays offline: not a member at all

        async def members() -> dict[str, bool] | None:
            q = rc.sim.pbx.queues.get("cc-fallback")
            if q is None:
                return None
            return {m.interface: m.paused for m in q.members.values()}

        async def synced() -> bool:
            return await members() == {"PJSIP/1001": False, "PJSIP/1002": True}

        await until(synced)
        rc.sim.agent("1001", answer_after=0.5, talk_time=2)
        rc.sim.agent("1002", answer_after=0.5, talk_time=2)

        # the FastAGI server dies; calls keep coming
        await tel.agi.close()
        events = rc.sim.subscribe()
        calls = [rc.sim.call(REGULAR_PHONE), rc.sim.call(VIP_PHONE)]
        for call in calls:
            await call.wait_hangup(30)
        seen = []
        while not events.empty():
            seen.append(events.get_nowait())
        rung = {e.get("Interface") or e.get("DestChannel", "").split("-")[0]
                for e in seen if e.name == "AgentCalled"}
        assert rung and rung <= {"PJSIP/1001"}, rung  # never the paused or offline agents
        assert any(e.name == "AgentConnect" for e in seen)

        async def logged() -> bool:
            found = [await store.find_interaction(c.linkedid) for c in calls]
            return all(i is not None and i.state in ("wrapup_done", "abandoned") for i in found)

        await until(logged, 20)

    for call in calls:
        i = await store.find_interaction(call.linkedid)
        kinds = [e.kind for e in await store.timeline(i.id)]
        assert "fallback_queue" in kinds, kinds
        assert i.queue == "cc-fallback"
    vip_call = await store.find_interaction(calls[1].linkedid)
    assert vip_call.customer_id == people["vip"].id


async def test_a_call_the_center_did_not_route_makes_the_agent_busy(database):
    store = build_store(load_settings(env={}), database)
    await seed_people(store)
    async with running_center(database) as rc:
        a1 = await Console.open(rc.center, store, "agent1")
        await a1.send("set_state", state="ready")
        await a1.next("agent_state", state="ready")
        # agent1's phone gets a call straight from the PBX (not routed by the center)
        rc.sim.pbx.update_device("PJSIP/1001", force="INUSE")
        st = await a1.next("agent_state", state="not_ready")
        assert st["reason"] == "external-call"
        rc.sim.pbx.update_device("PJSIP/1001", force="NOT_INUSE")
        await a1.next("agent_state", state="ready")
