"""Leader takeover time: several scale-out processes (callcenter/scaleout/node.py, the election
`callcenter run` uses) on one Redis and one PostgreSQL; the AMI lease's holder is killed with
SIGKILL, and the time until another process is elected (and has raised the database fence) is
measured, from the kill to the new leader's `elected` line (both stamped with the same clock).

Baseline in the same run: a graceful stop (SIGTERM: the leader releases its lease).
Usage: python bench/failover.py [--rounds 20] [--ttl 1.0] [--nodes 3]
Writes bench/results/failover.json."""
from __future__ import annotations

import argparse
import asyncio
import os
import queue
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import git_sha, pct, write_result  # noqa: E402

REDIS = os.environ.get("CC_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PG = os.environ.get("CC_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


class Node:
    def __init__(self, argv: list[str], events: queue.Queue[tuple[str, str, float]]) -> None:
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.ready = threading.Event()
        self.events = events
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            parts = raw.decode().split()
            if parts and parts[0] == "ready":
                self.ready.set()
            elif parts and parts[0] == "elected":
                self.events.put(("elected", str(self.proc.pid), float(parts[2])))


async def _schema(action: str, schema: str) -> None:
    from crm_core.db import Database

    db = Database(PG, schema=schema)
    try:
        if action == "up":
            await db.upgrade()
        else:
            await db.drop_schema()
    finally:
        await db.close()


def run(rounds: int, ttl: float, n: int) -> dict[str, object]:
    schema = f"bench_failover_{uuid.uuid4().hex[:8]}"
    prefix = f"bench_failover_{uuid.uuid4().hex[:8]}:"
    asyncio.run(_schema("up", schema))
    argv = [sys.executable, "-m", "callcenter.scaleout.node", "--redis", REDIS, "--prefix", prefix,
            "--db", PG, "--schema", schema, "--ttl", str(ttl), "--no-outbox"]
    events: queue.Queue[tuple[str, str, float]] = queue.Queue()
    nodes: dict[int, Node] = {}

    def spawn() -> None:
        node = Node(argv, events)
        nodes[node.proc.pid] = node
        if not node.ready.wait(60):
            raise RuntimeError("a node did not start")

    out: dict[str, list[float]] = {"kill": [], "graceful": []}
    try:
        for _ in range(n):
            spawn()
        kind, pid, _t = events.get(timeout=30)
        leader = int(pid)
        for i in range(rounds * 2):
            how = "kill" if i % 2 == 0 else "graceful"
            victim = nodes.pop(leader)
            t0 = time.time()
            victim.proc.send_signal(signal.SIGKILL if how == "kill" else signal.SIGTERM)
            kind, pid, t_elected = events.get(timeout=30)
            out[how].append((t_elected - t0) * 1000)
            leader = int(pid)
            victim.proc.wait(10)
            spawn()  # back to n processes
    finally:
        for node in nodes.values():
            node.proc.send_signal(signal.SIGTERM)
        for node in nodes.values():
            try:
                node.proc.wait(10)
            except subprocess.TimeoutExpired:
                node.proc.kill()
        import redis

        r = redis.Redis.from_url(REDIS)
        for key in r.scan_iter(match=prefix + "*"):
            r.delete(key)
        asyncio.run(_schema("down", schema))

    def stats(v: list[float]) -> dict[str, float]:
        return {"n": len(v), "median_ms": round(statistics.median(v), 1), "p99_ms": round(pct(v, 99), 1),
                "min_ms": round(min(v), 1), "max_ms": round(max(v), 1)}

    kill, graceful = stats(out["kill"]), stats(out["graceful"])
    return {
        "benchmark": "failover",
        "git_sha": git_sha(),
        "headline": {"takeover_ms_p50": kill["median_ms"], "takeover_ms_p99": kill["p99_ms"],
                     "graceful_takeover_ms_p50": graceful["median_ms"], "lease_ttl_s": ttl,
                     "kill_to_graceful_ratio": round(kill["median_ms"] / max(graceful["median_ms"], 0.1), 1)},
        "data": {"processes": n, "rounds": rounds, "lease_ttl_s": ttl, "renew_every_s": ttl / 5},
        "kill9": kill,
        "graceful_stop": graceful,
        "method": ("SIGKILL of the AMI lease holder among N scale-out processes (callcenter/scaleout/node.py:"
                   " the lease, election and database fence of `callcenter run`); takeover = the new "
                   "leader's elected time (after raising cc_fence) minus the kill time, same clock. "
                   "Expected ~ the lease's remaining life (up to ttl) plus one poll (ttl/5). Baseline: "
                   "SIGTERM, the leader releases its lease and the next poll takes it."),
        "environment": {"loadavg": os.getloadavg(), "cpus": os.cpu_count(), "redis": REDIS,
                        "postgres": PG.split("@")[-1]},
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--ttl", type=float, default=1.0)
    p.add_argument("--nodes", type=int, default=3)
    a = p.parse_args()
    write_result("failover", run(a.rounds, a.ttl, a.nodes))
