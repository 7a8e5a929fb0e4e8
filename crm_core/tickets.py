"""Tickets: service requests, complaints and inquiries with an SLA derived from the rules."""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from crm_core._base import UNSET, StoreBase
from crm_core.customers import ticket_number
from crm_core.enums import TicketPriority, TicketStatus, TicketType
from crm_core.errors import NotFound, ValidationError
from crm_core.models import Customer, Interaction, Ticket, User, ticket_interactions
from crm_core.normalize import check_text, enum_value

_TS = TicketStatus


class TicketsMixin(StoreBase):
    async def _link(self, s: AsyncSession, ticket_id: int, interaction_ids: Iterable[int]) -> None:
        ids = sorted(set(interaction_ids))
        if not ids:
            return
        found = set((await s.execute(
            select(Interaction.id).where(Interaction.id.in_(ids))
        )).scalars())
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFound("Interaction", missing[0])
        ins = pg_insert if self.db.dialect == "postgresql" else sqlite_insert
        await s.execute(
            ins(ticket_interactions).on_conflict_do_nothing(),
            [{"ticket_id": ticket_id, "interaction_id": i} for i in ids],
        )

    async def _load_ticket(self, s: AsyncSession, ticket_id: int) -> Ticket:
        t = (await s.execute(
            select(Ticket).where(Ticket.id == ticket_id)
            .options(selectinload(Ticket.interactions))
        )).scalar_one_or_none()
        if t is None:
            raise NotFound("Ticket", ticket_id)
        return t

    async def create_ticket(
        self,
        customer_id: int,
        type: str,
        subject: str,
        *,
        description: str | None = None,
        priority: str = TicketPriority.NORMAL.value,
        assignee_id: int | None = None,
        escalation_queue: str | None = None,
        interaction_ids: Iterable[int] = (),
        at: datetime | None = None,
    ) -> Ticket:
        """Open a ticket for a customer. Its SLA due time comes from the rules: ticket type x the
        customer's tier. Numbered T-000123 (unique, searchable)."""
        ttype = enum_value(TicketType, type, "type").value
        prio = enum_value(TicketPriority, priority, "priority").value
        if not isinstance(subject, str) or not subject.strip():
            raise ValidationError("a ticket needs a subject", field="subject", value=subject)
        subject = " ".join(subject.split())
        if len(subject) > 200:
            raise ValidationError("subject longer than 200 characters", field="subject")
        description = check_text(description, self.rules.note_max_chars, "description")
        if escalation_queue is not None and len(escalation_queue) > 64:
            raise ValidationError("escalation_queue longer than 64 characters",
                                  field="escalation_queue")
        when = self._at(at)
        async with self.db.session() as s, s.begin():
            c = await self._get(s, Customer, customer_id)
            if assignee_id is not None:
                await self._get(s, User, assignee_id)
            t = Ticket(
                number="~" + uuid.uuid4().hex[:30], customer_id=customer_id,
                type=ttype, status=_TS.OPEN.value, priority=prio, subject=subject,
                description=description, assignee_id=assignee_id,
                escalation_queue=escalation_queue,
                sla_due_at=self.rules.sla_due(ttype, c.tier, when),
                created_at=when, updated_at=when,
            )
            s.add(t)
            await s.flush()
            t.number = ticket_number(t.id)
            await self._link(s, t.id, interaction_ids)
            await s.flush()
            t = await self._load_ticket(s, t.id)
        return t

    async def get_ticket(self, ticket: int | str) -> Ticket:
        """By id or by number ("T-000123"); interactions loaded."""
        async with self.db.session() as s:
            if isinstance(ticket, str):
                tid = (await s.execute(
                    select(Ticket.id).where(Ticket.number == ticket.strip().upper())
                )).scalar_one_or_none()
                if tid is None:
                    raise NotFound("Ticket", ticket)
                ticket = tid
            return await self._load_ticket(s, ticket)

    async def list_tickets(
        self, customer_id: int, *, open_only: bool = False, limit: int = 100
    ) -> list[Ticket]:
        async with self.db.session() as s:
            stmt = select(Ticket).where(Ticket.customer_id == customer_id)
            if open_only:
                stmt = stmt.where(Ticket.status.in_([_TS.OPEN.value, _TS.PENDING.value]))
            return list((await s.execute(
                stmt.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit)
            )).scalars())

    async def update_ticket_status(
        self, ticket_id: int, status: str, *, at: datetime | None = None
    ) -> Ticket:
        """open/pending/solved/closed. Solving stamps solved_at, closing closed_at; reopening a
        solved ticket clears them. A closed ticket stays closed."""
        new = enum_value(TicketStatus, status, "status")
        when = self._at(at)
        async with self.db.session() as s, s.begin():
            t = await self._load_ticket(s, ticket_id)
            old = TicketStatus(t.status)
            if old is _TS.CLOSED and new is not _TS.CLOSED:
                raise ValidationError(f"ticket {t.number} is closed", field="status",
                                      value=new.value)
            t.status = new.value
            if new is _TS.SOLVED and t.solved_at is None:
                t.solved_at = when
            if new is _TS.CLOSED:
                t.closed_at = t.closed_at or when
                t.solved_at = t.solved_at or when
            if new in (_TS.OPEN, _TS.PENDING):
                t.solved_at = None
            t.updated_at = when
        return t

    async def update_ticket(
        self,
        ticket_id: int,
        *,
        priority: str = UNSET,
        assignee_id: int | None = UNSET,
        escalation_queue: str | None = UNSET,
        subject: str = UNSET,
        description: str | None = UNSET,
    ) -> Ticket:
        values: dict[str, object] = {}
        if priority is not UNSET:
            values["priority"] = enum_value(TicketPriority, priority, "priority").value
        if subject is not UNSET:
            if not isinstance(subject, str) or not subject.strip() or len(subject) > 200:
                raise ValidationError("subject must be 1..200 characters", field="subject")
            values["subject"] = " ".join(subject.split())
        if description is not UNSET:
            values["description"] = check_text(description, self.rules.note_max_chars,
                                               "description")
        if escalation_queue is not UNSET:
            values["escalation_queue"] = escalation_queue
        async with self.db.session() as s, s.begin():
            if assignee_id is not UNSET:
                if assignee_id is not None:
                    await self._get(s, User, assignee_id)
                values["assignee_id"] = assignee_id
            t = await self._load_ticket(s, ticket_id)
            for k, v in values.items():
                setattr(t, k, v)
            t.updated_at = self._at(None)
        return t

    async def link_interaction(self, ticket_id: int, interaction_id: int) -> Ticket:
        """Link an interaction to a ticket (idempotent)."""
        async with self.db.session() as s, s.begin():
            await self._get(s, Ticket, ticket_id)
            await self._link(s, ticket_id, [interaction_id])
        async with self.db.session() as s:
            return await self._load_ticket(s, ticket_id)

    async def escalate_ticket_of(self, interaction_id: int, customer_id: int | None,
                                 queue: str) -> Ticket | None:
        """The ticket linked to the interaction, else the customer's newest open ticket, gets the
        escalation queue. None when there is no such ticket."""
        async with self.db.session() as s:
            tid = (await s.execute(
                select(ticket_interactions.c.ticket_id)
                .where(ticket_interactions.c.interaction_id == interaction_id)
                .order_by(ticket_interactions.c.ticket_id.desc()).limit(1))).scalar()
            if tid is None and customer_id is not None:
                tid = (await s.execute(
                    select(Ticket.id).where(Ticket.customer_id == customer_id,
                                            Ticket.status.in_(("open", "pending")))
                    .order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(1))).scalar()
        if tid is None:
            return None
        return await self.update_ticket(int(tid), escalation_queue=queue[:64])
