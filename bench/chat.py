"""Web chat: customer -> agent message latency with 1,000 concurrent chats over websockets.

Per backend (SQLite by default; `--backend postgres` too): a fresh database with the shipped
catalog and 100 agents who take 10 chats each. Two processes besides this one:

- **server**: the real app (`init_app`, demo off, chat on, the bench's origin allow-listed; the
  per-address rate limit raised, since every customer comes from 127.0.0.1).
- **load** (the `websockets` library): 100 agent consoles (form login with CSRF, ready, accept
  every `chat_offer`) and 1,000 widgets that start a chat (pre-chat form) and wait for their
  agent. Then, open loop, messages go out at fixed total rates (each on an absolute due time,
  spread round-robin over the chats). A sample is the time from a message's due time to the
  `chat_message` frame reaching the agent's console (time.perf_counter() in the same process).

`lost_messages`: sent but never acknowledged to the customer or never received by the agent
(after a drain); `duplicated_messages`: received twice by the agent or acknowledged twice. At the
end the stored rows are counted: every acknowledged message is in `chat_messages`, once.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Child, cpu_s, git_sha, log, pct, run_role, sqlite_url, write_result  # noqa: E402

PG = os.environ.get("CC_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
SCHEMA = "bench_chat"
PASSWORD = "bench-agent-password"
ORIGIN = "http://shop.bench.invalid"
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


def target(backend: str) -> tuple[str, str | None]:
    if backend == "sqlite":
        return sqlite_url("chat.db"), None
    return PG, SCHEMA


async def setup_db(url: str, schema: str | None, agents: int, capacity: int) -> None:
    from argon2 import PasswordHasher
    from sqlalchemy import text

    from callcenter.bootstrap import load_seed, seed_catalog
    from callcenter.settings import load_settings
    from crm_core.db import Database
    from crm_core.store import CrmStore

    db = Database(url, schema=schema)
    await db.drop_schema()
    await db.upgrade()
    settings = load_settings(env={})
    store = CrmStore(db, password_hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    await seed_catalog(store, {k: v for k, v in load_seed(settings).items() if k != "admin"})
    for i in range(agents):
        await store.create_user(f"chat{i:03d}", PASSWORD, roles=["agent"], display_name=f"Chat {i}",
                                team="frontline", skills={"billing": 5, "support": 5},
                                capacities={"voice": 0, "chat": capacity, "email": 0}, actor="bench")
    async with db.engine.begin() as conn:  # the production hash cost, so logins need no rehash
        await conn.execute(text("UPDATE users SET password_hash = :h WHERE username LIKE 'chat%'"),
                           {"h": PasswordHasher().hash(PASSWORD)})
    await db.close()


async def db_count(url: str, schema: str | None, sql: str) -> int:
    from sqlalchemy import text

    from crm_core.db import Database

    db = Database(url, schema=schema)
    try:
        async with db.engine.connect() as conn:
            return int((await conn.execute(text(sql))).scalar() or 0)
    finally:
        await db.close()


# ============================================================================ process: server
async def server_main(args: argparse.Namespace) -> None:
    import logging

    from aiohttp import web

    from callcenter.app import init_app
    from callcenter.settings import load_settings

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="server %(levelname)s %(name)s: %(message)s")
    env = {"CC_DATABASE_URL": args.url, "CC_DEMO__ENABLED": "false",
           "CC_CHAT__SITES": json.dumps([{"id": "bench", "origins": [ORIGIN]}]),
           "CC_CHAT__RATE_PER_IP": "1000000", "CC_CHAT__BURST_PER_IP": "1000000",
           "CC_CHAT__DEMO_SITE_PORT": ""}
    if args.schema:
        env["CC_DATABASE_SCHEMA"] = args.schema
    app = init_app(load_settings(env=env))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"READY {port}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


# ============================================================================ process: load
class Load:
    def __init__(self) -> None:
        self.due: dict[tuple[int, int], float] = {}  # (chat index, n) -> due (perf_counter)
        self.agent_got: dict[tuple[int, int], int] = {}
        self.acked: dict[tuple[int, int], int] = {}
        self.lat: dict[float, list[float]] = {}
        self.step_of: dict[tuple[int, int], float] = {}
        self.errors: dict[str, int] = {}
        self.offers = 0


async def _login(base: str, username: str) -> str:
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


async def load_main(args: argparse.Namespace) -> None:
    import websockets

    base = f"http://127.0.0.1:{args.port}"
    wsbase = base.replace("http", "ws")
    st = Load()
    stop = asyncio.Event()
    ready = {"n": 0}
    all_ready = asyncio.Event()
    loads = json.loads

    async def console(i: int) -> None:
        for attempt in range(5):  # a busy machine: logins and handshakes may time out
            try:
                await console_once(i)
                return
            except (OSError, TimeoutError, websockets.InvalidHandshake) as e:
                log(f"console {i}: {e!r}, again")
                await asyncio.sleep(1 + attempt)

    async def console_once(i: int) -> None:
        cookie = await _login(base, f"chat{i:03d}")
        headers = {"Cookie": cookie, "Origin": base}
        async with websockets.connect(wsbase + "/ws/agent", additional_headers=headers, max_queue=None,
                                      ping_interval=None, compression=None, max_size=2**24,
                                      open_timeout=60) as ws:
            was_ready = False
            async for raw in ws:
                now = time.perf_counter()
                msg = loads(raw)
                t = msg["type"]
                if t == "chat_message":
                    if msg["sender"] != "customer":
                        continue
                    parts = msg["text"].split("|")
                    if len(parts) != 3 or parts[0] != "b":
                        continue
                    key = (int(parts[1]), int(parts[2]))
                    seen = st.agent_got.get(key, 0)
                    st.agent_got[key] = seen + 1
                    due = st.due.get(key)
                    if seen == 0 and due is not None:
                        st.lat.setdefault(st.step_of[key], []).append((now - due) * 1000)
                elif t == "chat_offer":
                    st.offers += 1
                    await ws.send(json.dumps({"type": "chat_accept", "offer_id": msg["offer_id"]}))
                elif t == "hello":
                    await ws.send(json.dumps({"type": "set_state", "state": "ready"}))
                elif t == "agent_state" and msg["state"] in ("ready", "busy") and not was_ready:
                    was_ready = True
                    ready["n"] += 1
                    if ready["n"] >= args.agents:
                        all_ready.set()
                elif t == "error":
                    st.errors["console:" + msg["code"]] = st.errors.get("console:" + msg["code"], 0) + 1
                if stop.is_set():
                    return

    consoles = []
    for i in range(args.agents):
        consoles.append(asyncio.create_task(console(i)))
        await asyncio.sleep(0.02)
    await asyncio.wait_for(all_ready.wait(), 600)
    log(f"{args.agents} agents ready")

    widgets: list[Any] = [None] * args.chats
    started = [False] * args.chats
    joined = asyncio.Semaphore(0)

    async def widget(i: int) -> None:
        ws = await websockets.connect(wsbase + "/ws/chat?site=bench", additional_headers={"Origin": ORIGIN},
                                      max_queue=None, ping_interval=None, compression=None, open_timeout=60)
        widgets[i] = ws
        await ws.send(json.dumps({"type": "start", "name": f"Bench Customer {i}",
                                  "email": f"bench{i}@example.com"}))
        async for raw in ws:
            msg = loads(raw)
            t = msg["type"]
            if t == "message":
                cid = msg.get("client_id")
                if cid and msg["sender"] == "customer":
                    key = (i, int(cid))
                    st.acked[key] = st.acked.get(key, 0) + 1
            elif t == "agent":
                joined.release()
            elif t == "welcome":
                started[i] = True
            elif t == "error":
                st.errors["widget:" + msg["code"]] = st.errors.get("widget:" + msg["code"], 0) + 1
                if not started[i]:  # the start failed (a busy machine): try again
                    await asyncio.sleep(1.0)
                    await ws.send(json.dumps({"type": "start", "name": f"Bench Customer {i}",
                                              "email": f"bench{i}@example.com"}))

    t0 = time.perf_counter()
    readers = []
    for i in range(args.chats):
        readers.append(asyncio.create_task(widget(i)))
        if i % 25 == 24:
            await asyncio.sleep(0.05)
    for _ in range(args.chats):
        await asyncio.wait_for(joined.acquire(), 600)
    start_s = time.perf_counter() - t0
    log(f"{args.chats} chats active in {start_s:.1f}s")

    steps = []
    counter = [0] * args.chats
    load_pid = os.getpid()
    k = 0
    for rate in args.rates:
        n_msgs = int(rate * args.duration)
        step_keys = []
        cpu0 = (cpu_s(args.server_pid), cpu_s(load_pid))
        start = time.perf_counter() + 0.2
        lags = []
        for j in range(n_msgs):
            due = start + j / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            lags.append(time.perf_counter() - due)
            chat = k % args.chats
            k += 1
            n = counter[chat]
            counter[chat] += 1
            key = (chat, n)
            st.due[key] = due
            st.step_of[key] = rate
            step_keys.append(key)
            frame = json.dumps({"type": "send", "client_id": str(n), "text": f"b|{chat}|{n}"})
            await widgets[chat].send(frame)
        end = time.perf_counter()
        # drain: until every message of the step reached its agent and was acknowledged, or
        # nothing more arrived for `drain` seconds (what is still missing then is lost)
        last, quiet_since = -1, time.perf_counter()
        while time.perf_counter() - quiet_since < args.drain:
            done = sum(1 for key in step_keys if st.agent_got.get(key) and st.acked.get(key))
            if done == len(step_keys):
                break
            if done != last:
                last, quiet_since = done, time.perf_counter()
            await asyncio.sleep(0.1)
        drained = time.perf_counter()
        cpu1 = (cpu_s(args.server_pid), cpu_s(load_pid))
        lat = st.lat.get(rate, [])
        got = sum(1 for key in step_keys if st.agent_got.get(key))
        steps.append({
            "rate_msgs_per_s": rate, "sent": n_msgs, "received_by_agents": got,
            "send_window_s": round(end - start, 3), "delivered_in_s": round(drained - start, 3),
            # delivered per second, over the time until the last one arrived
            "messages_per_s": round(got / max(drained - start, end - start, 1e-9), 1),
            "p50_ms": round(pct(lat, 50), 2) if lat else None,
            "p90_ms": round(pct(lat, 90), 2) if lat else None,
            "p99_ms": round(pct(lat, 99), 2) if lat else None,
            "max_ms": round(max(lat), 2) if lat else None,
            "sender_lag_p99_ms": round(pct(lags, 99) * 1000, 2),
            # CPU seconds per delivered message: the server's and the load process's own
            "server_cpu_us_per_msg": round((cpu1[0] - cpu0[0]) / max(got, 1) * 1e6, 1),
            "load_cpu_us_per_msg": round((cpu1[1] - cpu0[1]) / max(got, 1) * 1e6, 1),
            "server_cpu_share": round((cpu1[0] - cpu0[0]) / max(drained - start, 1e-9), 2),
            "lost": sum(1 for key in step_keys if not st.agent_got.get(key) or not st.acked.get(key)),
            "duplicated": sum(1 for key in step_keys
                              if st.agent_got.get(key, 0) > 1 or st.acked.get(key, 0) > 1),
        })
        log(f"rate {rate}/s: {steps[-1]}")
    stop.set()
    for ws in widgets:
        with contextlib.suppress(Exception):
            await ws.close()
    for t in readers + consoles:
        t.cancel()
    await asyncio.gather(*readers, *consoles, return_exceptions=True)
    print(json.dumps({"steps": steps, "chats_started_s": round(start_s, 1), "offers": st.offers,
                      "acked": sum(1 for v in st.acked.values() if v), "errors": st.errors}), flush=True)


# ============================================================================ orchestration
def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    url, schema = target(backend)
    log(f"{backend}: setting up")
    asyncio.run(setup_db(url, schema, args.agents, args.capacity))
    extra = ["--url", url] + (["--schema", schema] if schema else [])
    server = Child(__file__, "server", *extra)
    try:
        port = int(server.line().split()[1])
        load = Child(__file__, "load", "--port", str(port), "--server-pid", str(server.proc.pid),
                     "--agents", str(args.agents), "--chats", str(args.chats),
                     "--rates", *[str(r) for r in args.rates], "--duration", str(args.duration),
                     "--drain", str(args.drain))
        try:
            result = json.loads(load.line())
        finally:
            load.stop()
    finally:
        server.stop()
    where = "FROM chat_messages WHERE sender = 'customer'"
    stored = asyncio.run(db_count(url, schema, f"SELECT count(*) {where}"))
    distinct = asyncio.run(db_count(url, schema, f"SELECT count(*) FROM (SELECT DISTINCT interaction_id, "
                                                 f"client_id {where}) d"))
    result.update(backend=backend, stored_customer_messages=stored, stored_distinct=distinct)
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", default="main", choices=["main", "server", "load"])
    ap.add_argument("--backend", nargs="+", default=["sqlite"], choices=["sqlite", "postgres"])
    ap.add_argument("--url")
    ap.add_argument("--schema")
    ap.add_argument("--port", type=int)
    ap.add_argument("--server-pid", type=int, default=0)
    ap.add_argument("--agents", type=int, default=100)
    ap.add_argument("--capacity", type=int, default=10)
    ap.add_argument("--chats", type=int, default=1000)
    ap.add_argument("--rates", type=float, nargs="+", default=[200.0, 1000.0, 2000.0])
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--drain", type=float, default=5.0)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if run_role(args, server=server_main, load=load_main):
        return
    runs = [run_backend(b, args) for b in args.backend]
    first = runs[0]
    top = first["steps"][-1]
    base = first["steps"][0]
    lost = sum(s["lost"] for r in runs for s in r["steps"])
    dup = sum(s["duplicated"] for r in runs for s in r["steps"])
    headline = {"p50_ms": top["p50_ms"], "p99_ms": top["p99_ms"], "messages_per_s": top["messages_per_s"],
                "lost_messages": lost, "duplicated_messages": dup,
                "p99_ratio_vs_baseline": round(top["p99_ms"] / base["p99_ms"], 2) if base["p99_ms"] else None}
    for r in runs[1:]:
        headline[f"{r['backend']}_p50_ms"] = r["steps"][-1]["p50_ms"]
        headline[f"{r['backend']}_p99_ms"] = r["steps"][-1]["p99_ms"]
    result = {
        "bench": "chat", "headline": headline,
        "targets": {"p99_ms_max": 50, "at_messages_per_s": 2000},
        "git_sha": git_sha(), "python": sys.version.split()[0], "cpus": os.cpu_count(),
        "method": "two processes besides the orchestrator (server; load: websockets library consoles and "
                  "widgets); open loop at fixed total rates, round-robin over the chats; latency = the "
                  "customer message's due time to its chat_message frame at the agent console "
                  "(perf_counter, same process); baseline = the lowest rate of the same run",
        "data": {"agents": args.agents, "chat_capacity": args.capacity, "chats": args.chats,
                 "duration_s_per_rate": args.duration, "drain_s": args.drain},
        "runs": runs,
    }
    write_result("chat", result, write=not args.no_write)


if __name__ == "__main__":
    main()
