"""Interaction writes as data: what the outbox (callcenter/scaleout/outbox.py) carries while the
database is away, applied later in one transaction each (crm_core.fencing.fenced_write).

Each op is a JSON object with ``op`` and either ``interaction_id`` (an id the database gave, or
one reserved from its sequence before the outage) or ``external_id`` (a PBX/provider id):

- ``open``: create the interaction (with the reserved id) unless it exists; an unknown caller is
  identified by the phone number now (``lookup``: the contact-point keys computed when it was put).
- ``state``, ``event``, ``update``, ``link``: as the store's set_state, append_event,
  update_interaction, link_customer.
- ``disposition``, ``survey``, ``ticket``: the wrap-up, the satisfaction score, a ticket opened at
  wrap-up (with a reserved id; its SLA due times per tier computed when it was put).

A write the lifecycle refuses (a transition out of a final state, an unknown disposition code) is
logged on the timeline as not ok rather than failing the entry: later entries still apply.
An op that cannot apply at all (no such interaction or customer) raises a CrmError: the outbox
moves it to its dead letters.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from crm_core import reports
from crm_core.enums import InteractionState
from crm_core.errors import CrmError
from crm_core.interactions import STAMPS, TERMINAL, TRANSITIONS
from crm_core.models import (
    ContactPoint,
    Customer,
    DispositionCode,
    Interaction,
    InteractionEvent,
    SurveyResult,
    Ticket,
    ticket_interactions,
)
from crm_core.types import utcnow

S = InteractionState
UPDATABLE = ("queue", "agent_id", "transcript_ref", "recording_ref", "external_id", "skills", "ivr_path")


def apply_op(s: Session, op: Mapping[str, Any], store: Any = None) -> int | None:
    """Apply one op on a sync session (AsyncSession.run_sync); returns the interaction id.
    `store` (a CrmStore, optional) re-derives the customer's contact activity as the store does."""
    kind = op["op"]
    at = datetime.fromisoformat(op["at"]) if op.get("at") else utcnow()
    if op.get("interaction_id") is not None:
        found = s.get(Interaction, int(op["interaction_id"]), with_for_update=True)
    else:
        found = s.execute(select(Interaction).where(Interaction.external_id == str(op["external_id"]))
                          .order_by(Interaction.id.desc()).limit(1)).scalar_one_or_none()
    if kind == "open":
        return found.id if found is not None else _open(s, op, at, store)
    if found is None:
        raise CrmError(f"outbox: no interaction {op.get('interaction_id') or op.get('external_id')!r} "
                       f"for {kind!r}")
    fn = _OPS.get(kind)
    if fn is None:
        raise CrmError(f"outbox: unknown op {kind!r}")
    fn(s, found, op, at, store)
    return found.id


def _event(s: Session, i: Interaction, at: datetime, kind: str, data: Mapping[str, Any] | None = None,
           ok: bool = True) -> None:
    s.add(InteractionEvent(interaction_id=i.id, at=at, kind=str(kind).strip()[:64], ok=ok,
                           data=dict(data or {})))


def _events(s: Session, i: Interaction, at: datetime, op: Mapping[str, Any]) -> None:
    for kind, data in op.get("events") or ():
        _event(s, i, at, kind, data)


def _activity(s: Session, store: Any, customer: Customer, at: datetime) -> None:
    if store is not None and hasattr(store, "_refresh_activity_sync"):
        s.flush()
        store._refresh_activity_sync(s, customer, at)


def _identify(s: Session, op: Mapping[str, Any]) -> Customer | None:
    for kind, value in op.get("lookup") or ():
        cid = s.execute(select(ContactPoint.customer_id).where(
            ContactPoint.kind == kind, ContactPoint.value == value).limit(1)).scalar_one_or_none()
        if cid is not None:
            return s.get(Customer, cid)
    return None


def _open(s: Session, op: Mapping[str, Any], at: datetime, store: Any) -> int:
    state = S(op.get("state") or "new")
    customer = s.get(Customer, int(op["customer_id"])) if op.get("customer_id") is not None else None
    found_now = customer is None and op.get("customer_id") is None
    if found_now:  # the caller was not identified (the database was away): try now
        customer = _identify(s, op)
    i = Interaction(channel=op.get("channel", "voice"), direction=op.get("direction", "inbound"),
                    state=state.value, external_id=op.get("external_id"),
                    from_address=op.get("from"), to_address=op.get("to"), queue=op.get("queue"),
                    customer_id=customer.id if customer is not None else None,
                    skills=dict(op.get("skills") or {}), ivr_path=list(op.get("ivr_path") or []),
                    escalation_steps=[], created_at=at, updated_at=at)
    if op.get("interaction_id") is not None:
        i.id = int(op["interaction_id"])
    if state in STAMPS:
        setattr(i, STAMPS[state], at)
    s.add(i)
    s.flush()
    _event(s, i, at, "opened", {"channel": i.channel, "direction": i.direction, "state": state.value,
                                "via": "outbox"})
    _events(s, i, at, op)
    if customer is not None:
        if found_now:
            _event(s, i, at, "identify", {"known": True, "customer_id": customer.id, "tier": customer.tier,
                                          "when": "written after the outage"})
        _activity(s, store, customer, at)
    return i.id


def _state(s: Session, i: Interaction, op: Mapping[str, Any], at: datetime, _store: Any) -> None:
    new, cur = S(op["state"]), S(i.state)
    if new is cur:
        _events(s, i, at, op)
        return
    ok = new in TRANSITIONS[cur]
    if ok:
        i.state = new.value
        stamp = STAMPS.get(new)
        if stamp and getattr(i, stamp) is None:
            setattr(i, stamp, at)
        if new is S.WRAPUP_DONE and i.ended_at is None:
            i.ended_at = at
        if "agent_id" in op:
            i.agent_id = None if op["agent_id"] is None else int(op["agent_id"])
        if "queue" in op:
            i.queue = op["queue"]
        i.updated_at = at
    data = {"from": cur.value, "to": new.value,
            **{k: op[k] for k in ("agent_id", "queue") if k in op}, **dict(op.get("data") or {}),
            "via": "outbox", **({} if ok else {"refused": "transition not allowed"})}
    _event(s, i, at, "state", data, ok=ok)
    _events(s, i, at, op)
    if ok and new in TERMINAL:
        _ended(s, i)


def _append(s: Session, i: Interaction, op: Mapping[str, Any], at: datetime, _store: Any) -> None:
    _event(s, i, at, op["kind"], op.get("data"), ok=bool(op.get("ok", True)))


def _update(s: Session, i: Interaction, op: Mapping[str, Any], at: datetime, _store: Any) -> None:
    for name in UPDATABLE:
        if name in op.get("fields", {}):
            setattr(i, name, op["fields"][name])
    i.updated_at = at
    _events(s, i, at, op)


def _link(s: Session, i: Interaction, op: Mapping[str, Any], at: datetime, store: Any) -> None:
    c = s.get(Customer, int(op["customer_id"]))
    if c is None:
        raise CrmError(f"outbox: no customer {op['customer_id']!r} to link")
    previous = i.customer_id
    i.customer_id = c.id
    _event(s, i, at, "customer_linked", {"customer_id": c.id, "previous": previous})
    _events(s, i, at, op)
    _activity(s, store, c, at)


# the reports' rollups, as the store keeps them: an ended interaction queued to be folded in
# (crm_core/reports.py mark_pending_sync), or, without that queue, added in the same transaction
def _ended(s: Session, i: Interaction) -> None:
    mark = getattr(reports, "mark_pending_sync", None)
    s.flush()
    if mark is not None:
        mark(s, i.id)
    else:
        reports.rollup_interaction_sync(s, i.id)


def _rolled_out(s: Session, i: Interaction) -> bool:
    """An ended interaction about to change: its counters leave the rollups (True: add them again
    after the change with _rolled_in; False: nothing to do, or it is queued to be folded again)."""
    if S(i.state) not in TERMINAL:
        return False
    s.flush()
    change = getattr(reports, "change_ended_sync", None)
    if change is not None:
        change(s, i.id)
        return False
    reports.rollup_interaction_sync(s, i.id, -1)
    return True


def _rolled_in(s: Session, i: Interaction, rolled: bool) -> None:
    if rolled:
        s.flush()
        reports.rollup_interaction_sync(s, i.id)


def _disposition(s: Session, i: Interaction, op: Mapping[str, Any], at: datetime, _store: Any) -> None:
    code, notes = str(op["code"]), op.get("notes")
    dc = s.get(DispositionCode, code)
    if dc is None or not dc.active:
        _event(s, i, at, "disposition", {"code": code, "notes": notes, "agent_id": op.get("agent_id"),
                                         "error": "unknown or inactive disposition code"}, ok=False)
        return
    rolled = _rolled_out(s, i)
    i.disposition_code = code
    if notes is not None:
        i.notes = notes
    if op.get("agent_id") is not None:
        i.agent_id = int(op["agent_id"])
    i.updated_at = at
    _rolled_in(s, i, rolled)
    _event(s, i, at, "disposition", {"code": code, "agent_id": op.get("agent_id"),
                                     "notes_chars": len(notes or ""), "via": "outbox"})


def _survey(s: Session, i: Interaction, op: Mapping[str, Any], at: datetime, _store: Any) -> None:
    score = int(op["score"])
    cid = op.get("customer_id") if op.get("customer_id") is not None else i.customer_id
    customer = s.get(Customer, int(cid)) if cid is not None else None
    rolled = _rolled_out(s, i)
    i.csat_score = score
    _event(s, i, at, "csat", {"score": score})
    _events(s, i, at, op)
    _rolled_in(s, i, rolled)
    if customer is not None:
        customer.csat_sum = Customer.csat_sum + score  # type: ignore[assignment]
        customer.csat_count = Customer.csat_count + 1  # type: ignore[assignment]
    s.add(SurveyResult(interaction_id=i.id, customer_id=customer.id if customer is not None else None,
                       score=score, channel=op.get("channel") or i.channel, comment=op.get("comment"),
                       created_at=at))


def _ticket(s: Session, i: Interaction, op: Mapping[str, Any], at: datetime, _store: Any) -> None:
    from crm_core.customers import ticket_number

    tid = int(op["ticket_id"])
    if s.get(Ticket, tid) is not None:
        return
    c = s.get(Customer, int(op["customer_id"]))
    if c is None:
        raise CrmError(f"outbox: no customer {op['customer_id']!r} for ticket {tid}")
    due = (op.get("sla") or {}).get(c.tier)
    s.add(Ticket(id=tid, number=ticket_number(tid), customer_id=c.id, type=op["type"], status="open",
                 priority=op.get("priority") or "normal", subject=op["subject"],
                 description=op.get("description"), assignee_id=None, escalation_queue=None,
                 sla_due_at=datetime.fromisoformat(due) if due else None, created_at=at, updated_at=at))
    s.flush()
    for iid in sorted({i.id, *(int(x) for x in op.get("interaction_ids") or ())}):
        if s.get(Interaction, iid) is not None:
            s.execute(insert(ticket_interactions).values(ticket_id=tid, interaction_id=iid))
    _event(s, i, at, "ticket", {"number": ticket_number(tid), "via": "outbox"})


_OPS = {"state": _state, "event": _append, "update": _update, "link": _link,
        "disposition": _disposition, "survey": _survey, "ticket": _ticket}
