"""Fenced, exactly-once writes (issue 18: several processes, one database).

A process that writes on behalf of a lease (the AMI leader, the owner of an outbox partition) holds
a fencing token, a number that grows with every new holder. `fenced_write` runs the caller's
writes and, in the same transaction, an UPDATE of the lease's `cc_fence` row that matches only if
the token is not older than the newest one the database has seen. A process that lost its lease
without knowing it (paused, partitioned) is refused with `StaleToken` and writes nothing.

The row also keeps the id of the last outbox entry applied: an entry delivered again (after a
consumer died between its write and its XACK) is skipped, so each entry is written once.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.db import Database
from crm_core.enums import InteractionState
from crm_core.errors import CrmError
from crm_core.fencing_models import Fence
from crm_core.interactions import TERMINAL
from crm_core.types import utcnow

T = TypeVar("T")


class StaleToken(CrmError):
    """A write on behalf of a lease that another process holds now (a newer token was seen)."""

    def __init__(self, name: str, token: int, newest: int) -> None:
        super().__init__(f"lease {name!r}: token {token} is stale (newest {newest}); write refused")
        self.name, self.token, self.newest = name, token, newest


def entry_key(entry_id: str) -> tuple[int, int]:
    """A Redis stream id ("<ms>-<seq>") as a comparable pair; "" is before everything."""
    if not entry_id:
        return (-1, -1)
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


async def _last_applied(s: AsyncSession, db: Database, name: str, token: int) -> str:
    """Lock the lease's fence row (made on first use) and return the last entry applied; raise
    StaleToken when a newer token has written."""
    q = select(Fence).where(Fence.name == name)
    if not db.is_sqlite:
        q = q.with_for_update()
    row = (await s.execute(q)).scalar_one_or_none()
    if row is None:
        await s.execute(insert(Fence).values(name=name, token=token, last_id="", updated_at=utcnow()))
        return ""
    if token < row.token:
        raise StaleToken(name, token, row.token)
    return str(row.last_id)


async def _advance(s: AsyncSession, name: str, token: int, last: str) -> None:
    done = await s.execute(
        update(Fence).where(Fence.name == name, Fence.token <= token)
        .values(token=token, last_id=last, updated_at=utcnow()))
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise StaleToken(name, token, -1)


async def fenced_write(db: Database, name: str, token: int, fn: Callable[[AsyncSession], Awaitable[T]],
                       *, entry_id: str = "") -> tuple[bool, T | None]:
    """Run `fn(session)` in one transaction guarded by the lease `name` and `token`.

    Returns (False, None) when `entry_id` was already applied (nothing written), else (True, result).
    Raises StaleToken when a newer token has written (nothing written)."""
    for attempt in range(2):
        try:
            async with db.session() as s, s.begin():
                last = await _last_applied(s, db, name, token)
                if entry_id and entry_key(entry_id) <= entry_key(last):
                    return False, None
                result = await fn(s)
                await _advance(s, name, token, entry_id or last)
                return True, result
        except IntegrityError:
            if attempt:  # two first writers raced on the insert: read the row again
                raise
    raise AssertionError("unreachable")


async def fenced_batch(db: Database, name: str, token: int,
                       items: Sequence[tuple[str, Callable[[AsyncSession], Awaitable[Any]]]]) -> list[str]:
    """fenced_write for several outbox entries ((entry id, fn), ids increasing) in ONE transaction:
    the entries not applied yet run in order and the fence row records the last. Returns the ids
    applied (the others were applied before). Any error rolls the whole batch back."""
    for attempt in range(2):
        try:
            async with db.session() as s, s.begin():
                last = await _last_applied(s, db, name, token)
                applied = []
                for entry_id, fn in items:
                    if entry_key(entry_id) <= entry_key(last):
                        continue
                    await fn(s)
                    applied.append(entry_id)
                    last = entry_id
                if applied:
                    await _advance(s, name, token, last)
                return applied
        except IntegrityError:
            if attempt:  # two first writers raced on the insert: read the row again
                raise
    raise AssertionError("unreachable")


async def fence_token(db: Database, name: str) -> int:
    async with db.session() as s:
        row = (await s.execute(select(Fence.token).where(Fence.name == name))).scalar_one_or_none()
    return int(row or 0)


# ---- interaction writes as data (what the outbox carries) ------------------------------------------
async def apply_interaction_op(s: AsyncSession, op: Mapping[str, Any], store: Any = None) -> int | None:
    """Apply one interaction write carried by the outbox (crm_core/outbox_ops.py lists the ops),
    keyed by its interaction id or its PBX/provider id (`external_id`). Returns the interaction id."""
    from crm_core.outbox_ops import apply_op

    return await s.run_sync(lambda sync: apply_op(sync, op, store))


def is_final(state: str) -> bool:
    return InteractionState(state) in TERMINAL
