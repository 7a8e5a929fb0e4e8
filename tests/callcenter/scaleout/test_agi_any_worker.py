"""FastAGI sessions land on any process (issue 18): the call's first AGI session (IVR, queue) is
on process A; the agent does not answer, and the dialplan's after-dial AGI session reaches
process B, which never held the call. B takes the call over (A hands it over), re-queues it with
its place kept and dials the next agent: the caller is not dropped. One interaction, complete."""
from __future__ import annotations

from contextlib import AsyncExitStack

import pytest

from callcenter.app import build_store
from callcenter.asterisk.simulator import Simulator
from callcenter.keys import CENTER, TELEPHONY
from callcenter.scaleout.setup import SCALEOUT
from callcenter.settings import load_settings
from tests.callcenter.scaleout.test_two_processes import _true, process, until
from tests.callcenter.voice_harness import REGULAR_PHONE, Console, seed_people

pytestmark = pytest.mark.timeout(120)


async def test_after_dial_on_another_process_dials_the_next_agent(database, redis_prefix):
    if database.is_sqlite:
        pytest.skip("several processes share PostgreSQL")
    url, prefix = redis_prefix
    store = build_store(load_settings(env={}), database)
    await seed_people(store, agents=2)
    async with Simulator(time_scale=0.05, ami_users={"cc": "secret"}) as sim, AsyncExitStack() as stack:
        sim.agent("1001", never_answer=True)  # agent1's phone rings out (20 s scaled: 1 s)
        sim.agent("1002", answer_after=0.5, talk_time=2)
        env = {"CC_REDIS__URL": url, "CC_REDIS__PREFIX": prefix, "CC_SCALEOUT__ENABLED": "true",
               "CC_SCALEOUT__LEASE_TTL_S": "2",
               "CC_AMI__ENABLED": "true", "CC_AMI__HOST": "127.0.0.1", "CC_AMI__PORT": str(sim.ami_port),
               "CC_AMI__USERNAME": "cc", "CC_AMI__SECRET": "secret", "CC_AGI__ENABLED": "true",
               "CC_AGI__HOST": "127.0.0.1", "CC_AGI__PORT": "0", "CC_VOICE__ACK_TIMEOUT_S": "5",
               "CC_CHAT__DEMO_SITE_PORT": ""}
        a = await stack.enter_async_context(process(database, env))
        b = await stack.enter_async_context(process(database, env))
        sa, sb = a[SCALEOUT], b[SCALEOUT]

        async def one_leader() -> bool:
            return [s.ami_token > 0 for s in (sa, sb)].count(True) == 1 and (
                a[TELEPHONY].ami is not None or b[TELEPHONY].ami is not None)
        await until(one_leader)
        sim.set_agi_target(f"agi://127.0.0.1:{a[TELEPHONY].agi.port}")  # the call lands on A

        first = await Console.open(a[CENTER], store, "agent1")
        second = await Console.open(b[CENTER], store, "agent2")
        await until(lambda: _true(sa.connected(second.user.id) and sb.connected(first.user.id)))
        await first.send("set_state", state="ready")
        call = sim.call(REGULAR_PHONE, digits=["1"])
        offer = await first.next("offer", timeout=30)
        iid = offer["interaction_id"]
        assert iid in a[CENTER].voice.calls
        await first.send("ack_offer", offer_id=offer["offer_id"])
        await first.next("contact_state", timeout=20, state="ringing")
        # from now on FastAGI sessions reach B: the after-dial session of this call lands there
        sim.set_agi_target(f"agi://127.0.0.1:{b[TELEPHONY].agi.port}")
        await second.send("set_state", state="ready")
        withdrawn = await first.next("offer_withdrawn", timeout=30)
        assert withdrawn["reason"] == "no_answer"
        again = await second.next("offer", timeout=30, interaction_id=iid)
        await second.send("ack_offer", offer_id=again["offer_id"])
        await second.next("wrapup", timeout=30, interaction_id=iid)
        await call.wait_hangup(30)
        await second.send("submit_wrapup", interaction_id=iid, disposition="resolved", notes="ok")

        async def done() -> bool:
            i = await store.find_interaction(call.linkedid)
            return i is not None and i.state == "wrapup_done"
        await until(done)
        assert iid in b[CENTER].voice.calls or iid not in a[CENTER].voice.calls  # B took it
    found = await store.find_interaction(call.linkedid)
    assert found.id == iid and found.agent_id == second.user.id
    kinds = [e.kind for e in await store.timeline(iid)]
    assert "taken_over" in kinds and "rona" in kinds and kinds.count("answer") == 1, kinds
