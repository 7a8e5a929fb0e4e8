"""Interaction lifecycle writes, the append-only timeline, satisfaction surveys."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Session

from crm_core import reports
from crm_core._base import UNSET, StoreBase
from crm_core.enums import Channel, Direction, InteractionState
from crm_core.errors import CrmError, InvalidTransition, NotFound, UnknownValue, ValidationError
from crm_core.models import Customer, DispositionCode, Interaction, InteractionEvent, SurveyResult, User
from crm_core.normalize import check_text, enum_value

S = InteractionState
T = TypeVar("T")
M = TypeVar("M")
TERMINAL = frozenset({S.WRAPUP_DONE, S.ABANDONED, S.FAILED})
# Which state may follow which. Re-queueing an unanswered offer (OFFERED -> QUEUED) is allowed.
TRANSITIONS: dict[InteractionState, frozenset[InteractionState]] = {
    S.NEW: frozenset({S.IVR, S.QUEUED, S.OFFERED, S.ANSWERED, S.ENDED, S.ABANDONED, S.FAILED}),
    S.IVR: frozenset({S.QUEUED, S.OFFERED, S.ANSWERED, S.ENDED, S.ABANDONED, S.FAILED}),
    S.QUEUED: frozenset({S.OFFERED, S.ANSWERED, S.ENDED, S.ABANDONED, S.FAILED}),
    S.OFFERED: frozenset({S.QUEUED, S.ANSWERED, S.ENDED, S.ABANDONED, S.FAILED}),
    S.ANSWERED: frozenset({S.ENDED, S.FAILED}),
    S.ENDED: frozenset({S.WRAPUP_DONE}),
    S.WRAPUP_DONE: frozenset(),
    S.ABANDONED: frozenset(),
    S.FAILED: frozenset(),
}
# The timestamp a state stamps (the first time it is reached).
STAMPS: dict[InteractionState, str] = {
    S.QUEUED: "queued_at",
    S.OFFERED: "offered_at",
    S.ANSWERED: "answered_at",
    S.ENDED: "ended_at",
    S.ABANDONED: "ended_at",
    S.FAILED: "ended_at",
    S.WRAPUP_DONE: "wrapup_done_at",
}
MAX_EVENT_KIND = 64
log = logging.getLogger(__name__)
FOLD_EVERY_S = 1.0  # the background fold of ended interactions into the reports' rollups
FOLD_LIMIT = 100  # interactions per background fold transaction (a short step on SQLite's loop)
# PostgreSQL: batches written at once, each on its own held connection. 1: with 4 lanes the
# batches are smaller, so the same writes took about twice the CPU (statements per call 10 -> 23)
# for no shorter wait (40 concurrent calls, store level, loaded 2-core machine); in
# bench/screen_pop.py (loaded machine, saturated either way) 4 lanes did more transactions
# (14k vs 4k) but the screen pop at 25 calls/s stayed tens of seconds behind.
PG_LANES = 1
BUSY_MS = 5000  # SQLite: how long a batch that found the write lock taken waits for it
_EVENTS = "crm_core.pending_events"  # Session.info key: the batch's timeline events


class _Job:
    """One write in a group commit: `fn(session)` (sync ORM code) returns the caller's result.
    It raises a CrmError only before it changes anything. `keys` are rows it reads, fetched for
    the whole batch in one query per table; `missing` is what an IntegrityError means for it."""

    __slots__ = ("fn", "keys", "missing", "fut")

    def __init__(self, fn: Callable[[Session], Any], keys: Sequence[tuple[type[Any], Any]],
                 missing: Callable[[], Exception] | None, fut: asyncio.Future[Any]) -> None:
        self.fn, self.keys, self.missing, self.fut = fn, keys, missing, fut


class _GroupCommit:
    """Timeline appends and interaction writes made at the same moment share one transaction
    (group commit): each caller still returns only once its write is stored. Under load, writes
    that arrive while a batch is being written go into the next one, so the write rate follows
    the database. Elsewhere than on a SQLite file, a batch is one async session.
    A batch that fails as a whole (an unknown interaction, a lost connection) is retried one
    write per transaction, so one bad write never spoils the others.

    On a SQLite file a batch runs on the event loop's thread as one synchronous step on a
    dedicated connection (BEGIN IMMEDIATE, so no other writer slips in between its reads and
    writes): SQLite's own work for a batch is well under a millisecond (WAL, synchronous=NORMAL)
    while a worker thread would wait for the GIL at every statement. If another connection holds
    the write lock, that batch waits for it in a worker thread instead of blocking the loop.

    On PostgreSQL the writes may go in PG_LANES lanes, each with its own batches on its own held
    connection (one slow round trip then holds up only its lane): an interaction's writes always
    take the same lane (by its id), so they are stored in the order they were made."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.writer: Any = db.sync_writer() if hasattr(db, "sync_writer") else None
        self._session: Session | None = None  # SQLite: the writer connection and its session
        self._conn: Any = None
        self._busy_ms = -1
        # PostgreSQL: a connection held per lane for its batches (no pool checkout and pre-ping each)
        self._held_ok = not (getattr(db, "is_sqlite", True))
        lanes = PG_LANES if self._held_ok else 1
        self._pending: list[list[_Job]] = [[] for _ in range(lanes)]
        self._tasks: list[asyncio.Task[None] | None] = [None] * lanes
        self._held: list[AsyncConnection | None] = [None] * lanes
        self._next = 0  # the lane of the next write that names no interaction
        self.batches = 0  # transactions written, and the writes they carried (stats)
        self.writes = 0
        self.fold_task: asyncio.Task[None] | None = None  # folds queued interactions into the rollups
        self._last_mark = 0.0

    async def run(self, fn: Callable[[Session], T], *, keys: Sequence[tuple[type[Any], Any]] = (),
                  missing: Callable[[], Exception] | None = None, route: int | None = None) -> T:
        """Write `fn` with the next batch. `route`: the interaction it writes to (else the
        Interaction among `keys`): its writes keep their order."""
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        lane = self._lane(keys, route)
        self._pending[lane].append(_Job(fn, keys, missing, fut))
        task = self._tasks[lane]
        if task is None or task.done():
            self._tasks[lane] = asyncio.ensure_future(self._flush(lane))
        return await asyncio.shield(fut)

    def _lane(self, keys: Sequence[tuple[type[Any], Any]], route: int | None) -> int:
        n = len(self._pending)
        if n == 1:
            return 0
        if route is None:
            route = next((k for model, k in keys if model is Interaction), None)
        if route is None:  # a new interaction, agent time: any lane
            self._next = (self._next + 1) % n
            return self._next
        return int(route) % n

    async def _flush(self, lane: int) -> None:
        await asyncio.sleep(0)  # one more turn of the loop: the writes it makes join this batch
        while self._pending[lane]:
            batch, self._pending[lane] = self._pending[lane], []
            self.batches += 1
            self.writes += len(batch)
            try:
                outcomes = await self._write(batch, lane)
            except Exception as e:  # noqa: BLE001 - retried one by one, or every waiter hears of it
                if len(batch) == 1:
                    _settle(batch[0], False, _explain(batch[0], e))
                    continue
                for job in batch:
                    try:
                        (outcome,) = await self._write([job], lane)
                    except Exception as e1:  # noqa: BLE001
                        outcome = (False, _explain(job, e1))
                    _settle(job, *outcome)
                continue
            for job, outcome in zip(batch, outcomes, strict=True):
                _settle(job, *outcome)

    async def _write(self, batch: list[_Job], lane: int = 0) -> list[tuple[bool, Any]]:
        if self.writer is not None:
            try:  # on the event loop: a short synchronous step, no thread hops, no GIL ping-pong
                return self._write_sync(batch, wait=False)
            except _Busy:  # another connection holds the write lock: wait for it in a thread
                return await asyncio.to_thread(self._write_sync, batch, True)
        if self._held_ok:
            return await self._write_held(batch, lane)
        async with self.db.session() as s, s.begin():
            return await s.run_sync(_apply, batch)  # type: ignore[no-any-return]

    async def _write_held(self, batch: list[_Job], lane: int) -> list[tuple[bool, Any]]:
        """One batch on the lane's held connection; a failed one is closed (the next batch
        reconnects)."""
        conn = self._held[lane]
        if conn is None:
            conn = self._held[lane] = await self.db.engine.connect()
        try:
            async with conn.begin():
                return await conn.run_sync(_apply_on, batch)  # type: ignore[no-any-return]
        except BaseException:
            self._held[lane] = None
            with contextlib.suppress(Exception):
                await conn.invalidate()
            raise

    def fold_later(self) -> None:
        """An interaction was queued for the reports' rollup: fold it in the background once it
        is FOLD_AGE_S old (reports fold what is queued before they read, so they never wait)."""
        self._last_mark = time.monotonic()
        if self.fold_task is None or self.fold_task.done():
            self.fold_task = asyncio.ensure_future(self._fold_loop())

    async def _fold_loop(self) -> None:
        while True:
            await asyncio.sleep(FOLD_EVERY_S)
            try:
                n = await reports.fold_pending(self.db, older_than=time.time() - reports.FOLD_AGE_S,
                                               limit=FOLD_LIMIT)
            except Exception:  # noqa: BLE001 - left queued: the next fold (or report read) retries
                log.exception("background fold of the report rollups failed")
                n = 0
            if n < FOLD_LIMIT and time.monotonic() - self._last_mark > reports.FOLD_AGE_S + FOLD_EVERY_S:
                return  # nothing queued is left to wait for

    async def close(self) -> None:
        """Give the held connection back (Database.close calls this), once the batch being
        written is done (never two statements on one connection at once). The background
        fold stops (what it had not folded stays queued)."""
        fold = self.fold_task
        if fold is not None and not fold.done():
            fold.cancel()
            with contextlib.suppress(BaseException):
                await fold
        for lane, task in enumerate(self._tasks):
            if task is not None and not task.done():
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(task), 30)
            conn, self._held[lane] = self._held[lane], None
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()

    def _write_sync(self, batch: list[_Job], wait: bool) -> list[tuple[bool, Any]]:
        """One batch on the writer connection, kept open with its session between batches."""
        if self._session is None:
            self._conn = self.writer.connect()
            self._session, self._busy_ms = Session(bind=self._conn, expire_on_commit=False), -1
        s, conn = self._session, self._conn
        try:
            busy_ms = BUSY_MS if wait else 0
            if busy_ms != self._busy_ms:  # on the driver's connection: no transaction begun
                conn.connection.driver_connection.execute(f"PRAGMA busy_timeout = {busy_ms}")
                self._busy_ms = busy_ms
            with s.begin():
                try:
                    s.connection()  # BEGIN IMMEDIATE: the write lock, or SQLITE_BUSY at once
                except OperationalError as e:
                    if wait or "locked" not in str(e.orig):
                        raise
                    raise _Busy from e
                return _apply(s, batch)
        except _Busy:
            raise
        except BaseException:
            self._session = None  # start afresh next time (the connection may be broken)
            s.close()
            conn.close()
            raise
        finally:
            if self._session is not None:
                s.expunge_all()  # the objects handed back are the callers' now


def _apply_on(conn: Connection, batch: list[_Job]) -> list[tuple[bool, Any]]:
    """_apply in a session joined to the connection's transaction (the caller commits)."""
    s = Session(bind=conn, expire_on_commit=False)
    try:
        return _apply(s, batch)
    finally:
        s.expunge_all()  # the objects handed back are the callers' now
        s.close()


class _Busy(Exception):
    """BEGIN IMMEDIATE found the SQLite write lock taken (nothing was written)."""


def _apply(s: Session, batch: list[_Job]) -> list[tuple[bool, Any]]:
    """Run the batch's writes in order in one transaction; returns (ok, result or CrmError)."""
    wanted: dict[type[Any], set[Any]] = {}
    for job in batch:
        for model, key in job.keys:
            wanted.setdefault(model, set()).add(key)
    held: list[Any] = []  # the identity map holds objects weakly: keep them for the batch
    for model, ids in wanted.items():  # into the identity map: s.get() finds them without SQL
        held.extend(s.execute(_prefetch(model), {"ids": sorted(ids)}).scalars())
    out: list[tuple[bool, Any]] = []
    s.info.pop(_EVENTS, None)
    s.info.pop(reports.AGENT_TIME_ROWS, None)
    for job in batch:
        try:
            out.append((True, job.fn(s)))
        except CrmError as e:
            out.append((False, e))
    s.flush()
    _insert_events(s)
    reports.agent_time_flush_sync(s)  # the batch's agent time, summed: one statement per table
    return out


_PREFETCH: dict[type[Any], Any] = {}


def _prefetch(model: type[Any]) -> Any:
    """SELECT the model's rows by primary key (interactions FOR UPDATE), built once: the
    statement's cache key is then computed once, not for every batch."""
    q = _PREFETCH.get(model)
    if q is None:
        pk = sa_inspect(model).primary_key[0]
        q = select(model).where(pk.in_(bindparam("ids", expanding=True))).order_by(pk)
        if model is Interaction:
            q = q.with_for_update()
        _PREFETCH[model] = q
    return q


def _event(s: Session, interaction_id: int | Interaction, at: datetime, kind: str, ok: bool = True,
           data: Mapping[str, Any] | None = None) -> InteractionEvent:
    """A timeline event written with the batch: the batch's events go in one multi-row INSERT
    after its other writes, in the order they were made (the returned object gets its id).
    An Interaction not yet flushed may be given: its id is taken once the batch is flushed (the
    batch's new interactions go in one INSERT instead of one each)."""
    ev = InteractionEvent(at=at, kind=kind, ok=ok, data=dict(data or {}))
    if isinstance(interaction_id, Interaction):
        s.info.setdefault(_EVENTS, []).append((ev, interaction_id))
    else:
        ev.interaction_id = interaction_id
        s.info.setdefault(_EVENTS, []).append((ev, None))
    return ev


_INSERT_EVENTS = insert(InteractionEvent.__table__).returning(
    InteractionEvent.__table__.c.id, sort_by_parameter_order=True)
# SQLite: the ids in any order (with the order asked for, SQLAlchemy inserts one row per
# statement there). The rows of one INSERT get increasing rowids in the order given (one writer
# at a time), so the ids sorted are the rows' ids in order.
_INSERT_EVENTS_SQLITE = insert(InteractionEvent.__table__).returning(InteractionEvent.__table__.c.id)


def _insert_events(s: Session) -> None:
    pending: list[tuple[InteractionEvent, Interaction | None]] = s.info.pop(_EVENTS, [])
    if not pending:
        return
    events = []
    for ev, owner in pending:
        if owner is not None:
            ev.interaction_id = owner.id
        events.append(ev)
    rows = [{"interaction_id": e.interaction_id, "at": e.at, "kind": e.kind, "ok": e.ok, "data": e.data}
            for e in events]
    if s.get_bind().dialect.name == "sqlite":
        ids: Any = sorted(s.execute(_INSERT_EVENTS_SQLITE, rows).scalars())
    else:
        ids = s.execute(_INSERT_EVENTS, rows).scalars()
    for ev, id_ in zip(events, ids, strict=True):
        ev.id = id_


def _settle(job: _Job, ok: bool, value: Any) -> None:
    if job.fut.done():
        return
    if ok:
        job.fut.set_result(value)
    else:
        job.fut.set_exception(value)


def _explain(job: _Job, e: Exception) -> Exception:
    if isinstance(e, IntegrityError) and job.missing is not None:
        return job.missing()
    return e


def _read_interaction(conn: Connection, interaction_id: int) -> Interaction | None:
    with Session(bind=conn) as s:
        return s.get(Interaction, interaction_id)


def _rollup_out(s: Session, i: Interaction) -> None:
    """An ended interaction about to change (disposition, CSAT): its counters leave the
    reports' rollup now if they are in it, and it is queued to be folded in again."""
    if InteractionState(i.state) in TERMINAL:
        reports.change_ended_sync(s, i.id)


_CUSTOMERS = Customer.__table__
_CSAT_ADD = (
    update(_CUSTOMERS).where(_CUSTOMERS.c.id == bindparam("cid"))
    .values(csat_sum=_CUSTOMERS.c.csat_sum + bindparam("score"), csat_count=_CUSTOMERS.c.csat_count + 1)
)


def _checked_events(events: Sequence[tuple[str, Mapping[str, Any]]]) -> list[tuple[str, Mapping[str, Any]]]:
    """Timeline events written along with another write: (kind, data), kinds checked, stripped."""
    out = []
    for kind, d in events:
        if not isinstance(kind, str) or not kind.strip() or len(kind) > MAX_EVENT_KIND:
            raise ValidationError(f"event kind must be 1..{MAX_EVENT_KIND} characters",
                                  field="kind", value=kind)
        out.append((kind.strip(), d))
    return out


def _get_sync(s: Session, model: type[M], key: Any) -> M:
    obj = s.get(model, key)
    if obj is None:
        raise NotFound(model.__name__, key)
    return obj


class InteractionsMixin(StoreBase):
    _events: _GroupCommit | None = None
    # _refresh_activity(session, customer, now) and its sync twin come from CustomersMixin
    _refresh_activity: Any
    _refresh_activity_sync: Any

    async def open_interaction(
        self,
        channel: str,
        direction: str,
        customer_id: int | None = None,
        *,
        external_id: str | None = None,
        from_address: str | None = None,
        to_address: str | None = None,
        queue: str | None = None,
        skills: Mapping[str, Any] | None = None,
        ivr_path: Sequence[Any] | None = None,
        state: str = InteractionState.NEW.value,
        at: datetime | None = None,
        events: Sequence[tuple[str, Mapping[str, Any]]] = (),
    ) -> Interaction:
        """Record a new contact. Counts as activity for the customer (loyalty is re-derived).
        The timeline starts with an `opened` event; `events` ((kind, data)) follow it in the
        same transaction."""
        ch = enum_value(Channel, channel, "channel").value
        di = enum_value(Direction, direction, "direction").value
        st = enum_value(InteractionState, state, "state")
        if st in TERMINAL:
            raise InvalidTransition(f"an interaction cannot open in state {st.value}")
        when = self._at(at)
        for field, v, n in (("external_id", external_id, 128), ("from_address", from_address, 320),
                            ("to_address", to_address, 320), ("queue", queue, 64)):
            if v is not None and len(v) > n:
                raise ValidationError(f"{field} longer than {n} characters", field=field)
        events = _checked_events(events)

        def open_(s: Session) -> Interaction:
            customer = None if customer_id is None else _get_sync(s, Customer, customer_id)
            i = Interaction(
                customer_id=customer_id, channel=ch, direction=di, state=st.value,
                external_id=external_id, from_address=from_address, to_address=to_address,
                queue=queue, skills=dict(skills or {}), ivr_path=list(ivr_path or []),
                escalation_steps=[], created_at=when, updated_at=when,
            )
            if st in STAMPS:
                setattr(i, STAMPS[st], when)
            s.add(i)  # flushed with the batch's other new interactions (its events then get its id)
            _event(s, i, when, "opened", data={"channel": ch, "direction": di, "state": st.value})
            for kind, d in events:
                _event(s, i, when, kind, data=d)
            if customer is not None:
                s.flush()
                self._refresh_activity_sync(s, customer, when)
            return i

        return await self._writes().run(open_, keys=[] if customer_id is None else [(Customer, customer_id)])

    async def get_interaction(self, interaction_id: int) -> Interaction:
        found = await self.db.read(_read_interaction, interaction_id)  # one trip to the database
        if found is None:
            raise NotFound("Interaction", interaction_id)
        return found

    async def find_interaction(self, external_id: str) -> Interaction | None:
        """The latest interaction carrying a PBX/provider id (e.g. an Asterisk linkedid)."""
        async with self.db.session() as s:
            return (await s.execute(
                select(Interaction).where(Interaction.external_id == external_id)
                .order_by(Interaction.id.desc()).limit(1)
            )).scalar_one_or_none()

    async def set_state(
        self,
        interaction_id: int,
        state: str,
        *,
        at: datetime | None = None,
        agent_id: int | None = UNSET,
        queue: str | None = UNSET,
        data: Mapping[str, Any] | None = None,
        events: Sequence[tuple[str, Mapping[str, Any]]] = (),
    ) -> Interaction:
        """Move an interaction to `state`, stamping its time (queued/offered/answered/ended/
        wrap-up done) the first time each is reached, and log a `state` event.
        Setting the current state again is a no-op; a move the lifecycle forbids raises
        InvalidTransition (and writes nothing).
        `events`: (kind, data) timeline events appended after the `state` event in the same
        transaction (one trip instead of one per event; written even when the state is unchanged)."""
        new = enum_value(InteractionState, state, "state")
        when = self._at(at)
        _checked_events(events)
        check_agent = agent_id is not UNSET and agent_id is not None

        def change(s: Session) -> Interaction:
            i = _get_sync(s, Interaction, interaction_id)
            old = InteractionState(i.state)
            if new is old:
                for kind, d in events:
                    _event(s, interaction_id, when, kind.strip(), data=d)
                return i
            if new not in TRANSITIONS[old]:
                raise InvalidTransition(
                    f"interaction {interaction_id}: {old.value} -> {new.value} is not allowed",
                    field="state", value=new.value,
                )
            if check_agent:
                _get_sync(s, User, agent_id)
            i.state = new.value
            stamp = STAMPS.get(new)
            if stamp and getattr(i, stamp) is None:
                setattr(i, stamp, when)
            if new is S.WRAPUP_DONE and i.ended_at is None:
                i.ended_at = when
            if agent_id is not UNSET:
                i.agent_id = agent_id
            if queue is not UNSET:
                i.queue = queue
            i.updated_at = when
            payload: dict[str, Any] = {"from": old.value, "to": new.value}
            if agent_id is not UNSET:
                payload["agent_id"] = agent_id
            if queue is not UNSET:
                payload["queue"] = queue
            if data:
                payload.update(data)
            _event(s, i.id, when, "state", data=payload)
            for kind, d in events:
                _event(s, interaction_id, when, kind.strip(), data=d)
            if new in TERMINAL:  # queued for the reports' rollup (folded later, crm_core/reports.py)
                reports.mark_pending_sync(s, i.id)
            return i

        keys: list[tuple[type[Any], int]] = [(Interaction, interaction_id)]
        if check_agent:
            keys.append((User, agent_id))
        writes = self._writes()
        out = await writes.run(change, keys=keys)
        if new in TERMINAL:
            writes.fold_later()
        return out

    def _writes(self) -> _GroupCommit:
        if self._events is None:  # one per Database: SQLite's writer connection is held between batches
            shared = getattr(self.db, "group_commit", None)
            if shared is None:
                shared = _GroupCommit(self.db)
                setattr(self.db, "group_commit", shared)  # noqa: B010
            self._events = shared
        return self._events

    async def update_interaction(
        self,
        interaction_id: int,
        *,
        queue: str | None = UNSET,
        skills: Mapping[str, Any] = UNSET,
        ivr_path: Sequence[Any] = UNSET,
        agent_id: int | None = UNSET,
        transcript_ref: str | None = UNSET,
        recording_ref: str | None = UNSET,
        external_id: str | None = UNSET,
        events: Sequence[tuple[str, Mapping[str, Any]]] = (),
    ) -> Interaction:
        """Change the given fields; `events` ((kind, data)) go on the timeline in the same transaction."""
        check_agent = agent_id is not UNSET and agent_id is not None
        when = self._at(None)
        events = _checked_events(events)

        def update_(s: Session) -> Interaction:
            i = _get_sync(s, Interaction, interaction_id)
            if check_agent:
                _get_sync(s, User, agent_id)
            for name, v in (("queue", queue), ("agent_id", agent_id),
                            ("transcript_ref", transcript_ref), ("recording_ref", recording_ref),
                            ("external_id", external_id)):
                if v is not UNSET:
                    setattr(i, name, v)
            if skills is not UNSET:
                i.skills = dict(skills)
            if ivr_path is not UNSET:
                i.ivr_path = list(ivr_path)
            i.updated_at = when
            for kind, d in events:
                _event(s, i.id, when, kind, data=d)
            return i

        keys: list[tuple[type[Any], Any]] = [(Interaction, interaction_id)]
        if check_agent:
            keys.append((User, agent_id))
        return await self._writes().run(update_, keys=keys)

    async def link_customer(self, interaction_id: int, customer_id: int, *,
                            events: Sequence[tuple[str, Mapping[str, Any]]] = ()) -> Interaction:
        """Attach an interaction opened for an unknown contact to the customer identified later.
        `events` ((kind, data)) follow its `customer_linked` event in the same transaction."""
        when = self._at(None)
        events = _checked_events(events)

        def link(s: Session) -> Interaction:
            i = _get_sync(s, Interaction, interaction_id)
            c = _get_sync(s, Customer, customer_id)
            previous = i.customer_id
            i.customer_id = customer_id
            _event(s, i.id, when, "customer_linked", data={"customer_id": customer_id,
                                                           "previous": previous})
            for kind, d in events:
                _event(s, i.id, when, kind, data=d)
            s.flush()
            self._refresh_activity_sync(s, c, when)
            if previous is not None and previous != customer_id:
                old = s.get(Customer, previous)
                if old is not None:
                    self._refresh_activity_sync(s, old, when)
            return i

        return await self._writes().run(link, keys=[(Interaction, interaction_id), (Customer, customer_id)])

    async def add_escalation_step(
        self, interaction_id: int, step: Mapping[str, Any], *, at: datetime | None = None
    ) -> Interaction:
        """Record an escalation step taken (widen skills, raise priority, overflow, ...)."""
        when = self._at(at)
        async with self.db.session() as s, s.begin():
            i = await self._get(s, Interaction, interaction_id, for_update=True)
            entry = {**dict(step), "at": when.isoformat()}
            i.escalation_steps = [*(i.escalation_steps or []), entry]
            i.updated_at = when
            s.add(InteractionEvent(interaction_id=i.id, at=when, kind="escalation", ok=True,
                                   data=dict(step)))
        return i

    async def set_disposition(
        self,
        interaction_id: int,
        code: str,
        notes: str | None = None,
        *,
        agent_id: int | None = None,
        at: datetime | None = None,
    ) -> Interaction:
        """Log the wrap-up: an active disposition code and the agent's notes."""
        notes = check_text(notes, self.rules.note_max_chars, "notes")
        when = self._at(at)

        def dispose(s: Session) -> Interaction:
            dc = s.get(DispositionCode, code)
            if dc is None or not dc.active:
                active = s.execute(
                    select(DispositionCode.code).where(DispositionCode.active.is_(True))
                    .order_by(DispositionCode.position, DispositionCode.code)
                ).scalars().all()
                raise UnknownValue("disposition code", code, list(active))
            i = _get_sync(s, Interaction, interaction_id)
            _rollup_out(s, i)
            i.disposition_code = code
            if notes is not None:
                i.notes = notes
            if agent_id is not None:
                i.agent_id = agent_id
            i.updated_at = when
            _event(s, i.id, when, "disposition", data={"code": code, "agent_id": agent_id,
                                                       "notes_chars": len(notes or "")})
            return i

        writes = self._writes()
        out = await writes.run(dispose, keys=[(DispositionCode, code), (Interaction, interaction_id)])
        if InteractionState(out.state) in TERMINAL:
            writes.fold_later()
        return out

    # ------------------------------------------------------------------ timeline
    async def append_event(
        self,
        interaction_id: int,
        kind: str,
        ok: bool = True,
        data: Mapping[str, Any] | None = None,
        *,
        at: datetime | None = None,
    ) -> InteractionEvent:
        """Append to the interaction's timeline (never updated in place). A failed step is an
        event too: `ok=False` with what went wrong in `data`."""
        if not isinstance(kind, str) or not kind.strip() or len(kind) > MAX_EVENT_KIND:
            raise ValidationError(f"event kind must be 1..{MAX_EVENT_KIND} characters",
                                  field="kind", value=kind)
        when = self._at(at)
        row = {"interaction_id": interaction_id, "at": when, "kind": kind.strip(), "ok": bool(ok),
               "data": dict(data or {})}

        def add(s: Session) -> InteractionEvent:
            return _event(s, **row)

        return await self._writes().run(add, missing=lambda: NotFound("Interaction", interaction_id),
                                        route=interaction_id)

    async def timeline(self, interaction_id: int) -> list[InteractionEvent]:
        """The interaction's events in the order they were appended."""
        async with self.db.session() as s:
            events = list((await s.execute(
                select(InteractionEvent).where(InteractionEvent.interaction_id == interaction_id)
                .order_by(InteractionEvent.id)
            )).scalars())
            if not events:
                await self._get(s, Interaction, interaction_id)
        return events

    # ------------------------------------------------------------------ satisfaction
    async def record_survey(
        self,
        score: int,
        *,
        interaction_id: int | None = None,
        customer_id: int | None = None,
        channel: str | None = None,
        comment: str | None = None,
        at: datetime | None = None,
        events: Sequence[tuple[str, Mapping[str, Any]]] = (),
    ) -> SurveyResult:
        """Store a satisfaction score. With an interaction, its customer and channel are taken
        from it and its CSAT score is set. The customer's CSAT aggregate follows. `events`
        ((kind, data)) go on the interaction's timeline after its `csat` event, in the same
        transaction."""
        r = self.rules
        if isinstance(score, bool) or not isinstance(score, int) or not (
            r.csat_min <= score <= r.csat_max
        ):
            raise ValidationError(f"CSAT score must be an integer {r.csat_min}..{r.csat_max}",
                                  field="score", value=score)
        ch = None if channel is None else enum_value(Channel, channel, "channel").value
        comment = check_text(comment, r.note_max_chars, "comment")
        when = self._at(at)
        events = _checked_events(events) if interaction_id is not None else []

        def record(s: Session) -> SurveyResult:
            cid, channel_ = customer_id, ch
            i = None
            if interaction_id is not None:  # every check first: a refused score writes nothing
                i = _get_sync(s, Interaction, interaction_id)
                if cid is not None and i.customer_id not in (None, cid):
                    raise ValidationError("the interaction belongs to another customer",
                                          field="customer_id", value=cid)
                cid = cid if cid is not None else i.customer_id
                channel_ = channel_ or i.channel
            # a customer named by the caller is checked (prefetched with the batch); the
            # interaction's own customer exists (a foreign key): its aggregate is one UPDATE
            customer = None if customer_id is None else _get_sync(s, Customer, customer_id)
            if i is not None:
                _rollup_out(s, i)
                i.csat_score = score
                _event(s, i.id, when, "csat", data={"score": score})
                for kind, d in events:
                    _event(s, i.id, when, kind, data=d)
            if customer is not None:  # SET csat_sum = csat_sum + score: no lost update
                customer.csat_sum = Customer.csat_sum + score  # type: ignore[assignment]
                customer.csat_count = Customer.csat_count + 1  # type: ignore[assignment]
            elif cid is not None:
                s.execute(_CSAT_ADD, {"cid": cid, "score": score})
            res = SurveyResult(interaction_id=interaction_id, customer_id=cid,
                               score=score, channel=channel_, comment=comment, created_at=when)
            s.add(res)
            return res

        keys: list[tuple[type[Any], Any]] = []
        if interaction_id is not None:
            keys.append((Interaction, interaction_id))
        if customer_id is not None:
            keys.append((Customer, customer_id))
        writes = self._writes()
        out = await writes.run(record, keys=keys)
        if interaction_id is not None:
            writes.fold_later()
        return out

    async def set_csat(
        self, interaction_id: int, score: int, comment: str | None = None
    ) -> SurveyResult:
        return await self.record_survey(score, interaction_id=interaction_id, comment=comment)

