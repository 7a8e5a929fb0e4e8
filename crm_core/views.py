"""Read models handed to the rest of the system: frozen, JSON-serialisable via `.to_dict()`."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, str | int | float):
        return v
    if isinstance(v, _View):
        return v.to_dict()
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return v


class _View:
    __slots__ = ()
    __dataclass_fields__: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        # field by field (dataclasses.asdict deep-copies: 20x slower on a screen pop)
        return {name: _jsonable(getattr(self, name)) for name in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class ContactPointView(_View):
    id: int
    kind: str
    value: str
    label: str | None


@dataclass(frozen=True, slots=True)
class CustomerView(_View):
    id: int
    name: str
    tier: str
    tier_override: str | None
    loyalty: str
    type: str
    tags: tuple[str, ...]
    language: str | None
    lifetime_value: Decimal  # serialised as a string, e.g. "12500.00"
    notes: str | None
    contact_count: int
    last_contact_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class InteractionSummary(_View):
    id: int
    channel: str
    direction: str
    state: str
    created_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    queue: str | None
    agent_id: int | None
    disposition_code: str | None
    csat_score: int | None
    notes: str | None


@dataclass(frozen=True, slots=True)
class TicketSummary(_View):
    id: int
    number: str
    type: str
    status: str
    priority: str
    subject: str
    sla_due_at: datetime | None
    assignee_id: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CustomerCard(_View):
    """The screen pop: everything an agent sees when a contact is offered."""

    customer: CustomerView
    contact_points: tuple[ContactPointView, ...]
    recent_interactions: tuple[InteractionSummary, ...]  # newest first, at most 20
    open_tickets: tuple[TicketSummary, ...]  # open and pending, by SLA due time
    csat_average: Decimal | None  # 2 places, None without surveys
    csat_count: int


@dataclass(frozen=True, slots=True)
class SearchHit(_View):
    customer_id: int
    name: str
    tier: str
    loyalty: str
    type: str
    matched_on: str  # "name" | "phone" | "email" | "chat" | "ticket"
    matched_value: str | None


@dataclass(frozen=True, slots=True)
class SearchPage(_View):
    items: tuple[SearchHit, ...]
    page: int
    page_size: int
    has_more: bool
