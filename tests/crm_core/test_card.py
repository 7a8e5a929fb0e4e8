"""The screen pop: content, JSON form, and a bounded number of statements (no N+1)."""
from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import event

from crm_core.bulk import insert_interactions, insert_surveys, insert_tickets
from crm_core.errors import NotFound


@contextmanager
def count_statements(db):
    stmts: list[str] = []

    def before(conn, cursor, statement, params, context, executemany):
        stmts.append(statement)

    for engine in db.sync_engines():
        event.listen(engine, "before_cursor_execute", before)
    try:
        yield stmts
    finally:
        for engine in db.sync_engines():
            event.remove(engine, "before_cursor_execute", before)


async def _customer_with_history(store, db, n_inter: int, n_tickets: int, name: str, phone: str):
    c = await store.create_customer(name, phones=[phone], emails=[f"{phone[1:]}@example.com"],
                                    lifetime_value="60000", tags=["b", "a"], language="en")
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    await insert_interactions(db, [
        {"customer_id": c.id, "channel": "voice", "direction": "inbound", "state": "wrapup_done",
         "created_at": t0 + timedelta(minutes=k)} for k in range(n_inter)
    ])
    for k in range(n_tickets):
        await store.create_ticket(c.id, "complaint" if k % 2 else "inquiry", f"Problem {k}")
    return c


async def test_card_content_and_json(store, database):
    c = await _customer_with_history(store, database, 30, 3, "Carla Card", "+12025550111")
    closed = await store.create_ticket(c.id, "inquiry", "Done already")
    await store.update_ticket_status(closed.id, "closed")
    i = await store.open_interaction("chat", "inbound", c.id)
    await store.set_csat(i.id, 5)
    await store.record_survey(2, customer_id=c.id, channel="email")

    card = await store.customer_card(c.id)
    assert card.customer.id == c.id and card.customer.name == "Carla Card"
    assert card.customer.tier == "vip" and card.customer.tags == ("a", "b")
    assert {cp.kind for cp in card.contact_points} == {"phone", "email"}
    assert len(card.recent_interactions) == 20
    assert card.recent_interactions[0].id == i.id  # newest first
    times = [x.created_at for x in card.recent_interactions]
    assert times == sorted(times, reverse=True)
    assert len(card.open_tickets) == 3 and all(t.status == "open" for t in card.open_tickets)
    assert [t.sla_due_at for t in card.open_tickets] == sorted(t.sla_due_at for t in card.open_tickets)
    assert str(card.csat_average) == "3.50" and card.csat_count == 2

    d = json.loads(json.dumps(card.to_dict()))
    assert d["customer"]["lifetime_value"] == "60000.00"
    assert d["customer"]["tier"] == "vip" and d["customer"]["loyalty"] in ("new", "loyal")
    assert d["open_tickets"][0]["number"].startswith("T-")
    assert d["csat_average"] == "3.50"
    assert datetime.fromisoformat(d["recent_interactions"][0]["created_at"]).tzinfo is not None


async def test_card_of_a_new_customer_and_missing_one(store):
    c = await store.create_customer("Nobody Yet")
    card = await store.customer_card(c.id)
    assert card.contact_points == () and card.recent_interactions == ()
    assert card.open_tickets == () and card.csat_average is None and card.csat_count == 0
    try:
        await store.customer_card(10**9)
    except NotFound as e:
        assert e.entity == "Customer"
    else:
        raise AssertionError("expected NotFound")


async def test_identify_and_card_use_a_constant_number_of_statements(store, database):
    small = await _customer_with_history(store, database, 1, 1, "Small", "+12025550121")
    big = await _customer_with_history(store, database, 60, 12, "Big", "+12025550122")
    await insert_surveys(database, [{"customer_id": big.id, "score": 4} for _ in range(30)])
    await insert_tickets(database, [
        {"id": 1000 + k, "customer_id": big.id, "type": "inquiry", "subject": "s", "tier": "vip"}
        for k in range(5)
    ])
    counts = []
    for c in (small, big):
        with count_statements(database) as stmts:
            found = await store.identify(phone=c.contact_points[0].value)
        assert found.id == c.id and len(stmts) == 1  # one indexed lookup
        with count_statements(database) as stmts:
            card = await store.customer_card(c.id)
        counts.append(len(stmts))
        assert card.customer.id == c.id
    assert counts[0] == counts[1] == 3
