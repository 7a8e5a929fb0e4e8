"""Campaign lists from CRM segments and CSV, claims, attempts and the DNC list (both backends)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from crm_core.campaigns import CampaignStore
from crm_core.errors import ValidationError
from crm_core.models import Customer

NOW = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)


async def _people(store):
    vip = await store.create_customer(
        "Vera Vip", phones=["+12025550101"], lifetime_value="80000", tags=["gold"]
    )
    lost = await store.create_customer("Lou Lost", phones=["+12025550102"], emails=["lou@example.com"])
    angry = await store.create_customer("Ann Angry", phones=["+12025550103"], tags=["gold"])
    black = await store.create_customer(
        "Bob Black", phones=["+12025550104"], type="blacklisted", lifetime_value="90000"
    )
    nophone = await store.create_customer("Nina Nophone", emails=["nina@example.com"])
    async with store.db.session() as s, s.begin():
        await s.execute(update(Customer).where(Customer.id == lost.id).values(loyalty="lost"))
    await store.create_ticket(angry.id, "complaint", "Billed twice")
    return vip, lost, angry, black, nophone


async def test_segments(store):
    vip, lost, angry, black, nophone = await _people(store)
    cs = CampaignStore(store.db)

    async def names(segment, mode="preview"):
        c = await cs.create(name=f"c{len(await cs.all())}", mode=mode, subject="s", body="b")
        await cs.add_segment(c.id, segment)
        return sorted(r.name for r in await cs.records(c.id))

    assert await names({}) == ["Ann Angry", "Lou Lost", "Vera Vip"]  # never the blacklisted, needs a phone
    assert await names({"tier": ["vip"]}) == ["Vera Vip"]
    assert await names({"loyalty": "lost"}) == ["Lou Lost"]
    assert await names({"open_complaints": True}) == ["Ann Angry"]
    assert await names({"at_risk": True}) == ["Ann Angry", "Lou Lost"]
    assert await names({"tags": ["gold"]}) == ["Ann Angry", "Vera Vip"]
    assert await names({}, mode="email") == ["Lou Lost", "Nina Nophone"]
    with pytest.raises(ValidationError):
        await names({"colour": "red"})


async def test_csv_claims_attempts_and_stats(store):
    await store.create_customer("Known One", phones=["+12025550199"])
    cs = CampaignStore(store.db)
    c = await cs.create(name="csv", mode="progressive", dispositions=["sale", "no_sale"])
    added, rejected = await cs.import_csv(
        c.id,
        "name,phone,timezone\n"
        "Known One,(202) 555-0199,\n"
        "Pat Paris,+33 1 42 68 53 00,Europe/Paris\n"
        ",+12025550100,\n"
        "Bad Zone,+12025550111,Mars/Base\n"
        "Bad Phone,12,\n",
    )
    assert added == 2 and [r["line"] for r in rejected] == [4, 5, 6]
    recs = await cs.records(c.id)
    assert recs[0].customer_id is not None and recs[1].timezone == "Europe/Paris"
    with pytest.raises(ValidationError):
        await cs.import_csv(c.id, "who,what\nx,y\n")

    got = await cs.claim_due(c.id, NOW, 10)
    assert [r.id for r in got] == [r.id for r in recs] and await cs.claim_due(c.id, NOW, 10) == []
    await cs.log_attempt(c.id, got[0].id, "busy")
    await cs.settle(
        got[0].id, status="pending", attempts=1, next_at=NOW + timedelta(minutes=10), last_outcome="busy"
    )
    await cs.log_attempt(c.id, got[1].id, "answered")
    await cs.settle(got[1].id, status="done", attempts=1, disposition="sale")
    assert await cs.claim_due(c.id, NOW, 10) == []
    assert [r.id for r in await cs.claim_due(c.id, NOW + timedelta(minutes=10), 10)] == [got[0].id]
    st = await cs.stats(c.id)
    assert st["outcomes"] == {"busy": 1, "answered": 1} and st["dispositions"] == {"sale": 1}
    # a stopped campaign releases what it had claimed
    await cs.set_status(c.id, "stopped")
    assert (await cs.stats(c.id))["records"] == {"pending": 1, "done": 1}


async def test_dnc(store):
    cs = CampaignStore(store.db)
    assert await cs.add_dnc("phone", "(202) 555-0143")
    assert not await cs.add_dnc("phone", "+12025550143")
    assert await cs.dnc("phone", "+12025550143") == "dnc"
    assert await cs.add_dnc("email", "Lou@Example.com", "unsubscribe")
    assert await cs.dnc("email", "lou@example.com") == "unsubscribe"
    with pytest.raises(ValidationError):
        await cs.add_dnc("fax", "1")
