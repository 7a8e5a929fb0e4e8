"""kill -9 of the worker holding a call while the agent's phone rings (issue 18). The agent does not
answer; the dialplan's after-dial FastAGI session reaches the surviving worker (what a balancer
does), which never held the call. It rebuilds the call from the interaction and the Redis
routing store, refuses the offer to the agent who was dialled (the contact keeps its place) and
dials the next agent: the caller is answered, and the call has exactly one interaction."""
from __future__ import annotations

import asyncio

import pytest

from tests.callcenter.voice_harness import REGULAR_PHONE
from tests.faults.test_faults import AutoAgent, _is, center, consistent, servers, state_of, until  # noqa: F401

pytestmark = pytest.mark.timeout(120)


async def test_kill9_while_ringing_after_dial_on_the_survivor_dials_the_next_agent(servers):  # noqa: F811
    async with center(servers, agents=2) as c:
        sim, (holder, survivor), db = c["sim"], c["workers"], c["db"]
        sim.pbx.globals["CC_RING_TIMEOUT"] = "100"  # agent1's phone rings 5 s (real) and nobody answers
        sim.agent("1001", never_answer=True)
        sim.agent("1002", answer_after=0.3, talk_time=20)
        first = AutoAgent("agent1")
        await first.connect(survivor.base)  # the consoles are on the survivor; calls land on the holder
        await first.wait_ready()
        call = sim.call(REGULAR_PHONE, digits=["1"])
        await until(lambda: _is(state_of(db, call.linkedid), "offered"), 40)
        await until(lambda: _true(bool(first.offers)), 20)
        await asyncio.sleep(1.0)  # acked: agent1's phone rings
        holder.kill9()
        sim.set_agi_target(f"agi://127.0.0.1:{survivor.agi_port}")
        second = AutoAgent("agent2")
        await second.connect(survivor.base)
        await second.wait_ready()
        await call.wait_hangup(60)
        found = await consistent(db, [call], 60)
        i = found[call.linkedid]
        kinds = [e.kind for e in await c["store"].timeline(i.id)]
        assert "taken_over" in kinds and "rona" in kinds, kinds
        assert any(o["interaction_id"] == i.id for o in second.offers)
        await first.close()
        await second.close()


async def _true(v: bool) -> bool:
    return v
