"""Fast bulk inserts of plain dicts (seeders, imports): `insert(Table)` executemany in batches.

Works on both backends through SQLAlchemy Core, so the column types apply (UTC times, money as
cents on SQLite, JSON). Rows may leave out columns that have defaults; derived columns are filled
(customers: name_key, tier from lifetime value, name tokens; tickets: number and SLA).
These functions trust their input more than CrmStore does: no duplicate checks beyond the
database's constraints, and phones are normalised only when `normalize=True`.
After inserting explicit ids on PostgreSQL, call `reset_sequences`.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, case, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_core.db import Database
from crm_core.enums import Loyalty
from crm_core.models import (
    Base,
    ContactPoint,
    Customer,
    CustomerNameToken,
    Interaction,
    InteractionEvent,
    SurveyResult,
    Ticket,
)
from crm_core.normalize import name_key, name_tokens, normalize_contact
from crm_core.rules import Rules
from crm_core.types import to_money, utcnow

BATCH = 5000


def _table(t: Table | type[Base]) -> Table:
    return t if isinstance(t, Table) else t.__table__  # type: ignore[return-value]


def _complete(table: Table, rows: Sequence[Mapping[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Every row with the same keys (executemany needs that), defaults filled in."""
    keys: set[str] = set()
    for r in rows:
        keys.update(r)
    unknown = keys - set(table.c.keys())
    if unknown:
        raise ValueError(f"{table.name}: unknown column(s) {', '.join(sorted(unknown))}")
    out = []
    for r in rows:
        d = dict(r)
        for col in table.c:
            if col.name in d:
                continue
            if col.name in keys:
                d[col.name] = _default(col, now)
            elif col.name in ("created_at", "updated_at", "at"):
                d[col.name] = now
            elif col.default is not None and not col.primary_key:
                d[col.name] = _default(col, now)
        out.append(d)
    return out


def _default(col: Any, now: datetime) -> Any:
    if col.name.endswith("_at") and not col.nullable:
        return now
    if col.default is None:
        return None
    arg = col.default.arg
    if callable(arg):
        return now if col.name.endswith("_at") or col.name == "at" else arg(None)
    return arg


async def _exec(conn: AsyncConnection, table: Table, rows: list[dict[str, Any]], *,
                batch_size: int, returning: bool = False) -> list[int]:
    ids: list[int] = []
    for k in range(0, len(rows), batch_size):
        chunk = rows[k:k + batch_size]
        if returning:
            res = await conn.execute(
                insert(table).returning(table.c.id, sort_by_parameter_order=True), chunk)
            ids.extend(res.scalars().all())
        else:
            await conn.execute(insert(table), chunk)
    return ids


async def insert_rows(db: Database, table: Table | type[Base], rows: Iterable[Mapping[str, Any]],
                      *, batch_size: int = BATCH) -> int:
    """Insert plain dicts into any table; returns the number of rows."""
    t = _table(table)
    data = _complete(t, list(rows), utcnow())
    async with db.engine.begin() as conn:
        await _exec(conn, t, data, batch_size=batch_size)
    return len(data)


async def insert_customers(db: Database, rows: Iterable[Mapping[str, Any]], *,
                           rules: Rules | None = None, batch_size: int = BATCH) -> list[int]:
    """Customers from dicts with at least `name`. Fills name_key, tier (from lifetime_value via
    the rules, unless `tier` or `tier_override` is given) and the name-search tokens.
    Returns the ids, in input order (generated when not given)."""
    rules = rules or Rules.default()
    now = utcnow()
    data: list[dict[str, Any]] = []
    for r in rows:
        d = dict(r)
        d.setdefault("name_key", name_key(d["name"]))
        ltv = to_money(d.get("lifetime_value", Decimal(0)))
        d["lifetime_value"] = ltv
        if "tier" not in d:
            d["tier"] = rules.effective_tier(ltv, d.get("tier_override")).value
        d.setdefault("loyalty", Loyalty.POTENTIAL.value if not d.get("contact_count")
                     else Loyalty.NEW.value)
        d.setdefault("tags", [])
        data.append(d)
    t = _table(Customer)
    data = _complete(t, data, now)
    have_ids = all(d.get("id") is not None for d in data)
    async with db.engine.begin() as conn:
        if have_ids:
            await _exec(conn, t, data, batch_size=batch_size)
            ids = [d["id"] for d in data]
        else:
            for d in data:
                d.pop("id", None)
            ids = await _exec(conn, t, data, batch_size=batch_size, returning=True)
        tokens = [{"token": tok, "customer_id": cid}
                  for cid, d in zip(ids, data, strict=True) for tok in name_tokens(d["name"])]
        await _exec(conn, _table(CustomerNameToken), tokens, batch_size=batch_size)
    return ids


async def insert_contact_points(db: Database, rows: Iterable[Mapping[str, Any]], *,
                                region: str = "US", normalize: bool = True,
                                batch_size: int = BATCH) -> int:
    """Contact points from dicts {customer_id, kind, value[, label]}. With normalize=True the
    values go through the same validation as CrmStore (slower); pass False for E.164 input."""
    data = []
    for r in rows:
        d = dict(r)
        if normalize:
            kind, value = normalize_contact(d["kind"], d["value"], region)
            d["kind"], d["value"] = kind.value, value
        data.append(d)
    return await insert_rows(db, ContactPoint, data, batch_size=batch_size)


async def insert_interactions(db: Database, rows: Iterable[Mapping[str, Any]], *,
                              batch_size: int = BATCH) -> int:
    """Interactions from dicts {customer_id, channel, direction[, state, created_at, ...]}.
    Call refresh_customer_aggregates afterwards if the seeder did not fill contact_count etc."""
    return await insert_rows(db, Interaction, rows, batch_size=batch_size)


async def insert_interaction_events(db: Database, rows: Iterable[Mapping[str, Any]], *,
                                    batch_size: int = BATCH) -> int:
    return await insert_rows(db, InteractionEvent, rows, batch_size=batch_size)


async def insert_surveys(db: Database, rows: Iterable[Mapping[str, Any]], *,
                         batch_size: int = BATCH) -> int:
    return await insert_rows(db, SurveyResult, rows, batch_size=batch_size)


async def insert_tickets(db: Database, rows: Iterable[Mapping[str, Any]], *,
                         rules: Rules | None = None, batch_size: int = BATCH) -> int:
    """Tickets from dicts {id, customer_id, type, subject[, status, ...]}. `number` defaults to
    T-<id>; `sla_due_at` is computed from the rules when the row carries the customer's `tier`
    (a helper key, not stored)."""
    rules = rules or Rules.default()
    now = utcnow()
    data = []
    for r in rows:
        d = dict(r)
        tier = d.pop("tier", None)
        if "number" not in d:
            if d.get("id") is None:
                raise ValueError("a ticket row needs an id or a number")
            d["number"] = f"T-{int(d['id']):06d}"
        if tier is not None and "sla_due_at" not in d:
            d["sla_due_at"] = rules.sla_due(d["type"], tier, d.get("created_at") or now)
        data.append(d)
    return await insert_rows(db, Ticket, data, batch_size=batch_size)


async def refresh_customer_aggregates(db: Database, *, rules: Rules | None = None,
                                      now: datetime | None = None) -> None:
    """Recompute every customer's contact counts and times, CSAT sums, loyalty and tier from
    the interactions and surveys (set-based UPDATEs; minutes at 1M customers)."""
    rules = rules or Rules.default()
    now = now or utcnow()
    C, IA, SR = Customer, Interaction, SurveyResult  # noqa: N806
    per = lambda col: select(col).where(IA.customer_id == C.id).scalar_subquery()  # noqa: E731
    since = rules.returning_since(now)
    from crm_core.rules import add_months

    lost_before = add_months(now, -rules.loyalty.lost_after_months)
    recent = select(func.count(IA.id)).where(IA.customer_id == C.id, IA.created_at >= since)
    tier_case = case(
        *((C.lifetime_value >= minimum, tier.value) for tier, minimum in rules.tier_thresholds),
        else_="regular",
    )
    async with db.engine.begin() as conn:
        await conn.execute(update(C).values(
            contact_count=per(func.count(IA.id)),
            first_contact_at=per(func.min(IA.created_at)),
            last_contact_at=per(func.max(IA.created_at)),
            csat_sum=select(func.coalesce(func.sum(SR.score), 0))
            .where(SR.customer_id == C.id).scalar_subquery(),
            csat_count=select(func.count(SR.id)).where(SR.customer_id == C.id).scalar_subquery(),
        ))
        await conn.execute(update(C).values(
            loyalty=case(
                (C.contact_count == 0, Loyalty.POTENTIAL.value),
                (C.last_contact_at < lost_before, Loyalty.LOST.value),
                (C.contact_count >= rules.loyalty.loyal_min_contacts, Loyalty.LOYAL.value),
                (recent.scalar_subquery() >= 2, Loyalty.RETURNING.value),
                else_=Loyalty.NEW.value,
            ),
            tier=func.coalesce(C.tier_override, tier_case),
        ))


async def reset_sequences(db: Database) -> None:
    """PostgreSQL: move each id sequence past the largest id (after explicit-id inserts)."""
    if db.is_sqlite:
        return
    async with db.engine.begin() as conn:
        for table in Base.metadata.sorted_tables:
            if "id" in table.c and table.c.id.autoincrement is True and table.c.id.primary_key:
                await conn.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                    f"(SELECT coalesce(max(id), 0) + 1 FROM {table.name}), false)"))
