"""Scale-out: a supervisor's wallboard on process B shows a call that process A routed. Two
centers share one PostgreSQL and one Redis; the call lands on A's FastAGI server and the agent's
console is on A; the wallboard websocket is on B. Every process's wallboard events fan out on the
live channel (callcenter/scaleout/fanout.py), so B's board counts the call as A's does."""
from __future__ import annotations

from contextlib import AsyncExitStack, asynccontextmanager

import pytest

from callcenter.app import build_store, init_app
from callcenter.asterisk.simulator import Simulator
from callcenter.keys import CENTER, TELEPHONY
from callcenter.scaleout.setup import SCALEOUT
from callcenter.settings import load_settings
from tests.callcenter.scaleout.test_two_processes import until
from tests.callcenter.test_console_ws import cookie_for
from tests.callcenter.voice_harness import VIP_PHONE, WEEKDAY_NOON_NY, Console
from tests.callcenter.wallboard.harness import Board, agent, queue, seed_board
from tests.http import serve

pytestmark = pytest.mark.timeout(120)
KEYS = ("answered", "answered_in_sl", "abandoned", "handled", "transferred")


@asynccontextmanager
async def process(database, env):
    app = init_app(load_settings(env=env), database=database, ivr_clock=lambda: WEEKDAY_NOON_NY)
    async with serve(app) as base:
        yield app, base


async def test_a_call_routed_by_one_process_shows_on_the_other_processes_board(database, redis_prefix):
    if database.is_sqlite:
        pytest.skip("several processes share PostgreSQL")
    url, prefix = redis_prefix
    store = build_store(load_settings(env={}), database)
    await seed_board(store)
    async with Simulator(time_scale=0.05, ami_users={"cc": "secret"}) as sim, AsyncExitStack() as stack:
        sim.agent("1001", answer_after=0.5, talk_time=2)  # Ann's phone
        env = {"CC_REDIS__URL": url, "CC_REDIS__PREFIX": prefix, "CC_SCALEOUT__ENABLED": "true",
               "CC_SCALEOUT__LEASE_TTL_S": "2",
               "CC_AMI__ENABLED": "true", "CC_AMI__HOST": "127.0.0.1", "CC_AMI__PORT": str(sim.ami_port),
               "CC_AMI__USERNAME": "cc", "CC_AMI__SECRET": "secret", "CC_AGI__ENABLED": "true",
               "CC_AGI__HOST": "127.0.0.1", "CC_AGI__PORT": "0", "CC_VOICE__ACK_TIMEOUT_S": "5",
               "CC_CHAT__DEMO_SITE_PORT": ""}
        a, _base_a = await stack.enter_async_context(process(database, env))
        b, base_b = await stack.enter_async_context(process(database, env))
        sa, sb = a[SCALEOUT], b[SCALEOUT]

        async def ready() -> bool:
            leaders = [s.ami_token > 0 for s in (sa, sb)].count(True) == 1 and (
                a[TELEPHONY].ami is not None or b[TELEPHONY].ami is not None)
            return leaders and sa.live.subscribed.is_set() and sb.live.subscribed.is_set()
        await until(ready)
        sim.set_agi_target(f"agi://127.0.0.1:{a[TELEPHONY].agi.port}")  # calls land on process A
        await b[CENTER].wallboard.loaded.wait()

        sue = await Board.open(base_b, await cookie_for(base_b, "sue"))  # team red's supervisor, on B
        await sue.next()
        ann = await Console.open(a[CENTER], store, "ann")  # Ann's console is on A
        await ann.send("set_state", state="ready")
        await sue.next(lambda f: (agent(f, "Ann") or {}).get("state") == "ready")

        call = sim.call(VIP_PHONE, digits=["1"])
        offer = await ann.next("offer", timeout=30)
        assert int(offer["interaction_id"]) in a[CENTER].voice.calls  # A holds the call
        assert int(offer["interaction_id"]) not in b[CENTER].voice.calls
        busy = await sue.next(lambda f: (agent(f, "Ann") or {}).get("state") == "busy"
                              or (queue(f, "vip") or {}).get("waiting") == 1)
        assert busy["agents"][0]["name"] == "Ann"
        await ann.send("ack_offer", offer_id=offer["offer_id"])
        talking = await sue.next(lambda f: agent(f, "Ann")["state"] == "busy")
        assert agent(talking, "Ann")["contacts"][0]["interaction_id"] == offer["interaction_id"]
        assert agent(talking, "Ann")["contacts"][0]["customer"] == "Victoria Important"
        await ann.next("wrapup", timeout=30)
        await call.wait_hangup(30)
        done = await sue.next(lambda f: queue(f, "vip")["handled"] == 1)
        # B's board counts what A's counts (A routed the call; B's routing never saw it)
        mine = a[CENTER].wallboard.stats
        theirs = queue(done, "vip")
        assert [theirs[k] for k in KEYS] == [1, 1, 0, 1, 0]
        row = mine.queue_row(mine.queues[("vip", "voice")])
        assert [row[k] for k in KEYS] == [theirs[k] for k in KEYS]
        assert agent(done, "Ann")["handled"] == 1
        await sue.close()
        # both boards saw the VIP wait; its alert is stored (and sent) once for the center
        await until(lambda: _no_work(a, b))
    sla = a[CENTER].sla
    alerts = [x for x in await sla.store.open_alerts(500)
              if x.kind == "wallboard" and (x.data or {}).get("key") == f"vip:{offer['interaction_id']}"]
    assert len(alerts) == 1, alerts


async def _no_work(*apps) -> bool:
    return not any(app[CENTER].wallboard._tasks for app in apps)
