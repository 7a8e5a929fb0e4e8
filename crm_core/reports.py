"""Reports (issue 16): rollups kept up to date as interactions end, and the reports read from them.

Everything is SQL aggregation: an interaction that ends adds its counters to one rollup row
(`INSERT … SELECT … ON CONFLICT DO UPDATE`, the same statement on SQLite and PostgreSQL), the
backfill runs that statement over every ended interaction at once, and a report is one
`GROUP BY` over the rollup rows of its range. Definitions: docs/reports.md.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import bindparam, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

import crm_core.reports_models  # noqa: F401  (its tables belong to the schema)

SLOT_S = 900  # a rollup slot: 15 minutes
SL_THRESHOLD_S = 20  # answered within this many seconds of queueing: within service level
SHORT_ABANDON_S = 5  # abandoned sooner than this: a short abandon (not counted as offered)
REPEAT_WINDOW_DAYS = 7  # a contact within this many days after the customer's previous one: a repeat
INTERVALS = {"15m": 900, "hour": 3600, "day": 86400, "week": 7 * 86400}
DIMENSIONS = ("queue", "agent", "team", "channel", "tier", "disposition")
TERMINAL = ("wrapup_done", "abandoned", "failed")
TIER_RANK = {"regular": 1, "key": 2, "vip": 3}
MEASURES = (
    "contacts",
    "offered",
    "answered",
    "answered_in_sl",
    "abandoned",
    "short_abandoned",
    "wait_answered_s",
    "handled",
    "talk_s",
    "wrap_s",
    "transferred",
    "repeats",
    "fcr",
    "csat_sum",
    "csat_n",
    "csat_good",
)
KEYS = ("slot", "queue", "agent_id", "team", "channel", "tier", "disposition")
HOUR = "report_contacts_hour"  # per hour, no disposition; read when the offsets are whole hours
DAY = "report_contacts_day"  # per UTC day: queue, team, channel, tier
DAY_AGENT = "report_contacts_agent_day"  # per UTC day: agent (with team and queue, for the scope)
DAY_DISPOSITION = "report_contacts_disposition_day"  # per UTC day: disposition (with team, queue)
TABLES = {
    "report_contacts": (SLOT_S, KEYS),
    HOUR: (3600, KEYS[:-1]),
    DAY: (86400, ("shift", "slot", "queue", "team", "channel", "tier")),
    DAY_AGENT: (86400, ("slot", "agent_id", "team", "queue")),
    DAY_DISPOSITION: (86400, ("slot", "disposition", "team", "queue")),
}
# report_contacts_day is kept four times, its days starting at 00:00, 06:00, 12:00 and 18:00 UTC
# (`shift`, in hours): a report reads the one whose day starts nearest its local midnight
SHIFTS = (0, 6, 12, 18)
DAY_TABLE_FOR = {
    None: DAY,
    "queue": DAY,
    "team": DAY,
    "channel": DAY,
    "tier": DAY,
    "agent": DAY_AGENT,
    "disposition": DAY_DISPOSITION,
}


log = logging.getLogger(__name__)


class ReportError(ValueError):
    """A report asked for with a bad parameter (unknown interval, time zone, range)."""


# ============================================================================ dialect helpers
def _secs(dialect: str, later: str, earlier: str) -> str:
    """Seconds from `earlier` to `later` (columns), as a float, the same on both databases."""
    if dialect == "sqlite":
        return f"round((julianday({later}) - julianday({earlier})) * 86400.0, 3)"
    return f"extract(epoch from ({later} - {earlier}))"


def _slot(dialect: str, col: str, size: int = SLOT_S) -> str:
    if dialect == "sqlite":
        return f"(CAST(strftime('%s', {col}) AS INTEGER) / {size})"
    return f"CAST(floor(extract(epoch from {col}) / {size}) AS INTEGER)"


def _days_before(dialect: str, col: str, days: int) -> str:
    if dialect == "sqlite":
        return f"strftime('%Y-%m-%d %H:%M:%f', {col}, '-{days} days')"
    return f"({col} - interval '{days} days')"


_ROLLUP_CACHE: dict[tuple[str, str, int, str], str] = {}


def rollup_sql(dialect: str, where: str, sign: int = 1, table: str = "report_contacts") -> str:
    """INSERT the counters of the ended interactions `i` matching `where` into `table`,
    adding to existing rows (`sign` -1 takes an interaction's contribution out again)."""
    key = (dialect, where, sign, table)
    size, table_keys = TABLES.get(table, (SLOT_S, KEYS))
    if key in _ROLLUP_CACHE:
        return _ROLLUP_CACHE[key]
    wait = _secs(dialect, "i.answered_at", "i.queued_at")
    abandon_wait = _secs(dialect, "i.ended_at", "i.queued_at")
    queued = "(i.queued_at IS NOT NULL AND i.direction = 'inbound')"  # callbacks are outbound
    answered = "i.answered_at IS NOT NULL"
    abandoned = f"(i.state = 'abandoned' AND {queued})"
    transferred = (
        "EXISTS (SELECT 1 FROM interaction_events e WHERE e.interaction_id = i.id AND e.kind = 'transfer')"
    )
    repeat = (
        f"EXISTS (SELECT 1 FROM interactions p WHERE p.customer_id = i.customer_id"
        f" AND p.created_at < i.created_at"
        f" AND p.created_at >= {_days_before(dialect, 'i.created_at', REPEAT_WINDOW_DAYS)})"
    )
    one = f"{sign}"
    measures = {
        "contacts": one,
        "offered": f"CASE WHEN {queued} THEN {one} ELSE 0 END",
        "answered": f"CASE WHEN {answered} THEN {one} ELSE 0 END",
        "answered_in_sl": f"CASE WHEN {answered} AND {queued} AND {wait} <= :sl THEN {one} ELSE 0 END",
        "abandoned": f"CASE WHEN {abandoned} THEN {one} ELSE 0 END",
        "short_abandoned": f"CASE WHEN {abandoned} AND {abandon_wait} < :short THEN {one} ELSE 0 END",
        "wait_answered_s": f"CASE WHEN {answered} AND {queued} THEN {one} * {wait} ELSE 0 END",
        "handled": f"CASE WHEN {answered} AND i.ended_at IS NOT NULL THEN {one} ELSE 0 END",
        "talk_s": f"CASE WHEN {answered} AND i.ended_at IS NOT NULL THEN {one} * "
        f"{_secs(dialect, 'i.ended_at', 'i.answered_at')} ELSE 0 END",
        "wrap_s": f"CASE WHEN {answered} AND i.wrapup_done_at IS NOT NULL AND i.ended_at IS NOT NULL "
        f"THEN {one} * {_secs(dialect, 'i.wrapup_done_at', 'i.ended_at')} ELSE 0 END",
        "transferred": f"CASE WHEN {answered} AND {transferred} THEN {one} ELSE 0 END",
        "repeats": f"CASE WHEN i.customer_id IS NOT NULL AND {repeat} THEN {one} ELSE 0 END",
        "fcr": f"CASE WHEN {answered} AND i.disposition_code = 'resolved' AND NOT {transferred} "
        f"AND NOT (i.customer_id IS NOT NULL AND {repeat}) THEN {one} ELSE 0 END",
        "csat_sum": f"{one} * COALESCE(i.csat_score, 0)",
        "csat_n": f"CASE WHEN i.csat_score IS NOT NULL THEN {one} ELSE 0 END",
        "csat_good": f"CASE WHEN i.csat_score >= 4 THEN {one} ELSE 0 END",
    }
    keys = {
        "slot": _slot(dialect, "i.created_at", size),
        "queue": "COALESCE(i.queue, '')",
        "agent_id": "COALESCE(i.agent_id, 0)",
        "team": (
            "COALESCE((SELECT min(t.name) FROM team_members tm JOIN teams t ON t.id = tm.team_id"
            " WHERE tm.user_id = i.agent_id), '')"
        ),
        "channel": "i.channel",
        "tier": "COALESCE(c.tier, '')",
        "disposition": "COALESCE(i.disposition_code, '')",
    }
    if table == "":  # the counters of each matching interaction, at 15-minute grain (no INSERT)
        sel = ", ".join([*(f"{keys[k]} AS {k}" for k in KEYS), *(f"{measures[m]} AS {m}" for m in MEASURES)])
        sql = (
            f"SELECT {sel} FROM interactions i LEFT JOIN customers c ON c.id = i.customer_id "
            f"WHERE i.state IN ('wrapup_done', 'abandoned', 'failed') AND ({where})"
        )
        _ROLLUP_CACHE[key] = sql
        return sql
    cols = ", ".join([*table_keys, *MEASURES])
    sel = ", ".join([*(f"{keys[k]} AS {k}" for k in table_keys), *(f"SUM({measures[m]})" for m in MEASURES)])
    upd = ", ".join(f"{m} = {table}.{m} + excluded.{m}" for m in MEASURES)
    sql = (
        f"INSERT INTO {table} ({cols}) SELECT {sel} FROM interactions i "
        f"LEFT JOIN customers c ON c.id = i.customer_id "
        f"WHERE i.state IN ('wrapup_done', 'abandoned', 'failed') AND ({where}) "
        f"GROUP BY {', '.join(str(n + 1) for n in range(len(table_keys)))} "
        f"ON CONFLICT ({', '.join(table_keys)}) DO UPDATE SET {upd}"
    )
    _ROLLUP_CACHE[key] = sql
    return sql


_UPSERTS: dict[str, str] = {}


def _upsert_sql(table: str, keys: Sequence[str]) -> str:
    if table not in _UPSERTS:
        cols = [*keys, *MEASURES]
        upd = ", ".join(f"{m} = {table}.{m} + excluded.{m}" for m in MEASURES)
        _UPSERTS[table] = (
            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)}) "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {upd}"
        )
    return _UPSERTS[table]


def _params() -> dict[str, Any]:
    return {"sl": SL_THRESHOLD_S, "short": SHORT_ABANDON_S}


def rollup_interaction_sync(s: Session, interaction_id: int, sign: int = 1) -> None:
    """Add (or with sign=-1 take out) one ended interaction's counters; in the caller's
    transaction (the interaction's changes must be flushed first)."""
    dialect = s.get_bind().dialect.name
    try:
        with s.begin_nested():  # a savepoint: a failed rollup never stops the interaction's own write
            row = (
                s.execute(
                    text(rollup_sql(dialect, "i.id = :iid", sign, "")), {**_params(), "iid": interaction_id}
                )
                .mappings()
                .first()
            )
            if row is None:  # not ended
                return
            for table, (size, keys) in TABLES.items():
                values = {**{k: row[k] for k in keys if k != "shift"}, **{m: row[m] for m in MEASURES}}
                for shift in SHIFTS if "shift" in keys else (0,):
                    values.update(slot=(row["slot"] * SLOT_S - shift * 3600) // size, shift=shift)
                    s.execute(text(_upsert_sql(table, keys)), values)
    except SQLAlchemyError:
        log.exception(
            "report rollup of interaction %s failed (`callcenter reports rebuild` recomputes it)",
            interaction_id,
        )


# ============================================================================ pending rollups
# An interaction that ends only queues its id in report_pending (one statement in its own
# transaction); fold_pending adds the counters of many queued interactions to the rollups at
# once: in the background (mark_pending's caller schedules it) and before every report read.
FOLD_BATCH = 200  # interactions folded per transaction
FOLD_AGE_S = 20.0  # the background folds interactions queued at least this long ago (a survey
# score arriving soon after the end then changes a queued interaction: nothing to take out)
_MARK_SQL = (
    "INSERT INTO report_pending (interaction_id, marked) VALUES (:iid, :at) "
    "ON CONFLICT (interaction_id) DO NOTHING RETURNING interaction_id"
)


def mark_pending_sync(s: Session, interaction_id: int) -> bool:
    """Queue an ended interaction for the rollups, in the caller's transaction. False when it
    was queued already (its counters are not in the rollups yet)."""
    return s.execute(text(_MARK_SQL), {"iid": interaction_id, "at": time.time()}).first() is not None


def change_ended_sync(s: Session, interaction_id: int) -> None:
    """An ended interaction is about to change (disposition, CSAT score): if its counters are
    in the rollups already, take them out now (as they are before the change) and queue it to
    be added again as it is after; if it is still queued, nothing to do."""
    if mark_pending_sync(s, interaction_id):
        s.flush()
        rollup_interaction_sync(s, interaction_id, -1)


def _ids_param(sql: str) -> Any:
    return text(sql).bindparams(bindparam("ids", expanding=True))


def fold_pending_sync(conn: Any, limit: int = FOLD_BATCH, older_than: float | None = None) -> int:
    """Fold up to `limit` queued interactions (queued before `older_than`, epoch seconds, when
    given) into the rollups, in the caller's transaction; returns how many."""
    return _fold_sync(conn, limit, older_than)[1]


def _fold_sync(conn: Any, limit: int, older_than: float | None) -> tuple[int, int]:
    """fold_pending_sync: (queued interactions seen, folded here). Exactly once: the
    queue rows are deleted in the same transaction, and only those this transaction deleted
    are counted (on PostgreSQL the interactions are locked first, as their writers lock them,
    so a second folder waits and then finds them gone; SQLite has one writer at a time)."""
    dialect = (conn.get_bind() if isinstance(conn, Session) else conn).dialect.name
    where, params = "", {"n": limit}
    if older_than is not None:
        where, params["old"] = " WHERE marked <= :old", older_than
    ids = list(
        conn.execute(
            text(f"SELECT interaction_id FROM report_pending{where} ORDER BY interaction_id LIMIT :n"), params
        ).scalars()
    )
    if not ids:
        return 0, 0
    seen = len(ids)
    if dialect != "sqlite":
        lock = "SELECT id FROM interactions WHERE id IN :ids ORDER BY id FOR UPDATE"
        conn.execute(_ids_param(lock), {"ids": ids})
    ids = list(
        conn.execute(
            _ids_param("DELETE FROM report_pending WHERE interaction_id IN :ids RETURNING interaction_id"),
            {"ids": ids},
        ).scalars()
    )
    if not ids:
        return seen, 0
    sql = _ids_param(rollup_sql(dialect, "i.id IN :ids", 1, ""))
    rows = conn.execute(sql, {**_params(), "ids": ids}).mappings().all()
    for table, (size, keys) in TABLES.items():
        sums: dict[tuple[Any, ...], list[Any]] = {}
        for row in rows:
            for shift in SHIFTS if "shift" in keys else (0,):
                slot = (row["slot"] * SLOT_S - shift * 3600) // size
                key = tuple(slot if k == "slot" else shift if k == "shift" else row[k] for k in keys)
                acc = sums.get(key)
                if acc is None:
                    sums[key] = [row[m] for m in MEASURES]
                else:
                    for n, m in enumerate(MEASURES):
                        acc[n] += row[m]
        conn.execute(  # one statement, the rows in key order (two folders never lock crosswise)
            text(_upsert_sql(table, keys)),
            [
                {**dict(zip(keys, k, strict=True)), **dict(zip(MEASURES, v, strict=True))}
                for k, v in sorted(sums.items())
            ],
        )
    return seen, len(ids)


def _fold_on(writer: Any, limit: int, older_than: float | None) -> tuple[int, int]:
    with writer.connect() as conn:
        conn.connection.driver_connection.execute("PRAGMA busy_timeout = 5000")
        with conn.begin():  # the writer engine begins with BEGIN IMMEDIATE (crm_core/db.py)
            return _fold_sync(conn, limit, older_than)


async def fold_pending(db: Any, *, older_than: float | None = None, limit: int = FOLD_BATCH) -> int:
    """Fold the queued interactions into the rollups (`limit` per transaction); returns how
    many. A report reads after this, so it includes every interaction ended before the read.
    On a SQLite file it runs on the store's batched writer (no second writer fighting for the
    write lock). A failure is logged and left queued (the next fold retries it)."""
    total = 0
    writes = getattr(db, "group_commit", None)
    writer = db.sync_writer() if hasattr(db, "sync_writer") else None
    while True:
        try:
            if writes is not None and getattr(writes, "writer", None) is not None:
                seen, n = await writes.run(lambda s: _fold_sync(s, limit, older_than))
            elif writer is not None:  # no store writes here yet: BEGIN IMMEDIATE in a thread
                seen, n = await asyncio.to_thread(_fold_on, writer, limit, older_than)
            else:
                async with db.engine.begin() as conn:
                    seen, n = await conn.run_sync(_fold_sync, limit, older_than)
        except SQLAlchemyError:
            log.exception("folding queued interactions into the report rollups failed (retried later)")
            return total
        total += n
        if seen < limit and n == seen:  # all there was (some folded by another folder: look again)
            return total


async def rebuild(db: Any) -> dict[str, int]:
    """Recompute report_contacts from every ended interaction (the backfill), and take a
    customer snapshot; in one transaction."""
    dialect = "sqlite" if db.is_sqlite else "postgresql"
    async with db.engine.begin() as conn:
        if not db.is_sqlite:  # an interaction ending meanwhile waits, then is queued to be folded
            await conn.execute(text("LOCK TABLE report_pending IN SHARE ROW EXCLUSIVE MODE"))
        await conn.execute(text("DELETE FROM report_pending"))  # every ended interaction is counted below
        for table in TABLES:
            await conn.execute(text(f"DELETE FROM {table}"))
        await conn.execute(text(rollup_sql(dialect, "1 = 1")), _params())
        for table, (size, keys) in TABLES.items():  # the coarser rollups: sums of the 15-minute one
            if table == "report_contacts":
                continue
            dims = ", ".join(k for k in keys if k not in ("shift", "slot"))
            for shift in SHIFTS if "shift" in keys else (0,):
                coarse = f"(CAST(slot AS BIGINT) * {SLOT_S} - {shift * 3600}) / {size}"
                head = ("shift, " if "shift" in keys else "") + "slot"
                await conn.execute(
                    text(
                        f"INSERT INTO {table} ({head}, {dims}, {', '.join(MEASURES)}) SELECT "
                        f"{str(shift) + ', ' if 'shift' in keys else ''}{coarse}, {dims}, "
                        f"{', '.join(f'SUM({m})' for m in MEASURES)} FROM report_contacts WHERE slot >= 0 "
                        f"GROUP BY {coarse}, {dims}"
                    )
                )
        await conn.execute(text("DELETE FROM report_agent_time_day"))  # agent time: days from the slots
        await conn.execute(
            text(
                f"INSERT INTO report_agent_time_day (slot, agent_id, team, state, reason, seconds) "
                f"SELECT slot / {86400 // SLOT_S}, agent_id, team, state, reason, SUM(seconds) "
                "FROM report_agent_time "
                f"WHERE slot >= 0 GROUP BY slot / {86400 // SLOT_S}, agent_id, team, state, reason"
            )
        )
        rows = (
            await conn.execute(text("SELECT count(*), COALESCE(sum(contacts), 0) FROM report_contacts"))
        ).one()
    moved = await snapshot_customers(db, datetime.now(UTC))
    return {"rollup_rows": int(rows[0]), "interactions": int(rows[1]), "customer_moves": moved}


# ============================================================================ agent time
def split_slots(start: datetime, end: datetime, size: int = SLOT_S) -> list[tuple[int, float]]:
    """The seconds of [start, end) falling in each slot of `size` seconds (a period crossing
    midnight, or any slot boundary, is split)."""
    a, b = start.timestamp(), end.timestamp()
    out: list[tuple[int, float]] = []
    while a < b:
        slot = int(a // size)
        stop = min(b, (slot + 1) * size)
        out.append((slot, round(stop - a, 3)))
        a = stop
    return out


_AGENT_TIME_SQL = (
    "INSERT INTO report_agent_time (slot, agent_id, team, state, reason, seconds) "
    "VALUES (:slot, :agent_id, :team, :state, :reason, :seconds) "
    "ON CONFLICT (slot, agent_id, team, state, reason) DO UPDATE SET "
    "seconds = report_agent_time.seconds + excluded.seconds"
)


async def add_agent_time(
    db: Any, agent_id: int, team: str | None, state: str, reason: str | None, start: datetime, end: datetime
) -> None:
    """Record that an agent was in `state` (with `reason` when not ready) from start to end:
    per 15-minute slot, and per UTC day."""
    if end <= start:
        return
    writes = getattr(db, "group_commit", None)  # the store's batched writer (crm_core/interactions.py)
    if writes is not None:
        # with the interactions' writes: one transaction for the batch instead of one (and a
        # second writer fighting over SQLite's write lock) for every agent state change
        await writes.run(lambda s: _agent_time_sync(s, agent_id, team, state, reason, start, end))
        return
    async with db.engine.begin() as conn:
        for table, size in (("report_agent_time", SLOT_S), ("report_agent_time_day", 86400)):
            await conn.execute(
                text(_AGENT_TIME_SQL.replace("report_agent_time", table)),
                [
                    {
                        "slot": slot,
                        "agent_id": agent_id,
                        "team": team or "",
                        "state": state,
                        "reason": reason or "",
                        "seconds": secs,
                    }
                    for slot, secs in split_slots(start, end, size)
                ],
            )


AGENT_TIME_ROWS = "crm_core.reports.agent_time"  # Session.info key: the batch's agent time


def _agent_time_sync(s: Session, agent_id: int, team: str | None, state: str, reason: str | None,
                     start: datetime, end: datetime) -> None:
    """add_agent_time on the group commit's session: summed with the rest of the batch's agent
    time and written by agent_time_flush_sync (one statement per table for the whole batch)."""
    acc: dict[str, dict[tuple[Any, ...], float]] = s.info.setdefault(AGENT_TIME_ROWS, {})
    for table, size in (("report_agent_time", SLOT_S), ("report_agent_time_day", 86400)):
        rows = acc.setdefault(table, {})
        for slot, secs in split_slots(start, end, size):
            key = (slot, agent_id, team or "", state, reason or "")
            rows[key] = rows.get(key, 0.0) + secs


def agent_time_flush_sync(s: Session) -> None:
    """Write the batch's agent time (the group commit calls this after its writes)."""
    acc: dict[str, dict[tuple[Any, ...], float]] = s.info.pop(AGENT_TIME_ROWS, {})
    for table, rows in acc.items():
        if rows:
            s.execute(
                text(_AGENT_TIME_SQL.replace("report_agent_time", table)),
                [{"slot": k[0], "agent_id": k[1], "team": k[2], "state": k[3], "reason": k[4], "seconds": v}
                 for k, v in sorted(rows.items())],
            )


# ============================================================================ customer snapshots
async def snapshot_customers(db: Any, now: datetime, *, once: bool = False) -> int:
    """Compare customers with the last snapshot: record who changed tier, loyalty or type
    (report_customer_moves, dated `now`'s UTC day), then store today's distribution. SQL only.
    `once`: not if today's snapshot was taken already (e.g. by another process)."""
    day = int(now.timestamp() // 86400)
    async with db.engine.begin() as conn:
        if (
            once
            and (
                await conn.execute(
                    text("SELECT 1 FROM report_customer_counts WHERE day = :day"), {"day": day}
                )
            ).first()
        ):
            return 0
        changed = (
            "FROM customers c JOIN report_customer_state s ON s.customer_id = c.id "
            "WHERE c.tier <> s.tier OR c.loyalty <> s.loyalty OR c.type <> s.type"
        )
        res = await conn.execute(
            text(
                "INSERT INTO report_customer_moves (day, customer_id, from_tier, to_tier, from_loyalty, "
                "to_loyalty, from_type, to_type) SELECT :day, c.id, s.tier, c.tier, s.loyalty, c.loyalty, "
                f"s.type, c.type {changed}"
            ),
            {"day": day},
        )
        moved = res.rowcount or 0
        await conn.execute(
            text(f"DELETE FROM report_customer_state WHERE customer_id IN (SELECT c.id {changed})")
        )
        await conn.execute(
            text(
                "INSERT INTO report_customer_state (customer_id, tier, loyalty, type) "
                "SELECT c.id, c.tier, c.loyalty, c.type FROM customers c WHERE NOT EXISTS "
                "(SELECT 1 FROM report_customer_state s WHERE s.customer_id = c.id)"
            )
        )
        await conn.execute(text("DELETE FROM report_customer_counts WHERE day = :day"), {"day": day})
        await conn.execute(
            text(
                "INSERT INTO report_customer_counts (day, tier, loyalty, type, customers) "
                "SELECT :day, tier, loyalty, type, count(*) FROM customers GROUP BY tier, loyalty, type"
            ),
            {"day": day},
        )
    return moved


# ============================================================================ ranges and time zones
@dataclass(frozen=True)
class Range:
    """A report's range: local dates [start, end] (inclusive) in time zone `tz`."""

    start: date
    end: date
    tz: str = "UTC"
    interval: str = "hour"

    def zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ReportError(f"unknown time zone {self.tz!r}") from None

    def check(self) -> None:
        if self.interval not in INTERVALS:
            raise ReportError(f"interval must be one of {', '.join(INTERVALS)}")
        if self.end < self.start:
            raise ReportError("the range ends before it starts")
        if (self.end - self.start).days > 800:
            raise ReportError("the range is longer than 800 days")
        self.zone()

    def utc_bounds(self) -> tuple[datetime, datetime]:
        z = self.zone()
        a = datetime.combine(self.start, datetime.min.time(), z).astimezone(UTC)
        b = datetime.combine(self.end + timedelta(days=1), datetime.min.time(), z).astimezone(UTC)
        return a, b

    def slots(self, size: int = SLOT_S) -> tuple[int, int]:
        a, b = self.utc_bounds()
        return int(a.timestamp() // size), -(-int(b.timestamp()) // size)

    def offsets(self, size: int = SLOT_S) -> list[tuple[int, int]]:
        """(first slot, UTC offset in seconds) for each stretch of constant offset in the range."""
        z = self.zone()
        s0, s1 = self.slots(size)
        day = 86400 // size

        def off(slot: int) -> int:
            return int(datetime.fromtimestamp(slot * size, z).utcoffset().total_seconds())  # type: ignore[union-attr]

        out = [(s0, off(s0))]
        s = s0
        while s < s1:
            nxt = min(s + day, s1)
            if off(nxt - 1) != out[-1][1]:
                for k in range(s, nxt):
                    if off(k) != out[-1][1]:
                        out.append((k, off(k)))
            s = nxt
        return out


@dataclass(frozen=True)
class _Plan:
    """Where a report's rows come from, so that long ranges read few rows:
    - `fine`: slot ranges of the fine table (15-minute or hourly), added to their own interval;
    - `days`: whole UTC days from a per-day table, each added to the interval of its start
      (`anchor` 0) or of its end (`anchor` 86399);
    - `moved`: fine slot ranges of the days whose UTC day straddles a local interval boundary
      (local midnight is not UTC midnight), that belong to the other interval: added to their own
      interval (they are in `fine`) and taken out of their day's anchor interval.
    `transitions`: (from epoch, UTC offset) across the range."""

    fine: list[tuple[int, int]]
    days: dict[int, list[tuple[int, int]]]  # anchor -> day ranges
    moved: dict[int, list[tuple[int, int]]]  # anchor of their day -> fine slot ranges
    transitions: list[tuple[int, int]]
    interval: str
    totals: bool
    shift: int = 0  # seconds after UTC midnight at which the per-day table's days start

    def bucket(self, epoch_sql: str) -> str:
        if self.totals:
            return "0"
        t = self.transitions
        if len(t) == 1:
            off = str(t[0][1])
        else:
            arms = " ".join(f"WHEN {epoch_sql} < {t[k + 1][0]} THEN {t[k][1]}" for k in range(len(t) - 1))
            off = f"CASE {arms} ELSE {t[-1][1]} END"
        local = f"({epoch_sql} + {off})"
        if self.interval == "week":  # epoch day 0 was a Thursday: weeks start on Monday
            return f"(({local} / 86400 + 3) / 7)"
        return f"({local} / {INTERVALS[self.interval]})"

    def py_bucket(self, epoch: int) -> int:
        if self.totals:
            return 0
        k = bisect.bisect_right([t for t, _o in self.transitions], epoch) - 1
        local = epoch + self.transitions[max(k, 0)][1]
        if self.interval == "week":
            return (local // 86400 + 3) // 7
        return local // INTERVALS[self.interval]


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for x, y in ranges:
        if out and out[-1][1] == x:
            out[-1] = (out[-1][0], y)
        else:
            out.append((x, y))
    return out


def _plan(rng: Range, size: int, use_days: bool, totals: bool, shifts: Sequence[int] = (0,)) -> _Plan:
    a_dt, b_dt = rng.utc_bounds()
    a, b = int(a_dt.timestamp()), int(b_dt.timestamp())
    transitions = [(slot * size, off) for slot, off in rng.offsets(size)]
    midnight = (-transitions[0][1]) % 86400  # local midnight, in seconds after UTC midnight
    sh = min((h * 3600 for h in shifts), key=lambda x: min(abs(x - midnight), 86400 - abs(x - midnight)))
    plan = _Plan([], {0: [], 86399: []}, {0: [], 86399: []}, transitions, rng.interval, totals, sh)
    fine: list[tuple[int, int]] = []
    if not use_days or not (totals or rng.interval in ("day", "week")):
        fine = [(a // size, -(-b // size))]
    else:
        d0, d1 = -(-(a - sh) // 86400), (b - sh) // 86400  # whole (shifted) days inside the range
        if d0 >= d1:
            fine = [(a // size, -(-b // size))]
        else:
            if a < d0 * 86400 + sh:
                fine.append((a // size, (d0 * 86400 + sh) // size))
            per_day = 86400 // size
            for d in range(d0, d1):
                first, last = d * 86400 + sh, d * 86400 + sh + 86399
                bs, be = plan.py_bucket(first), plan.py_bucket(last)
                if bs == be:
                    plan.days[0].append((d, d + 1))
                    continue
                slots = [(first // size + k, plan.py_bucket(first + k * size)) for k in range(per_day)]
                at_end = sum(1 for _sl, bk in slots if bk == be)
                anchor, home = (86399, be) if at_end * 2 >= per_day else (0, bs)
                plan.days[anchor].append((d, d + 1))
                moved = [(sl, sl + 1) for sl, bk in slots if bk != home]
                plan.moved[anchor].extend(moved)
                fine.extend(moved)
            if b > d1 * 86400 + sh:
                fine.append(((d1 * 86400 + sh) // size, -(-b // size)))
    plan.fine.extend(_merge(sorted(fine)))
    for k in (0, 86399):
        plan.days[k] = _merge(plan.days[k])
        plan.moved[k] = _merge(plan.moved[k])
    return plan


def _ranges_sql(ranges: list[tuple[int, int]]) -> str:
    """Slot ranges as SQL: short ones (a moved hour a day) as one IN list, which both databases
    answer with index lookups, the others as range conditions."""
    short = [str(k) for x, y in ranges if y - x <= 8 for k in range(x, y)]
    conds = [f"(slot >= {x} AND slot < {y})" for x, y in ranges if y - x > 8]
    if short:
        conds.append(f"slot IN ({', '.join(short)})")
    return " OR ".join(conds)


async def _grouped(
    db: Any,
    plan: _Plan,
    fine: str,
    size: int,
    day: str | None,
    dim: str,
    cols: Sequence[str],
    where: str,
    params: dict[str, Any],
) -> list[Any]:
    """SUM(cols) per (interval, dim) over the plan's rows, in one SQL statement."""
    parts = []
    # several parts: their sums as floats, so that PostgreSQL sums floats, not numerics
    n_parts = bool(plan.fine) + sum(bool(plan.days[k]) + bool(plan.moved[k]) for k in (0, 86399) if day)
    fmt = "CAST({s} AS DOUBLE PRECISION)" if n_parts > 1 else "{s}"
    pos = ", ".join(f"{fmt.format(s=f'SUM({c})')} AS {c}" for c in cols)
    neg = ", ".join(f"{fmt.format(s=f'-SUM({c})')} AS {c}" for c in cols)
    if plan.fine:
        parts.append(
            f"SELECT {plan.bucket(f'CAST(slot AS BIGINT) * {size}')} AS b, {dim} AS d, {pos} "
            f"FROM {fine} WHERE ({_ranges_sql(plan.fine)}){where} GROUP BY 1, 2"
        )
    if day is not None:
        sh = plan.shift
        shift_sql = f"shift = {sh // 3600} AND " if sh or day == DAY else ""
        for anchor in (0, 86399):
            if plan.days[anchor]:
                parts.append(
                    f"SELECT {plan.bucket(f'CAST(slot AS BIGINT) * 86400 + {sh + anchor}')} AS b, "
                    f"{dim} AS d, {pos} FROM {day} "
                    f"WHERE {shift_sql}({_ranges_sql(plan.days[anchor])}){where} GROUP BY 1, 2"
                )
            if plan.moved[anchor]:
                day_start = f"((CAST(slot AS BIGINT) * {size} - {sh}) / 86400) * 86400 + {sh + anchor}"
                parts.append(
                    f"SELECT {plan.bucket(day_start)} AS b, {dim} AS d, {neg} FROM {fine} "
                    f"WHERE ({_ranges_sql(plan.moved[anchor])}){where} GROUP BY 1, 2"
                )
    if not parts:
        return []
    # a group left with nothing (a disposition that moved, a moved hour taken out) is no row
    having = " OR ".join(f"abs(SUM({c})) > 0.0001" for c in cols)
    if len(parts) == 1:
        sql = f"{parts[0]} HAVING {having} ORDER BY 1, 2"
    else:
        outer = ", ".join(f"SUM({c}) AS {c}" for c in cols)
        union = " UNION ALL ".join(parts)
        sql = f"SELECT b, d, {outer} FROM ({union}) x GROUP BY b, d HAVING {having} ORDER BY b, d"
    async with db.engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())  # (b, d, *cols) tuples


def bucket_start(interval: str, bucket: int) -> str:
    """The local start of an interval, as text: 2026-11-24 23:45, or a date for days and weeks."""
    if interval == "week":
        return (datetime(1970, 1, 1) + timedelta(days=bucket * 7 - 3)).date().isoformat()
    t = datetime(1970, 1, 1) + timedelta(seconds=bucket * INTERVALS[interval])
    return t.date().isoformat() if interval == "day" else t.strftime("%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class Scope:
    """What a supervisor may see: rows of their teams' queues or of their teams' agents.
    None: everything (admin)."""

    queues: frozenset[str] = frozenset()
    teams: frozenset[str] = frozenset()


def _scope_sql(scope: Scope | None, params: dict[str, Any], agents: bool = False) -> str:
    if scope is None:
        return ""
    parts = []
    if scope.teams:
        names = [f"t{k}" for k in range(len(scope.teams))]
        params.update(dict(zip(names, sorted(scope.teams), strict=True)))
        parts.append(f"team IN ({', '.join(':' + n for n in names)})")
    if scope.queues and not agents:
        names = [f"q{k}" for k in range(len(scope.queues))]
        params.update(dict(zip(names, sorted(scope.queues), strict=True)))
        parts.append(f"queue IN ({', '.join(':' + n for n in names)})")
    return f" AND ({' OR '.join(parts)})" if parts else " AND 1 = 0"


def _ratio(a: float, b: float, digits: int = 4) -> float | None:
    return round(a / b, digits) if b else None


def derive(row: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of a report row from its summed counters (formulas: docs/reports.md)."""
    return derive_values([row.get(k) for k in MEASURES])


def derive_values(values: Sequence[Any]) -> dict[str, Any]:
    """derive() from the counters in MEASURES order (what the report's SQL returns)."""
    (contacts, offered, answered, in_sl, abandoned, short, wait, handled, talk, wrap, transferred,
     _repeats, fcr, csat_sum, csat_n, csat_good) = [float(v or 0) for v in values]  # PostgreSQL: numeric
    counted = offered - short
    return {
        "contacts": int(contacts),
        "offered": int(counted),
        "answered": int(answered),
        "abandoned": int(abandoned - short),
        "short_abandoned": int(short),
        "service_level": _ratio(in_sl, counted),
        "asa_s": _ratio(wait, answered, 1),
        "aht_s": _ratio(talk + wrap, handled, 1),
        "abandon_rate": _ratio(abandoned - short, counted),
        "transferred": int(transferred),
        "transfer_rate": _ratio(transferred, answered),
        "fcr_rate": _ratio(fcr, answered),
        "csat_avg": _ratio(csat_sum, csat_n, 2),
        "csat_pct": _ratio(csat_good, csat_n),
        "csat_responses": int(csat_n),
    }


CONTACT_COLUMNS = (
    "interval",
    "key",
    "contacts",
    "offered",
    "answered",
    "abandoned",
    "short_abandoned",
    "service_level",
    "asa_s",
    "aht_s",
    "abandon_rate",
    "transferred",
    "transfer_rate",
    "fcr_rate",
    "csat_avg",
    "csat_pct",
    "csat_responses",
)
_DIM_SQL = {
    "queue": "queue",
    "agent": "agent_id",
    "team": "team",
    "channel": "channel",
    "tier": "tier",
    "disposition": "disposition",
}


async def contact_report(
    db: Any, rng: Range, by: str | None = None, scope: Scope | None = None, *, totals: bool = False
) -> dict[str, Any]:
    """Contact figures per interval (or for the whole range with totals=True) and per `by`."""
    rng.check()
    if by is not None and by not in _DIM_SQL:
        raise ReportError(f"by must be one of {', '.join(DIMENSIONS)}")
    await fold_pending(db)  # read your writes: every interaction ended so far is counted
    fine, size = "report_contacts", SLOT_S
    if (rng.interval != "15m" or totals) and by != "disposition":
        if all(o % 3600 == 0 for _s, o in rng.offsets(3600)):  # local hours are UTC hours
            fine, size = HOUR, 3600
    plan = _plan(rng, size, True, totals, SHIFTS if DAY_TABLE_FOR[by] == DAY else (0,))
    params: dict[str, Any] = {}
    dim = _DIM_SQL[by] if by else "''"
    rows = await _grouped(
        db, plan, fine, size, DAY_TABLE_FOR[by], dim, MEASURES, _scope_sql(scope, params), params
    )
    out = []
    for r in rows:
        label = "total" if totals else bucket_start(rng.interval, int(r[0]))
        out.append({"interval": label, "key": _key(by, r[1]), **derive_values(r[2:])})
    return {
        "report": "contacts",
        "interval": "total" if totals else rng.interval,
        "tz": rng.tz,
        "from": rng.start.isoformat(),
        "to": rng.end.isoformat(),
        "by": by,
        "columns": list(CONTACT_COLUMNS),
        "rows": out,
    }


def _key(by: str | None, v: Any) -> str:
    if by is None:
        return "all"
    if by == "agent":
        return str(v) if v else "(none)"
    return str(v) if v not in (None, "") else "(none)"


AGENT_COLUMNS = ("interval", "key", "ready_s", "busy_s", "wrap_up_s", "not_ready_s", "occupancy")


async def agent_report(db: Any, rng: Range, by: str = "agent", scope: Scope | None = None) -> dict[str, Any]:
    """Occupancy per interval and agent (or team): (busy + wrap-up) / (ready + busy + wrap-up)."""
    rng.check()
    if by not in ("agent", "team"):
        raise ReportError("by must be agent or team")
    params: dict[str, Any] = {}
    dim = "agent_id" if by == "agent" else "team"
    cols = ("ready", "busy", "wrap_up", "not_ready")
    state_sql = (
        "(SELECT slot, agent_id, team, "
        + ", ".join(f"CASE WHEN state = '{st}' THEN seconds ELSE 0 END AS {st}" for st in cols)
        + " FROM {t})"
    )
    plan = _plan(rng, SLOT_S, True, False)
    rows = await _grouped(
        db,
        plan,
        state_sql.format(t="report_agent_time") + " a",
        SLOT_S,
        state_sql.format(t="report_agent_time_day") + " a",
        dim,
        cols,
        _scope_sql(scope, params, agents=True),
        params,
    )
    out = []
    for raw in rows:
        r = {"b": raw[0], "d": raw[1], **{c: float(v or 0) for c, v in zip(cols, raw[2:], strict=True)}}
        work = r["busy"] + r["wrap_up"]
        out.append(
            {
                "interval": bucket_start(rng.interval, int(r["b"])),
                "key": _key(by, r["d"]),
                "ready_s": round(r["ready"], 1),
                "busy_s": round(r["busy"], 1),
                "wrap_up_s": round(r["wrap_up"], 1),
                "not_ready_s": round(r["not_ready"], 1),
                "occupancy": _ratio(work, work + r["ready"]),
            }
        )
    return {
        "report": "occupancy",
        "interval": rng.interval,
        "tz": rng.tz,
        "by": by,
        "from": rng.start.isoformat(),
        "to": rng.end.isoformat(),
        "columns": list(AGENT_COLUMNS),
        "rows": out,
    }


async def not_ready_report(db: Any, rng: Range, scope: Scope | None = None) -> dict[str, Any]:
    """Not-ready time by reason (and agent) over the range."""
    rng.check()
    s0, s1 = rng.slots()
    params: dict[str, Any] = {"s0": s0, "s1": s1}
    sql = (
        "SELECT reason, agent_id, SUM(seconds) AS seconds FROM report_agent_time "
        f"WHERE state = 'not_ready' AND slot >= :s0 AND slot < :s1{_scope_sql(scope, params, agents=True)} "
        "GROUP BY reason, agent_id ORDER BY reason, agent_id"
    )
    async with db.engine.connect() as conn:
        rows = (await conn.execute(text(sql), params)).all()
    return {
        "report": "not_ready",
        "tz": rng.tz,
        "from": rng.start.isoformat(),
        "to": rng.end.isoformat(),
        "columns": ["reason", "agent", "seconds"],
        "rows": [{"reason": r[0] or "(none)", "agent": str(r[1]), "seconds": round(r[2], 1)} for r in rows],
    }


# ============================================================================ customer value
async def customer_distribution(db: Any) -> dict[str, Any]:
    """Customers now, by tier, loyalty stage and type."""
    async with db.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT tier, loyalty, type, count(*) FROM customers GROUP BY tier, loyalty, type "
                    "ORDER BY tier, loyalty, type"
                )
            )
        ).all()
    return {
        "report": "customer_distribution",
        "columns": ["tier", "loyalty", "type", "customers"],
        "rows": [{"tier": r[0], "loyalty": r[1], "type": r[2], "customers": int(r[3])} for r in rows],
    }


async def customer_movement(db: Any, rng: Range) -> dict[str, Any]:
    """Per local day of the snapshots in the range: customers who moved up a tier, down a tier,
    and who were lost (loyalty became `lost`), by their new tier."""
    rng.check()
    a, b = rng.utc_bounds()
    d0, d1 = int(a.timestamp() // 86400), -(-int(b.timestamp()) // 86400)
    rank = lambda col: f"CASE {col} WHEN 'vip' THEN 3 WHEN 'key' THEN 2 ELSE 1 END"  # noqa: E731
    sql = (
        f"SELECT day, to_tier, SUM(CASE WHEN {rank('to_tier')} > {rank('from_tier')} THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN {rank('to_tier')} < {rank('from_tier')} THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN to_loyalty = 'lost' AND from_loyalty <> 'lost' THEN 1 ELSE 0 END) "
        "FROM report_customer_moves WHERE day >= :d0 AND day < :d1 "
        "GROUP BY day, to_tier ORDER BY day, to_tier"
    )
    async with db.engine.connect() as conn:
        rows = (await conn.execute(text(sql), {"d0": d0, "d1": d1})).all()
    return {
        "report": "customer_movement",
        "columns": ["day", "tier", "moved_up", "moved_down", "lost"],
        "rows": [
            {
                "day": (date(1970, 1, 1) + timedelta(days=int(r[0]))).isoformat(),
                "tier": r[1],
                "moved_up": int(r[2]),
                "moved_down": int(r[3]),
                "lost": int(r[4]),
            }
            for r in rows
        ],
    }


async def tier_service(db: Any, rng: Range, scope: Scope | None = None) -> dict[str, Any]:
    """How each tier is served: wait (ASA), service level and abandonment over the range."""
    rep = await contact_report(db, rng, by="tier", scope=scope, totals=True)
    cols = ["tier", "offered", "answered", "asa_s", "service_level", "abandon_rate", "csat_avg"]
    return {
        "report": "tier_service",
        "tz": rng.tz,
        "from": rng.start.isoformat(),
        "to": rng.end.isoformat(),
        "columns": cols,
        "rows": [{"tier": r["key"], **{c: r[c] for c in cols[1:]}} for r in rep["rows"]],
    }


def _epoch_secs(dialect: str, later: str, earlier: str) -> str:
    return _secs(dialect, later, earlier)


async def ticket_report(db: Any, rng: Range, now: datetime) -> dict[str, Any]:
    """Complaints and service requests opened in the range: volume, solved, mean resolution
    time, SLA breaches (solved after, or still open past, their due time), escalations."""
    rng.check()
    dialect = "sqlite" if db.is_sqlite else "postgresql"
    a, b = rng.utc_bounds()
    resolved_at = "COALESCE(t.solved_at, t.closed_at)"
    breach = (
        f"CASE WHEN t.sla_due_at IS NOT NULL "
        f"AND ((({resolved_at}) IS NOT NULL AND {resolved_at} > t.sla_due_at)"
        f" OR (({resolved_at}) IS NULL AND t.sla_due_at < :now)) THEN 1 ELSE 0 END"
    )
    sql = (
        f"SELECT t.type, count(*), SUM(CASE WHEN {resolved_at} IS NOT NULL THEN 1 ELSE 0 END), "
        f"AVG(CASE WHEN {resolved_at} IS NOT NULL THEN {_secs(dialect, resolved_at, 't.created_at')} END), "
        f"SUM({breach}), "
        "SUM(CASE WHEN EXISTS (SELECT 1 FROM ticket_events e "
        "WHERE e.ticket_id = t.id AND e.kind = 'sla_escalated')"
        " OR t.escalation_queue IS NOT NULL THEN 1 ELSE 0 END) "
        "FROM tickets t WHERE t.type IN ('complaint', 'service_request') AND t.created_at >= :a "
        "AND t.created_at < :b GROUP BY t.type ORDER BY t.type"
    )
    async with db.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(sql), {"a": _db_time(db, a), "b": _db_time(db, b), "now": _db_time(db, now)}
            )
        ).all()
    return {
        "report": "tickets",
        "tz": rng.tz,
        "from": rng.start.isoformat(),
        "to": rng.end.isoformat(),
        "columns": ["type", "opened", "resolved", "resolution_h", "sla_breaches", "escalations"],
        "rows": [
            {
                "type": r[0],
                "opened": int(r[1]),
                "resolved": int(r[2] or 0),
                "resolution_h": None if r[3] is None else round(float(r[3]) / 3600, 2),
                "sla_breaches": int(r[4] or 0),
                "escalations": int(r[5] or 0),
            }
            for r in rows
        ],
    }


def _db_time(db: Any, t: datetime) -> Any:
    """A bound time as the column stores it (SQLite: naive UTC text)."""
    t = t.astimezone(UTC)
    return t.replace(tzinfo=None).isoformat(sep=" ") if db.is_sqlite else t


@dataclass(frozen=True)
class RiskRules:
    low_csat: float = 2.5  # mean score at or below this (with at least min_scores scores)
    min_scores: int = 2
    complaints: int = 2  # this many complaints within complaint_days
    complaint_days: int = 90
    contacts: int = 3  # this many contacts within contact_days
    contact_days: int = 7


async def customers_at_risk(
    db: Any, now: datetime, rules: RiskRules = RiskRules(), limit: int = 100
) -> dict[str, Any]:
    """Customers with a low CSAT, repeated complaints or repeated contacts in a short time."""
    since_c = _db_time(db, now - timedelta(days=rules.complaint_days))
    since_i = _db_time(db, now - timedelta(days=rules.contact_days))
    sql = (
        "WITH comp AS (SELECT customer_id, count(*) AS n FROM tickets WHERE type = 'complaint' "
        "AND created_at >= :sc AND customer_id IS NOT NULL GROUP BY customer_id HAVING count(*) >= :nc), "
        "rep AS (SELECT customer_id, count(*) AS n FROM interactions WHERE created_at >= :si "
        "AND customer_id IS NOT NULL GROUP BY customer_id HAVING count(*) >= :ni), "
        "low AS (SELECT id AS customer_id FROM customers WHERE csat_count >= :ms "
        "AND csat_sum <= :lc * csat_count), "
        "ids AS (SELECT customer_id FROM comp UNION SELECT customer_id FROM rep "
        "UNION SELECT customer_id FROM low) "
        "SELECT c.id, c.name, c.tier, c.csat_sum, c.csat_count, COALESCE(comp.n, 0), COALESCE(rep.n, 0), "
        "(SELECT min(p.value) FROM contact_points p WHERE p.customer_id = c.id AND p.kind = 'phone') "
        "FROM ids JOIN customers c ON c.id = ids.customer_id LEFT JOIN comp ON comp.customer_id = c.id "
        "LEFT JOIN rep ON rep.customer_id = c.id "
        "ORDER BY CASE c.tier WHEN 'vip' THEN 0 WHEN 'key' THEN 1 ELSE 2 END, "
        "COALESCE(comp.n, 0) + COALESCE(rep.n, 0) DESC, c.id LIMIT :lim"
    )
    params = {
        "sc": since_c,
        "si": since_i,
        "nc": rules.complaints,
        "ni": rules.contacts,
        "ms": rules.min_scores,
        "lc": rules.low_csat,
        "lim": limit,
    }
    async with db.engine.connect() as conn:
        rows = (await conn.execute(text(sql), params)).all()
    out = []
    for r in rows:
        csat = round(r[3] / r[4], 2) if r[4] else None
        reasons = [
            w
            for w, hit in (
                ("low_csat", r[4] >= rules.min_scores and csat is not None and csat <= rules.low_csat),
                ("repeated_complaints", r[5] >= rules.complaints),
                ("repeated_contacts", r[6] >= rules.contacts),
            )
            if hit
        ]
        out.append(
            {
                "customer_id": int(r[0]),
                "name": r[1],
                "tier": r[2],
                "csat_avg": csat,
                "complaints": int(r[5]),
                "recent_contacts": int(r[6]),
                "phone": r[7],
                "reasons": " ".join(reasons),
            }
        )
    return {
        "report": "customers_at_risk",
        "columns": [
            "customer_id",
            "name",
            "tier",
            "csat_avg",
            "complaints",
            "recent_contacts",
            "phone",
            "reasons",
        ],
        "rows": out,
    }


def to_csv(report: Mapping[str, Any]) -> str:
    """A report as CSV: its columns, then one line per row."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    cols: Sequence[str] = report["columns"]
    w.writerow(cols)
    for r in report["rows"]:
        w.writerow([csv_value(r.get(c)) for c in cols])
    return buf.getvalue()


def csv_value(v: Any) -> str:
    """A cell as text, written as JavaScript writes the number (225.0 -> 225): the page's table
    and the CSV read the same."""
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def parse_day(raw: str | None, default: date) -> date:
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ReportError(f"not a date (YYYY-MM-DD): {raw[:20]!r}") from None


__all__ = [
    "INTERVALS",
    "Range",
    "ReportError",
    "RiskRules",
    "Scope",
    "add_agent_time",
    "agent_report",
    "contact_report",
    "customer_distribution",
    "customer_movement",
    "customers_at_risk",
    "derive",
    "fold_pending",
    "not_ready_report",
    "rebuild",
    "rollup_interaction_sync",
    "snapshot_customers",
    "split_slots",
    "ticket_report",
    "tier_service",
    "to_csv",
]
