"""Screen pop latency: from the IVR's queue step to the offer arriving at the agent's websocket.

Per backend (SQLite, PostgreSQL): a fresh database with the shipped catalog, 500 agents
(extensions 2000-2499) and 100k seeded customers (~10 interactions each). Three processes:

- **sim** (load generator): the Asterisk simulator (AMI server + FastAGI client) with 500 agent
  phones that answer after 0.2 s and talk a fixed time, and callers (seeded customers' phones)
  arriving open loop (Poisson, scheduled on absolute times) at 10, 25 and 50 calls/s. Each caller
  presses 0 in the bench flow's menu (config/ivr/bench.yaml) and 5 in the post-call survey.
- **server**: the real app (`init_app`, demo off) under `web.AppRunner`; its Telephony runs the
  FastAGI server the simulator dials and the AMI client on the simulator's AMI port.
- **agents**: 500 consoles over real websockets (the `websockets` library): log in with the form
  and CSRF, go ready, ack every offer at once, submit a disposition and notes on `wrapup`. Each
  `offer` frame's receipt is stamped with time.time() as soon as the client reads it.

The start of each sample is the `queue` event on the interaction's timeline (`at`, stamped by the
server in Python when the IVR's queue step starts storing the `queued` state, the event written in
the same transaction); same host, same clock. The first `offer` received
for that interaction ends it. The first `--settle` seconds of each rate step are not measured
(occupancy ramps up over one handle time). `lost_offers`: calls whose queue step ran in a measured
window but whose offer never reached a console. The breakdown splits each sample at the server's
own `offer` timeline event (stamped after the `offered` state is stored, before the pop is built).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import secrets
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import git_sha, pct, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PG = os.environ.get("CC_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
SCHEMA = "bench_pop"
PASSWORD = "bench-agent-password"
AMI_SECRET = "bench-ami-secret"
AGENT_EXT0 = 2000
MARKER = ROOT / "var" / "bench" / "screen_pop_seeded.json"
IDLE_S = 5.0  # the consoles are connected, no calls: CPU measured over this long


def log(msg: str) -> None:
    print(f"# {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


# ============================================================================ database set-up
def target(backend: str, customers: int) -> tuple[str, str | None]:
    if backend == "sqlite":
        path = ROOT / "var" / "bench" / f"screen_pop_{customers}.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{path}", None
    return PG, SCHEMA


async def schema_matches(url: str, schema: str | None) -> bool:
    """After the migrations: does the database have every table and column of the models? (A
    placeholder migration filled in after the seed never runs on a database already at head.)"""
    import importlib
    import pkgutil

    from sqlalchemy import inspect

    import crm_core
    from crm_core.db import Database
    from crm_core.models import Base

    for mod in pkgutil.iter_modules(crm_core.__path__):  # every module whose tables join Base
        if mod.name not in ("migrations", "migrate"):
            importlib.import_module(f"crm_core.{mod.name}")
    db = Database(url, schema=schema)
    try:
        await db.upgrade()
        async with db.engine.connect() as conn:
            have = await conn.run_sync(lambda c: {
                t: {col["name"] for col in inspect(c).get_columns(t, schema=schema)}
                for t in inspect(c).get_table_names(schema=schema)})
    finally:
        await db.close()
    return all(t.name in have and {c.name for c in t.columns} <= have[t.name]
               for t in Base.metadata.tables.values())


def _marker() -> dict[str, Any]:
    return json.loads(MARKER.read_text()) if MARKER.exists() else {}


async def setup_db(backend: str, url: str, schema: str | None, args: argparse.Namespace) -> dict[str, Any]:
    """Migrations, the catalog from seed.yaml, the agents, then the customers (timed)."""
    from argon2 import PasswordHasher

    from callcenter.bootstrap import load_seed, seed_catalog
    from callcenter.settings import load_settings
    from crm_core.db import Database
    from crm_core.demo import seed_demo
    from crm_core.rules import Rules
    from crm_core.store import CrmStore

    if schema is None:
        for suffix in ("", "-wal", "-shm"):
            Path(url.split("///", 1)[1] + suffix).unlink(missing_ok=True)
    db = Database(url, schema=schema)
    await db.drop_schema()
    await db.upgrade()
    settings = load_settings(env={})
    rules = Rules.from_yaml(settings.config_path(settings.crm.rules_file))
    # a cheap hash so that 500 agents are created and log in quickly (verify follows the hash's cost)
    store = CrmStore(db, rules, password_hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    await seed_catalog(store, {k: v for k, v in load_seed(settings).items() if k != "admin"})
    t0 = time.perf_counter()
    for i in range(args.agents):
        await store.create_user(f"bench{i:03d}", PASSWORD, roles=["agent"], display_name=f"Bench {i}",
                                team="frontline", extension=str(AGENT_EXT0 + i),
                                skills=getattr(args, "skills", {"billing": 5, "support": 5}),
                                capacities={"voice": 1, "chat": 3, "email": 5}, actor="bench")
    # One production-cost hash for all of them: logging in then verifies at the real cost and
    # has nothing to rehash (a rehash would hold SQLite's write lock for ~0.1 s per login).
    from sqlalchemy import text

    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE users SET password_hash = :h WHERE username LIKE 'bench%'"),
                           {"h": PasswordHasher().hash(PASSWORD)})
    agents_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    await seed_demo(db, customers=args.customers, interactions_per_customer=args.per_customer,
                    rng_seed=7, rules=rules, progress=False)
    seed_s = time.perf_counter() - t0
    await db.close()
    return {"agents_s": round(agents_s, 1), "seed_s": round(seed_s, 1)}


async def make_sessions(url: str, schema: str | None, usernames: list[str]) -> dict[str, str]:
    """A console session per agent, written to the store as a sign-in writes it: username ->
    cookie. (Hundreds of production-cost password checks take minutes on a loaded machine, and
    signing in is not what is measured.)"""
    from callcenter.services.auth import AuthSettings, token_hash
    from crm_core.db import Database
    from crm_core.web_sessions import WebSessions

    ids = dict(await db_query(url, schema, "SELECT username, id FROM users WHERE username LIKE 'bench%'"))
    db = Database(url, schema=schema)
    now = datetime.now(UTC)
    cookies = {}
    try:
        sessions = WebSessions(db)
        for name in usernames:
            token = secrets.token_urlsafe(32)
            await sessions.create(token_hash(token), secrets.token_urlsafe(32), ids[name], "127.0.0.1",
                                  now=now, expires_at=now + AuthSettings().session_ttl)
            cookies[name] = f"cc_session={token}"
    finally:
        await db.close()
    return cookies


async def settle_sla(url: str, schema: str | None) -> int:
    """Escalate, before the run, the seeded tickets already past their SLA threshold (what the
    server's SLA watcher would do in its first minutes): the database starts in a steady state
    instead of the server working through ~9k escalations during the measure."""
    from types import SimpleNamespace

    from callcenter.services.consoles import ConsoleHub
    from callcenter.services.sla import SlaService
    from callcenter.services.sla_policy import SlaPolicy
    from callcenter.settings import load_settings
    from crm_core.db import Database
    from crm_core.rules import Rules
    from crm_core.store import CrmStore

    settings = load_settings(env={})
    conf = settings.sla
    db = Database(url, schema=schema)
    try:
        store = CrmStore(db, Rules.from_yaml(settings.config_path(settings.crm.rules_file)))
        sla = SlaService(SimpleNamespace(store=store, hub=ConsoleHub()), poll_s=0,
                         policy=SlaPolicy(conf.threshold, conf.default_queue, dict(conf.queue_by_type),
                                          conf.raise_priority))
        total = 0
        while done := await sla.check():
            total += len(done)
        return total
    finally:
        await db.close()


async def db_query(url: str, schema: str | None, sql: str, **params: Any) -> list[Any]:
    from sqlalchemy import text

    from crm_core.db import Database

    db = Database(url, schema=schema)
    try:
        async with db.engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).all())
    finally:
        await db.close()


async def tidy_reused(url: str, schema: str | None) -> dict[str, int]:
    """A reused database starts as a fresh one would: the calls an earlier (interrupted or
    undrained) run left open are closed as failed, and the wallboard and routing alerts it raised
    are removed (the server would load them and re-check them all the time)."""
    from sqlalchemy import text

    from crm_core.db import Database

    db = Database(url, schema=schema)
    try:
        async with db.engine.begin() as conn:
            left = await conn.execute(text(
                "UPDATE interactions SET state = 'failed', ended_at = COALESCE(ended_at, updated_at) "
                "WHERE state NOT IN ('wrapup_done', 'abandoned', 'failed')"))
            alerts = await conn.execute(text("DELETE FROM alerts WHERE kind IN ('wallboard', 'routing')"))
        return {"calls_left_open": left.rowcount or 0, "alerts_removed": alerts.rowcount or 0}
    finally:
        await db.close()


async def caller_phones(url: str, schema: str | None, n: int) -> list[str]:
    rows = await db_query(url, schema, "SELECT value FROM contact_points WHERE kind = 'phone' ORDER BY id")
    rng = random.Random(3)
    phones = [r[0] for r in rows]
    return rng.sample(phones, min(n, len(phones)))


async def row_counts(url: str, schema: str | None) -> dict[str, int]:
    out = {}
    for t in ("customers", "contact_points", "interactions", "interaction_events", "users", "tickets"):
        out[t] = int((await db_query(url, schema, f"SELECT count(*) FROM {t}"))[0][0])
    return out


def _epoch(v: Any) -> float:
    if isinstance(v, str):
        v = datetime.fromisoformat(v)
    if v.tzinfo is None:
        v = v.replace(tzinfo=UTC)
    return float(v.timestamp())


async def timeline_marks(url: str, schema: str | None, since: datetime) -> dict[str, dict[int, list[float]]]:
    """Server-side stamps (epoch s) per interaction, for the events the measure needs."""
    rows = await db_query(
        url, schema,
        "SELECT interaction_id, kind, at FROM interaction_events WHERE at >= :since AND kind IN "
        "('queue', 'offer', 'offer_undelivered', 'pop_ack_timeout', 'requeue', 'rona', 'abandon', "
        "'routing_refused', 'state_failed', 'pop_failed') ORDER BY id",
        since=since)
    out: dict[str, dict[int, list[float]]] = {}
    for iid, kind, at in rows:
        out.setdefault(kind, {}).setdefault(int(iid), []).append(_epoch(at))
    return out


# ============================================================================ process: server
async def server_main(args: argparse.Namespace, extra_env: dict[str, str] | None = None) -> None:
    """The app under web.AppRunner; prints `READY http_port agi_port smtp_port` (0: no SMTP).
    `extra_env`: more settings (bench/load.py: Redis, scale-out, chat and email)."""
    import logging

    from aiohttp import web

    from callcenter.app import init_app
    from callcenter.keys import TELEPHONY
    from callcenter.settings import load_settings

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="server %(levelname)s %(name)s: %(message)s")
    env = {"CC_DATABASE_URL": args.url, "CC_DEMO__ENABLED": "false",
           "CC_AMI__ENABLED": "true", "CC_AMI_HOST": "127.0.0.1", "CC_AMI_PORT": str(args.ami_port),
           "CC_AMI_USERNAME": "cc", "CC_AMI_SECRET": AMI_SECRET,
           "CC_AGI__ENABLED": "true", "CC_AGI__HOST": "127.0.0.1", "CC_AGI__PORT": "0",
           "CC_VOICE__IVR_FLOW": "bench"}
    if args.schema:
        env["CC_DATABASE_SCHEMA"] = args.schema
    env.update(extra_env or {})
    settings = load_settings(env=env)
    app = init_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    tel = app[TELEPHONY]
    assert tel.agi is not None
    smtp = 0
    if settings.email.enabled:
        from callcenter.channels.email.setup import EMAIL_SMTP

        smtp = app[EMAIL_SMTP].sockets[0].getsockname()[1]
    print(f"READY {port} {tel.agi.port} {smtp}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
    from callcenter.keys import CENTER

    writes = getattr(app[CENTER].store, "_events", None)
    if writes is not None:
        log(f"server: {writes.writes} writes in {writes.batches} transactions")
    await runner.cleanup()


# ============================================================================ process: sim
async def sim_main(args: argparse.Namespace) -> None:
    import logging

    from callcenter.asterisk.simulator import Simulator

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="sim %(levelname)s %(name)s: %(message)s")
    callers = json.loads(Path(args.callers).read_text())
    sim = Simulator(agi_target="agi://127.0.0.1:9", ami_users={"cc": AMI_SECRET}, time_scale=1.0)
    for i in range(args.agents):
        sim.agent(str(AGENT_EXT0 + i), answer_after=args.answer_after, talk_time=args.talk_time)
    await sim.start()
    print(f"READY {sim.ami_port}", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    rng = random.Random(args.seed)
    k = 0
    targets: list[str] = []
    while line := await reader.readline():
        cmd = json.loads(line)
        if cmd["cmd"] == "agi":  # one FastAGI server, or several taken in turn per call
            targets = [f"agi://127.0.0.1:{p}" for p in cmd.get("ports", [cmd.get("port")])]
            sim.set_agi_target(targets[0])
            reply: dict[str, Any] = {"ok": True}
        elif cmd["cmd"] == "run":  # open loop: Poisson arrivals on absolute due times
            rate, duration = float(cmd["rate"]), float(cmd["duration"])
            lags = []
            n = 0
            start = time.time()
            due = time.monotonic() + rng.expovariate(rate)
            end = time.monotonic() + duration
            while due < end:
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                lags.append(time.monotonic() - due)
                if len(targets) > 1:
                    sim.set_agi_target(targets[k % len(targets)])
                sim.call(callers[k % len(callers)], digits=["0", "5"])
                k += 1
                n += 1
                due += rng.expovariate(rate)
            await asyncio.sleep(max(0.0, end - time.monotonic()))
            sim.calls.clear()  # the handles are not needed; keep memory flat
            reply = {"start": start, "end": time.time(), "calls": n,
                     "lag_p99_ms": round(pct(lags, 99) * 1000, 2) if lags else None,
                     "lag_max_ms": round(max(lags) * 1000, 2) if lags else None}
        elif cmd["cmd"] == "idle":
            try:
                await sim.wait_idle(timeout=float(cmd.get("timeout", 60)))
                reply = {"idle": True}
            except TimeoutError:
                reply = {"idle": False, "channels": len(sim.pbx.channels)}
        else:
            break
        print(json.dumps(reply), flush=True)
    await sim.close()


# ============================================================================ process: agents
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


class AgentStats:
    def __init__(self) -> None:
        self.offers: list[tuple[int, float, str]] = []  # interaction_id, receipt (epoch s), agent
        self.counts: dict[str, int] = {}
        self.errors: list[str] = []

    def count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1


async def _login(http: Any, base: str, username: str) -> str:
    import aiohttp

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        page = await s.get(f"{base}/login")
        m = CSRF_RE.search(await page.text())
        assert m, "no CSRF field on /login"
        r = await s.post(f"{base}/login", data={"username": username, "password": PASSWORD,
                                                "csrf": m.group(1)}, allow_redirects=False)
        if r.status != 303:
            raise RuntimeError(f"login {username}: HTTP {r.status}")
        return "; ".join(f"{c.key}={c.value}" for c in s.cookie_jar)


async def _console(base: str, cookie: str, username: str, stats: AgentStats, ready: asyncio.Event,
                   ready_count: list[int], total: int) -> None:
    import websockets

    dumps = json.dumps
    async with websockets.connect(base.replace("http", "ws") + "/ws/agent", max_queue=None,
                                  additional_headers={"Cookie": cookie, "Origin": base},
                                  ping_interval=None, compression=None,
                                  open_timeout=120) as ws:  # 500 at once on a loaded machine
        disposition = "resolved"
        was_ready = False
        async for raw in ws:
            t = time.time()
            msg = json.loads(raw)
            typ = msg["type"]
            if typ == "offer":
                stats.offers.append((msg["interaction_id"], t, username))
                await ws.send(dumps({"type": "ack_offer", "offer_id": msg["offer_id"]}))
            elif typ == "wrapup":
                stats.count("wrapup")
                await ws.send(dumps({"type": "submit_wrapup", "interaction_id": msg["interaction_id"],
                                     "disposition": disposition, "notes": "bench call"}))
            elif typ == "hello":
                codes = [d["code"] for d in msg.get("dispositions", [])]
                disposition = "resolved" if "resolved" in codes or not codes else codes[0]
                await ws.send(dumps({"type": "set_state", "state": "ready"}))
            elif typ == "agent_state":
                state = msg["state"]
                if state == "ready" and not was_ready:
                    was_ready = True
                    ready_count[0] += 1
                    if ready_count[0] >= total:
                        ready.set()
                elif state == "not_ready":  # e.g. after an ack timeout: count it, go ready again
                    stats.count("not_ready")
                    await ws.send(dumps({"type": "set_state", "state": "ready"}))
            elif typ == "error":
                stats.count("error")
                if len(stats.errors) < 20:
                    stats.errors.append(f"{msg.get('code')}: {msg.get('message')}")
            else:
                stats.count(typ)
    stats.count("socket_closed")


async def agents_main(args: argparse.Namespace) -> None:
    """Log the consoles in (or reuse the sessions of an earlier run on the same database: 500
    production-cost password checks take a minute), connect them and wait until all are ready."""
    import websockets

    base = args.base
    stats = AgentStats()
    names = [f"bench{i:03d}" for i in range(args.agents)]
    sem = asyncio.Semaphore(4)
    saved = Path(args.cookies) if args.cookies else None
    cookies: dict[str, str] = json.loads(saved.read_text()) if saved and saved.exists() else {}

    async def console(u: str, start_after: float) -> None:
        await asyncio.sleep(start_after)
        for attempt in range(2):
            if u not in cookies:
                async with sem:
                    cookies[u] = await _login(None, base, u)
            try:
                await _console(base, cookies[u], u, stats, ready, count, len(names))
                return
            except websockets.InvalidStatus as e:
                if attempt or e.response.status_code != 401:
                    raise
                del cookies[u]  # that session is over: log in again

    t0 = time.perf_counter()
    ready = asyncio.Event()
    count = [0]
    tasks = [asyncio.create_task(console(u, i * 0.002)) for i, u in enumerate(names)]
    await asyncio.wait_for(ready.wait(), 300)
    if saved is not None:
        saved.write_text(json.dumps(cookies))
    print(json.dumps({"ready": count[0], "login_s": round(time.perf_counter() - t0, 1)}), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)  # "dump"
    failed = [t for t in tasks if t.done() and t.exception() is not None]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({"offers": stats.offers, "counts": stats.counts, "errors": stats.errors,
                      "failed_sockets": len(failed),
                      "socket_errors": [repr(t.exception())[:200] for t in failed[:5]]}), flush=True)


# ============================================================================ orchestration
class Child:
    def __init__(self, role: str, *extra: str, profile: str | None = None) -> None:
        cmd = [sys.executable]
        if profile:
            cmd += ["-m", "cProfile", "-o", profile]
        cmd += [str(Path(__file__).resolve()), "--role", role, *extra]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd=ROOT)

    def line(self) -> str:
        out = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not out:
            raise RuntimeError(f"child {self.proc.args} exited ({self.proc.poll()})")
        return out

    def ask(self, cmd: dict[str, Any]) -> dict[str, Any]:
        self.proc.stdin.write(json.dumps(cmd) + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        return json.loads(self.line())  # type: ignore[no-any-return]

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.proc.stdin.close()  # type: ignore[union-attr]
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summarise(lat_ms: list[float]) -> dict[str, Any]:
    if not lat_ms:
        return {"n": 0}
    return {"n": len(lat_ms), "p50_ms": round(pct(lat_ms, 50), 2), "p90_ms": round(pct(lat_ms, 90), 2),
            "p99_ms": round(pct(lat_ms, 99), 2), "max_ms": round(max(lat_ms), 2),
            "mean_ms": round(statistics.fmean(lat_ms), 2)}


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    url, schema = target(backend, args.customers)
    key = f"{backend}:{args.customers}:{args.per_customer}:{args.agents}"
    setup: dict[str, Any]
    if args.reuse and key in _marker() and asyncio.run(schema_matches(url, schema)):
        setup = {**_marker()[key], "reused": True}
        log(f"{backend}: reusing the seeded database (migrated, every table and column there)")
        setup["tidied"] = asyncio.run(tidy_reused(url, schema))
        log(f"{backend}: what earlier runs left {setup['tidied']}")
    else:
        log(f"{backend}: seeding {args.customers} customers, {args.agents} agents")
        setup = asyncio.run(setup_db(backend, url, schema, args))
        MARKER.parent.mkdir(parents=True, exist_ok=True)
        MARKER.write_text(json.dumps({**_marker(), key: setup}))
        setup = {**setup, "reused": False}
    log(f"{backend}: set up {setup}")
    t0 = time.perf_counter()
    setup["sla_escalated_before_run"] = asyncio.run(settle_sla(url, schema))
    log(f"{backend}: {setup['sla_escalated_before_run']} overdue tickets escalated before the run "
        f"({time.perf_counter() - t0:.0f} s)")
    phones = asyncio.run(caller_phones(url, schema, 30000))
    callers_file = ROOT / "var" / "bench" / f"screen_pop_callers_{backend}.json"
    callers_file.write_text(json.dumps(phones))
    since = datetime.now(UTC)

    sim = Child("sim", "--callers", str(callers_file), "--agents", str(args.agents),
                "--talk-time", str(args.talk_time), "--answer-after", str(args.answer_after))
    server = agents = None
    steps = []
    try:
        ami_port = int(sim.line().split()[1])
        sargs = ["--url", url, "--ami-port", str(ami_port)] + (["--schema", schema] if schema else [])
        prof = str(ROOT / "var" / "bench" / f"screen_pop_{backend}.prof") if args.profile else None
        server = Child("server", *sargs, profile=prof)
        http_port, agi_port = server.line().split()[1:3]
        base = f"http://127.0.0.1:{http_port}"
        sim.ask({"cmd": "agi", "port": int(agi_port)})
        cookies = ROOT / "var" / "bench" / f"screen_pop_cookies_{backend}.json"
        # fresh sessions each run (an old one may have gone idle)
        cookies.write_text(json.dumps(asyncio.run(make_sessions(
            url, schema, [f"bench{i:03d}" for i in range(args.agents)]))))
        agents = Child("agents", "--base", base, "--agents", str(args.agents), "--cookies", str(cookies))
        log(f"{backend}: consoles {agents.line().strip()}")
        procs = {"server": server, "sim": sim, "agents": agents}
        idle_before = {k: cpu_s(c.proc.pid) for k, c in procs.items()}
        time.sleep(IDLE_S)  # what the processes burn with no calls (consoles, timers)
        idle_cpu = {k: round((cpu_s(c.proc.pid) - idle_before[k]) * 100 / IDLE_S, 1)
                    for k, c in procs.items()}
        log(f"{backend}: idle CPU % {idle_cpu}")
        run_cpu = {k: cpu_s(c.proc.pid) for k, c in procs.items()}
        log(f"{backend}: warm-up {args.warmup_s}s at 5 calls/s")
        warm = sim.ask({"cmd": "run", "rate": 5, "duration": args.warmup_s})
        for rate in args.rates:
            duration = args.duration_s + args.settle_s
            log(f"{backend}: {rate} calls/s for {duration}s")
            before = {k: cpu_s(c.proc.pid) for k, c in procs.items()}
            r = sim.ask({"cmd": "run", "rate": rate, "duration": duration})
            used = {k: round(cpu_s(c.proc.pid) - before[k], 2) for k, c in procs.items()}
            r["cpu_s"] = used
            r["cpu_ms_per_call"] = {k: round(v * 1000 / max(1, r["calls"]), 2) for k, v in used.items()}
            steps.append({"rate": rate, **r})
            log(f"{backend}: {r}")
        idle = sim.ask({"cmd": "idle", "timeout": 90})
        log(f"{backend}: drained {idle}")
        # CPU per call over the whole run, the drain included (a server that falls behind does
        # part of a step's work after it)
        all_calls = warm["calls"] + sum(st["calls"] for st in steps)
        run_cpu = {k: round((cpu_s(c.proc.pid) - run_cpu[k]) * 1000 / max(1, all_calls), 2)
                   for k, c in procs.items()}
        log(f"{backend}: CPU ms per call over the run {run_cpu}")
        agents.proc.stdin.write("dump\n")  # type: ignore[union-attr]
        agents.proc.stdin.flush()  # type: ignore[union-attr]
        dump = json.loads(agents.line())
    finally:
        for c in (agents, server, sim):
            if c is not None:
                c.stop()
    marks = asyncio.run(timeline_marks(url, schema, since))
    counts = asyncio.run(row_counts(url, schema))
    first_offer: dict[int, float] = {}
    for iid, t, _agent in dump["offers"]:
        first_offer[iid] = min(t, first_offer.get(iid, t))
    queue_at = {iid: ts[0] for iid, ts in marks.get("queue", {}).items()}
    offer_at = {iid: ts[0] for iid, ts in marks.get("offer", {}).items()}
    per_rate = []
    for st in steps:
        lo, hi = st["start"] + args.settle_s, st["end"]
        ids = [i for i, t in queue_at.items() if lo <= t < hi]
        lat = [(first_offer[i] - queue_at[i]) * 1000 for i in ids if i in first_offer]
        server_part = [(offer_at[i] - queue_at[i]) * 1000 for i in ids if i in offer_at]
        deliver = [(first_offer[i] - offer_at[i]) * 1000 for i in ids if i in offer_at and i in first_offer]
        lost = [i for i in ids if i not in first_offer]
        bad = {k: sum(1 for i in ids if i in marks.get(k, {}))
               for k in ("offer_undelivered", "pop_ack_timeout", "requeue", "rona", "abandon",
                         "routing_refused", "state_failed", "pop_failed")}
        per_rate.append({
            "rate_cps": st["rate"], "offered_calls": st["calls"],
            "window_s": round(hi - lo, 1), "queued_in_window": len(ids),
            "queue_to_offer_received": summarise(lat),
            "breakdown": {"queue_to_offer_stored": summarise(server_part),
                          "offer_stored_to_received": summarise(deliver)},
            "lost_offers": len(lost), "failures": {k: v for k, v in bad.items() if v},
            "generator_lag_p99_ms": st.get("lag_p99_ms"), "generator_lag_max_ms": st.get("lag_max_ms"),
            "cpu_s_per_process": st.get("cpu_s"), "cpu_ms_per_call": st.get("cpu_ms_per_call"),
        })
    handle_s = args.answer_after + args.talk_time
    return {
        "backend": backend, "setup": setup, "rows": counts,
        "agents": args.agents, "agent_answer_after_s": args.answer_after, "agent_talk_time_s": args.talk_time,
        "occupancy_at_max_rate_est": round(max(args.rates) * handle_s / args.agents, 3),
        "rates": per_rate,
        "lost_offers": sum(r["lost_offers"] for r in per_rate),
        "console_counts": dump["counts"], "console_errors": dump["errors"],
        "failed_sockets": dump["failed_sockets"], "socket_errors": dump["socket_errors"],
        "offers_received": len(dump["offers"]), "drained": idle,
        "cpu_ms_per_call_whole_run": run_cpu, "idle_cpu_pct": idle_cpu,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", default="main", choices=["main", "server", "sim", "agents"])
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--per-customer", type=int, default=10)
    ap.add_argument("--agents", type=int, default=500)
    ap.add_argument("--rates", default="10,25,50")
    ap.add_argument("--duration-s", type=float, default=70.0, help="measured seconds per rate")
    ap.add_argument("--settle-s", type=float, default=10.0, help="unmeasured start of each rate step")
    ap.add_argument("--warmup-s", type=float, default=10.0)
    ap.add_argument("--talk-time", type=float, default=7.0)
    ap.add_argument("--answer-after", type=float, default=0.2)
    ap.add_argument("--reuse", action="store_true", help="reuse a database seeded by an earlier run")
    ap.add_argument("--profile", action="store_true", help="cProfile the server (var/bench/*.prof)")
    ap.add_argument("--out", default="screen_pop")
    # child processes
    ap.add_argument("--url")
    ap.add_argument("--schema")
    ap.add_argument("--ami-port", type=int)
    ap.add_argument("--callers")
    ap.add_argument("--base")
    ap.add_argument("--cookies", help="agents: session cookies saved by an earlier run")
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    if args.role == "server":
        asyncio.run(server_main(args))
        return
    if args.role == "sim":
        asyncio.run(sim_main(args))
        return
    if args.role == "agents":
        asyncio.run(agents_main(args))
        return
    args.rates = [float(r) for r in args.rates.split(",")]
    args.rates = [int(r) if r.is_integer() else r for r in args.rates]
    runs = [run_backend(b, args) for b in args.backends.split(",")]
    by = {r["backend"]: r for r in runs}
    top = max(args.rates)

    def at_top(backend: str, key: str) -> float | None:
        r = by.get(backend)
        if r is None:
            return None
        row = next(x for x in r["rates"] if x["rate_cps"] == top)
        return row["queue_to_offer_received"].get(key)

    headline = {
        "sqlite_p50_ms_50cps": at_top("sqlite", "p50_ms"),
        "sqlite_p99_ms_50cps": at_top("sqlite", "p99_ms"),
        "postgres_p50_ms_50cps": at_top("postgres", "p50_ms"),
        "postgres_p99_ms_50cps": at_top("postgres", "p99_ms"),
        "lost_offers": sum(r["lost_offers"] for r in runs),
    }
    for r in runs:  # same-run baseline: the lowest rate on the same backend
        low = r["rates"][0]["queue_to_offer_received"]
        hi = next(x for x in r["rates"] if x["rate_cps"] == top)["queue_to_offer_received"]
        if low.get("p50_ms") and hi.get("p50_ms"):
            r["ratio_p50_top_vs_lowest_rate"] = round(hi["p50_ms"] / low["p50_ms"], 2)
    write_result(args.out, {
        "bench": "screen_pop", "headline": headline,
        "targets": {"p50_ms_50cps_max": 20, "p99_ms_50cps_max": 100},
        "git_sha": git_sha(), "python": sys.version.split()[0], "cpus": os.cpu_count(),
        "method": "three processes (simulator load generator, server, 500 websocket consoles); "
                  "open-loop Poisson arrivals; latency = first offer frame received at a console "
                  "(time.time() at the client) minus the interaction's 'queue' timeline event "
                  "(server time.time() at the IVR's queue step); first settle_s of each step unmeasured",
        "settle_s": args.settle_s, "measured_s_per_rate": args.duration_s,
        "runs": runs,
    })


if __name__ == "__main__":
    main()
