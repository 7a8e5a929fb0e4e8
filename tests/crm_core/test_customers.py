"""Customers and contact points through the store, on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from crm_core.errors import (
    CrmError,
    DuplicateContactPoint,
    InvalidEmail,
    InvalidPhone,
    NoteTooLong,
    NotFound,
    UnknownValue,
    ValidationError,
)
from crm_core.models import AuditEntry, ContactPoint, Customer, CustomerNameToken
from crm_core.rules import Rules
from crm_core.store import CrmStore
from tests.crm_core.conftest import FAST_HASHER, count_rows


async def test_create_and_get(store):
    c = await store.create_customer(
        "  Ada   Lovelace ", type="partner", tags=["VIP-Event", "newsletter", "newsletter"],
        lifetime_value="12500.10", language="en-gb", notes="likes tea",
        phones=["(202) 555-0143"], emails=["Ada@Example.com"], chat_ids=["web:abc"],
    )
    assert c.id and c.name == "Ada Lovelace" and c.type == "partner"
    assert c.tags == ["newsletter", "vip-event"] and c.language == "en-GB"
    assert c.lifetime_value == Decimal("12500.10") and c.tier == "key"
    assert c.loyalty == "potential" and c.tier_override is None
    got = await store.get_customer(c.id)
    assert {(p.kind, p.value) for p in got.contact_points} == {
        ("phone", "+12025550143"), ("email", "ada@example.com"), ("chat", "web:abc")}
    assert got.created_at.tzinfo is not None and got.created_at.utcoffset() == timedelta(0)
    assert isinstance(got.lifetime_value, Decimal)


async def test_money_is_exact(store):
    c = await store.create_customer("Penny", lifetime_value="0.10")
    for _ in range(3):
        c = await store.add_lifetime_value(c.id, "0.10")
    assert c.lifetime_value == Decimal("0.40")
    c = await store.update_customer(c.id, lifetime_value=Decimal("9999999999.99"))
    assert (await store.get_customer(c.id)).lifetime_value == Decimal("9999999999.99")
    with pytest.raises(ValidationError):
        await store.create_customer("Float", lifetime_value=0.1)
    with pytest.raises(ValidationError):
        await store.create_customer("Neg", lifetime_value="-1")


async def test_update_changes_only_given_fields_and_search_tokens(store):
    c = await store.create_customer("Old Name", tags=["a"], notes="n")
    c = await store.update_customer(c.id, name="New Person", language=None)
    assert c.name == "New Person" and c.tags == ["a"] and c.notes == "n"
    assert [h.customer_id for h in (await store.search("person")).items] == [c.id]
    assert (await store.search("old")).items == ()
    with pytest.raises(NotFound):
        await store.update_customer(10**9, name="x")


@pytest.mark.parametrize("kwargs, error", [
    ({"phones": ["12345"]}, InvalidPhone),
    ({"phones": ["anonymous"]}, InvalidPhone),
    ({"emails": ["not-an-email"]}, InvalidEmail),
    ({"notes": "x" * 10_001}, NoteTooLong),
    ({"type": "friend"}, UnknownValue),
    ({"tier_override": "gold"}, UnknownValue),
    ({"language": "english!"}, ValidationError),
    ({"tags": "one-string"}, ValidationError),
])
async def test_bad_input_is_a_typed_error_and_writes_nothing(store, database, kwargs, error):
    kwargs = dict(kwargs)
    with pytest.raises(error) as e:
        await store.create_customer("Bad Input", phones=kwargs.pop("phones", ["+12025550100"]),
                                    **kwargs)
    assert isinstance(e.value, ValidationError) and isinstance(e.value, CrmError)
    assert await count_rows(database, Customer) == 0
    assert await count_rows(database, ContactPoint) == 0
    assert await count_rows(database, CustomerNameToken) == 0


async def test_unknown_value_lists_the_allowed_ones(store):
    with pytest.raises(UnknownValue) as e:
        await store.create_customer("X", type="friend")
    assert e.value.field == "type" and "prospect" in e.value.allowed and "friend" in str(e.value)


async def test_note_limit_is_configurable(database):
    store = CrmStore(database, Rules.from_dict({"note_max_chars": 5}),
                     password_hasher=FAST_HASHER)
    await store.create_customer("Short", notes="12345")
    with pytest.raises(NoteTooLong) as e:
        await store.create_customer("Long", notes="123456")
    assert e.value.limit == 5 and e.value.length == 6


async def test_duplicate_contact_points_across_customers(store, database):
    a = await store.create_customer("A", phones=["+1 202 555 0143"], emails=["a@example.com"])
    # the same number in another format, the same email in another case
    with pytest.raises(DuplicateContactPoint) as e:
        await store.create_customer("B", phones=["(202) 555-0143"])
    assert e.value.owner_id == a.id and e.value.value == "+12025550143"
    with pytest.raises(DuplicateContactPoint):
        await store.create_customer("B", phones=["+12025550199"], emails=["A@EXAMPLE.COM"])
    with pytest.raises(DuplicateContactPoint):
        await store.create_customer("B", phones=["2025550199", "+1 202-555-0199"])
    b = await store.create_customer("B")
    with pytest.raises(DuplicateContactPoint):
        await store.add_contact_point(b.id, "phone", "001 202 555 0143")
    with pytest.raises(DuplicateContactPoint):
        await store.add_contact_point(a.id, "email", "a@example.com")
    assert await count_rows(database, Customer) == 2
    assert await count_rows(database, ContactPoint) == 2
    assert await count_rows(database, ContactPoint, ContactPoint.customer_id == b.id) == 0


async def test_add_contact_point_validates(store, database):
    c = await store.create_customer("C")
    cp = await store.add_contact_point(c.id, "phone", "+44 20 7946 0018", label="home")
    assert (cp.value, cp.label, cp.customer_id) == ("+442079460018", "home", c.id)
    with pytest.raises(InvalidPhone):  # a UK national number is not a US number
        await store.add_contact_point(c.id, "phone", "020 7946 0018")
    with pytest.raises(UnknownValue):
        await store.add_contact_point(c.id, "fax", "123")
    with pytest.raises(InvalidPhone):
        await store.add_contact_point(c.id, "phone", "abc")
    with pytest.raises(NotFound):
        await store.add_contact_point(10**9, "email", "z@example.com")
    assert await count_rows(database, ContactPoint) == 1


async def test_default_region_reads_national_numbers(database):
    gb = CrmStore(database, default_region="GB", password_hasher=FAST_HASHER)
    c = await gb.create_customer("London", phones=["020 7946 0018"])
    assert (await gb.get_customer(c.id)).contact_points[0].value == "+442079460018"
    with pytest.raises(ValidationError):
        CrmStore(database, default_region="XX")


IDENTIFY = [
    ({"phone": "(202) 555-0143"}, True),
    ({"phone": "+1 202-555-0143"}, True),
    ({"phone": "001 202 555 0143"}, True),
    ({"phone": "2025550143"}, True),
    ({"phone": "+12025550143"}, True),
    ({"phone": "sip:+12025550143@pbx"}, True),
    ({"phone": "+44 20 7946 0018"}, True),
    ({"phone": "0044 20 7946 0018"}, True),
    ({"email": "ADA@example.com"}, True),
    ({"email": " ada@EXAMPLE.com "}, True),
    ({"chat_id": "web:abc"}, True),
    ({"phone": "anonymous"}, False),
    ({"phone": "<unknown>"}, False),
    ({"phone": "unknown"}, False),
    ({"phone": ""}, False),
    ({"phone": "Restricted"}, False),
    ({"phone": None}, False),
    ({"phone": "+1 202-555-0199"}, False),
    ({"phone": "12"}, False),
    ({"email": "nobody@example.com"}, False),
    ({"email": "garbage"}, False),
    ({"chat_id": "web:other"}, False),
    ({}, False),
]


async def test_identify_format_matrix(store):
    c = await store.create_customer("Ada", phones=["202-555-0143", "+44 20 7946 0018"],
                                    emails=["ada@example.com"], chat_ids=["web:abc"])
    await store.create_customer("Other", phones=["+1 202 555 0144"])
    for kwargs, found in IDENTIFY:
        got = await store.identify(**kwargs)
        assert (got.id if got else None) == (c.id if found else None), kwargs


async def test_identify_with_region_gb(database):
    gb = CrmStore(database, default_region="GB", password_hasher=FAST_HASHER)
    c = await gb.create_customer("London", phones=["+44 20 7946 0018"])
    for raw in ["020 7946 0018", "+44 (0)20 7946 0018", "00442079460018", "+442079460018"]:
        assert (await gb.identify(phone=raw)).id == c.id, raw


async def test_tier_override_is_remembered_and_audited(store, database):
    c = await store.create_customer("Tina", lifetime_value="100")
    assert c.tier == "regular"
    c = await store.set_tier_override(c.id, "vip", actor="admin")
    assert (c.tier, c.tier_override) == ("vip", "vip")
    c = await store.update_customer(c.id, lifetime_value="20000")
    assert c.tier == "vip"  # LTV recompute does not override the manual tier
    c = await store.add_lifetime_value(c.id, "-19000")
    c = await store.recompute_customer(c.id)
    assert c.tier == "vip"
    c = await store.clear_tier_override(c.id, actor="admin")
    assert (c.tier, c.tier_override) == ("regular", None)
    c = await store.add_lifetime_value(c.id, "60000")
    assert c.tier == "vip" and c.tier_override is None
    actions = [a.action for a in await store.list_audit(entity="customer", entity_id=c.id)]
    assert actions == ["customer.tier_override_cleared", "customer.tier_override"]
    entry = (await store.list_audit(action="customer.tier_override"))[0]
    assert entry.actor == "admin" and entry.before == {"tier": "regular", "tier_override": None}
    assert entry.after == {"tier": "vip", "tier_override": "vip"}
    with pytest.raises(UnknownValue):
        await store.set_tier_override(c.id, "platinum")
    assert await count_rows(database, AuditEntry) == 2


async def test_loyalty_follows_activity(store):
    now = datetime.now(UTC)
    c = await store.create_customer("Loyal Lou")
    assert c.loyalty == "potential"
    await store.open_interaction("voice", "inbound", c.id, at=now - timedelta(days=300))
    assert (await store.get_customer(c.id)).loyalty == "new"
    await store.open_interaction("chat", "inbound", c.id, at=now - timedelta(days=10))
    assert (await store.get_customer(c.id)).loyalty == "new"  # only 1 in the last 6 months
    await store.open_interaction("email", "inbound", c.id, at=now - timedelta(days=5))
    c = await store.get_customer(c.id)
    assert c.loyalty == "returning" and c.contact_count == 3
    for d in (3, 2):
        await store.open_interaction("voice", "outbound", c.id, at=now - timedelta(days=d))
    c = await store.get_customer(c.id)
    assert c.loyalty == "loyal" and c.contact_count == 5
    later = now + timedelta(days=400)
    assert (await store.recompute_customer(c.id, now=later)).loyalty == "lost"
    with pytest.raises(ValidationError):
        await store.recompute_customer(c.id, now=datetime(2030, 1, 1))  # naive time refused


async def test_times_are_utc_on_both_backends(store):
    from zoneinfo import ZoneInfo

    local = datetime(2026, 3, 1, 9, 30, tzinfo=ZoneInfo("America/New_York"))
    c = await store.create_customer("Tz", created_at=local)
    got = await store.get_customer(c.id)
    assert got.created_at == local and got.created_at.tzinfo == UTC
    assert got.created_at.hour == 14
