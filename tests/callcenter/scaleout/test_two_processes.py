"""Two centers on one database and one Redis form one center (scale-out): routing on the Redis
store, one AMI connection (the lease holder's), the call taken by one process's FastAGI server
and the agent's console on the other process. The agent gets the offer with the pop, acks it,
the call is answered and ended, the wrap-up is saved: one interaction, complete."""
from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack, asynccontextmanager

import pytest

from callcenter.app import build_store, init_app
from callcenter.asterisk.simulator import Simulator
from callcenter.keys import CENTER, TELEPHONY
from callcenter.scaleout.setup import SCALEOUT
from callcenter.settings import load_settings
from tests.callcenter.voice_harness import REGULAR_PHONE, WEEKDAY_NOON_NY, Console, seed_people
from tests.http import serve

pytestmark = pytest.mark.timeout(120)


async def until(predicate, timeout: float = 20.0) -> None:
    async def poll() -> None:
        while not await predicate():
            await asyncio.sleep(0.05)
    await asyncio.wait_for(poll(), timeout)


@asynccontextmanager
async def process(database, env):
    settings = load_settings(env=env)
    app = init_app(settings, database=database, ivr_clock=lambda: WEEKDAY_NOON_NY)
    async with serve(app):
        yield app


async def test_call_on_one_process_agent_on_the_other(database, redis_prefix):
    if database.is_sqlite:
        pytest.skip("several processes share PostgreSQL")
    url, prefix = redis_prefix
    store = build_store(load_settings(env={}), database)
    await seed_people(store, agents=1)
    async with Simulator(time_scale=0.05, ami_users={"cc": "secret"}) as sim, AsyncExitStack() as stack:
        sim.agent("1001", answer_after=0.5, talk_time=2)
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
        sim.set_agi_target(f"agi://127.0.0.1:{a[TELEPHONY].agi.port}")  # calls land on process A

        console = await Console.open(b[CENTER], store, "agent1")  # the agent's console is on B
        await until(lambda: _true(sa.connected(console.user.id)))
        await console.send("set_state", state="ready")
        call = sim.call(REGULAR_PHONE, digits=["1"])
        offer = await console.next("offer", timeout=30)
        assert offer["pop"]["known"] and offer["caller"] == REGULAR_PHONE
        assert int(offer["interaction_id"]) in a[CENTER].voice.calls  # A holds the call
        await console.send("ack_offer", offer_id=offer["offer_id"])  # handled by A
        await console.next("wrapup", timeout=30)
        await call.wait_hangup(30)
        iid = offer["interaction_id"]
        await console.send("submit_wrapup", interaction_id=iid, disposition="resolved", notes="ok")

        async def done() -> bool:
            i = await store.find_interaction(call.linkedid)
            return i is not None and i.state == "wrapup_done"
        await until(done)
    found = await store.find_interaction(call.linkedid)
    assert found.id == iid and found.agent_id == console.user.id
    kinds = [e.kind for e in await store.timeline(iid)]
    assert "pop_ack" in kinds and "answer" in kinds or "answered" in str(kinds), kinds


async def _true(v: bool) -> bool:
    return v


async def test_metrics_show_the_leader(database, redis_prefix):
    if database.is_sqlite:
        pytest.skip("several processes share PostgreSQL")
    import aiohttp

    url, prefix = redis_prefix
    async with Simulator(time_scale=0.05, ami_users={"cc": "secret"}) as sim:
        env = {"CC_REDIS__URL": url, "CC_REDIS__PREFIX": prefix, "CC_SCALEOUT__ENABLED": "true",
               "CC_AMI__ENABLED": "true", "CC_AMI__HOST": "127.0.0.1", "CC_AMI__PORT": str(sim.ami_port),
               "CC_AMI__USERNAME": "cc", "CC_AMI__SECRET": "secret", "CC_AGI__ENABLED": "true",
               "CC_AGI__HOST": "127.0.0.1", "CC_AGI__PORT": "0", "CC_CHAT__DEMO_SITE_PORT": ""}
        settings = load_settings(env=env)
        app = init_app(settings, database=database, ivr_clock=lambda: WEEKDAY_NOON_NY)
        async with serve(app) as base, aiohttp.ClientSession() as http:
            await until(lambda: _true(app[SCALEOUT].ami_token > 0))
            text = await (await http.get(f"{base}/metrics")).text()
    assert "cc_scaleout_ami_leader 1.0" in text and "cc_scaleout_outbox_backlog" in text


async def test_call_controls_of_a_call_held_by_a_process_without_the_ami_link(database, redis_prefix):
    """Hold and retrieve on a call owned by the process that does not hold the AMI connection:
    the actions go through the AMI leader, once each, and the call's state comes back."""
    if database.is_sqlite:
        pytest.skip("several processes share PostgreSQL")
    url, prefix = redis_prefix
    store = build_store(load_settings(env={}), database)
    await seed_people(store, agents=1)
    async with Simulator(time_scale=0.05, ami_users={"cc": "secret"}) as sim, AsyncExitStack() as stack:
        sim.agent("1001", answer_after=0.5, talk_time=400)  # 20 s real
        env = {"CC_REDIS__URL": url, "CC_REDIS__PREFIX": prefix, "CC_SCALEOUT__ENABLED": "true",
               "CC_AMI__ENABLED": "true", "CC_AMI__HOST": "127.0.0.1", "CC_AMI__PORT": str(sim.ami_port),
               "CC_AMI__USERNAME": "cc", "CC_AMI__SECRET": "secret", "CC_AGI__ENABLED": "true",
               "CC_AGI__HOST": "127.0.0.1", "CC_AGI__PORT": "0", "CC_VOICE__ACK_TIMEOUT_S": "5",
               "CC_CHAT__DEMO_SITE_PORT": ""}
        a = await stack.enter_async_context(process(database, env))
        b = await stack.enter_async_context(process(database, env))

        async def one_leader() -> bool:
            leading = [x[SCALEOUT].ami_token > 0 and x[TELEPHONY].ami is not None for x in (a, b)]
            return leading.count(True) == 1
        await until(one_leader)
        leader, owner = (a, b) if a[SCALEOUT].ami_token else (b, a)
        sim.set_agi_target(f"agi://127.0.0.1:{owner[TELEPHONY].agi.port}")
        console = await Console.open(leader[CENTER], store, "agent1")  # console on the leader
        await until(lambda: _true(owner[SCALEOUT].connected(console.user.id)))
        await console.send("set_state", state="ready")
        sim.call(REGULAR_PHONE, digits=["1"])
        offer = await console.next("offer", timeout=30)
        await console.send("ack_offer", offer_id=offer["offer_id"])
        iid = offer["interaction_id"]
        await console.next("contact_state", timeout=30, state="talking")
        await console.send("hold", interaction_id=iid)
        await console.next("contact_state", timeout=20, state="held")
        await console.send("retrieve", interaction_id=iid)
        await console.next("contact_state", timeout=20, state="talking")
        assert owner[TELEPHONY].ami is None  # the owner has no AMI link: the leader sent them
        # the console closes and opens again on a process that does not hold the call: it resumes
        await console.link.close()
        again = await Console.open(leader[CENTER], store, "agent1")
        await again.next("contact_state", timeout=20, state="talking", interaction_id=iid)
        kinds = [e.kind for e in await store.timeline(iid)]
        assert kinds.count("hold") == 1 and kinds.count("retrieve") == 1, kinds
