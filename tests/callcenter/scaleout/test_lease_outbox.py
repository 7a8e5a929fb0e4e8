"""The leader lease (fencing token, injected clock), fenced database writes, and the outbox on a
real Redis and a real database (SQLite and PostgreSQL)."""
from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError
from sqlalchemy import select

from callcenter.scaleout.lease import Elector, Lease
from callcenter.scaleout.outbox import GROUP, Outbox, OutboxWorker
from crm_core.fencing import StaleToken, apply_interaction_op, fence_token, fenced_write
from crm_core.models import Interaction, InteractionEvent

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def client(redis_prefix):
    url, _prefix = redis_prefix
    c = aioredis.from_url(url)
    yield c
    await c.aclose()


async def test_lease_one_holder_token_grows_and_expires_by_the_injected_clock(client, redis_prefix):
    _, prefix = redis_prefix
    a = Lease(client, prefix, "ami", "a", ttl_s=5)
    b = Lease(client, prefix, "ami", "b", ttl_s=5)
    t1 = await a.acquire(100.0)
    assert t1 == 1
    assert await b.acquire(104.9) == 0  # a's lease is live
    assert await a.acquire(104.0) == t1  # the holder keeps its token
    assert await a.renew(106.0)  # renewed until 111
    assert await b.acquire(110.0) == 0
    t2 = await b.acquire(111.5)  # expired: b takes over with a newer token
    assert t2 > t1
    assert not await a.renew(112.0)  # a learns it lost
    assert await a.holder() == ("b", t2)
    # writes on behalf of the lease carry the token: the stale one is refused
    await b.fenced_hset(t2, prefix + "calls", "c1", "answered")
    with pytest.raises(ResponseError, match="STALE"):
        await a.fenced_hset(t1, prefix + "calls", "c1", "ringing")
    assert await client.hget(prefix + "calls", "c1") == b"answered"
    # a token floor (the newest token the database has seen) survives a Redis that lost its data
    await client.delete(b.key, b.seq_key)
    assert await a.acquire(200.0, floor=41) == 42


async def test_elector_steps_down_and_the_other_takes_over(client, redis_prefix):
    _, prefix = redis_prefix
    now = [1000.0]
    events: list[tuple[str, object]] = []

    def elector(name: str) -> Elector:
        async def elected(token: int) -> None:
            events.append((name, token))

        async def lost() -> None:
            events.append((name, "lost"))

        return Elector(Lease(client, prefix, "ami", name, ttl_s=4), on_elected=elected, on_lost=lost,
                       clock=lambda: now[0])

    a, b = elector("a"), elector("b")
    await a.step()
    await b.step()
    assert (a.leader, b.leader) == (True, False)
    now[0] += 3
    await a.step()  # renewed
    await b.step()
    assert not b.leader
    now[0] += 5  # a stops renewing (dead); its lease ends
    await b.step()
    await asyncio.sleep(0.01)  # the holder's start runs on its own task
    assert b.leader and events == [("a", 1), ("b", 2)]
    await a.step()  # a comes back: its renewal is refused and it steps down
    assert not a.leader and events[-1] == ("a", "lost")


async def test_fenced_write_refuses_a_stale_token_and_skips_a_written_entry(database):
    async def open_(s):
        return await apply_interaction_op(s, {"op": "open", "external_id": "L1", "state": "queued"})

    wrote, iid = await fenced_write(database, "ami", 3, open_, entry_id="10-0")
    assert wrote and iid
    assert await fenced_write(database, "ami", 3, open_, entry_id="10-0") == (False, None)
    with pytest.raises(StaleToken):
        await fenced_write(database, "ami", 2, open_, entry_id="11-0")
    assert await fence_token(database, "ami") == 3
    async with database.session() as s:
        n = len((await s.execute(select(Interaction).where(Interaction.external_id == "L1"))).all())
    assert n == 1


async def test_outbox_writes_in_order_once_and_a_dead_consumers_entries_are_claimed(
        client, redis_prefix, database):
    _, prefix = redis_prefix
    box = Outbox(client, prefix, partitions=2)
    ids = [f"call-{i}" for i in range(20)]
    for ext in ids:
        await box.put({"op": "open", "external_id": ext, "state": "queued"})
        await box.put({"op": "state", "external_id": ext, "state": "answered", "agent_id": None})
        await box.put({"op": "state", "external_id": ext, "state": "ended"})
    # a consumer that read entries and died before writing them (never acknowledged)
    await client.xgroup_create(box.stream(0), GROUP, id="0", mkstream=True)
    dead = await client.xreadgroup(GROUP, "dead", {box.stream(0): ">"}, count=5)
    assert len(dead[0][1]) == 5
    worker = OutboxWorker(box, database, "w1", block_ms=50)
    task = asyncio.get_running_loop().create_task(worker.run())
    try:
        for _ in range(400):
            if await box.backlog() == 0:
                break
            await asyncio.sleep(0.05)
        assert await box.backlog() == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    async with database.session() as s:
        rows = (await s.execute(select(Interaction).where(Interaction.external_id.in_(ids)))).scalars().all()
        refused = (await s.execute(select(InteractionEvent).where(InteractionEvent.ok.is_(False)))).all()
    assert sorted(r.external_id for r in rows) == sorted(ids)
    assert {r.state for r in rows} == {"ended"} and not refused  # in order: no refused transition
    assert worker.written == 60
