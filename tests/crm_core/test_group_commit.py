"""Group commit: writes made at the same moment share a transaction, yet each caller gets its
own result, a refused write changes nothing, and one bad write never spoils the others."""
from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

from crm_core.errors import InvalidTransition, NotFound, UnknownValue
from crm_core.models import Interaction, InteractionEvent
from tests.crm_core.conftest import count_rows


async def _opened(store, n: int) -> list[Interaction]:
    return list(await asyncio.gather(*(store.open_interaction("voice", "inbound") for _ in range(n))))


async def test_concurrent_writes_each_get_their_own_outcome(store):
    agent = await store.create_user("gc-agent", "password1", "agent")
    a, b, c = await _opened(store, 3)
    await store.set_state(c.id, "abandoned")
    results = await asyncio.gather(
        store.set_state(a.id, "queued", queue="billing"),
        store.set_state(b.id, "offered", agent_id=agent.id,
                        events=(("offer", {"agent": "gc-agent"}),)),
        store.set_state(c.id, "queued"),  # abandoned is final: refused
        store.set_state(a.id, "offered", agent_id=10**9),  # unknown agent: refused
        store.append_event(10**9, "orphan"),  # unknown interaction: refused
        store.append_event(b.id, "note", data={"n": 1}),
        store.set_disposition(a.id, "no-such-code"),  # refused
        return_exceptions=True,
    )
    assert isinstance(results[0], Interaction) and results[0].queue == "billing"
    assert isinstance(results[1], Interaction) and results[1].agent_id == agent.id
    assert isinstance(results[2], InvalidTransition)
    assert isinstance(results[3], NotFound)
    assert isinstance(results[4], NotFound)
    assert isinstance(results[5], InteractionEvent) and results[5].id is not None
    assert isinstance(results[6], UnknownValue)
    # the refused writes changed nothing; the others are all stored
    assert (await store.get_interaction(a.id)).state == "queued"
    assert (await store.get_interaction(a.id)).agent_id is None
    assert (await store.get_interaction(c.id)).state == "abandoned"
    kinds_b = [e.kind for e in await store.timeline(b.id)]
    assert kinds_b == ["opened", "state", "offer", "note"]
    assert await count_rows(store.db, InteractionEvent, InteractionEvent.kind == "orphan") == 0


async def test_timeline_keeps_the_order_the_writes_were_made(store):
    (i,) = await _opened(store, 1)
    await asyncio.gather(*(store.append_event(i.id, f"step{k}") for k in range(30)))
    timeline = await store.timeline(i.id)
    assert [e.kind for e in timeline][1:] == [f"step{k}" for k in range(30)]
    assert [e.id for e in timeline] == sorted(e.id for e in timeline)


async def test_sqlite_batch_waits_for_another_writer_then_stores(store):
    """Another connection holds SQLite's write lock: the batch does not fail and does not block
    the event loop; it waits in a worker thread and is stored once the lock is released."""
    db = store.db
    if not db.is_sqlite or db.sync_writer() is None:
        pytest.skip("SQLite file databases only")
    (i,) = await _opened(store, 1)
    other = sqlite3.connect(db.url.database, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        write = asyncio.ensure_future(store.append_event(i.id, "while-locked"))
        t0 = time.monotonic()
        await asyncio.sleep(0.2)  # the loop keeps running meanwhile
        assert time.monotonic() - t0 < 1.0
        assert not write.done()
        other.execute("COMMIT")
        ev = await asyncio.wait_for(write, 10)
    finally:
        other.close()
    assert ev.id is not None
    assert [e.kind for e in await store.timeline(i.id)] == ["opened", "while-locked"]
