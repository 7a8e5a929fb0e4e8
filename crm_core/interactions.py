"""Interaction lifecycle writes, the append-only timeline, satisfaction surveys."""
from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from crm_core._base import UNSET, StoreBase
from crm_core.enums import Channel, Direction, InteractionState
from crm_core.errors import InvalidTransition, NotFound, UnknownValue, ValidationError
from crm_core.models import Customer, DispositionCode, Interaction, InteractionEvent, SurveyResult, User
from crm_core.normalize import check_text, enum_value

S = InteractionState
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


class _GroupCommit:
    """Timeline appends made at the same moment share one transaction (group commit): each
    caller still returns only once its event is stored. Under load, appends that arrive while a
    batch is being written go into the next one, so the write rate follows the database."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.pending: list[tuple[InteractionEvent, asyncio.Future[None]]] = []
        self.task: asyncio.Task[None] | None = None

    async def add(self, ev: InteractionEvent) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append((ev, fut))
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._flush())
        await asyncio.shield(fut)

    async def _flush(self) -> None:
        while self.pending:
            batch, self.pending = self.pending, []
            try:
                async with self.db.session() as s, s.begin():
                    s.add_all([ev for ev, _ in batch])
            except IntegrityError:  # an unknown interaction spoils the batch: one by one
                for ev, fut in batch:
                    await self._one(ev, fut)
                continue
            except Exception as e:  # noqa: BLE001 - every waiter hears about it
                for _ev, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            for _ev, fut in batch:
                if not fut.done():
                    fut.set_result(None)

    async def _one(self, ev: InteractionEvent, fut: asyncio.Future[None]) -> None:
        fresh = InteractionEvent(interaction_id=ev.interaction_id, at=ev.at, kind=ev.kind, ok=ev.ok,
                                 data=ev.data)
        try:
            async with self.db.session() as s, s.begin():
                s.add(fresh)
        except IntegrityError:
            if not fut.done():
                fut.set_exception(NotFound("Interaction", ev.interaction_id))
            return
        except Exception as e:  # noqa: BLE001
            if not fut.done():
                fut.set_exception(e)
            return
        ev.id = fresh.id
        if not fut.done():
            fut.set_result(None)


class InteractionsMixin(StoreBase):
    _events: _GroupCommit | None = None
    # _refresh_activity(session, customer, now) comes from CustomersMixin
    _refresh_activity: Any

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
    ) -> Interaction:
        """Record a new contact. Counts as activity for the customer (loyalty is re-derived).
        The timeline starts with an `opened` event."""
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
        async with self.db.session() as s, s.begin():
            customer = None
            if customer_id is not None:
                customer = await self._get(s, Customer, customer_id)
            i = Interaction(
                customer_id=customer_id, channel=ch, direction=di, state=st.value,
                external_id=external_id, from_address=from_address, to_address=to_address,
                queue=queue, skills=dict(skills or {}), ivr_path=list(ivr_path or []),
                escalation_steps=[], created_at=when, updated_at=when,
            )
            if st in STAMPS:
                setattr(i, STAMPS[st], when)
            s.add(i)
            await s.flush()
            s.add(InteractionEvent(interaction_id=i.id, at=when, kind="opened", ok=True,
                                   data={"channel": ch, "direction": di, "state": st.value}))
            if customer is not None:
                await s.flush()
                await self._refresh_activity(s, customer, when)
        return i

    async def get_interaction(self, interaction_id: int) -> Interaction:
        async with self.db.session() as s:
            return await self._get(s, Interaction, interaction_id)

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
        for kind, _d in events:
            if not isinstance(kind, str) or not kind.strip() or len(kind) > MAX_EVENT_KIND:
                raise ValidationError(f"event kind must be 1..{MAX_EVENT_KIND} characters",
                                      field="kind", value=kind)
        extra = [InteractionEvent(interaction_id=interaction_id, at=when, kind=kind.strip(), ok=True,
                                  data=dict(d)) for kind, d in events]
        async with self.db.session() as s, s.begin():
            i = await self._get(s, Interaction, interaction_id, for_update=True)
            old = InteractionState(i.state)
            if new is old:
                s.add_all(extra)
                return i
            if new not in TRANSITIONS[old]:
                raise InvalidTransition(
                    f"interaction {interaction_id}: {old.value} -> {new.value} is not allowed",
                    field="state", value=new.value,
                )
            i.state = new.value
            stamp = STAMPS.get(new)
            if stamp and getattr(i, stamp) is None:
                setattr(i, stamp, when)
            if new is S.WRAPUP_DONE and i.ended_at is None:
                i.ended_at = when
            if agent_id is not UNSET:
                if agent_id is not None:
                    await self._get(s, User, agent_id)
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
            s.add(InteractionEvent(interaction_id=i.id, at=when, kind="state", ok=True,
                                   data=payload))
            s.add_all(extra)
        return i

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
    ) -> Interaction:
        async with self.db.session() as s, s.begin():
            i = await self._get(s, Interaction, interaction_id)
            if agent_id is not UNSET and agent_id is not None:
                await self._get(s, User, agent_id)
            for name, v in (("queue", queue), ("agent_id", agent_id),
                            ("transcript_ref", transcript_ref), ("recording_ref", recording_ref),
                            ("external_id", external_id)):
                if v is not UNSET:
                    setattr(i, name, v)
            if skills is not UNSET:
                i.skills = dict(skills)
            if ivr_path is not UNSET:
                i.ivr_path = list(ivr_path)
            i.updated_at = self._at(None)
        return i

    async def link_customer(self, interaction_id: int, customer_id: int) -> Interaction:
        """Attach an interaction opened for an unknown contact to the customer identified later."""
        async with self.db.session() as s, s.begin():
            i = await self._get(s, Interaction, interaction_id)
            c = await self._get(s, Customer, customer_id)
            previous = i.customer_id
            i.customer_id = customer_id
            s.add(InteractionEvent(interaction_id=i.id, at=self._at(None), kind="customer_linked",
                                   ok=True, data={"customer_id": customer_id,
                                                  "previous": previous}))
            await s.flush()
            await self._refresh_activity(s, c, self._at(None))
            if previous is not None and previous != customer_id:
                old = await s.get(Customer, previous)
                if old is not None:
                    await self._refresh_activity(s, old, self._at(None))
        return i

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
        async with self.db.session() as s, s.begin():
            dc = await s.get(DispositionCode, code)
            if dc is None or not dc.active:
                active = (await s.execute(
                    select(DispositionCode.code).where(DispositionCode.active.is_(True))
                    .order_by(DispositionCode.position, DispositionCode.code)
                )).scalars().all()
                raise UnknownValue("disposition code", code, list(active))
            i = await self._get(s, Interaction, interaction_id)
            i.disposition_code = code
            if notes is not None:
                i.notes = notes
            if agent_id is not None:
                i.agent_id = agent_id
            i.updated_at = when
            s.add(InteractionEvent(interaction_id=i.id, at=when, kind="disposition", ok=True,
                                   data={"code": code, "agent_id": agent_id,
                                         "notes_chars": len(notes or "")}))
        return i

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
        ev = InteractionEvent(interaction_id=interaction_id, at=when, kind=kind.strip(),
                              ok=bool(ok), data=dict(data or {}))
        if self._events is None:
            self._events = _GroupCommit(self.db)
        await self._events.add(ev)
        return ev

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
    ) -> SurveyResult:
        """Store a satisfaction score. With an interaction, its customer and channel are taken
        from it and its CSAT score is set. The customer's CSAT aggregate follows."""
        r = self.rules
        if isinstance(score, bool) or not isinstance(score, int) or not (
            r.csat_min <= score <= r.csat_max
        ):
            raise ValidationError(f"CSAT score must be an integer {r.csat_min}..{r.csat_max}",
                                  field="score", value=score)
        ch = None if channel is None else enum_value(Channel, channel, "channel").value
        comment = check_text(comment, r.note_max_chars, "comment")
        when = self._at(at)
        async with self.db.session() as s, s.begin():
            if interaction_id is not None:
                i = await self._get(s, Interaction, interaction_id)
                if customer_id is not None and i.customer_id not in (None, customer_id):
                    raise ValidationError("the interaction belongs to another customer",
                                          field="customer_id", value=customer_id)
                customer_id = customer_id if customer_id is not None else i.customer_id
                ch = ch or i.channel
                i.csat_score = score
                s.add(InteractionEvent(interaction_id=i.id, at=when, kind="csat", ok=True,
                                       data={"score": score}))
            if customer_id is not None:
                await self._get(s, Customer, customer_id)
                await s.execute(
                    update(Customer).where(Customer.id == customer_id)
                    .values(csat_sum=Customer.csat_sum + score,
                            csat_count=Customer.csat_count + 1)
                )
            res = SurveyResult(interaction_id=interaction_id, customer_id=customer_id,
                               score=score, channel=ch, comment=comment, created_at=when)
            s.add(res)
        return res

    async def set_csat(
        self, interaction_id: int, score: int, comment: str | None = None
    ) -> SurveyResult:
        return await self.record_survey(score, interaction_id=interaction_id, comment=comment)

