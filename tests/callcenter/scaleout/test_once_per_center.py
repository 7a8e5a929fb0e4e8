"""Scale-out: limits hold for the center as a whole, not per process. Two centers (two aiohttp
apps) share one PostgreSQL and one Redis key prefix; the clocks are injected.

- The API rate limit: a caller spreading requests over both processes gets the rate once
  (the bucket is in Redis); with Redis unreachable each process limits on its own (never
  everything refused, never unlimited).
"""
from __future__ import annotations

from contextlib import AsyncExitStack, asynccontextmanager

import aiohttp
import pytest
import redis.asyncio as aioredis

from callcenter.api.routes import RATE_LIMITER
from callcenter.app import build_store, init_app
from callcenter.asterisk.simulator import Simulator
from callcenter.keys import CENTER, TELEPHONY
from callcenter.scaleout.setup import SCALEOUT
from callcenter.settings import load_settings
from crm_core.campaigns import CampaignStore
from tests.callcenter.scaleout.test_two_processes import until
from tests.callcenter.voice_harness import WEEKDAY_NOON_NY
from tests.http import serve

pytestmark = pytest.mark.timeout(60)


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def scaleout_env(redis_prefix: tuple[str, str], **extra: str) -> dict[str, str]:
    url, prefix = redis_prefix
    return {"CC_REDIS__URL": url, "CC_REDIS__PREFIX": prefix, "CC_SCALEOUT__ENABLED": "true",
            "CC_SCALEOUT__LEASE_TTL_S": "2", "CC_CHAT__DEMO_SITE_PORT": "", **extra}


@asynccontextmanager
async def process(database, env):
    app = init_app(load_settings(env=env), database=database, ivr_clock=lambda: WEEKDAY_NOON_NY)
    async with serve(app) as base:
        yield app, base


async def test_the_api_rate_limit_holds_across_processes(database, redis_prefix) -> None:
    if database.is_sqlite:
        pytest.skip("several processes share PostgreSQL")
    store = build_store(load_settings(env={}), database)
    ada = await store.create_user("ada", "admin-password", roles=["admin"], display_name="Ada")
    _t, one = await store.create_api_token(ada.id, "one", "admin")
    _t, two = await store.create_api_token(ada.id, "two", "admin")
    env = scaleout_env(redis_prefix, CC_WEB__API_RATE_PER_MINUTE="6", CC_WEB__API_BURST="3")
    clock = Clock()
    async with AsyncExitStack() as stack, aiohttp.ClientSession() as http:
        a, base_a = await stack.enter_async_context(process(database, env))
        b, base_b = await stack.enter_async_context(process(database, env))
        for app in (a, b):
            app[RATE_LIMITER].clock = clock

        async def me(base: str, token: str) -> aiohttp.ClientResponse:
            r = await http.get(base + "/api/v1/me", headers={"Authorization": f"Bearer {token}"})
            await r.read()
            return r

        # 3 allowed in all (burst 3), wherever they land; per process it would be 3 each
        assert [(await me(base, one)).status for base in (base_a, base_b, base_a)] == [200, 200, 200]
        r = await me(base_b, one)
        assert r.status == 429 and r.headers["Retry-After"] == "10"  # 6/min: one every 10 s
        assert (await me(base_a, one)).status == 429
        assert (await me(base_b, two)).status == 200  # another token has its own bucket
        clock.t += 10  # one more request for the center, on either process
        assert (await me(base_b, one)).status == 200
        assert (await me(base_a, one)).status == 429
        assert a[RATE_LIMITER].fallbacks == b[RATE_LIMITER].fallbacks == 0

        # Redis unreachable: each process counts on its own (logged), neither refuses everything
        dead = aioredis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.5)
        stack.push_async_callback(dead.aclose)
        for app in (a, b):
            app[RATE_LIMITER].client = lambda: dead
        clock.t += 1000
        assert [(await me(base_a, one)).status for _ in range(4)] == [200, 200, 200, 429]
        assert [(await me(base_b, one)).status for _ in range(4)] == [200, 200, 200, 429]
        assert a[RATE_LIMITER].fallbacks == 4


# ---------------------------------------------------------------------------------- campaigns
def ami_env(redis_prefix: tuple[str, str], sim) -> dict[str, str]:
    return scaleout_env(redis_prefix, CC_AMI__ENABLED="true", CC_AMI__HOST="127.0.0.1",
                        CC_AMI__PORT=str(sim.ami_port), CC_AMI__USERNAME="cc", CC_AMI__SECRET="secret",
                        CC_CALLBACKS__POLL_S="0")


async def _lease_owner(app, campaign_id: int) -> str | None:
    so = app[SCALEOUT]
    owner = await so.client.hget(f"{so.prefix}lease:campaign:{campaign_id}", "owner")
    return owner.decode() if isinstance(owner, bytes) else owner


def _dialing(app, campaign_id: int) -> bool:
    run = app[CENTER].campaigns.runs.get(campaign_id)
    return run is not None and run.dialer is not None and run.task is not None and not run.task.done()


async def test_one_process_dials_a_campaign_and_the_next_leader_takes_it_over(database, redis_prefix):
    if database.is_sqlite:
        pytest.skip("several processes share PostgreSQL")
    cs = CampaignStore(database)
    camp = await cs.create(name="winback", mode="progressive", script="Hello {name}",
                           dispositions=["sale", "no_sale"], schedule={"hours": ["09:00", "20:00"]})
    async with Simulator(time_scale=0.05, ami_users={"cc": "secret"}) as sim, \
            AsyncExitStack() as stack_a, AsyncExitStack() as stack_b:
        env = ami_env(redis_prefix, sim)
        a, _ = await stack_a.enter_async_context(process(database, env))
        b, _ = await stack_b.enter_async_context(process(database, env))
        for app in (a, b):
            app[CENTER].campaigns.poll_s = 0.05

        async def one_leader() -> bool:
            return [app[SCALEOUT].ami_token > 0 and app[TELEPHONY].ami is not None
                    for app in (a, b)].count(True) == 1
        await until(one_leader)
        leader, other, leader_stack = (a, b, stack_a) if a[SCALEOUT].ami_token else (b, a, stack_b)

        # a start on the process without the PBX connection only marks the campaign running
        await other[CENTER].campaigns.control(camp.id, "start", by="sup")
        assert not _dialing(other, camp.id)
        assert await other[CENTER].campaigns.adopt() == []  # it cannot dial: no AMI here
        # the AMI leader picks it up, under the campaign's lease
        await until(lambda: _true(_dialing(leader, camp.id)))
        assert await _lease_owner(leader, camp.id) == leader[SCALEOUT].origin
        # the lease is held: no other process could dial it too
        orun = other[CENTER].campaigns.runs[camp.id]
        assert await other[CENTER].campaigns._hold(orun) is False
        # a pause on the other process stops the leader's dialing (it reads the stored status)
        await other[CENTER].campaigns.control(camp.id, "pause", by="sup")
        await until(lambda: _true(not _dialing(leader, camp.id)))
        await other[CENTER].campaigns.control(camp.id, "resume", by="sup")
        await until(lambda: _true(_dialing(leader, camp.id)))
        assert not _dialing(other, camp.id)

        # the leader goes away: the other process becomes the AMI leader and dials the campaign
        await leader_stack.aclose()
        await until(lambda: _true(other[SCALEOUT].ami_token > 0 and other[TELEPHONY].ami is not None))
        await until(lambda: _true(_dialing(other, camp.id)))
        assert await _lease_owner(other, camp.id) == other[SCALEOUT].origin


async def _true(v: bool) -> bool:
    return v


# ---------------------------------------------------------------------- email campaign send rate
async def test_the_email_campaign_send_rate_is_center_wide(database, redis_prefix):
    if database.is_sqlite:
        pytest.skip("several processes share PostgreSQL")
    camp = await CampaignStore(database).create(name="news", mode="email", subject="Hi", body="News",
                                                rate_per_min=60)  # 1 a second, 10 at once
    clock = Clock()
    async with AsyncExitStack() as stack:
        a, _ = await stack.enter_async_context(process(database, scaleout_env(redis_prefix)))
        b, _ = await stack.enter_async_context(process(database, scaleout_env(redis_prefix)))
        mail_a, mail_b = a[CENTER].campaigns.email, b[CENTER].campaigns.email
        for m in (mail_a, mail_b):
            m.wall = clock
        assert await mail_a._allowance(camp) == 10
        assert await mail_b._allowance(camp) == 0  # per process it would be 10 more
        clock.t += 3
        assert await mail_b._allowance(camp) + await mail_a._allowance(camp) == 3
        # started on A, it is sent from B too (one dying stops nothing); a pause on A stops B's
        svc_a, svc_b = a[CENTER].campaigns, b[CENTER].campaigns
        svc_b.poll_s = 0.05
        await svc_a.control(camp.id, "start", by="sup")
        await svc_b.adopt()  # (or its own loop did already)
        run_b = svc_b.runs[camp.id]
        assert run_b.task is not None and not run_b.task.done()
        assert await svc_b.adopt() == []  # already sending
        await svc_a.control(camp.id, "pause", by="sup")
        await until(lambda: _true(run_b.task.done()))


# ----------------------------------------------------------------------------- routing alerts
async def test_a_routing_alert_is_stored_once_for_the_center(database, redis_prefix):
    if database.is_sqlite:
        pytest.skip("several processes share PostgreSQL")
    from routing import Alert as RoutingAlert

    async with AsyncExitStack() as stack:
        a, _ = await stack.enter_async_context(process(database, scaleout_env(redis_prefix)))
        b, _ = await stack.enter_async_context(process(database, scaleout_env(redis_prefix)))
        alert = RoutingAlert("77", "support", "contact waiting too long")
        # the decision reaches both processes (forwarded): one stores it
        for app in (a, b, a):
            await app[CENTER].sla.perform([alert])
        await b[CENTER].sla.perform([RoutingAlert("78", "support", "contact waiting too long")])
    alerts = [x for x in await a[CENTER].sla.store.open_alerts(50) if x.kind == "routing"]
    assert sorted((x.data or {}).get("contact_id") for x in alerts) == ["77", "78"]


# ----------------------------------------------------------------------------------- callbacks
async def test_callbacks_in_flight_stay_with_their_process_and_come_back_when_it_dies(
        database, redis_prefix):
    if database.is_sqlite:
        pytest.skip("several processes share PostgreSQL")
    from crm_core.callbacks import CallbackStore
    from tests.callcenter.voice_harness import REGULAR_PHONE, seed_people

    store = build_store(load_settings(env={}), database)
    await seed_people(store)
    cbs = CallbackStore(database)
    env = scaleout_env(redis_prefix, CC_CALLBACKS__POLL_S="0")
    async with AsyncExitStack() as stack_b:
        b, _ = await stack_b.enter_async_context(process(database, env))
        async with AsyncExitStack() as stack_a:
            a, _ = await stack_a.enter_async_context(process(database, env))
            cb_a = a[CENTER].callbacks
            cb = await cb_a.schedule(number=REGULAR_PHONE, origin="console", queue="support")
            assert await cb_a.tick() == 1  # A routes it: it waits in the shared queue
            assert (await cbs.get(cb.id)).status == "routing"
            # a process starting now leaves A's callback alone (A is alive)
            assert await b[CENTER].callbacks.startup_reset() is True
            assert (await cbs.get(cb.id)).status == "routing"
            assert await b[CENTER].callbacks.tick() == 0
            assert await b[CENTER].callbacks.recover() == 0  # A is alive
        # A is gone (its heartbeat with it): B puts its callback back, then routes it, once
        cb_b = b[CENTER].callbacks
        assert await cb_b.recover() == 1
        assert await cb_b.recover() == 0
        assert (await cbs.get(cb.id)).status == "scheduled"
        assert await cb_b.tick() == 1
        assert await cb_b.tick() == 0
        kinds = [e.kind for e in await store.timeline(cb.interaction_id)]
        assert kinds.count("callback_due") == 2 and "callback_owner_lost" in kinds


# ------------------------------------------------------------------------------- daily reports
async def test_the_daily_customer_snapshot_is_claimed_by_one_process(database, redis_prefix):
    if database.is_sqlite:
        pytest.skip("several processes share PostgreSQL")
    async with AsyncExitStack() as stack:
        a, _ = await stack.enter_async_context(process(database, scaleout_env(redis_prefix)))
        b, _ = await stack.enter_async_context(process(database, scaleout_env(redis_prefix)))
        feed_a, feed_b = a[CENTER].reports, b[CENTER].reports
        assert await feed_b._claim("snapshot:2026-11-25", 600) is True
        assert await feed_a._claim("snapshot:2026-11-25", 600) is False  # B takes that day's
        assert await feed_a._claim("snapshot:2026-11-26", 600) is True


async def test_an_agent_on_another_process_takes_the_campaign_call_recorded_once(database, redis_prefix):
    """The AMI leader dials; the agent's console is on the other process: the join and the
    disposition are forwarded to the leader, the pop comes back through the fan-out, and the
    attempt's outcome is recorded once."""
    if database.is_sqlite:
        pytest.skip("several processes share PostgreSQL")
    from datetime import UTC, datetime

    from callcenter.asterisk.simulator.outbound import OutboundScript
    from tests.callcenter.voice_harness import VIP_PHONE, Console, seed_people

    noon_ny = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
    store = build_store(load_settings(env={}), database)
    people = await seed_people(store, agents=1)
    await store.update_customer(people["regular"].id, type="blacklisted")  # only the VIP is called
    cs = CampaignStore(database)
    camp = await cs.create(name="winback", mode="progressive", script="Hello {name}",
                           dispositions=["sale", "no_sale"], schedule={"hours": ["09:00", "20:00"]})
    await cs.add_segment(camp.id, {})
    async with Simulator(time_scale=0.05, ami_users={"cc": "secret"}) as sim, AsyncExitStack() as stack:
        sim.outbound(OutboundScript(answer=1.0, machine=0, busy=0, ring_s=1, talk_s=3600, seed=1))
        sim.agent("1001", answer_after=0.2, talk_time=None)
        env = ami_env(redis_prefix, sim)
        a, _ = await stack.enter_async_context(process(database, env))
        b, _ = await stack.enter_async_context(process(database, env))
        for app in (a, b):
            app[CENTER].campaigns.utc = lambda: noon_ny
            app[CENTER].campaigns.poll_s = 0.05

        async def ready() -> bool:
            leads = [app[SCALEOUT].ami_token > 0 and app[TELEPHONY].ami is not None for app in (a, b)]
            return leads.count(True) == 1 and all(app[SCALEOUT].live.subscribed.is_set() for app in (a, b))
        await until(ready)
        leader, other = (a, b) if a[SCALEOUT].ami_token else (b, a)

        async def sees_leader() -> bool:
            return leader[SCALEOUT].origin in await other[SCALEOUT].others()
        await until(sees_leader)

        agent = await Console.open(other[CENTER], store, "agent1")  # the console is on `other`
        joined = await agent.send("campaign_join", campaign_id=camp.id)
        assert joined["type"] == "campaign_joined"
        assert len(leader[CENTER].campaigns.runs[camp.id].members) == 1  # a member on the leader
        assert not other[CENTER].campaigns.runs[camp.id].members
        await other[CENTER].campaigns.control(camp.id, "start", by="sup")
        pop = await agent.next("campaign_record", timeout=30, kind="pop")
        assert pop["record"]["phone"] == VIP_PHONE
        iid = pop["interaction_id"]
        customer = next(ch for ch in sim.pbx.channels.values()
                        if ch.name.startswith("PJSIP/12025550143@trunk") and not ch.hungup)
        sim.pbx.request_hangup(customer)
        await agent.next("campaign_state", timeout=30, state="wrap")
        done = await agent.send("campaign_disposition", record_id=pop["record"]["id"], code="sale")
        assert done["state"] == "done"
    kinds = [e.kind for e in await store.timeline(iid)]
    assert kinds.count("campaign_connected") == 1 and kinds.count("campaign_disposition") == 1
    st = await cs.stats(camp.id)
    assert st["outcomes"] == {"answered": 1} and st["dispositions"] == {"sale": 1}
    rec = (await cs.records(camp.id))[0]
    assert (rec.status, rec.disposition, rec.attempts) == ("done", "sale", 1)


async def test_a_call_in_the_air_when_the_dialer_loses_the_pbx_is_recorded_once(database, redis_prefix):
    """The AMI leader loses its connection (lease lost) while a campaign call rings: the call's
    events will go to the next leader, so the attempt is recorded now, once, as failed, and the
    record waits for its retry; the campaign is dialled again once a process leads."""
    if database.is_sqlite:
        pytest.skip("several processes share PostgreSQL")
    from datetime import UTC, datetime

    from callcenter.asterisk.simulator.outbound import OutboundScript
    from tests.callcenter.voice_harness import seed_people

    noon_ny = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
    store = build_store(load_settings(env={}), database)
    people = await seed_people(store, agents=1)
    await store.update_customer(people["regular"].id, type="blacklisted")
    cs = CampaignStore(database)
    camp = await cs.create(name="winback", mode="progressive", script="Hello {name}",
                           dispositions=["sale"], schedule={"hours": ["09:00", "20:00"]})
    await cs.add_segment(camp.id, {})
    async with Simulator(time_scale=0.05, ami_users={"cc": "secret"}) as sim, AsyncExitStack() as stack:
        sim.outbound(OutboundScript(answer=1.0, machine=0, busy=0, ring_s=100_000, seed=1))  # rings on
        env = ami_env(redis_prefix, sim)
        a, _ = await stack.enter_async_context(process(database, env))
        b, _ = await stack.enter_async_context(process(database, env))
        for app in (a, b):
            svc = app[CENTER].campaigns
            svc.utc, svc.poll_s, svc.ring_timeout_s = (lambda: noon_ny), 0.05, 100_000

        async def one_leader() -> bool:
            return [app[SCALEOUT].ami_token > 0 and app[TELEPHONY].ami is not None
                    for app in (a, b)].count(True) == 1
        await until(one_leader)
        leader = a if a[SCALEOUT].ami_token else b
        svc = leader[CENTER].campaigns
        agent = await _console(leader, store, "agent1")
        await agent.send("campaign_join", campaign_id=camp.id)
        await svc.control(camp.id, "start", by="sup")
        await until(lambda: _true(_dialing(leader, camp.id) and svc.runs[camp.id].dialer.in_air == 1))

        await leader[SCALEOUT].elector._lose("test: the lease could not be renewed")  # AMI closed

        async def recorded() -> bool:
            return (await cs.records(camp.id))[0].status != "active"
        await until(recorded)
        assert (await cs.stats(camp.id))["outcomes"] == {"failed": 1}
        rec = (await cs.records(camp.id))[0]
        assert (rec.status, rec.attempts, rec.last_outcome) == ("pending", 1, "failed")
        # a process leads again and dials the campaign; the record waits for its retry time
        await until(one_leader)
        new_leader = a if a[SCALEOUT].ami_token else b
        await until(lambda: _true(_dialing(new_leader, camp.id)))
    assert (await cs.stats(camp.id))["outcomes"] == {"failed": 1}
    timeline = [e.kind for e in await store.timeline(rec.interaction_id)]
    assert timeline.count("campaign_outcome") == 1


async def _console(app, store, username: str):
    from tests.callcenter.voice_harness import Console

    return await Console.open(app[CENTER], store, username)
