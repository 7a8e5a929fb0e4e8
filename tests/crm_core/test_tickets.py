"""Tickets: SLA from the rules, numbering, status, links to interactions."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_core.errors import NoteTooLong, NotFound, UnknownValue, ValidationError
from crm_core.models import Ticket, ticket_interactions
from crm_core.rules import Rules
from crm_core.store import CrmStore
from tests.crm_core.conftest import FAST_HASHER, count_rows

T0 = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize("ltv, ttype, hours", [
    ("100", "complaint", 8), ("20000", "complaint", 4), ("80000", "complaint", 2),
    ("100", "inquiry", 48), ("80000", "service_request", 4),
])
async def test_sla_due_from_type_and_tier(store, ltv, ttype, hours):
    c = await store.create_customer("Ticket Holder", lifetime_value=ltv)
    t = await store.create_ticket(c.id, ttype, "Help", at=T0)
    assert t.sla_due_at == T0 + timedelta(hours=hours)
    assert (t.status, t.priority, t.type) == ("open", "normal", ttype)


async def test_sla_follows_a_manual_tier_and_the_yaml(database):
    rules = Rules.from_dict({"sla_hours": {
        "service_request": {"vip": 1, "key": 2, "regular": 3},
        "complaint": {"vip": 0.25, "key": 2, "regular": 3},
        "inquiry": {"vip": 1, "key": 2, "regular": 3}}})
    store = CrmStore(database, rules, password_hasher=FAST_HASHER)
    c = await store.create_customer("Manual", tier_override="vip")
    t = await store.create_ticket(c.id, "complaint", "Now!", at=T0)
    assert t.sla_due_at == T0 + timedelta(minutes=15)


async def test_numbers_links_and_status(store, database):
    c = await store.create_customer("Tom")
    i1 = await store.open_interaction("voice", "inbound", c.id)
    i2 = await store.open_interaction("email", "inbound", c.id)
    agent = await store.create_user("agent7", "password1", "agent")
    t = await store.create_ticket(c.id, "service_request", "  New   router ", priority="high",
                                  assignee_id=agent.id, escalation_queue="tier2",
                                  interaction_ids=[i1.id], description="details")
    assert t.number == f"T-{t.id:06d}" and t.subject == "New router"
    assert [x.id for x in t.interactions] == [i1.id]
    t = await store.link_interaction(t.id, i2.id)
    t = await store.link_interaction(t.id, i2.id)  # idempotent
    assert [x.id for x in t.interactions] == [i1.id, i2.id]
    assert (await store.get_ticket(t.number)).id == t.id
    assert (await store.get_ticket(t.number.lower())).id == t.id

    t = await store.update_ticket_status(t.id, "pending", at=T0)
    t = await store.update_ticket_status(t.id, "solved", at=T0 + timedelta(hours=1))
    assert t.solved_at == T0 + timedelta(hours=1)
    assert [x.id for x in await store.list_tickets(c.id, open_only=True)] == []
    t = await store.update_ticket_status(t.id, "open")  # reopened
    assert t.solved_at is None
    t = await store.update_ticket(t.id, priority="urgent", assignee_id=None, subject="Router")
    assert (t.priority, t.assignee_id, t.subject) == ("urgent", None, "Router")
    t = await store.update_ticket_status(t.id, "closed")
    assert t.closed_at is not None and t.solved_at is not None
    with pytest.raises(ValidationError):
        await store.update_ticket_status(t.id, "open")
    assert (await store.get_ticket(t.id)).status == "closed"


async def test_ticket_errors_write_nothing(store, database):
    c = await store.create_customer("Err")
    cases = [
        (dict(type="question"), UnknownValue),
        (dict(priority="asap"), UnknownValue),
        (dict(subject="  "), ValidationError),
        (dict(description="x" * 10_001), NoteTooLong),
        (dict(interaction_ids=[10**9]), NotFound),
        (dict(assignee_id=10**9), NotFound),
        (dict(customer_id=10**9), NotFound),
    ]
    for kw, err in cases:
        args = {"customer_id": c.id, "type": "inquiry", "subject": "S", **kw}
        with pytest.raises(err):
            await store.create_ticket(**args)
    assert await count_rows(database, Ticket) == 0
    assert await count_rows(database, ticket_interactions) == 0
    with pytest.raises(UnknownValue):
        await store.update_ticket_status(1, "done")
    with pytest.raises(NotFound):
        await store.update_ticket_status(10**9, "solved")
    with pytest.raises(NotFound):
        await store.get_ticket("T-999999")
