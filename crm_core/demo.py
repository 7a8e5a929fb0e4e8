# ruff: noqa: E501  (the name tables read best one region per line)
"""A realistic generated data set for demos and benchmarks (`callcenter demo seed`).

Customers in six regions with valid E.164 phones and unique emails; tiers of about 5 % VIP,
15 % key and 80 % regular (from lifetime value, through the rules); two years of interactions
(on average `interactions_per_customer` each) with dispositions and CSAT; tickets. Rows are
generated in batches and bulk-inserted: executemany on SQLite, COPY on PostgreSQL.
"""
from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from crm_core.db import Database
from crm_core.normalize import name_key, name_tokens
from crm_core.rules import Rules

REGIONS = [  # (region, weight, language, first names, last names, email domains)
    ("US", 40, "en", ["James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda",
                      "David", "Elizabeth", "William", "Barbara", "Aaliyah", "Jamal", "Chen", "Priya"],
     ["Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson",
      "Taylor", "Thomas", "Moore", "Jackson", "Nguyen", "Patel", "Kim"], ["gmail.com", "yahoo.com", "outlook.com"]),
    ("GB", 15, "en", ["Oliver", "Amelia", "Harry", "Isla", "George", "Ava", "Noah", "Emily", "Siobhan",
                      "Rhys"], ["Jones", "Evans", "Thomas", "Roberts", "Walker", "Wright", "Hughes",
                                "Edwards", "O'Brien", "Khan"], ["btinternet.com", "gmail.com", "sky.com"]),
    ("DE", 10, "de", ["Lukas", "Sophie", "Jonas", "Marie", "Leon", "Hannah", "Jürgen", "Käthe"],
     ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Größ"], ["web.de", "gmx.de"]),
    ("FR", 10, "fr", ["Léa", "Hugo", "Chloé", "Louis", "Manon", "Gabriel", "Zoé", "Théo"],
     ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Lefèvre"], ["orange.fr", "free.fr"]),
    ("ES", 10, "es", ["Lucía", "Hugo", "Martina", "Mateo", "Sofía", "Álvaro", "Paula", "Iñigo"],
     ["García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez", "Núñez"], ["telefonica.es", "gmail.com"]),
    ("MX", 15, "es", ["José", "Guadalupe", "Juan", "María", "Luis", "Fernanda", "Carlos", "Ximena"],
     ["Hernández", "García", "Martínez", "López", "González", "Pérez", "Rodríguez", "Ramírez"], ["hotmail.com", "gmail.com"]),
]
US_AREAS = ["202", "212", "305", "312", "415", "512", "617", "713", "206", "404"]
CHANNEL_BAG = ["voice"] * 12 + ["chat"] * 5 + ["email"] * 3  # 60 / 25 / 15 %
SCORE_BAG = [1] * 4 + [2] * 6 + [3] * 15 + [4] * 35 + [5] * 40
QUEUES = {"voice": ["general", "billing", "support", "vip"], "chat": ["general", "support"],
          "email": ["billing", "support"]}
DISPOSITIONS = ["resolved"] * 6 + ["follow_up", "escalated", "callback", "sale", "no_answer"]
TICKET_TYPES = [("service_request", 60), ("complaint", 25), ("inquiry", 15)]
BATCH = 5000


def phone(region: str, n: int) -> str:
    """The n-th demo number of a region, in E.164; distinct n give distinct, valid numbers."""
    if region == "US":
        area = US_AREAS[n % len(US_AREAS)]
        k = n // len(US_AREAS)
        exch = 201 + (k // 10000) % 700
        if exch % 100 == 11:
            exch += 1
        return f"+1{area}{exch}{k % 10000:04d}"
    if region == "GB":
        return f"+442{'07' if n % 2 else '08'}{n // 2 % 10_000_000:07d}"
    if region == "DE":
        return f"+4930{20_000_000 + n % 70_000_000:08d}"
    if region == "FR":
        return f"+33{'1' if n % 2 else '6'}{10_000_000 + n // 2 % 80_000_000:08d}"
    if region == "ES":
        return f"+34{'91' if n % 2 else '61'}{1_000_000 + n // 2 % 8_000_000:07d}"
    return f"+5255{10_000_000 + n % 80_000_000:08d}"  # MX, Mexico City


@dataclass
class _Rows:
    customers: list[tuple[Any, ...]] = field(default_factory=list)
    tokens: list[tuple[Any, ...]] = field(default_factory=list)
    points: list[tuple[Any, ...]] = field(default_factory=list)
    interactions: list[tuple[Any, ...]] = field(default_factory=list)
    surveys: list[tuple[Any, ...]] = field(default_factory=list)
    tickets: list[tuple[Any, ...]] = field(default_factory=list)


COLUMNS = {
    "customers": ("id", "name", "name_key", "type", "tier", "loyalty", "tags", "lifetime_value",
                  "language", "contact_count", "first_contact_at", "last_contact_at", "csat_sum",
                  "csat_count", "created_at", "updated_at"),
    "customer_name_tokens": ("token", "customer_id"),
    "contact_points": ("id", "customer_id", "kind", "value", "label", "created_at"),
    "interactions": ("id", "customer_id", "channel", "direction", "state", "from_address",
                     "created_at", "queued_at", "offered_at", "answered_at", "ended_at",
                     "wrapup_done_at", "ivr_path", "queue", "skills", "agent_id",
                     "disposition_code", "csat_score", "escalation_steps", "updated_at"),
    "survey_results": ("id", "interaction_id", "customer_id", "score", "channel", "created_at"),
    "tickets": ("id", "number", "customer_id", "type", "status", "priority", "subject",
                "sla_due_at", "created_at", "updated_at"),
}


class _Gen:
    def __init__(self, rules: Rules, rng: random.Random, now: datetime, per_customer: int,
                 agent_ids: list[int], start: dict[str, int]) -> None:
        self.rules, self.rng, self.per = rules, rng, per_customer
        self.now_aware = now.astimezone(UTC)
        self.now = self.now_aware.replace(tzinfo=None)  # naive UTC inside the generator: cheaper
        self.since = rules.returning_since(self.now_aware).replace(tzinfo=None)
        self.agents = agent_ids or [None]
        self.next = dict(start)
        self.region_n = {r[0]: start["customers"] for r in REGIONS}
        self.weights = [r[1] for r in REGIONS]

    def batch(self, n: int) -> _Rows:
        rows = _Rows()
        for _ in range(n):
            self.customer(rows)
        return rows

    def _id(self, table: str) -> int:
        self.next[table] += 1
        return self.next[table]

    def customer(self, rows: _Rows) -> None:
        rng, now = self.rng, self.now
        region, _, lang, firsts, lasts, domains = rng.choices(REGIONS, self.weights)[0]
        first, last = rng.choice(firsts), rng.choice(lasts)
        name = f"{first} {last}"
        cid = self._id("customers")
        created = now - timedelta(days=rng.uniform(30, 900))
        # LTV: log-normal, so that the rules give roughly 5 % VIP, 15 % key, 80 % regular
        ltv = Decimal(min(rng.lognormvariate(7.52, 2.0), 900_000)).quantize(Decimal("0.01"))
        ctype = rng.choices(["customer", "prospect", "partner", "blacklisted"], [85, 10, 4, 1])[0]
        tags = rng.sample(["newsletter", "mobile", "broadband", "tv", "business", "student"], rng.randint(0, 2))
        self.region_n[region] += 1
        n = self.region_n[region]
        rows.points.append((self._id("contact_points"), cid, "phone", phone(region, n), "mobile", created))
        local = ".".join("".join(name_key(part).split()) for part in (first, last))
        email = f"{local}.{cid}@{rng.choice(domains)}"
        rows.points.append((self._id("contact_points"), cid, "email", email, None, created))
        for tok in name_tokens(name):
            rows.tokens.append((tok, cid))

        count = rng.randint(0, 2 * self.per)
        times = sorted(now - timedelta(seconds=rng.uniform(0, 730 * 86400)) for _ in range(count))
        csat_sum = csat_n = 0
        for t in times:
            iid, score = self._interaction(rows, cid, email, t)
            if score is not None:
                csat_sum += score
                csat_n += 1
        since = self.since
        loyalty = self.rules.loyalty_stage(
            total_contacts=count, recent_contacts=sum(1 for t in times if t >= since),
            last_contact_at=times[-1].replace(tzinfo=UTC) if times else None, now=self.now_aware).value
        tier = self.rules.tier_for_value(ltv).value
        rows.customers.append((cid, name, name_key(name), ctype, tier, loyalty, tags, ltv, lang, count,
                               times[0] if times else None, times[-1] if times else None,
                               csat_sum, csat_n, created, now))
        if rng.random() < 0.3:
            self._ticket(rows, cid, tier, times[-1] if times else created)

    def _interaction(self, rows: _Rows, cid: int, email: str, t: datetime) -> tuple[int, int | None]:
        rng = self.rng
        channel = rng.choice(CHANNEL_BAG)
        iid = self._id("interactions")
        queue = rng.choice(QUEUES[channel])
        wait = rng.expovariate(1 / 25)
        abandoned = channel == "voice" and rng.random() < 0.06
        queued = t + timedelta(seconds=rng.uniform(5, 40))
        if abandoned:
            ended = queued + timedelta(seconds=wait)
            rows.interactions.append((iid, cid, channel, "inbound", "abandoned", None, t, queued, None, None,
                                      ended, None, ["main", queue], queue, {queue: 1}, None, None, None, [], ended))
            return iid, None
        offered = queued + timedelta(seconds=wait)
        answered = offered + timedelta(seconds=rng.uniform(2, 12))
        ended = answered + timedelta(seconds=rng.lognormvariate(5.3, 0.6))
        wrap = ended + timedelta(seconds=rng.uniform(10, 90))
        score = rng.choice(SCORE_BAG) if rng.random() < 0.12 else None
        agent = rng.choice(self.agents)
        path = ["main", queue] if channel == "voice" else []
        rows.interactions.append((iid, cid, channel, "inbound" if rng.random() < 0.9 else "outbound",
                                  "wrapup_done", email if channel == "email" else None, t, queued, offered,
                                  answered, ended, wrap, path, queue, {queue: 1}, agent,
                                  rng.choice(DISPOSITIONS), score, [], wrap))
        if score is not None:
            rows.surveys.append((self._id("survey_results"), iid, cid, score, channel, wrap))
        return iid, score

    def _ticket(self, rows: _Rows, cid: int, tier: str, at: datetime) -> None:
        rng = self.rng
        tid = self._id("tickets")
        ttype = rng.choices([t for t, _ in TICKET_TYPES], [w for _, w in TICKET_TYPES])[0]
        status = rng.choices(["open", "pending", "solved", "closed"], [20, 10, 20, 50])[0]
        subject = {"service_request": "Change of plan", "complaint": "Billing complaint",
                   "inquiry": "Question about an invoice"}[ttype]
        rows.tickets.append((tid, f"T-{tid:06d}", cid, ttype, status,
                             "high" if ttype == "complaint" else "normal", subject,
                             self.rules.sla_due(ttype, tier, at.replace(tzinfo=UTC)).replace(tzinfo=None),
                             at, at))


async def seed_demo(db: Database, *, customers: int, interactions_per_customer: int = 10,
                    rng_seed: int = 1, rules: Rules | None = None, progress: bool = True,
                    now: datetime | None = None, on_batch: Callable[[int], None] | None = None) -> None:
    """Add `customers` generated customers (and their history) to the store, in batches."""
    rules = rules or Rules.default()
    now = now or datetime.now(UTC)
    rng = random.Random(rng_seed)
    start = {t: await _max_id(db, t) for t in
             ("customers", "contact_points", "interactions", "survey_results", "tickets")}
    agents = await _agent_ids(db)
    gen = _Gen(rules, rng, now, interactions_per_customer, agents, start)
    bar = _bar(customers) if progress else None
    done = 0
    sizes = [min(BATCH, customers - k) for k in range(0, customers, BATCH)]
    if len(sizes) == 1:
        batches = iter([_ready(gen, sizes[0], db.is_sqlite)])
        receive = lambda: next(batches)  # noqa: E731
        proc = None
    else:
        # a second process generates batch k+1 while this one inserts batch k
        ctx = mp.get_context("spawn")
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_produce, args=(send, gen, sizes, db.is_sqlite), daemon=True)
        proc.start()
        send.close()
        receive = recv.recv
    try:
        nxt = asyncio.ensure_future(asyncio.to_thread(receive))
        for i, n in enumerate(sizes):
            tables = await nxt
            if i + 1 < len(sizes):
                nxt = asyncio.ensure_future(asyncio.to_thread(receive))
            await _insert(db, tables)
            done += n
            if bar is not None:
                bar.update(n)
            if on_batch:
                on_batch(done)
    finally:
        if proc is not None:
            proc.kill()
            proc.join()
    if bar is not None:
        bar.close()
    await _finish(db)


async def _max_id(db: Database, table: str) -> int:
    async with db.engine.connect() as conn:
        return int((await conn.execute(text(f"SELECT coalesce(max(id), 0) FROM {table}"))).scalar_one())


async def _agent_ids(db: Database) -> list[int]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(text("SELECT id, roles FROM users"))
        return [r[0] for r in rows if "agent" in (r[1] if isinstance(r[1], list) else str(r[1]))]


def _bar(total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="customer", unit_scale=True, desc="seeding")


def _produce(out: Any, gen: _Gen, sizes: list[int], sqlite: bool) -> None:
    for n in sizes:
        out.send(_ready(gen, n, sqlite))
    out.close()


def _ready(gen: _Gen, n: int, sqlite: bool) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """Generate n customers with their history, converted for the driver (runs in a thread)."""
    rows = gen.batch(n)
    batches = [("customers", rows.customers), ("customer_name_tokens", rows.tokens),
               ("contact_points", rows.points), ("interactions", rows.interactions),
               ("survey_results", rows.surveys), ("tickets", rows.tickets)]
    return [(t, _convert(t, data, sqlite)) for t, data in batches if data]


async def _insert(db: Database, batches: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
    if db.is_sqlite:
        await _insert_sqlite(db, batches)
    else:
        await _insert_postgres(db, batches)


TS_COLS = {t: [i for i, c in enumerate(cols) if c.endswith("_at")] for t, cols in COLUMNS.items()}
JSON_COLS = {"customers": [6], "interactions": [12, 14, 18]}
MONEY_COLS = {"customers": [7]}


def _convert(table: str, data: list[tuple[Any, ...]], sqlite: bool) -> list[tuple[Any, ...]]:
    """Rows in the form the driver stores: naive-UTC text (SQLite) or aware times (PostgreSQL),
    JSON text, and money as integer cents on SQLite (see crm_core.types)."""
    ts_cols, js_cols, money_cols = TS_COLS[table], JSON_COLS.get(table, ()), MONEY_COLS.get(table, ())
    ts = str if sqlite else (lambda v: v.replace(tzinfo=UTC))
    out = []
    for row in data:
        r = list(row)
        for i in ts_cols:
            if r[i] is not None:
                r[i] = ts(r[i])
        for i in js_cols:
            r[i] = json.dumps(r[i])
        if sqlite:
            for i in money_cols:
                r[i] = int(r[i] * 100)
        out.append(tuple(r))
    return out


async def _insert_sqlite(db: Database, batches: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
    async with db.engine.begin() as conn:
        raw = await conn.get_raw_connection()
        cur = await raw.driver_connection.cursor()  # type: ignore[union-attr]
        for table, data in batches:
            cols = COLUMNS[table]
            sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
            await cur.executemany(sql, data)
        await cur.close()


async def _insert_postgres(db: Database, batches: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
    async with db.engine.begin() as conn:
        raw = await conn.get_raw_connection()
        pg = raw.driver_connection  # asyncpg
        for table, data in batches:
            await pg.copy_records_to_table(  # type: ignore[union-attr]
                table, records=data, columns=COLUMNS[table],
                schema_name=db.schema)


async def _finish(db: Database) -> None:
    if db.is_sqlite:
        async with db.engine.begin() as conn:
            await conn.execute(text("ANALYZE"))
        return
    async with db.engine.begin() as conn:
        for table in ("customers", "contact_points", "interactions", "survey_results", "tickets"):
            await conn.execute(text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"))
        await conn.execute(text("ANALYZE"))
