"""identify + customer_card at 100k and 1M customers, on SQLite and PostgreSQL, plus seeding time.

For each backend and size: seed a fresh database with `demo seed` (timed), start the real app in a
server process, and drive GET /bench/pop?phone=... (identify + card) open-loop at a fixed rate from a
separate load process; latencies are taken at that client, from each request's scheduled send time.
A no-op route on the same server, at the same rate, in the same run, gives the HTTP floor.
The store is also timed in-process (no HTTP) for the breakdown.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, git_sha, open_loop_load, sqlite_url, summary, write_result  # noqa: E402
from crm_core.db import Database  # noqa: E402

PG = os.environ.get("CC_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


SEED_LOG = ROOT / "var" / "bench" / "seed_times.json"


def target(backend: str, size: int, fresh: bool) -> tuple[str, str | None]:
    if backend == "sqlite":
        return sqlite_url(f"crm_{size}.db", fresh), None
    return PG, f"bench_crm_{size}"


def seed_log() -> dict[str, float]:
    return json.loads(SEED_LOG.read_text()) if SEED_LOG.exists() else {}


async def seed(url: str, schema: str | None, size: int, per_customer: int) -> float:
    from crm_core.demo import seed_demo

    db = Database(url, schema=schema)
    await db.drop_schema()
    await db.upgrade()
    t0 = time.perf_counter()
    await seed_demo(db, customers=size, interactions_per_customer=per_customer, rng_seed=7,
                    progress=False)
    took = time.perf_counter() - t0
    await db.close()
    return took


def national(e164: str, rng: random.Random) -> str:
    """Render an E.164 number the way people type it: national, international, or as stored."""
    import phonenumbers as pn

    n = pn.parse(e164)
    fmt = rng.choice([pn.PhoneNumberFormat.INTERNATIONAL, pn.PhoneNumberFormat.E164,
                      pn.PhoneNumberFormat.INTERNATIONAL])
    return pn.format_number(n, fmt)


async def sample_keys(url: str, schema: str | None, n: int) -> list[str]:
    """Query strings: mostly phones in mixed formats, some emails, some unknown numbers."""
    from sqlalchemy import text

    db = Database(url, schema=schema)
    rng = random.Random(11)
    async with db.engine.connect() as conn:
        total = (await conn.execute(text("SELECT max(id) FROM contact_points"))).scalar_one()
        ids = [rng.randint(1, total) for _ in range(n)]
        rows = (await conn.execute(
            text(f"SELECT kind, value FROM contact_points WHERE id IN ({','.join(map(str, ids))})")
        )).all()
    await db.close()
    out = []
    for i in range(n):
        kind, value = rows[i % len(rows)]
        if i % 20 == 19:
            out.append("phone=" + quote(f"+1 202-555-01{i % 100:02d}"))  # mostly unknown callers
        elif kind == "phone":
            out.append("phone=" + quote(national(value, rng)))
        elif kind == "email":
            out.append("email=" + quote(value))
        else:
            out.append("phone=" + quote(f"+44 20 7946 {i % 10000:04d}"))
    return out


async def direct(url: str, schema: str | None, queries: list[str]) -> dict[str, float]:
    """In-process identify + card, one at a time (no HTTP), for the breakdown."""
    from urllib.parse import parse_qsl

    from crm_core.store import CrmStore

    db = Database(url, schema=schema)
    store = CrmStore(db)
    lat = []
    for i, q in enumerate(queries):
        params = dict(parse_qsl(q))
        t0 = time.perf_counter()
        await store.identify_card(**params)
        if i >= 50:
            lat.append((time.perf_counter() - t0) * 1000)
    await db.close()
    return summary(lat)


def start_server(url: str, schema: str | None) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, str(ROOT / "bench" / "crm_server.py"), "--url", url]
    if schema:
        cmd += ["--schema", schema]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    line = proc.stdout.readline()  # type: ignore[union-attr]
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{int(line.split()[1])}"


def stop_server(proc: subprocess.Popen[str]) -> None:
    proc.stdin.close()  # type: ignore[union-attr]
    proc.wait(timeout=30)


def run_one(backend: str, size: int, args: argparse.Namespace) -> dict[str, object]:
    key = f"{backend}:{size}:{args.per_customer}"
    log = seed_log()
    reuse = args.reuse and key in log
    url, schema = target(backend, size, fresh=not reuse)
    if reuse:
        seed_s = log[key]  # seeded (and timed) by an earlier run of this script, same code
    else:
        print(f"# {backend} {size}: seeding", file=sys.stderr, flush=True)
        seed_s = asyncio.run(seed(url, schema, size, args.per_customer))
        SEED_LOG.write_text(json.dumps({**seed_log(), key: round(seed_s, 1)}))
    queries = asyncio.run(sample_keys(url, schema, args.requests + 100))
    print(f"# {backend} {size}: seeded in {seed_s:.1f}s; measuring", file=sys.stderr, flush=True)
    inproc = asyncio.run(direct(url, schema, queries[: min(len(queries), 2000)]))
    proc, base = start_server(url, schema)
    try:
        floor = open_loop_load([f"{base}/bench/noop"] * (args.requests + 50), args.rate)
        load = open_loop_load([f"{base}/bench/pop?{q}" for q in queries], args.rate, warmup=100)
    finally:
        stop_server(proc)
    pop = summary(load["latencies_ms"])
    base_s = summary(floor["latencies_ms"])
    res = {
        "backend": backend, "customers": size, "interactions": size * args.per_customer,
        "seed_s": round(seed_s, 1), "rate_per_s": args.rate,
        "identify_card_http": pop, "failures": load["failures"],
        "http_floor_baseline": base_s,
        "ratio_median_vs_http_floor": round(pop["median_ms"] / base_s["median_ms"], 2),
        "identify_card_in_process": inproc,
    }
    print(f"# {res}", file=sys.stderr, flush=True)
    if schema and not args.keep:
        asyncio.run(Database(url, schema=schema).drop_schema())
        SEED_LOG.write_text(json.dumps({k: v for k, v in seed_log().items() if k != key}))
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--per-customer", type=int, default=10)
    ap.add_argument("--rate", type=float, default=200.0, help="requests per second (open loop)")
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--keep", action="store_true", help="keep the PostgreSQL schemas")
    ap.add_argument("--reuse", action="store_true",
                    help="measure databases seeded by an earlier --keep run instead of seeding again")
    ap.add_argument("--out", default="crm_lookup")
    args = ap.parse_args()
    runs = [run_one(b, int(s), args) for s in args.sizes.split(",") for b in args.backends.split(",")]
    by = {(r["backend"], r["customers"]): r for r in runs}

    def pick(backend: str, key: str) -> float:
        r = by.get((backend, 1_000_000)) or by.get((backend, max(s for b, s in by if b == backend)))
        return r["identify_card_http"][key] if key != "seed_s" else r["seed_s"]  # type: ignore[index]

    headline = {
        "sqlite_1m_median_ms": pick("sqlite", "median_ms"),
        "sqlite_1m_p99_ms": pick("sqlite", "p99_ms"),
        "postgres_1m_median_ms": pick("postgres", "median_ms"),
        "postgres_1m_p99_ms": pick("postgres", "p99_ms"),
        "seed_1m_s": pick("sqlite", "seed_s"),
    }
    write_result(args.out, {
        "headline": headline, "git_sha": git_sha(),
        "method": "open-loop HTTP GET from a separate process, timed at the client from each "
                  "request's scheduled send time; identify + customer_card per request",
        "runs": runs,
    })


if __name__ == "__main__":
    main()
