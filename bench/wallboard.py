"""Supervisor wallboard: time from a domain event to the update at 1,000 wallboard websockets.

Three processes:

- **server**: the real app (`init_app`, demo off) on a fresh SQLite database with the shipped
  catalog, `--agents` agents and one supervisor of their team. On `GO rate seconds` it applies
  domain events through the real routing runner at a fixed rate (open loop, each on an absolute
  due time): a contact arrives (offered at once to a ready agent), is answered, is finished; so
  the board's statistics change with every event. It reports each event's due time (epoch s) and
  the statistics' version after it, and its own CPU time over the window.
- **load** (the `websockets` library's sans-I/O protocol on asyncio transports): N wallboard
  clients on one supervisor session; each notes the `seq` and the arrival time (epoch s) of every
  frame (taken when its bytes arrive).
- **main** (this one): per event, the first frame at each client whose `seq` includes it; the
  latency is its arrival time minus the event's due time. Steps: a baseline with `--baseline`
  clients, then `--clients`.

`cpu_ms_per_event`: the server process's CPU (user + system, /proc) over the step divided by the
events applied (it includes building, serializing and sending every frame).
"""
from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, Child, cpu_s, git_sha, log, pct, run_role, sqlite_url, write_result  # noqa: E402

PASSWORD = "bench-supervisor-password"
PREFIX = b'{"type":"wallboard","v":1,"seq":'


async def setup_db(url: str, agents: int) -> None:
    from argon2 import PasswordHasher

    from callcenter.bootstrap import load_seed, seed_catalog
    from callcenter.settings import load_settings
    from crm_core.db import Database
    from crm_core.store import CrmStore

    db = Database(url)
    await db.drop_schema()
    await db.upgrade()
    store = CrmStore(db, password_hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    await seed_catalog(store, {k: v for k, v in load_seed(load_settings(env={})).items() if k != "admin"})
    await store.create_team("floor")
    for i in range(agents):
        await store.create_user(f"agent{i:03d}", PASSWORD, roles=["agent"], display_name=f"Agent {i}",
                                team="floor", skills={"billing": 5, "support": 5},
                                capacities={"voice": 1, "chat": 0, "email": 0}, actor="bench")
    await store.create_user("boss", PASSWORD, roles=["supervisor"], display_name="Boss", team="floor",
                            actor="bench")
    await db.close()


# ============================================================================ process: server
class Driver:
    """Domain events through the real routing runner: arrive -> (offer) -> answer -> finish."""

    def __init__(self, center: Any) -> None:
        self.center = center
        self.n = 0
        self.offered: list[tuple[str, str]] = []  # (contact, agent) offered, to answer
        self.talking: list[tuple[str, str]] = []  # answered, to finish
        self.queues = ["billing", "support", "general"]

    async def step(self) -> None:
        from routing import Channel, Contact, ContactArrived, ContactFinished, Offer, OfferAccepted, Tier

        runner = self.center.runner
        if self.offered and (len(self.offered) > 3 or self.n % 3 == 1):
            cid, aid = self.offered.pop(0)
            await runner.handle(OfferAccepted(cid, aid))
            self.talking.append((cid, aid))
        elif self.talking and (len(self.talking) > 8 or self.n % 3 == 2):
            cid, aid = self.talking.pop(0)
            await runner.handle(ContactFinished(cid, aid, 0.0))
        else:
            cid = f"b{self.n}"
            tier = Tier.VIP if self.n % 17 == 0 else Tier.REGULAR
            contact = Contact(cid, Channel.VOICE, self.queues[self.n % 3], runner.clock(), tier=tier)
            for d in await runner.handle(ContactArrived(contact)):
                if isinstance(d, Offer):
                    self.offered.append((d.contact_id, d.agent_id))
        self.n += 1


async def server_main(args: argparse.Namespace) -> None:
    import logging

    from aiohttp import web

    from callcenter.app import init_app
    from callcenter.keys import CENTER
    from callcenter.settings import load_settings
    from routing import AgentPresence, Presence

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="server %(levelname)s %(name)s: %(message)s")
    env = {"CC_DATABASE_URL": args.url, "CC_DEMO__ENABLED": "false", "CC_CHAT__ENABLED": "false",
           "CC_EMAIL__ENABLED": "false", "CC_SLA__POLL_S": "0"}
    app = init_app(load_settings(env=env))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=2048)
    await site.start()
    center = app[CENTER]
    for aid in list(center.directory.agents):
        await center.runner.handle(AgentPresence(aid, Presence.READY))
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"READY {port}", flush=True)
    loop = asyncio.get_running_loop()
    driver = Driver(center)
    board = center.wallboard
    pid = os.getpid()
    pubs: list[tuple[int, float]] = []
    board.on_publish.append(lambda version: pubs.append((version, time.time())))
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or line.startswith("QUIT"):
            break
        _go, rate_s, seconds_s = line.split()
        rate, seconds = float(rate_s), float(seconds_s)
        n = int(rate * seconds)
        events: list[tuple[float, int]] = []
        lags: list[float] = []
        published0 = board.published
        pubs.clear()
        prof = None
        if os.environ.get("CC_BENCH_PROFILE"):  # where the server's time goes (a cProfile dump)
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        cpu0 = cpu_s(pid)
        start = time.time() + 0.2
        for i in range(n):
            due = start + i / rate
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            lags.append(time.time() - due)
            await driver.step()
            events.append((due, board.stats.version))
        end = time.time()
        await asyncio.sleep(1.0)  # let the last updates go out
        if prof is not None:
            prof.disable()
            clients = sum(len(f) for f in board.feeds.values())
            prof.dump_stats(str(ROOT / "var" / "bench" / f"wallboard-{clients}.prof"))
        cpu1 = cpu_s(pid)
        print(json.dumps({"events": events, "cpu_s": cpu1 - cpu0, "window_s": end - start,
                          "published": board.published - published0, "pubs": pubs,
                          "driver_lag_p99_ms": round(pct(lags, 99) * 1000, 2),
                          "frame_bytes": len(next(iter(board._last.values()))[1]) if board._last else 0}),
              flush=True)
    await runner.cleanup()


# ============================================================================ process: load
async def load_main(args: argparse.Namespace) -> None:
    import aiohttp

    base = f"http://127.0.0.1:{args.port}"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        page = await s.get(f"{base}/login")
        import re

        csrf = re.search(r'name="csrf" value="([^"]+)"', await page.text())
        assert csrf, "no CSRF field on /login"
        r = await s.post(f"{base}/login", data={"username": "boss", "password": PASSWORD,
                                                "csrf": csrf.group(1)}, allow_redirects=False)
        assert r.status == 303, f"login: HTTP {r.status}"
        cookie = "; ".join(f"{c.key}={c.value}" for c in s.cookie_jar)
    seen: list[list[tuple[int, float]]] = [[] for _ in range(args.clients)]
    loop = asyncio.get_running_loop()
    opened = {"n": 0}
    connected = asyncio.Event()

    def on_open() -> None:
        opened["n"] += 1
        if opened["n"] == args.clients:
            connected.set()

    async def client(i: int) -> None:
        uri = base.replace("http", "ws") + "/ws/wallboard"
        for attempt in range(5):
            try:
                await loop.create_connection(lambda: Client(uri, cookie, base, seen[i], on_open),
                                             "127.0.0.1", args.port)
                return
            except OSError as e:
                log(f"client {i}: {e!r}, again")
                await asyncio.sleep(1 + attempt)

    for i in range(args.clients):
        await client(i)
        if i % 50 == 49:
            await asyncio.sleep(0.05)  # no handshake storm
    await asyncio.wait_for(connected.wait(), 600)
    print("CONNECTED", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # STOP
    print(json.dumps({"seen": seen}), flush=True)


class Client(asyncio.Protocol):
    """One wallboard client: the websockets library's sans-I/O protocol on an asyncio transport
    (cheaper per frame than its connection objects, so 1,000 of them fit in one process)."""

    def __init__(self, uri: str, cookie: str, origin: str, record: list[tuple[int, float]],
                 on_open: Any) -> None:
        from websockets.client import ClientProtocol
        from websockets.typing import Origin
        from websockets.uri import parse_uri

        self.ws = ClientProtocol(parse_uri(uri), origin=Origin(origin), max_size=2**24)
        self.request = self.ws.connect()
        self.request.headers["Cookie"] = cookie
        self.record = record
        self.on_open = on_open
        self.transport: Any = None
        self.first = True

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.ws.send_request(self.request)
        self._flush()

    def _flush(self) -> None:
        for data in self.ws.data_to_send():
            if data:
                self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        t = time.time()
        from websockets.frames import Frame

        self.ws.receive_data(data)
        for ev in self.ws.events_received():
            if not isinstance(ev, Frame):
                continue  # the handshake's response
            raw = ev.data
            if raw.startswith(PREFIX):
                k = len(PREFIX)
                self.record.append((int(raw[k:raw.index(b",", k)]), t))
                if self.first:
                    self.first = False
                    self.on_open()
        self._flush()


# ============================================================================ orchestration
def latencies(events: list[list[float]], seen: list[list[list[float]]]) -> tuple[list[float], int]:
    """ms from each event's due time to the first frame at each client that includes it."""
    out: list[float] = []
    missing = 0
    for frames in seen:
        seqs = [s for s, _t in frames]
        for due, version in events:
            k = bisect.bisect_left(seqs, version)
            if k == len(seqs):
                missing += 1
                continue
            out.append((frames[k][1] - due) * 1000)
    return out, missing


def run_step(server: Child, port: int, clients: int, rate: float, seconds: float,
             procs: int) -> dict[str, Any]:
    loads = [Child(__file__, "load", "--port", str(port), "--clients", str(clients // procs))
             for _ in range(procs)]
    seen: list[Any] = []
    try:
        for load in loads:
            assert load.line().strip() == "CONNECTED"
        log(f"{clients} clients connected ({procs} load processes); {rate:g} events/s for {seconds:g} s")
        load_cpu0 = sum(cpu_s(load.proc.pid) for load in loads)
        server.say(f"GO {rate} {seconds}")
        srv = json.loads(server.line())
        load_cpu = sum(cpu_s(load.proc.pid) for load in loads) - load_cpu0
        for load in loads:
            load.say("STOP")
            seen += json.loads(load.line())["seen"]
    finally:
        for load in loads:
            load.stop()
    lat, missing = latencies(srv["events"], seen)
    # per snapshot: handed to the sockets -> first and last client arrival (the fan-out's spread)
    pub_at = {v: t for v, t in srv["pubs"]}
    arrivals: dict[int, list[float]] = {}
    for frames in seen:
        for v, t in frames:
            if v in pub_at:
                arrivals.setdefault(v, []).append(t)
    first = [(min(ts) - pub_at[v]) * 1000 for v, ts in arrivals.items()]
    last = [(max(ts) - pub_at[v]) * 1000 for v, ts in arrivals.items()]
    # where the time goes: event due -> snapshot handed to the sockets (coalescing, server queueing)
    pub_lat, _m = latencies(srv["events"], [srv["pubs"]])
    frames = sum(len(f) for f in seen)
    n = len(srv["events"])
    return {
        "clients": clients, "events": n, "rate_events_per_s": rate,
        "p50_ms": round(pct(lat, 50), 1), "p90_ms": round(pct(lat, 90), 1), "p95_ms": round(pct(lat, 95), 1),
        "p99_ms": round(pct(lat, 99), 1), "max_ms": round(max(lat), 1), "samples": len(lat),
        "not_delivered": missing, "load_processes": procs,
        "publish_to_first_client_p50_ms": round(pct(first, 50), 1),
        "publish_to_last_client_p50_ms": round(pct(last, 50), 1),
        "publish_to_last_client_p95_ms": round(pct(last, 95), 1),
        "event_to_publish_p50_ms": round(pct(pub_lat, 50), 1),
        "event_to_publish_p95_ms": round(pct(pub_lat, 95), 1),
        "frames_received": frames,
        # per client per second over the window and the 1 s drain (the connect snapshot aside)
        "frames_per_client_per_s": round((frames - clients) / clients / (srv["window_s"] + 1.0), 2),
        "snapshots_built": srv["published"], "frame_bytes": srv["frame_bytes"],
        "server_cpu_ms_per_event": round(srv["cpu_s"] * 1000 / n, 3),
        "server_cpu_share": round(srv["cpu_s"] / (srv["window_s"] + 1.0), 2),
        "load_cpu_share": round(load_cpu / (srv["window_s"] + 1.0), 2),
        "driver_lag_p99_ms": srv["driver_lag_p99_ms"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", default="main", choices=["main", "server", "load"])
    ap.add_argument("--url")
    ap.add_argument("--port", type=int)
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--baseline", type=int, default=100)
    ap.add_argument("--agents", type=int, default=20)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--load-procs", type=int, default=1)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if run_role(args, server=server_main, load=load_main):
        return
    url = sqlite_url("wallboard.db")
    load_before = os.getloadavg()
    asyncio.run(setup_db(url, args.agents))
    server = Child(__file__, "server", "--url", url)
    try:
        port = int(server.line().split()[1])
        steps = [run_step(server, port, c, args.rate, args.seconds, args.load_procs)
                 for c in (args.baseline, args.clients)]
        server.say("QUIT")
    finally:
        server.stop()
    base, top = steps
    result = {
        "bench": "wallboard",
        "headline": {"p50_ms_1000_clients": top["p50_ms"], "p95_ms_1000_clients": top["p95_ms"],
                     "cpu_ms_per_event": top["server_cpu_ms_per_event"]},
        "targets": {"p95_ms_max": 200},
        "p95_ratio_vs_baseline": round(top["p95_ms"] / base["p95_ms"], 2) if base["p95_ms"] else None,
        "baseline": f"{args.baseline} clients, same rate, same server, measured first in this run",
        "steps": steps,
        "data": {"agents": args.agents, "queues": 4, "supervisor_scope": "one team (every agent)",
                 "events": "arrive/answer/finish through the routing runner", "rate_events_per_s": args.rate,
                 "seconds_per_step": args.seconds, "max_updates_per_s_per_client": 10},
        "git_sha": git_sha(), "python": sys.version.split()[0], "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "notes": "One machine shared with other work (see loadavg). Latency = client arrival time minus the "
                 "event's due time (open loop, epoch clock shared by the processes); it includes up to "
                 "100 ms "
                 "of coalescing by design.",
    }
    write_result("wallboard", result, write=not args.no_write)


if __name__ == "__main__":
    main()
