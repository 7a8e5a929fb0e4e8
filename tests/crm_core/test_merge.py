"""merge_customers: everything moves to the survivor, nothing is lost, audited, atomic."""
from __future__ import annotations

from decimal import Decimal

import pytest

from crm_core.errors import NotFound, ValidationError
from crm_core.models import ContactPoint, Customer, Interaction, SurveyResult, Ticket
from tests.crm_core.conftest import count_rows


async def test_merge_moves_everything(store, database):
    keep = await store.create_customer("Sam Keep", phones=["+12025550160"], tags=["a", "b"],
                                       lifetime_value="30000.25", notes="first")
    other = await store.create_customer("Samuel Dup", phones=["+12025550161"],
                                        emails=["sam@example.com"], chat_ids=["web:sam"],
                                        tags=["b", "c"], lifetime_value="25000.75",
                                        language="fr", notes="second")
    i1 = await store.open_interaction("voice", "inbound", keep.id)
    i2 = await store.open_interaction("chat", "inbound", other.id)
    i3 = await store.open_interaction("email", "inbound", other.id)
    await store.set_csat(i2.id, 5)
    await store.record_survey(3, customer_id=other.id)
    t = await store.create_ticket(other.id, "complaint", "Broken", interaction_ids=[i2.id])
    await store.append_event(i3.id, "note", data={"x": 1})

    merged = await store.merge_customers(keep.id, other.id, actor="supervisor1")

    assert merged.id == keep.id
    assert {cp.value for cp in merged.contact_points} == {
        "+12025550160", "+12025550161", "sam@example.com", "web:sam"}
    assert merged.tags == ["a", "b", "c"]
    assert merged.lifetime_value == Decimal("55001.00") and merged.tier == "vip"
    assert merged.language == "fr" and merged.notes == "first\n\nsecond"
    assert merged.contact_count == 3 and merged.loyalty == "returning"
    assert merged.csat_count == 2 and merged.csat_sum == 8
    with pytest.raises(NotFound):
        await store.get_customer(other.id)
    assert await count_rows(database, Customer) == 1
    assert await count_rows(database, ContactPoint) == 4
    assert await count_rows(database, Interaction, Interaction.customer_id == keep.id) == 3
    assert await count_rows(database, SurveyResult, SurveyResult.customer_id == keep.id) == 2
    assert (await store.get_ticket(t.id)).customer_id == keep.id
    assert [e.kind for e in await store.timeline(i3.id)] == ["opened", "note"]
    assert (await store.identify(email="sam@example.com")).id == keep.id
    assert [h.customer_id for h in (await store.search("samuel")).items] == []
    assert [h.customer_id for h in (await store.search("sam")).items] == [keep.id]
    card = await store.customer_card(keep.id)
    assert {x.id for x in card.recent_interactions} == {i1.id, i2.id, i3.id}
    assert [x.id for x in card.open_tickets] == [t.id] and str(card.csat_average) == "4.00"

    (entry,) = await store.list_audit(action="customer.merge")
    assert entry.actor == "supervisor1" and entry.entity_id == str(keep.id)
    assert entry.before["other"]["name"] == "Samuel Dup"
    assert {"kind": "email", "value": "sam@example.com"} in entry.before["other_contact_points"]
    assert entry.after["merged_id"] == other.id
    assert entry.after["moved"] == {"contact_points": 3, "interactions": 2, "tickets": 1,
                                    "survey_results": 2}


async def test_merge_keeps_a_manual_tier(store):
    keep = await store.create_customer("K", lifetime_value="1")
    other = await store.create_customer("O", lifetime_value="1")
    await store.set_tier_override(other.id, "key")
    merged = await store.merge_customers(keep.id, other.id)
    assert (merged.tier, merged.tier_override) == ("key", "key")


async def test_bad_merges_write_nothing(store, database):
    a = await store.create_customer("A", phones=["+12025550170"])
    with pytest.raises(ValidationError):
        await store.merge_customers(a.id, a.id)
    with pytest.raises(NotFound):
        await store.merge_customers(a.id, 10**9)
    with pytest.raises(NotFound):
        await store.merge_customers(10**9, a.id)
    assert await count_rows(database, Customer) == 1
    assert await count_rows(database, Ticket) == 0
    assert await store.list_audit(action="customer.merge") == []
