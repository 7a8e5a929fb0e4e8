"""Reports over 1M interactions, on SQLite and PostgreSQL (issue 16; target: each ≤ 1 s).

The databases are seeded beforehand with `callcenter demo seed --customers 100000 --interactions 10`
(~1M interactions over two years; `--seed` here does it if missing): SQLite in
var/bench/reports_1m.db, PostgreSQL in schema `bench_reports` of the test database. The bench
creates the report tables if the seeded schema predates them, runs the backfill (`rebuild`,
timed) once, then — in this separate process, one request after the other (a report page asks
for one report at a time) — asks for each report `--rounds` times and times it at the caller.
Baseline, same run: the same day-by-day contact figures computed straight from `interactions`
(GROUP BY over the raw rows, no rollup), for one month.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, git_sha, log, pct, write_result  # noqa: E402

PG = os.environ.get("CC_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
SQLITE = ROOT / "var" / "bench" / "reports_1m.db"
SCHEMA = "bench_reports"


def target(backend: str) -> tuple[str, str | None]:
    return (f"sqlite+aiosqlite:///{SQLITE}", None) if backend == "sqlite" else (PG, SCHEMA)


async def prepare(db: Any, force: bool) -> dict[str, Any]:
    """The report tables (if the seeded schema predates them) and the backfill, once."""
    from sqlalchemy import text

    import crm_core.reports_models as rm
    from crm_core.reports import rebuild

    tables = [t for name, t in rm.Base.metadata.tables.items() if name.startswith("report_")]
    def create(c: Any) -> None:  # a report table of an older layout is dropped and made again
        from sqlalchemy import inspect

        have = set(inspect(c).get_table_names())
        for t in tables:
            cols = {col["name"] for col in inspect(c).get_columns(t.name)} if t.name in have else None
            if cols is not None and cols != set(t.columns.keys()):
                t.drop(c)
            t.create(c, checkfirst=True)

    async with db.engine.begin() as conn:
        await conn.run_sync(create)
        have = (await conn.execute(text("SELECT count(*) FROM report_contacts_day"))).scalar_one()
        n = (await conn.execute(text("SELECT count(*) FROM interactions"))).scalar_one()
    out: dict[str, Any] = {"interactions": int(n)}
    out.update(await agents_and_time(db))
    if have and not force and not out.get("agents_added"):
        log("rollup already built")
        return out
    t0 = time.perf_counter()
    res = await rebuild(db)
    out.update(rebuild_s=round(time.perf_counter() - t0, 1), rollup_rows=res["rollup_rows"])
    log(f"rebuild: {out}")
    return out


AGENTS, TEAMS, AGENT_DAYS = 50, 5, 90


async def agents_and_time(db: Any) -> dict[str, Any]:
    """The seed has no agents: add 50 (5 teams), give the answered interactions to them
    (agent = id mod 50), and generate 90 days of agent time (8-hour shifts: ready, busy,
    wrap-up, not ready with a reason) so the occupancy report reads a realistic table. Once."""
    import random

    from sqlalchemy import text

    from crm_core.reports import split_slots

    async with db.engine.connect() as conn:
        have = (
            await conn.execute(text("SELECT count(*) FROM users WHERE username LIKE 'bench_agent%'"))
        ).scalar_one()
    if have:
        return {"agents": AGENTS}
    t0 = time.perf_counter()
    now = datetime.now(UTC)
    async with db.engine.begin() as conn:
        for t in range(TEAMS):
            await conn.execute(
                text("INSERT INTO teams (name, created_at) VALUES (:n, :c)"),
                {"n": f"team{t}", "c": _ts(db, now)},
            )
        for a in range(AGENTS):
            await conn.execute(
                text(
                    "INSERT INTO users (username, display_name, password_hash, roles, disabled, "
                    "capacity_voice, capacity_chat, capacity_email, created_at, updated_at) "
                    "VALUES (:u, :u, 'x', "
                    + (":r" if db.is_sqlite else "CAST(:r AS jsonb)")
                    + ", :f, 1, 2, 2, :c, :c)"
                ),
                {"u": f"bench_agent{a:02d}", "r": '["agent"]', "f": False, "c": _ts(db, now)},
            )
        ids = [
            r[0]
            for r in (
                await conn.execute(
                    text("SELECT id FROM users WHERE username LIKE 'bench_agent%' ORDER BY username")
                )
            ).all()
        ]
        teams = [
            r[0]
            for r in (
                await conn.execute(text("SELECT id FROM teams WHERE name LIKE 'team%' ORDER BY name"))
            ).all()
        ]
        for k, uid in enumerate(ids):
            await conn.execute(
                text("INSERT INTO team_members (team_id, user_id) VALUES (:t, :u)"),
                {"t": teams[k % TEAMS], "u": uid},
            )
        case = "CASE (id % 50) " + " ".join(f"WHEN {k} THEN {uid}" for k, uid in enumerate(ids)) + " END"
        await conn.execute(text(f"UPDATE interactions SET agent_id = {case} WHERE answered_at IS NOT NULL"))
        rng = random.Random(5)
        rows = []
        day0 = now.replace(hour=8, minute=0, second=0, microsecond=0) - timedelta(days=AGENT_DAYS)
        for k, uid in enumerate(ids):
            team = f"team{k % TEAMS}"
            for d in range(AGENT_DAYS):
                t = day0 + timedelta(days=d, minutes=rng.randint(-60, 60))
                end = t + timedelta(hours=8)
                while t < end:
                    state = rng.choices(["ready", "busy", "wrap_up", "not_ready"], [25, 55, 10, 10])[0]
                    reason = (
                        rng.choice(["break", "lunch", "training", "meeting"]) if state == "not_ready" else ""
                    )
                    nxt = min(end, t + timedelta(seconds=rng.randint(60, 900)))
                    for slot, secs in split_slots(t, nxt):
                        rows.append(
                            {"slot": slot, "a": uid, "team": team, "s": state, "r": reason, "sec": secs}
                        )
                    t = nxt
        sql = text(
            "INSERT INTO report_agent_time (slot, agent_id, team, state, reason, seconds) "
            "VALUES (:slot, :a, :team, :s, :r, :sec) ON CONFLICT (slot, agent_id, team, state, reason) "
            "DO UPDATE SET seconds = report_agent_time.seconds + excluded.seconds"
        )
        for i in range(0, len(rows), 20000):
            await conn.execute(sql, rows[i : i + 20000])
    log(f"agents, assignment and {len(rows)} agent-time periods in {time.perf_counter() - t0:.1f} s")
    return {"agents": AGENTS, "agents_added": True, "agent_time_periods": len(rows)}


def _ts(db: Any, t: datetime) -> Any:
    return t.replace(tzinfo=None).isoformat(sep=" ") if db.is_sqlite else t


def _cases(now: datetime) -> list[tuple[str, Any]]:
    from crm_core import reports as R

    today = now.date()
    y = today - timedelta(days=1)
    return [
        ("yesterday_15m", lambda db: R.contact_report(db, R.Range(y, y, "America/New_York", "15m"))),
        (
            "week_hourly_by_queue",
            lambda db: R.contact_report(
                db, R.Range(today - timedelta(days=7), y, "Europe/Paris", "hour"), by="queue"
            ),
        ),
        (
            "month_daily_by_agent",
            lambda db: R.contact_report(db, R.Range(today - timedelta(days=31), y, "UTC", "day"), by="agent"),
        ),
        (
            "month_daily_by_tier_team_scope",
            lambda db: R.contact_report(
                db,
                R.Range(today - timedelta(days=31), y, "UTC", "day"),
                by="tier",
                scope=R.Scope(queues=frozenset({"billing", "support"}), teams=frozenset({"north"})),
            ),
        ),
        (
            "year_weekly_by_channel",
            lambda db: R.contact_report(
                db, R.Range(today - timedelta(days=365), y, "America/New_York", "week"), by="channel"
            ),
        ),
        (
            "year_daily_new_york",
            lambda db: R.contact_report(
                db, R.Range(today - timedelta(days=365), y, "America/New_York", "day")
            ),
        ),
        (
            "year_daily_by_agent",
            lambda db: R.contact_report(
                db, R.Range(today - timedelta(days=365), y, "UTC", "day"), by="agent"
            ),
        ),
        (
            "year_dispositions_paris",
            lambda db: R.contact_report(
                db,
                R.Range(today - timedelta(days=365), y, "Europe/Paris", "day"),
                by="disposition",
                totals=True,
            ),
        ),
        (
            "two_years_tier_service",
            lambda db: R.tier_service(db, R.Range(today - timedelta(days=730), y, "UTC", "day")),
        ),
        (
            "month_dispositions",
            lambda db: R.contact_report(
                db, R.Range(today - timedelta(days=31), y, "UTC", "day"), by="disposition", totals=True
            ),
        ),
        (
            "quarter_tickets",
            lambda db: R.ticket_report(db, R.Range(today - timedelta(days=90), y, "UTC", "day"), now),
        ),
        ("customers_at_risk", lambda db: R.customers_at_risk(db, now)),
        ("customer_distribution", lambda db: R.customer_distribution(db)),
        (
            "month_occupancy",
            lambda db: R.agent_report(db, R.Range(today - timedelta(days=31), y, "UTC", "day")),
        ),
        (
            "month_not_ready",
            lambda db: R.not_ready_report(db, R.Range(today - timedelta(days=31), y, "UTC", "day")),
        ),
        (
            "quarter_occupancy_by_team_weekly",
            lambda db: R.agent_report(
                db, R.Range(today - timedelta(days=90), y, "Europe/Paris", "week"), by="team"
            ),
        ),
    ]


async def baseline(db: Any, now: datetime) -> float:
    """One month of day-by-day volume, answered and mean wait, GROUP BY over raw interactions."""
    from sqlalchemy import text

    a = now - timedelta(days=31)
    if db.is_sqlite:
        sql = (
            "SELECT substr(created_at, 1, 10), count(*), sum(answered_at IS NOT NULL), "
            "avg((julianday(answered_at) - julianday(queued_at)) * 86400) FROM interactions "
            "WHERE created_at >= :a GROUP BY 1"
        )
        arg: Any = a.replace(tzinfo=None).isoformat(sep=" ")
    else:
        sql = (
            "SELECT date_trunc('day', created_at), count(*), count(answered_at), "
            "avg(extract(epoch from answered_at - queued_at)) FROM interactions "
            "WHERE created_at >= :a GROUP BY 1"
        )
        arg = a
    t0 = time.perf_counter()
    async with db.engine.connect() as conn:
        (await conn.execute(text(sql), {"a": arg})).all()
    return time.perf_counter() - t0


async def run_backend(backend: str, rounds: int, force: bool) -> dict[str, Any]:
    from crm_core.db import Database

    url, schema = target(backend)
    db = Database(url, schema=schema)
    try:
        info = await prepare(db, force)
        from sqlalchemy import text

        async with db.engine.connect() as conn:
            last = (await conn.execute(text("SELECT max(created_at) FROM interactions"))).scalar_one()
        if isinstance(last, str):
            last = datetime.fromisoformat(last)
        now = (last if last.tzinfo else last.replace(tzinfo=UTC)) + timedelta(seconds=1)
        per: dict[str, dict[str, float]] = {}
        every: list[float] = []
        for name, fn in _cases(now):
            await fn(db)  # warm: statement caches, pages in memory
            lat = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                rep = await fn(db)
                lat.append(time.perf_counter() - t0)
            every += lat
            per[name] = {
                "p50_s": round(pct(lat, 50), 4),
                "p95_s": round(pct(lat, 95), 4),
                "max_s": round(max(lat), 4),
                "rows": len(rep["rows"]),
            }
            log(f"{backend} {name}: {per[name]}")
        base = [await baseline(db, now) for _ in range(max(3, rounds // 3))]
        month = [v for k, v in per.items() if k == "month_daily_by_agent"][0]
        return {
            **info,
            "reports": per,
            "p50_s": round(pct(every, 50), 4),
            "p95_s": round(pct(every, 95), 4),
            "max_s": round(max(every), 4),
            "baseline_raw_month_s": round(pct(base, 50), 4),
            "baseline_ratio": round(pct(base, 50) / max(month["p50_s"], 1e-6), 1),
        }
    finally:
        await db.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--rebuild", action="store_true", help="run the backfill again even if built")
    args = ap.parse_args()
    load = os.getloadavg()
    out: dict[str, Any] = {
        "bench": "reports",
        "git_sha": git_sha(),
        "rounds": args.rounds,
        "load_avg_start": [round(x, 2) for x in load],
        "cpus": os.cpu_count(),
    }
    for b in args.backends.split(","):
        out[b] = asyncio.run(run_backend(b, args.rounds, args.rebuild))
    out["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    out["headline"] = {
        f"{'postgres' if b == 'postgres' else 'sqlite'}_1m_p95_s": out[b]["p95_s"]
        for b in args.backends.split(",")
    }
    out["notes"] = (
        f"p95 over every report call ({len(_cases(datetime.now(UTC)))} reports x rounds), "
        "timed at the caller, one at a time; "
        "the machine is shared with other engineers' work (load averages above)."
    )
    print(json.dumps(out, indent=1))
    if set(args.backends.split(",")) == {"sqlite", "postgres"}:
        write_result("reports", out)


if __name__ == "__main__":
    main()
