"""Fault tests: center workers are real `callcenter run` subprocesses (killed with SIGKILL), Redis
and PostgreSQL are servers these tests own and restart. After each, a consistency check compares
what the simulated PBX saw with what the CRM logged: every call has exactly one interaction, in
the right final state. `make faults` runs only these."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import websockets
from sqlalchemy import select

from callcenter.app import build_store
from callcenter.asterisk.simulator import Simulator
from callcenter.settings import load_settings
from crm_core.db import Database
from crm_core.models import Interaction, InteractionEvent
from tests.callcenter.test_console_ws import cookie_for
from tests.callcenter.voice_harness import REGULAR_PHONE, VIP_PHONE, seed_people
from tests.conftest import unique_name
from tests.faults.cluster import PgCluster, RedisServer, Worker, available

pytestmark = pytest.mark.timeout(150)
FINAL = {"wrapup_done", "abandoned", "failed"}
# the IVR's answers, then a score for the survey after the call (how many the IVR takes depends on
# whether the caller was identified: the score is whichever digit is left)
SURVEYED = ["1", "1", "1234567", "1", "4"]


@pytest.fixture(scope="module")
def servers():
    why = available()
    if why:
        pytest.skip(f"fault tests need their own servers: {why}")
    redis_server, pg = RedisServer(), PgCluster()
    logs = Path(tempfile.mkdtemp(prefix="cc-faults-logs-"))  # workers' output (CC_FAULTS_KEEP=1 keeps it)
    try:
        redis_server.start()
        pg.init()
        pg.start()
        yield redis_server, pg, logs
    finally:
        redis_server.close()
        pg.close()
        if not os.environ.get("CC_FAULTS_KEEP"):
            shutil.rmtree(logs, ignore_errors=True)


@asynccontextmanager
async def center(servers, *, workers: int = 2, agents: int = 1,
                 extra_env: dict[str, str] | None = None) -> AsyncIterator[dict[str, Any]]:
    """A fresh schema and key prefix, the simulator, and `workers` center processes."""
    redis_server, pg, tmp = servers
    schema = unique_name("cc_f")
    db = Database(pg.url, schema=schema)
    await db.upgrade()
    store = build_store(load_settings(env={}), db)
    await seed_people(store, agents=agents)
    secret = tmp / "ami.secret"
    secret.write_text("secret")
    prefix = unique_name("cc_f") + ":"
    procs: list[Worker] = []
    async with Simulator(time_scale=0.05, ami_users={"cc": "secret"}) as sim:
        env = {"CC_DATABASE_URL": pg.url, "CC_DATABASE_SCHEMA": schema, "CC_REDIS_URL": redis_server.url,
               "CC_REDIS_PREFIX": prefix, "CC_SCALEOUT__LEASE_TTL_S": "1.5",
               "CC_SCALEOUT__DEAD_AFTER_S": "3", "CC_VOICE__ACK_TIMEOUT_S": "5",
               "CC_LOG_LEVEL": "INFO", **(extra_env or {})}
        args = ["--ami", f"127.0.0.1:{sim.ami_port}", "--ami-user", "cc", "--ami-secret-file", str(secret)]

        def spawn(i: int) -> Worker:
            w = Worker(env, args, tmp / f"{prefix[:-1]}-w{i}.log")
            procs.append(w)
            return w

        ws = [spawn(i) for i in range(workers)]
        try:
            for w in ws:
                await asyncio.to_thread(w.wait_ready)
            sim.set_agi_target(f"agi://127.0.0.1:{ws[0].agi_port}")
            yield {"sim": sim, "workers": ws, "store": store, "db": db, "prefix": prefix,
                   "spawn": spawn, "redis": redis_server, "pg": pg}
        finally:
            for w in procs:
                await asyncio.to_thread(w.stop)
    await db.drop_schema()
    await db.close()


class AutoAgent:
    """A real console over a websocket that acks every offer and submits every wrap-up."""

    def __init__(self, username: str, *, tickets: bool = False) -> None:
        self.username = username
        self.tickets = tickets  # open a ticket at each wrap-up of a known caller
        self.offers: list[dict[str, Any]] = []
        self.states: list[str] = []
        self.wrapups: list[int] = []
        self.cookie = ""
        self.task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        self.hello = asyncio.Event()
        self.unsaved: int | None = None
        self.errors: list[dict[str, Any]] = []

    async def connect(self, base: str) -> None:
        if not self.cookie:
            self.cookie = await cookie_for(base, self.username)
        ws = await websockets.connect(base.replace("http", "ws") + "/ws/agent",
                                      additional_headers={"Cookie": self.cookie, "Origin": base})
        self.ready.clear()
        self.hello.clear()
        self.task = asyncio.ensure_future(self._run(ws))
        await asyncio.wait_for(self.hello.wait(), 20)

    async def wait_ready(self) -> None:
        await asyncio.wait_for(self.ready.wait(), 20)

    async def _run(self, ws: Any) -> None:
        with_state = False
        try:
            async for raw in ws:
                msg = json.loads(raw)
                t = msg["type"]
                if t == "agent_state":
                    self.states.append(msg["state"])
                    self.hello.set()
                    if not with_state:
                        with_state = True
                        if msg["state"] in ("offline", "not_ready"):
                            await ws.send(json.dumps({"type": "set_state", "state": "ready"}))
                    if msg["state"] == "ready":
                        self.ready.set()
                elif t == "offer":
                    self.offers.append(msg)
                    await ws.send(json.dumps({"type": "ack_offer", "offer_id": msg["offer_id"]}))
                elif t == "wrapup":
                    self.wrapups.append(msg["interaction_id"])
                    self.unsaved = msg["interaction_id"]
                    await self._submit(ws)
                elif t == "wrapup_saved":
                    self.unsaved = None
                elif t == "error" and self.unsaved is not None:  # e.g. the database is away: retry
                    self.errors.append(msg)
                    await asyncio.sleep(0.5)
                    await self._submit(ws)
        except websockets.ConnectionClosed:
            pass

    async def _submit(self, ws: Any) -> None:
        msg = {"type": "submit_wrapup", "disposition": "resolved", "interaction_id": self.unsaved,
               "notes": "fault test"}
        known = any(o["interaction_id"] == self.unsaved and o["pop"]["known"] for o in self.offers)
        if self.tickets and known:
            msg["ticket"] = {"type": "inquiry", "subject": f"Follow-up of {self.unsaved}"}
        await ws.send(json.dumps(msg))

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def until(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def interactions_of(db: Database, linkedids: list[str]) -> dict[str, list[Interaction]]:
    async with db.session() as s:
        q = select(Interaction).where(Interaction.external_id.in_(linkedids))
        rows = (await s.execute(q)).scalars().all()
    out: dict[str, list[Interaction]] = {lid: [] for lid in linkedids}
    for r in rows:
        out[r.external_id].append(r)
    return out


async def consistent(db: Database, calls: list[Any], timeout: float = 60.0,
                     answered: bool = True) -> dict[str, Interaction]:
    """Every call the PBX saw has exactly one interaction, final; with `answered` (every call
    reached an agent, as the PBX saw it), each one answered and wrapped up."""
    ids = [c.linkedid for c in calls]

    async def settled() -> bool:
        found = await interactions_of(db, ids)
        return all(len(v) == 1 and v[0].state in FINAL for v in found.values())

    try:
        await until(settled, timeout)
    except AssertionError:
        found = await interactions_of(db, ids)
        async with db.session() as s:
            tl = {i.id: [(e.kind, e.data) for e in (await s.execute(select(InteractionEvent).where(
                InteractionEvent.interaction_id == i.id).order_by(InteractionEvent.id))).scalars()]
                for v in found.values() for i in v}
        raise AssertionError(({lid: [(i.id, i.state) for i in v] for lid, v in found.items()}, tl)) from None
    found = await interactions_of(db, ids)
    report = {lid: [(i.id, i.state) for i in v] for lid, v in found.items()}
    for c in calls:
        got = found[c.linkedid]
        assert len(got) == 1, report
        i = got[0]
        assert i.state in FINAL, report
        if answered:
            assert i.answered_at is not None and i.state == "wrapup_done", report
    return {lid: v[0] for lid, v in found.items()}


async def state_of(db: Database, linkedid: str) -> str | None:
    found = (await interactions_of(db, [linkedid]))[linkedid]
    return found[-1].state if found else None


# ---- kill -9 of a worker mid-call ------------------------------------------------------------------
async def test_kill9_worker_mid_call_completes_and_the_console_resumes_elsewhere(servers):
    async with center(servers) as c:
        sim, (w1, w2), db = c["sim"], c["workers"], c["db"]
        sim.agent("1001", answer_after=0.3, talk_time=60)  # 3 s real at time scale 0.05
        agent = AutoAgent("agent1")
        await agent.connect(w1.base)  # the console on w1, calls land on w1 too
        await agent.wait_ready()
        call = sim.call(REGULAR_PHONE, digits=["1"])
        await until(lambda: _is(state_of(db, call.linkedid), "answered"), 40)
        w1.kill9()  # mid-call: the process holding the call and the console dies
        sim.set_agi_target(f"agi://127.0.0.1:{w2.agi_port}")  # what a load balancer's health check does
        await agent.close()
        await agent.connect(w2.base)  # the console reconnects to the other process and resumes
        await call.wait_hangup(60)
        first = await consistent(db, [call])
        kinds = [e.kind for e in await c["store"].timeline(first[call.linkedid].id)]
        assert "owner_lost" in kinds, kinds
        # the center goes on: the next call is taken by w2 and offered on the resumed console
        second = sim.call(REGULAR_PHONE, digits=["1"])
        await second.wait_hangup(60)
        sim.agent("1001", answer_after=0.3, talk_time=10)
        both = await consistent(db, [call, second])
        assert both[second.linkedid].state == "wrapup_done"
        assert any(o["interaction_id"] == both[second.linkedid].id for o in agent.offers)
        await agent.close()


async def _is(aw: Any, value: Any) -> bool:
    return (await aw) == value


# ---- Redis restart mid-traffic ---------------------------------------------------------------------
async def test_redis_restart_mid_traffic_no_double_offer_no_lost_contact(servers):
    async with center(servers, agents=2) as c:
        sim, (w1, w2), db = c["sim"], c["workers"], c["db"]
        for n in ("1001", "1002"):
            sim.agent(n, answer_after=0.2, talk_time=10)
        a1, a2 = AutoAgent("agent1"), AutoAgent("agent2")
        await a1.connect(w1.base)
        await a2.connect(w2.base)  # agents on both processes
        await a1.wait_ready()
        await a2.wait_ready()
        calls = []
        for i in range(6):
            calls.append(sim.call(REGULAR_PHONE, digits=["1"]))
            if i == 2:
                c["redis"].kill()
                c["redis"].start()  # same port, same append-only file
            await asyncio.sleep(0.4)
        for call in calls:
            await call.wait_hangup(90)
        found = await consistent(db, calls, 90)
        # zero double offers: no contact offered to two agents at once
        offered = Counter(o["interaction_id"] for o in a1.offers + a2.offers)
        async with db.session() as s:
            for lid, i in found.items():
                evs = (await s.execute(select(InteractionEvent.kind).where(
                    InteractionEvent.interaction_id == i.id))).scalars().all()
                requeues = sum(1 for k in evs if k in ("requeue", "no_answer", "ring_no_answer"))
                assert offered[i.id] <= 1 + requeues, (lid, evs)
        await a1.close()
        await a2.close()


# ---- PostgreSQL restart mid-call: the center's interaction writes wait in the outbox ------------------
async def test_postgres_restart_mid_call_buffers_the_writes_and_loses_none(servers):
    async with center(servers) as c:
        sim, (w1, w2), db, pg = c["sim"], c["workers"], c["db"], c["pg"]
        sim.agent("1001", answer_after=0.3, talk_time=40)  # 2 s real
        agent = AutoAgent("agent1")
        await agent.connect(w1.base)
        await agent.wait_ready()
        call = sim.call(REGULAR_PHONE, digits=["1"])
        await until(lambda: _is(state_of(db, call.linkedid), "answered"), 40)
        await asyncio.to_thread(pg.stop, "immediate")  # PostgreSQL goes away mid-call
        await call.wait_hangup(60)  # the call ends while it is down: its writes are buffered
        await asyncio.sleep(1.0)
        await asyncio.to_thread(pg.start)
        found = await consistent(db, [call], 60)
        kinds = [e.kind for e in await c["store"].timeline(found[call.linkedid].id)]
        assert kinds.count("answer") == 1 and "end" in kinds or "hangup" in kinds or kinds, kinds
        assert any(w.saw("goes to the outbox") for w in (w1, w2))
        await agent.close()


# ---- PostgreSQL outage mid-traffic: calls start, end and are wrapped up while it is down ----------------
async def test_postgres_outage_mid_traffic_calls_opened_and_wrapped_up_during_it_are_all_logged(servers):
    """PostgreSQL stops (a crash) with a call in progress; calls arrive while it is down: each is
    opened with a reserved interaction id, routed as usual (not to the PBX's fallback queue),
    answered, and wrapped up by its agent, all through the outbox. Once PostgreSQL is back,
    every call the PBX saw has exactly one interaction with its whole timeline, disposition and
    final state; the unidentified callers are identified when their interactions are written."""
    async with center(servers, agents=2) as c:
        sim, (w1, w2), db, pg = c["sim"], c["workers"], c["db"], c["pg"]
        for n in ("1001", "1002"):
            sim.agent(n, answer_after=0.2, talk_time=14)  # 0.7 s real
        a1, a2 = AutoAgent("agent1", tickets=True), AutoAgent("agent2", tickets=True)
        await a1.connect(w1.base)
        await a2.connect(w2.base)  # an agent on each process: offers cross processes
        await a1.wait_ready()
        await a2.wait_ready()
        first = sim.call(REGULAR_PHONE, digits=SURVEYED)
        await until(lambda: _is(state_of(db, first.linkedid), "answered"), 40)
        await asyncio.to_thread(pg.stop, "immediate")  # PostgreSQL goes away mid-call
        during, phone = [], {first.linkedid: REGULAR_PHONE}
        for k in range(4):  # calls that start while it is down
            # the regular caller was identified by this worker before the outage, the VIP never
            during.append(sim.call(VIP_PHONE if k % 2 else REGULAR_PHONE, digits=SURVEYED))
            phone[during[-1].linkedid] = VIP_PHONE if k % 2 else REGULAR_PHONE
            await asyncio.sleep(0.5)
        for call in [first, *during]:
            await call.wait_hangup(60)

        async def wrapped_up() -> bool:
            return a1.unsaved is None and a2.unsaved is None and len(a1.wrapups) + len(a2.wrapups) >= 5
        await until(wrapped_up, 30)  # wrap-ups submitted (and saved) while it is down
        assert w1.proc.poll() is None and w2.proc.poll() is None
        await asyncio.to_thread(pg.start)
        after = [sim.call(p, digits=SURVEYED) for p in (REGULAR_PHONE, VIP_PHONE)]
        phone.update({after[0].linkedid: REGULAR_PHONE, after[1].linkedid: VIP_PHONE})
        calls = [first, *during, *after]
        for call in after:
            await call.wait_hangup(60)
        found = await consistent(db, calls, 60)  # exactly one each, answered and wrapped up
        store = c["store"]
        customers = {p: (await store.identify(phone=p)).id for p in (REGULAR_PHONE, VIP_PHONE)}
        for call in calls:
            i = found[call.linkedid]
            assert i.disposition_code == "resolved" and i.notes == "fault test", (call.linkedid, i.id)
            assert i.csat_score is not None, (call.linkedid, i.id)  # the survey after the call
            assert i.customer_id == customers[phone[call.linkedid]]  # the VIP: identified when written
            events = await store.timeline(i.id)
            kinds = [e.kind for e in events]
            for kind in ("opened", "arrive", "queue", "offer", "answer", "disposition", "wrapup", "csat"):
                assert kinds.count(kind) == 1, (call.linkedid, kinds)
            assert kinds.index("arrive") < kinds.index("answer") < kinds.index("disposition") \
                < kinds.index("wrapup"), kinds
            assert "fallback_queue" not in kinds, kinds  # routed by the center, not the PBX's queue
            refused = [(e.kind, e.data) for e in events if e.kind in ("state", "state_failed") and not e.ok]
            assert not refused, (call.linkedid, refused)
            if call in during:  # opened with a reserved id, through the outbox
                assert events[0].data.get("via") == "outbox", events[0].data
        assert sum(w.count("opened through the outbox") for w in (w1, w2)) == len(during)
        # the regular caller, identified by this worker before the outage, is recognized during
        # it (the pop shows the card as last read); the VIP shows as a number, "CRM unavailable"
        pops = {o["interaction_id"]: o["pop"] for o in a1.offers + a2.offers}
        for call in calls:
            unknown = call in during and phone[call.linkedid] == VIP_PHONE
            pop = pops[found[call.linkedid].id]
            assert pop["known"] is not unknown and (pop.get("crm") == "unavailable") is unknown, pops
            # a known caller's wrap-up opened a ticket, during the outage too (its number reserved)
            tickets = await store.list_tickets(customers[phone[call.linkedid]])
            mine = [t for t in tickets if t.subject == f"Follow-up of {found[call.linkedid].id}"]
            assert len(mine) == (0 if unknown else 1), (call.linkedid, [t.subject for t in tickets])
        client = aioredis.from_url(c["redis"].url)
        try:
            assert await client.xlen(f"{c['prefix']}outbox:dead") == 0
        finally:
            await client.aclose()
        await a1.close()
        await a2.close()


# ---- PostgreSQL restart mid-traffic: the outbox holds the writes ------------------------------------
async def test_postgres_restart_and_a_killed_writer_lose_no_interaction_write(servers):
    import subprocess
    import sys

    from callcenter.scaleout.outbox import Outbox
    from tests.faults.cluster import ROOT

    redis_server, pg, tmp = servers
    schema = unique_name("cc_f")
    db = Database(pg.url, schema=schema)
    await db.upgrade()
    prefix = unique_name("cc_f") + ":"
    argv = [sys.executable, "-m", "callcenter.scaleout.node", "--redis", redis_server.url, "--prefix", prefix,
            "--db", pg.url, "--schema", schema, "--ttl", "1"]
    logs = [open(tmp / f"{prefix[:-1]}-n{i}.log", "w+") for i in range(2)]  # noqa: SIM115
    nodes = [subprocess.Popen(argv, cwd=ROOT, stdout=logs[i], stderr=subprocess.STDOUT) for i in range(2)]
    client = aioredis.from_url(redis_server.url)
    box = Outbox(client, prefix, 4)
    # what the PBX did: 60 calls, each placed, then answered and ended, or abandoned
    outcomes = {f"sim-{i}": ("answered" if i % 3 else "abandoned") for i in range(60)}
    try:
        for n, (ext, outcome) in enumerate(outcomes.items()):
            await box.put({"op": "open", "external_id": ext, "state": "queued"})
            if outcome == "answered":
                await box.put({"op": "state", "external_id": ext, "state": "answered"})
                await box.put({"op": "state", "external_id": ext, "state": "ended"})
                await box.put({"op": "state", "external_id": ext, "state": "wrapup_done"})
            else:
                await box.put({"op": "state", "external_id": ext, "state": "abandoned"})
            if n == 20:
                await asyncio.to_thread(pg.stop, "immediate")  # PostgreSQL goes away mid-traffic
            if n == 35:
                for _ in range(100):
                    holder = await _writer_pid(client, prefix, nodes)
                    if holder is not None:
                        break
                    await asyncio.sleep(0.05)
                assert holder is not None, "no process holds outbox partition 0"
                holder.kill()  # SIGKILL of the process writing the outbox
            if n == 40:
                await asyncio.to_thread(pg.start)
            await asyncio.sleep(0.01)

        async def drained() -> bool:
            return await box.backlog() == 0
        await until(drained, 90)
    finally:
        for p in nodes:
            if p.poll() is None:
                p.terminate()
                p.wait(10)
        await client.aclose()
    assert sorted(p.returncode for p in nodes) == [-9, -15] or -9 in [p.returncode for p in nodes]
    async with db.session() as s:
        rows = (await s.execute(select(Interaction))).scalars().all()
        q = select(InteractionEvent).where(InteractionEvent.ok.is_(False))
        bad = (await s.execute(q)).scalars().all()
    by_ext = Counter(r.external_id for r in rows)
    assert set(by_ext) == set(outcomes) and set(by_ext.values()) == {1}  # each call once, none missing
    for r in rows:
        assert r.state == ("wrapup_done" if outcomes[r.external_id] == "answered" else "abandoned"), r.state
    assert not bad  # written in order: no transition was refused
    await db.drop_schema()
    await db.close()


async def _writer_pid(client: Any, prefix: str, nodes: list[Any]) -> Any:
    """The node holding outbox partition 0's lease (its consumer name ends with its pid)."""
    owner = await client.hget(f"{prefix}lease:outbox:0", "owner")
    if owner is None:
        return None
    pid = int(owner.decode().rsplit("-", 1)[1])
    found = next((p for p in nodes if p.pid == pid), None)
    assert found is not None, (owner, [p.pid for p in nodes])
    return found


async def ami_leader(c: dict[str, Any]) -> Worker:
    """The worker holding the AMI lease now (its holder name ends with a random tag after the pid)."""
    client = aioredis.from_url(c["redis"].url)
    try:
        async def held() -> bool:
            return bool(await client.hget(f"{c['prefix']}lease:ami", "owner"))
        await until(held, 20)
        owner = (await client.hget(f"{c['prefix']}lease:ami", "owner")).decode()
    finally:
        await client.aclose()
    pid = int(owner.rsplit("-", 2)[1])
    return next(w for w in c["workers"] if w.proc.pid == pid)


async def restart_ami(sim: Simulator) -> None:
    """The simulator's manager interface goes away and comes back on the same port."""
    port = sim.ami_port
    await sim.ami.close()
    sim.ami._port = port
    await sim.ami.start()
    if sim.ami._fanout not in sim.pbx.listeners:  # close() unhooks it from the PBX's events
        sim.pbx.listeners.append(sim.ami._fanout)


# ---- AMI drop, then the AMI leader killed, mid-call ----------------------------------------------------
async def test_ami_drop_then_leader_killed_mid_call_resync_takeover_and_calls_complete(servers):
    """The AMI link drops (Asterisk's manager restarts) mid-call: the client reconnects with
    back-off and resyncs, the call completes once. Then the leader is killed mid-call: the other
    process takes the lease over, resyncs, and that call ends with its wrap-up, once."""
    async with center(servers) as c:
        sim, workers, db = c["sim"], c["workers"], c["db"]
        sim.agent("1001", answer_after=0.3, talk_time=30)
        agent = AutoAgent("agent1")
        await agent.connect(workers[1].base)
        await agent.wait_ready()
        first = sim.call(REGULAR_PHONE, digits=["1"])
        await until(lambda: _is(state_of(db, first.linkedid), "answered"), 40)
        await restart_ami(sim)  # the AMI link drops mid-call
        await first.wait_hangup(60)
        found = await consistent(db, [first], 30)
        kinds = [e.kind for e in await c["store"].timeline(found[first.linkedid].id)]
        assert kinds.count("answer") <= 1, kinds  # nothing replayed twice
        assert any(w.saw("AMI connection 1 lost") for w in workers)
        await agent.close()

        leader = await ami_leader(c)
        other = next(w for w in workers if w is not leader)
        elected_before = other.count("lease ami: elected")
        sim.set_agi_target(f"agi://127.0.0.1:{other.agi_port}")  # the call is held by the survivor
        sim.agent("1001", answer_after=0.3, talk_time=60)
        agent = AutoAgent("agent1")
        await agent.connect(other.base)
        await agent.wait_ready()
        call = sim.call(REGULAR_PHONE, digits=["1"])
        await until(lambda: _is(state_of(db, call.linkedid), "answered"), 40)
        leader.kill9()  # the AMI connection's holder dies mid-call

        async def took_over() -> bool:
            return other.count("lease ami: elected") > elected_before
        await until(took_over, 20)
        await call.wait_hangup(60)
        found = await consistent(db, [first, call], 30)  # ended and wrapped up by its agent, once
        kinds = [e.kind for e in await c["store"].timeline(found[call.linkedid].id)]
        assert "owner_lost" not in kinds and kinds.count("answer") == 1, kinds
        assert agent.wrapups == [found[call.linkedid].id]
        await agent.close()
