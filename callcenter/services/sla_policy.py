"""Ticket SLA escalation policy: pure, no I/O. Which tickets are close to breaching their SLA.

    policy = SlaPolicy(threshold=0.8, default_queue="supervisors")
    for e in due_escalations(tickets, now, policy):   # tickets: anything with the fields below
        ...                                           # e.ticket_id, e.queue, e.fraction, e.breached

A ticket is escalated once, when `threshold` of the time between its creation and its SLA due
time has elapsed (or the SLA is already breached). It goes to its own escalation queue, else the
queue for its type, else the policy's default queue.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


class SlaTicketLike(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def number(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def sla_due_at(self) -> datetime: ...
    @property
    def escalation_queue(self) -> str | None: ...


@dataclass(frozen=True)
class SlaPolicy:
    threshold: float = 0.8  # the fraction of the SLA elapsed that triggers the escalation
    default_queue: str = "supervisors"
    queue_by_type: Mapping[str, str] = field(default_factory=dict)
    raise_priority: str | None = "high"  # the escalated ticket's priority (None: unchanged)

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise ValueError("threshold must be in (0, 1]")


@dataclass(frozen=True, slots=True)
class Escalation:
    ticket_id: int
    number: str
    queue: str
    fraction: float  # of the SLA elapsed, rounded to 3 places (1.0 or more: breached)
    breached: bool

    def message(self) -> str:
        pct = round(self.fraction * 100)
        state = "has breached its SLA" if self.breached else f"is at {pct} % of its SLA"
        return f"Ticket {self.number} {state}: escalated to {self.queue}"


def elapsed_fraction(created_at: datetime, due_at: datetime, now: datetime) -> float:
    total = (due_at - created_at).total_seconds()
    if total <= 0:
        return 1.0
    return max(0.0, (now - created_at).total_seconds() / total)


def due_escalations(tickets: Iterable[SlaTicketLike], now: datetime, policy: SlaPolicy) -> list[Escalation]:
    out = []
    for t in tickets:
        f = elapsed_fraction(t.created_at, t.sla_due_at, now)
        if f < policy.threshold:
            continue
        queue = t.escalation_queue or policy.queue_by_type.get(t.type) or policy.default_queue
        out.append(Escalation(t.id, t.number, queue, round(f, 3), now >= t.sla_due_at))
    return out


def next_check(tickets: Iterable[SlaTicketLike], policy: SlaPolicy) -> datetime | None:
    """When the earliest of these tickets reaches the threshold (None: no ticket)."""
    best = None
    for t in tickets:
        at = t.created_at + (t.sla_due_at - t.created_at) * policy.threshold
        best = at if best is None or at < best else best
    return best
