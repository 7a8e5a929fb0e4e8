"""Claims per second and claim latency of the Redis routing store, with 1 and 2 processes, on
loopback Redis; `redis-benchmark` EVALSHA in the same run as the ceiling.

Each process claims its own waiting contacts for agents picked at random among all of them (so
the processes contend for the same agent hashes and availability sets), one `RedisStore.claim`
(one EVALSHA of the check-claim-lease script) at a time, and times each call.

    .venv/bin/python bench/routing_redis.py [--claims 20000] [--agents 200]
"""
from __future__ import annotations

import argparse
import csv
import io
import multiprocessing as mp
import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import git_sha, summary, write_result  # noqa: E402
from callcenter.routing_redis import RedisStore, connect  # noqa: E402
from routing import AgentProfile, Channel, Presence, Requirement  # noqa: E402
from routing.model import (
    DEFAULT_MIXING,  # noqa: E402
    Contact,  # noqa: E402
)
from routing.store import ContactRecord  # noqa: E402

URL = os.environ.get("CC_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
BUCKET = "chat|s>=1|*|*"


def setup(prefix: str, n_agents: int, n_contacts: int) -> None:
    store = RedisStore(connect(URL), prefix, DEFAULT_MIXING)
    store.register_bucket(BUCKET)
    for i in range(n_agents):
        aid = f"a{i:04d}"
        store.add_agent(AgentProfile(aid, {"s": 5}, capacity={Channel.CHAT: 1_000_000}), 0.0)
        store.set_presence(aid, Presence.READY, None, 0.0)
    req = Requirement.of({"s": 1})
    for i in range(n_contacts):
        c = Contact(f"c{i:06d}", Channel.CHAT, "q", float(i))
        rec = ContactRecord(contact=c, queue="q", entered_queue_at=float(i), weight=0.0, requirement=req)
        store.add_contact(rec)
        store.enqueue(c.id, BUCKET, -float(i))
    store.client.close()


def claimer(prefix: str, ids: list[str], n_agents: int, seed: int, start_at: float, out: Any) -> None:
    store = RedisStore(connect(URL), prefix, DEFAULT_MIXING)
    store.load_scripts()
    rng = random.Random(seed)
    agents = [f"a{rng.randrange(n_agents):04d}" for _ in ids]
    lat: list[float] = []
    ok = 0
    while time.time() < start_at:
        time.sleep(0.0005)
    t0 = time.perf_counter()
    for cid, aid in zip(ids, agents, strict=True):
        t = time.perf_counter()
        ok += store.claim(cid, aid, Channel.CHAT, 1e9, 1.0)
        lat.append((time.perf_counter() - t) * 1000)
    wall = time.perf_counter() - t0
    out.send({"lat": lat, "ok": ok, "wall": wall, "t0": t0, "t_end": time.time()})
    out.close()
    store.client.close()


def run_procs(n_procs: int, n_claims: int, n_agents: int) -> dict[str, Any]:
    prefix = f"bench_rr_{uuid.uuid4().hex[:8]}:"
    setup(prefix, n_agents, n_claims)
    ids = [f"c{i:06d}" for i in range(n_claims)]
    shares = [ids[k::n_procs] for k in range(n_procs)]
    ctx = mp.get_context("spawn")
    start_at = time.time() + 1.5  # after every process has started and loaded its scripts
    pipes, procs = [], []
    for k, share in enumerate(shares):
        recv, send = ctx.Pipe(duplex=False)
        p = ctx.Process(target=claimer, args=(prefix, share, n_agents, k, start_at, send))
        p.start()
        send.close()
        pipes.append(recv)
        procs.append(p)
    res = [r.recv() for r in pipes]
    for p in procs:
        p.join()
    end = max(r["t_end"] for r in res)
    wall = end - start_at
    lat = [x for r in res for x in r["lat"]]
    ok = sum(r["ok"] for r in res)
    client = connect(URL)
    store = RedisStore(client, prefix, DEFAULT_MIXING)
    leases = len(store.leases())
    load = sum(a.load[Channel.CHAT] for aid in store.agent_ids() if (a := store.agent(aid)) is not None)
    left = store.waiting_count()
    store.clear()
    client.close()
    assert ok == n_claims == leases == load and left == 0, (ok, n_claims, leases, load, left)
    return {"processes": n_procs, "claims": ok, "wall_s": round(wall, 3),
            "claims_per_s": round(ok / wall, 1), "latency": summary(lat)}


def redis_benchmark(sha_noop: str, sha_claim: str, prefix: str, n: int) -> dict[str, Any]:
    exe = shutil.which("redis-benchmark")
    if exe is None:
        return {"error": "redis-benchmark not found (apt-get install redis-tools)"}
    from urllib.parse import urlparse

    u = urlparse(URL)
    out: dict[str, Any] = {}
    runs = {
        "evalsha_return1_c50": (50, [sha_noop, "0"]),
        "evalsha_return1_c1": (1, [sha_noop, "0"]),
        # the claim script on a missing contact: its cheapest path (one HGET)
        "evalsha_claim_refused_c50": (50, [sha_claim, "4", f"{prefix}c:none", f"{prefix}a:none",
                                            f"{prefix}ls", f"{prefix}nw", prefix, "none", "none",
                                            "chat", "1", "{}"]),
    }
    for name, (clients, cmd) in runs.items():
        txt = subprocess.run(
            [exe, "-h", u.hostname or "127.0.0.1", "-p", str(u.port or 6379), "-n", str(n),
             "-c", str(clients), "--csv", "EVALSHA", *cmd],
            capture_output=True, text=True, check=True, timeout=120).stdout
        rows = [r for r in csv.reader(io.StringIO(txt)) if r and r[0] != "test"]
        out[name] = {"clients": clients, "requests": n, "per_s": float(rows[-1][1])}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--claims", type=int, default=20_000)
    ap.add_argument("--agents", type=int, default=200)
    ap.add_argument("--bench-requests", type=int, default=200_000)
    a = ap.parse_args()

    one = run_procs(1, a.claims, a.agents)
    two = run_procs(2, a.claims, a.agents)

    client = connect(URL)
    sha_noop = client.script_load("return 1")
    store = RedisStore(client, "bench_rr_ceiling:", DEFAULT_MIXING)
    store.load_scripts()
    ceiling = redis_benchmark(sha_noop, store._s_claim.sha, store.base, a.bench_requests)
    client.close()

    info = connect(URL).info("server")
    result = {
        "benchmark": "routing_redis",
        "git_sha": git_sha(),
        "headline": {
            "claims_per_s_1proc": one["claims_per_s"],
            "claims_per_s_2proc": two["claims_per_s"],
            "p99_claim_ms": max(one["latency"]["p99_ms"], two["latency"]["p99_ms"]),
            "redis_benchmark_evalsha_per_s":
                ceiling.get("evalsha_return1_c50", {}).get("per_s", float("nan")),
        },
        "data": {"claims_per_run": a.claims, "agents": a.agents, "waiting_contacts_per_run": a.claims,
                 "bucket": BUCKET, "agent_chat_capacity": 1_000_000},
        "runs": {"1proc": one, "2proc": two},
        "redis_benchmark": ceiling,
        "environment": {"redis_version": info.get("redis_version"), "cpus": os.cpu_count(),
                        "python": sys.version.split()[0], "url": URL},
        "method": (
            "Per run: a fresh key prefix; N agents (ready, chat capacity 1e6 so capacity never runs out) "
            "and as many waiting chat contacts as claims, in one bucket. Each process claims its share "
            "of the contacts (every k-th), each for an agent picked at random, one RedisStore.claim at a "
            "time (one EVALSHA of the check+claim+lease script, a round trip on loopback), timing each "
            "call with perf_counter. Processes start together at a wall-clock instant; claims/s = all "
            "claims / (last process's end - start). Afterwards every claim is checked: leases = load = "
            "claims, nothing waiting. Ceiling: redis-benchmark EVALSHA in the same run on the same "
            "server: a 'return 1' script with 50 clients (headline) and 1 client, and the claim script's "
            "refusal path with 50 clients. p99_claim_ms is the larger of the two runs' p99."),
    }
    write_result("routing_redis", result)


if __name__ == "__main__":
    main()
