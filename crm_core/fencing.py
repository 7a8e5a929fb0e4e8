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

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.db import Database
from crm_core.enums import InteractionState
from crm_core.errors import CrmError
from crm_core.fencing_models import Fence
from crm_core.interactions import STAMPS, TERMINAL, TRANSITIONS
from crm_core.models import Interaction, InteractionEvent
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


async def fenced_write(db: Database, name: str, token: int, fn: Callable[[AsyncSession], Awaitable[T]],
                       *, entry_id: str = "") -> tuple[bool, T | None]:
    """Run `fn(session)` in one transaction guarded by the lease `name` and `token`.

    Returns (False, None) when `entry_id` was already applied (nothing written), else (True, result).
    Raises StaleToken when a newer token has written (nothing written)."""
    for attempt in range(2):
        try:
            async with db.session() as s, s.begin():
                q = select(Fence).where(Fence.name == name)
                if not db.is_sqlite:
                    q = q.with_for_update()
                row = (await s.execute(q)).scalar_one_or_none()
                if row is None:
                    await s.execute(insert(Fence).values(name=name, token=token, last_id="",
                                                         updated_at=utcnow()))
                    newest, last = token, ""
                else:
                    newest, last = row.token, row.last_id
                if token < newest:
                    raise StaleToken(name, token, newest)
                if entry_id and entry_key(entry_id) <= entry_key(last):
                    return False, None
                result = await fn(s)
                done = await s.execute(
                    update(Fence).where(Fence.name == name, Fence.token <= token)
                    .values(token=token, last_id=entry_id or last, updated_at=utcnow()))
                if done.rowcount != 1:  # type: ignore[attr-defined]
                    raise StaleToken(name, token, -1)
                return True, result
        except IntegrityError:
            if attempt:  # two first writers raced on the insert: read the row again
                raise
    raise AssertionError("unreachable")


async def fence_token(db: Database, name: str) -> int:
    async with db.session() as s:
        row = (await s.execute(select(Fence.token).where(Fence.name == name))).scalar_one_or_none()
    return int(row or 0)


# ---- interaction writes as data (what the outbox carries) ------------------------------------------
async def apply_interaction_op(s: AsyncSession, op: Mapping[str, Any]) -> int | None:
    """Apply one interaction write, keyed by its PBX/provider id (`external_id`), so that the
    outbox can carry it before the database has given the interaction its id.

    `open`: create it unless one with this external_id exists. `state`: move it (a transition
    the lifecycle does not allow, e.g. out of a final state, is skipped and logged on the
    timeline as not ok). `event`: append a timeline event. Returns the interaction id."""
    kind = op["op"]
    at = datetime.fromisoformat(op["at"]) if op.get("at") else utcnow()
    if op.get("interaction_id") is not None:  # a write buffered while the database was away
        ext = str(op.get("external_id") or "")
        found = await s.get(Interaction, int(op["interaction_id"]))
    else:
        ext = str(op["external_id"])
        found = (await s.execute(select(Interaction).where(Interaction.external_id == ext)
                                 .order_by(Interaction.id.desc()).limit(1))).scalar_one_or_none()
    if kind == "open":
        if found is not None:
            return found.id
        state = op.get("state", "new")
        i = Interaction(channel=op.get("channel", "voice"), direction=op.get("direction", "inbound"),
                        state=state, external_id=ext, from_address=op.get("from"),
                        queue=op.get("queue"), skills={}, ivr_path=[], escalation_steps=[],
                        created_at=at, updated_at=at)
        s.add(i)
        await s.flush()
        s.add(InteractionEvent(interaction_id=i.id, at=at, kind="opened",
                               data={"channel": i.channel, "direction": i.direction, "state": state,
                                     "via": "outbox"}))
        return i.id
    if found is None:
        raise CrmError(f"outbox: no interaction {ext!r} for {kind!r}")
    if kind == "state":
        new, cur = InteractionState(op["state"]), InteractionState(found.state)
        ok = new in TRANSITIONS[cur]
        if ok:
            found.state = new.value
            stamp = STAMPS.get(new)
            if stamp and getattr(found, stamp) is None:
                setattr(found, stamp, at)
            if op.get("agent_id") is not None:
                found.agent_id = int(op["agent_id"])
            if op.get("queue") is not None:
                found.queue = str(op["queue"])
            found.updated_at = at
        s.add(InteractionEvent(interaction_id=found.id, at=at, kind="state", ok=ok,
                               data={**dict(op.get("data") or {}), "from": cur.value, "to": new.value,
                                     "via": "outbox",
                                     **({} if ok else {"refused": "transition not allowed"})}))
        for ev_kind, ev_data in op.get("events") or ():
            s.add(InteractionEvent(interaction_id=found.id, at=at, kind=str(ev_kind)[:64],
                                   data=dict(ev_data or {})))
        return found.id
    if kind == "event":
        s.add(InteractionEvent(interaction_id=found.id, at=at, kind=str(op["kind"])[:64],
                               ok=bool(op.get("ok", True)), data=dict(op.get("data") or {})))
        return found.id
    raise CrmError(f"outbox: unknown op {kind!r}")


def is_final(state: str) -> bool:
    return InteractionState(state) in TERMINAL
