"""search(): names (word prefix, case and accent-insensitive), phones, emails, ticket numbers."""
from __future__ import annotations

import pytest

from crm_core.bulk import insert_customers
from crm_core.errors import ValidationError


async def _names(page):
    return [h.name for h in page.items]


async def test_name_search(store):
    await store.create_customer("John Smith")
    await store.create_customer("Joan Smithers")
    await store.create_customer("José Álvarez")
    await store.create_customer("Mary O'Neil")
    await store.create_customer("Zed")
    await store.create_customer("Smith Smithson")  # two matching words: listed once
    # ordered by the matching word, then by id
    assert await _names(await store.search("smith")) == [
        "John Smith", "Smith Smithson", "Joan Smithers"]
    assert await _names(await store.search("SMIth j")) == ["John Smith", "Joan Smithers"]
    assert await _names(await store.search("john smi")) == ["John Smith"]
    assert await _names(await store.search("jo sm")) == ["Joan Smithers", "John Smith"]
    assert await _names(await store.search("jose")) == ["José Álvarez"]
    assert await _names(await store.search("ÁLVAR")) == ["José Álvarez"]
    assert await _names(await store.search("oneil")) == ["Mary O'Neil"]
    assert await _names(await store.search("o'neil")) == ["Mary O'Neil"]
    assert await _names(await store.search("mithe")) == ["Joan Smithers"]  # substring fallback
    assert await _names(await store.search("nobody")) == []
    assert (await store.search("   ")).items == ()
    page = await store.search("smith", page_size=2)
    assert page.has_more and len(page.items) == 2
    assert all(h.matched_on == "name" for h in page.items)


async def test_contact_and_ticket_search(store):
    a = await store.create_customer("Alice", phones=["+1 202 555 0143"],
                                    emails=["alice@example.com"])
    b = await store.create_customer("Bob", emails=["bob@example.org"])
    t = await store.create_ticket(b.id, "inquiry", "Where is my order?")
    for q in ["(202) 555-0143", "+1 202-555-0143", "001 202 555 0143", "2025550143"]:
        page = await store.search(q)
        assert [(h.customer_id, h.matched_on) for h in page.items] == [(a.id, "phone")], q
        assert page.items[0].matched_value == "+12025550143"
    assert [h.customer_id for h in (await store.search("+1202555")).items] == [a.id]  # prefix
    assert [h.customer_id for h in (await store.search("ALICE@example.com")).items] == [a.id]
    assert [h.customer_id for h in (await store.search("bob@")).items] == [b.id]  # prefix
    assert t.number == f"T-{t.id:06d}"
    for q in [t.number, t.number.lower(), f"T{t.id}", f"t-{t.id}"]:
        page = await store.search(q)
        assert [(h.customer_id, h.matched_on, h.matched_value) for h in page.items] == [
            (b.id, "ticket", t.number)], q
    assert (await store.search("T-999999")).items == ()
    assert (await store.search("+1 303 555 0100")).items == ()


async def test_pagination(store, database):
    await insert_customers(database, [{"name": f"Page Person {k:03d}"} for k in range(45)])
    seen = []
    for page in (1, 2, 3):
        p = await store.search("page", page=page, page_size=20)
        seen += [h.name for h in p.items]
        assert p.has_more is (page < 3)
    assert seen == [f"Page Person {k:03d}" for k in range(45)]
    assert (await store.search("page", page=4)).items == ()
    with pytest.raises(ValidationError):
        await store.search("x", page=0)
    with pytest.raises(ValidationError):
        await store.search("x", page_size=1000)


async def test_search_uses_indexes(store, database):
    """The name, contact and ticket lookups are index searches, not table scans."""
    from sqlalchemy import text

    await insert_customers(database, [{"name": f"Indexed {k}"} for k in range(200)])
    queries = [
        "SELECT customer_id FROM customer_name_tokens WHERE token >= 'ind' AND token < 'ine'",
        "SELECT customer_id FROM contact_points WHERE kind = 'phone' AND value = '+1'",
        "SELECT id FROM tickets WHERE number = 'T-000001'",
        "SELECT id FROM interactions WHERE customer_id = 1 ORDER BY created_at DESC LIMIT 20",
        "SELECT id FROM tickets WHERE customer_id = 1 AND status IN ('open', 'pending')",
    ]
    async with database.engine.connect() as conn:
        if not database.is_sqlite:
            await conn.execute(text("SET enable_seqscan = off"))
        for q in queries:
            explain = "EXPLAIN QUERY PLAN " if database.is_sqlite else "EXPLAIN "
            plan = " ".join(str(r) for r in (await conn.execute(text(explain + q))).all())
            if database.is_sqlite:
                assert "USING" in plan and "INDEX" in plan and "TEMP B-TREE" not in plan, plan
            else:
                assert "Index" in plan and "Seq Scan" not in plan, plan
