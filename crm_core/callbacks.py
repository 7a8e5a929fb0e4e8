"""Callbacks (outbound contacts scheduled for later), ticket events and supervisor alerts.

    cbs = CallbackStore(db)
    cb = await cbs.schedule(number="+12025550143", queue="billing", due_at=now, interaction_id=iid,
                            origin="ivr", max_attempts=3)
    due = await cbs.due(now)                 # scheduled ones whose time has come, oldest first
    await cbs.update(cb.id, status="offered")
    await cbs.ticket_event(ticket_id, "sla_escalated", {...})
    alert = await cbs.add_alert("sla_escalation", "T-000012 is at 80 % of its SLA", ticket_id=12)

A callback has one outbound interaction (opened by the caller of `schedule`), whose timeline
logs every attempt. The tables are created by migration 0005.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, and_, exists, select, update
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.db import Database
from crm_core.enums import TicketStatus
from crm_core.errors import NotFound, ValidationError
from crm_core.models import Base, Ticket, one_of
from crm_core.types import IdType, JSONType, UTCDateTime, as_utc, utcnow


class CallbackStatus(StrEnum):
    SCHEDULED = "scheduled"  # waiting for its time (or for a retry)
    ROUTING = "routing"  # in the routing engine, looking for an agent
    OFFERED = "offered"  # offered to an agent's console
    DIALING = "dialing"  # accepted: the agent's phone, then the customer, are being called
    CONNECTED = "connected"  # the customer answered (done)
    FAILED = "failed"  # given up after the last attempt
    CANCELLED = "cancelled"


class CallbackOrigin(StrEnum):
    IVR = "ivr"
    ESCALATION = "escalation"
    CONSOLE = "console"


OPEN = (CallbackStatus.SCHEDULED, CallbackStatus.ROUTING, CallbackStatus.OFFERED, CallbackStatus.DIALING)


class CallbackRow(Base):
    __tablename__ = "callbacks"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    interaction_id: Mapped[int] = mapped_column(IdType, ForeignKey("interactions.id", ondelete="CASCADE"))
    origin_interaction_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("interactions.id", ondelete="SET NULL"), default=None)
    customer_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("customers.id", ondelete="SET NULL"), default=None)
    requested_by: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("users.id", ondelete="SET NULL"), default=None)
    number: Mapped[str] = mapped_column(String(32))
    queue: Mapped[str] = mapped_column(String(64))
    skills: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    origin: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=CallbackStatus.SCHEDULED.value)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    last_outcome: Mapped[str | None] = mapped_column(String(32), default=None)
    note: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        one_of("status", CallbackStatus),
        one_of("origin", CallbackOrigin),
        Index("ix_callbacks_status_due_at", "status", "due_at"),
        Index("ix_callbacks_customer_id", "customer_id"),
    )


class TicketEventRow(Base):
    """Append-only log of a ticket (automatic SLA escalation, ...)."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(IdType, ForeignKey("tickets.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    kind: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    __table_args__ = (Index("ix_ticket_events_ticket_id_kind", "ticket_id", "kind"),)


class AlertRow(Base):
    """A supervisor alert, kept so that a supervisor who connects later still sees it."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(String(500))
    ticket_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("tickets.id", ondelete="SET NULL"), default=None)
    queue: Mapped[str | None] = mapped_column(String(64), default=None)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    acknowledged_by: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("users.id", ondelete="SET NULL"), default=None)

    __table_args__ = (Index("ix_alerts_acknowledged_at_at", "acknowledged_at", "at"),)


@dataclass(frozen=True, slots=True)
class Callback:
    id: int
    interaction_id: int
    number: str
    queue: str
    skills: dict[str, int]
    origin: str
    status: str
    due_at: datetime
    attempts: int
    max_attempts: int
    customer_id: int | None = None
    origin_interaction_id: int | None = None
    requested_by: int | None = None
    last_outcome: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    at: datetime
    kind: str
    message: str
    ticket_id: int | None
    queue: str | None
    data: dict[str, Any]
    acknowledged_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SlaTicket:
    """An open ticket with an SLA, as the SLA watcher sees it."""

    id: int
    number: str
    customer_id: int | None
    type: str
    priority: str
    created_at: datetime
    sla_due_at: datetime
    escalation_queue: str | None


def _cb(r: CallbackRow) -> Callback:
    return Callback(r.id, r.interaction_id, r.number, r.queue, dict(r.skills or {}), r.origin, r.status,
                    as_utc(r.due_at), r.attempts, r.max_attempts, r.customer_id, r.origin_interaction_id,
                    r.requested_by, r.last_outcome, r.note)


def _alert(r: AlertRow) -> Alert:
    return Alert(r.id, as_utc(r.at), r.kind, r.message, r.ticket_id, r.queue, dict(r.data or {}),
                 as_utc(r.acknowledged_at) if r.acknowledged_at else None)


_UPDATABLE = {"status", "due_at", "attempts", "last_outcome"}


class CallbackStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- callbacks -------------------------------------------------------------------------
    async def schedule(self, *, number: str, queue: str, due_at: datetime, interaction_id: int,
                       origin: str, max_attempts: int, skills: dict[str, int] | None = None,
                       customer_id: int | None = None, origin_interaction_id: int | None = None,
                       requested_by: int | None = None, note: str | None = None) -> Callback:
        if not number or len(number) > 32:
            raise ValidationError("a callback needs a number of at most 32 characters", field="number")
        if not queue or len(queue) > 64:
            raise ValidationError("a callback needs a queue", field="queue")
        if max_attempts < 1:
            raise ValidationError("max_attempts must be at least 1", field="max_attempts")
        if origin not in CallbackOrigin.__members__.values():
            raise ValidationError(f"unknown origin {origin!r}", field="origin")
        if note is not None and len(note) > 2000:
            raise ValidationError("note longer than 2000 characters", field="note")
        now = utcnow()
        row = CallbackRow(interaction_id=interaction_id, origin_interaction_id=origin_interaction_id,
                          customer_id=customer_id, requested_by=requested_by, number=number, queue=queue,
                          skills=dict(skills or {}), origin=origin, status=CallbackStatus.SCHEDULED.value,
                          due_at=as_utc(due_at), attempts=0, max_attempts=max_attempts, note=note,
                          created_at=now, updated_at=now)
        async with self.db.session() as s, s.begin():
            s.add(row)
            await s.flush()
        return _cb(row)

    async def get(self, callback_id: int) -> Callback:
        async with self.db.session() as s:
            row = await s.get(CallbackRow, callback_id)
            if row is None:
                raise NotFound("Callback", callback_id)
            return _cb(row)

    async def due(self, now: datetime, limit: int = 100) -> list[Callback]:
        """Scheduled callbacks whose time has come, the earliest first."""
        async with self.db.session() as s:
            rows = (await s.execute(
                select(CallbackRow).where(CallbackRow.status == CallbackStatus.SCHEDULED.value,
                                          CallbackRow.due_at <= as_utc(now))
                .order_by(CallbackRow.due_at, CallbackRow.id).limit(limit))).scalars()
            return [_cb(r) for r in rows]

    async def claim(self, callback_id: int, status: str, *, expect: str) -> bool:
        """Move a callback from `expect` to `status`; False if it was no longer in `expect`
        (another process took it, or it was cancelled)."""
        async with self.db.session() as s, s.begin():
            res = await s.execute(update(CallbackRow).where(
                CallbackRow.id == callback_id, CallbackRow.status == expect)
                .values(status=status, updated_at=utcnow()))
        return bool(res.rowcount)  # type: ignore[attr-defined]

    async def update(self, callback_id: int, **values: Any) -> Callback:
        unknown = set(values) - _UPDATABLE
        if unknown:
            raise ValidationError(f"cannot update {sorted(unknown)}")
        if "status" in values:
            values["status"] = CallbackStatus(values["status"]).value
        if "due_at" in values:
            values["due_at"] = as_utc(values["due_at"])
        async with self.db.session() as s, s.begin():
            row = await s.get(CallbackRow, callback_id)
            if row is None:
                raise NotFound("Callback", callback_id)
            for k, v in values.items():
                setattr(row, k, v)
            row.updated_at = utcnow()
        return _cb(row)

    async def list_open(self, *, customer_id: int | None = None) -> list[Callback]:
        async with self.db.session() as s:
            stmt = select(CallbackRow).where(CallbackRow.status.in_([o.value for o in OPEN]))
            if customer_id is not None:
                stmt = stmt.where(CallbackRow.customer_id == customer_id)
            return [_cb(r) for r in (await s.execute(stmt.order_by(CallbackRow.due_at))).scalars()]

    async def reset_in_flight(self) -> int:
        """At start-up: callbacks left routing/offered by a previous run wait again (a callback
        being dialled is left alone: its outcome is unknown and it must not be dialled twice)."""
        async with self.db.session() as s, s.begin():
            res = await s.execute(update(CallbackRow).where(CallbackRow.status.in_(
                [CallbackStatus.ROUTING.value, CallbackStatus.OFFERED.value]))
                .values(status=CallbackStatus.SCHEDULED.value, updated_at=utcnow()))
        return int(res.rowcount)  # type: ignore[attr-defined]

    # ---- tickets and SLA -------------------------------------------------------------------
    async def tickets_for_sla(self, *, kind: str = "sla_escalated", limit: int = 500) -> list[SlaTicket]:
        """Open or pending tickets with an SLA that have no `kind` event yet."""
        done = exists().where(and_(TicketEventRow.ticket_id == Ticket.id, TicketEventRow.kind == kind))
        async with self.db.session() as s:
            rows = (await s.execute(
                select(Ticket.id, Ticket.number, Ticket.customer_id, Ticket.type, Ticket.priority,
                       Ticket.created_at, Ticket.sla_due_at, Ticket.escalation_queue)
                .where(Ticket.status.in_([TicketStatus.OPEN.value, TicketStatus.PENDING.value]),
                       Ticket.sla_due_at.is_not(None), ~done)
                .order_by(Ticket.sla_due_at, Ticket.id).limit(limit))).all()
        return [SlaTicket(r.id, r.number, r.customer_id, r.type, r.priority, as_utc(r.created_at),
                          as_utc(r.sla_due_at), r.escalation_queue) for r in rows]

    async def escalate_ticket(self, ticket_id: int, queue: str, data: dict[str, Any], *,
                              at: datetime, priority: str | None = None) -> bool:
        """Set the ticket's escalation queue (and priority) and log `sla_escalated` on it, in one
        transaction; False if it was already escalated (another process was first)."""
        async with self.db.session() as s, s.begin():
            t = await s.get(Ticket, ticket_id, with_for_update=True)
            if t is None:
                raise NotFound("Ticket", ticket_id)
            already = (await s.execute(select(TicketEventRow.id).where(
                TicketEventRow.ticket_id == ticket_id, TicketEventRow.kind == "sla_escalated"))).first()
            if already is not None:
                return False
            t.escalation_queue = queue
            if priority is not None:
                t.priority = priority
            t.updated_at = as_utc(at)
            s.add(TicketEventRow(ticket_id=ticket_id, at=as_utc(at), kind="sla_escalated", data=data))
        return True

    async def ticket_event(self, ticket_id: int, kind: str, data: dict[str, Any] | None = None,
                           *, at: datetime | None = None) -> None:
        async with self.db.session() as s, s.begin():
            s.add(TicketEventRow(ticket_id=ticket_id, at=as_utc(at) if at else utcnow(), kind=kind[:64],
                                 data=dict(data or {})))

    async def ticket_events(self, ticket_id: int) -> list[tuple[str, datetime, dict[str, Any]]]:
        async with self.db.session() as s:
            rows = (await s.execute(select(TicketEventRow).where(TicketEventRow.ticket_id == ticket_id)
                                    .order_by(TicketEventRow.id))).scalars()
            return [(r.kind, as_utc(r.at), dict(r.data or {})) for r in rows]

    # ---- alerts ----------------------------------------------------------------------------
    async def add_alert(self, kind: str, message: str, *, at: datetime | None = None,
                        ticket_id: int | None = None, queue: str | None = None,
                        data: dict[str, Any] | None = None) -> Alert:
        row = AlertRow(at=as_utc(at) if at else utcnow(), kind=kind[:32], message=message[:500],
                       ticket_id=ticket_id, queue=queue[:64] if queue else None, data=dict(data or {}))
        async with self.db.session() as s, s.begin():
            s.add(row)
            await s.flush()
        return _alert(row)

    async def open_alerts(self, limit: int = 50) -> list[Alert]:
        """Unacknowledged alerts, oldest first (the newest `limit`)."""
        async with self.db.session() as s:
            rows = list((await s.execute(select(AlertRow).where(AlertRow.acknowledged_at.is_(None))
                                         .order_by(AlertRow.at.desc(), AlertRow.id.desc())
                                         .limit(limit))).scalars())
        return [_alert(r) for r in reversed(rows)]

    async def alert(self, alert_id: int) -> Alert | None:
        async with self.db.session() as s:
            row = await s.get(AlertRow, alert_id)
        return None if row is None else _alert(row)

    async def ack_alert(self, alert_id: int, user_id: int, *, at: datetime | None = None) -> bool:
        async with self.db.session() as s, s.begin():
            row = await s.get(AlertRow, alert_id)
            if row is None:
                raise NotFound("Alert", alert_id)
            if row.acknowledged_at is not None:
                return False
            row.acknowledged_at = as_utc(at) if at else utcnow()
            row.acknowledged_by = user_id
        return True
