"""The bulk path: plain dicts in batches, readable by the store afterwards."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from crm_core import bulk
from crm_core.errors import InvalidPhone
from crm_core.models import ContactPoint, Customer, CustomerNameToken, DispositionCode
from tests.crm_core.conftest import count_rows

NOW = datetime(2026, 6, 1, tzinfo=UTC)


async def test_bulk_seed_then_identify_card_and_search(store, database):
    ids = await bulk.insert_customers(database, [
        {"id": 10 + k, "name": f"Bulk Person{k}", "lifetime_value": Decimal(k * 10000),
         "created_at": NOW - timedelta(days=k)} for k in range(7)
    ], batch_size=3)
    assert ids == list(range(10, 17))
    more = await bulk.insert_customers(database, [{"name": "No Id"}, {"name": "No Id Two"}])
    assert len(more) == 2 and len(set(more) | set(ids)) == 9
    await bulk.insert_contact_points(database, [
        {"customer_id": 10 + k, "kind": "phone", "value": f"(202) 555-01{k:02d}"}
        for k in range(7)
    ] + [{"customer_id": 10, "kind": "email", "value": "Bulk@Example.com"}], batch_size=4)
    await bulk.insert_interactions(database, [
        {"id": 100 + n, "customer_id": 10 + (n % 3), "channel": "voice", "direction": "inbound",
         "state": "wrapup_done", "created_at": NOW - timedelta(days=n), "ivr_path": ["main"]}
        for n in range(9)
    ])
    await bulk.insert_interaction_events(database, [
        {"interaction_id": 100, "kind": "opened", "at": NOW, "data": {"seed": True}}])
    await bulk.insert_surveys(database, [
        {"customer_id": 10, "interaction_id": 100, "score": 5, "created_at": NOW},
        {"customer_id": 10, "interaction_id": 103, "score": 2, "created_at": NOW}])
    await bulk.insert_tickets(database, [
        {"id": 500, "customer_id": 10, "type": "complaint", "subject": "Bulk",
         "created_at": NOW, "tier": "regular"}])
    await bulk.refresh_customer_aggregates(database, now=NOW)
    await bulk.reset_sequences(database)

    tiers = {c: (await store.get_customer(c)).tier for c in (10, 11, 12, 15, 16)}
    assert tiers == {10: "regular", 11: "key", 12: "key", 15: "vip", 16: "vip"}
    c = await store.identify(phone="+1 202 555 0103")
    assert c is not None and c.id == 13
    assert (await store.identify(email="bulk@example.com")).id == 10
    card = await store.customer_card(10)
    assert card.customer.contact_count == 3 and card.customer.loyalty == "returning"
    assert [i.id for i in card.recent_interactions] == [100, 103, 106]
    assert card.open_tickets[0].number == "T-000500"
    assert card.open_tickets[0].sla_due_at == NOW + timedelta(hours=8)
    assert str(card.csat_average) == "3.50"
    assert (await store.customer_card(13)).customer.loyalty == "potential"
    assert [h.customer_id for h in (await store.search("person3")).items] == [13]
    assert [h.customer_id for h in (await store.search("T-500")).items] == [10]
    # the store keeps working after explicit ids (sequences moved on)
    new = await store.create_customer("After Bulk")
    assert new.id > 16
    i = await store.open_interaction("chat", "inbound", new.id)
    assert i.id > 108
    assert (await store.create_ticket(new.id, "inquiry", "Q")).id > 500


async def test_bulk_validates_phones_and_columns(database):
    await bulk.insert_customers(database, [{"id": 1, "name": "One"}])
    with pytest.raises(InvalidPhone):
        await bulk.insert_contact_points(database, [
            {"customer_id": 1, "kind": "phone", "value": "+12025550100"},
            {"customer_id": 1, "kind": "phone", "value": "nope"}])
    assert await count_rows(database, ContactPoint) == 0
    with pytest.raises(ValueError, match="unknown column"):
        await bulk.insert_rows(database, Customer, [{"name": "x", "colour": "red"}])
    assert await bulk.insert_rows(database, DispositionCode, [
        {"code": "a", "label": "A"}, {"code": "b", "label": "B", "active": False}]) == 2
    assert await count_rows(database, CustomerNameToken) == 1
