"""The SLA escalation policy (pure): which tickets are close to breaching, and where they go."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from callcenter.services.sla_policy import SlaPolicy, due_escalations, elapsed_fraction, next_check

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


@dataclass
class T:
    id: int
    number: str
    type: str
    created_at: datetime
    sla_due_at: datetime
    escalation_queue: str | None = None


def ticket(i: int, hours: float, *, type_: str = "complaint", queue: str | None = None) -> T:
    return T(i, f"T-{i:06d}", type_, T0, T0 + timedelta(hours=hours), queue)


def test_elapsed_fraction():
    assert elapsed_fraction(T0, T0 + timedelta(hours=10), T0 + timedelta(hours=8)) == pytest.approx(0.8)
    assert elapsed_fraction(T0, T0 + timedelta(hours=10), T0 - timedelta(hours=1)) == 0.0
    assert elapsed_fraction(T0, T0, T0) == 1.0  # a zero-length SLA is due at once


def test_escalates_from_the_threshold_on():
    p = SlaPolicy(threshold=0.8, default_queue="supervisors")
    tickets = [ticket(1, 10), ticket(2, 20), ticket(3, 4)]
    now = T0 + timedelta(hours=8)
    got = {e.ticket_id: e for e in due_escalations(tickets, now, p)}
    assert set(got) == {1, 3}  # 80 % of 10 h, 200 % of 4 h; ticket 2 is at 40 %
    assert got[1].fraction == 0.8 and not got[1].breached
    assert got[3].breached and "breached" in got[3].message()
    assert "80 %" in got[1].message() and "supervisors" in got[1].message()
    assert [e.ticket_id for e in due_escalations(tickets, T0 + timedelta(hours=7, minutes=59), p)] == [3]


def test_queue_comes_from_the_ticket_then_its_type_then_the_default():
    p = SlaPolicy(threshold=0.5, default_queue="supervisors", queue_by_type={"complaint": "complaints"})
    tickets = [ticket(1, 2, queue="billing-l2"), ticket(2, 2), ticket(3, 2, type_="inquiry")]
    got = {e.ticket_id: e.queue for e in due_escalations(tickets, T0 + timedelta(hours=1), p)}
    assert got == {1: "billing-l2", 2: "complaints", 3: "supervisors"}


def test_next_check_is_the_earliest_threshold():
    p = SlaPolicy(threshold=0.5)
    assert next_check([ticket(1, 10), ticket(2, 4)], p) == T0 + timedelta(hours=2)
    assert next_check([], p) is None


def test_threshold_must_be_a_fraction():
    with pytest.raises(ValueError):
        SlaPolicy(threshold=0)
    with pytest.raises(ValueError):
        SlaPolicy(threshold=1.5)
