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


async def stop(task: asyncio.Task) -> None:
    """Cancel a writer; never wait on it long (under heavy load a cancelled Redis read was once
    seen not to return: that is the process's shutdown, which ScaleOut.close bounds too)."""
    task.cancel()
    await asyncio.wait({task}, timeout=5)


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
        await stop(task)
    async with database.session() as s:
        rows = (await s.execute(select(Interaction).where(Interaction.external_id.in_(ids)))).scalars().all()
        refused = (await s.execute(select(InteractionEvent).where(InteractionEvent.ok.is_(False)))).all()
    assert sorted(r.external_id for r in rows) == sorted(ids)
    assert {r.state for r in rows} == {"ended"} and not refused  # in order: no refused transition
    assert worker.written == 60


# ---- BufferedWrites: a whole call while the database is away, written afterwards -----------------
async def test_a_call_opened_and_wrapped_up_during_an_outage_is_written_afterwards(redis_prefix):
    """The store's database is unreachable (a closed port: real connection refusals): the call
    opens with a reserved id, every write (states, IVR path, wrap-up, ticket, survey) goes to the
    outbox, and the outbox's writer, on the database once it is back, writes them in order; the
    caller, unidentified during the outage, is identified by the phone number when written."""
    from callcenter.scaleout.buffered import BufferedWrites, CrmUnavailable
    from crm_core.db import Database
    from crm_core.models import SurveyResult, Ticket, ticket_interactions
    from crm_core.store import CrmStore
    from tests.callcenter.voice_harness import REGULAR_PHONE, seed_people
    from tests.conftest import need_postgres, unique_name
    from tests.faults.cluster import free_port

    url, prefix = redis_prefix
    pg, schema = need_postgres(), unique_name()
    up = Database(pg, schema=schema)
    await up.upgrade()
    client = aioredis.from_url(url)
    dead_port = free_port()
    down = Database(pg.replace("127.0.0.1:5432", f"127.0.0.1:{dead_port}"), schema=schema)
    try:
        live = CrmStore(up)
        people = await seed_people(live)
        agent = await live.get_user("agent1")
        before = await live.open_interaction("voice", "inbound", external_id="L0", state="queued")
        box = Outbox(client, prefix, partitions=2)
        store = CrmStore(down)  # this process's store: its database is away
        buf = BufferedWrites(store, box, reserve=5, reserve_tickets=2)
        buf.install()
        for block in (buf.ids, buf.ticket_ids):
            block.db = up  # reserved while the database was up
            await block.fill()
        reserved = list(buf.ids.ids)
        assert len(reserved) == 5 and min(reserved) > before.id

        # the call that was answered before the outage ends during it
        await store.set_state(before.id, "answered", agent_id=agent.id)
        await store.set_state(before.id, "ended", events=(("hangup", {"who": "caller"}),))
        await store.set_disposition(before.id, "resolved", "during the outage", agent_id=agent.id)

        # a call that starts during the outage
        i = await store.open_interaction("voice", "inbound", None, external_id="L1",
                                         from_address=REGULAR_PHONE,
                                         events=(("arrive", {"caller": REGULAR_PHONE}),))
        assert i.id == reserved[0]
        with pytest.raises(CrmUnavailable):
            await store.identify(phone=REGULAR_PHONE)
        await store.set_state(i.id, "ivr")
        await store.update_interaction(i.id, ivr_path=[{"node": "menu"}], events=(("ivr", {"ok": 1}),))
        await store.set_state(i.id, "queued", queue="support", events=(("queue", {"queue": "support"}),))
        await store.set_state(i.id, "offered", agent_id=agent.id)
        await store.set_state(i.id, "answered", agent_id=agent.id, events=(("answer", {}),))
        await store.set_state(i.id, "ended", events=(("hangup", {"who": "agent"}),))
        await store.set_disposition(i.id, "resolved", "wrapped up during the outage", agent_id=agent.id)
        t = await store.create_ticket(people["regular"].id, "inquiry", "Call back about the bill",
                                      interaction_ids=[i.id])
        assert t.number.startswith("T-") and t.status == "open"
        await store.set_state(i.id, "wrapup_done", agent_id=agent.id)
        await store.append_event(i.id, "wrapup", data={"disposition": "resolved", "ticket": t.number})
        # another process (the database back for it) records the survey: the interaction is not
        # written yet, so its survey queues behind the outbox's entries
        other = CrmStore(up)
        BufferedWrites(other, Outbox(client, prefix, partitions=2), reserve=0).install()
        await other.record_survey(5, interaction_id=i.id, channel="voice", events=(("survey", {"score": 5}),))
        # and the call answered before the outage is wrapped up there (handed over): queued -> wrap-up
        # done is not allowed yet (its answered and ended are in the outbox): queued behind them
        third = CrmStore(up)
        BufferedWrites(third, Outbox(client, prefix, partitions=2), reserve=0).install()
        await third.set_state(before.id, "wrapup_done", agent_id=agent.id)
        await third.append_event(before.id, "wrapup", data={"disposition": "resolved"})
        # while the outbox has a backlog, a write to an interaction buffered elsewhere goes behind it
        # even when the database would take it directly
        fourth = CrmStore(up)
        late = BufferedWrites(fourth, Outbox(client, prefix, partitions=2), reserve=0)
        late.install()
        late.backlog = await box.backlog()
        await fourth.append_event(before.id, "note", data={"text": "late"})
        assert late.count == 1

        worker = OutboxWorker(box, up, "w1", block_ms=50)
        task = asyncio.get_running_loop().create_task(worker.run())
        try:
            for _ in range(400):
                if await box.backlog() == 0:
                    break
                await asyncio.sleep(0.05)
            assert await box.backlog() == 0
        finally:
            await stop(task)
        assert not await client.xlen(f"{prefix}outbox:dead")
        got = await live.get_interaction(i.id)
        assert (got.external_id, got.state, got.customer_id) == ("L1", "wrapup_done", people["regular"].id)
        assert (got.disposition_code, got.csat_score, got.queue, got.agent_id) == ("resolved", 5, "support",
                                                                                   agent.id)
        assert got.answered_at and got.ended_at and got.wrapup_done_at and got.ivr_path == [{"node": "menu"}]
        kinds = [(e.kind, e.ok) for e in await live.timeline(i.id)]
        assert [k for k, _ in kinds] == [
            "opened", "arrive", "identify", "state", "ivr", "state", "queue", "state", "state",
            "answer", "state", "hangup", "disposition", "ticket", "state", "wrapup", "csat", "survey"], kinds
        assert all(ok for _, ok in kinds), kinds
        b = await live.get_interaction(before.id)
        assert (b.state, b.disposition_code, b.notes) == ("wrapup_done", "resolved", "during the outage")
        kinds = [(e.kind, e.ok) for e in await live.timeline(before.id)]
        assert [k for k, _ in kinds][-7:] == ["state", "state", "hangup", "disposition", "state", "wrapup",
                                              "note"]
        assert all(ok for _, ok in kinds), kinds
        async with up.session() as s:
            ticket = (await s.execute(select(Ticket).where(Ticket.number == t.number))).scalar_one()
            linked = (await s.execute(select(ticket_interactions.c.interaction_id).where(
                ticket_interactions.c.ticket_id == ticket.id))).scalars().all()
            surveys = (await s.execute(select(SurveyResult).where(
                SurveyResult.interaction_id == i.id))).scalars().all()
        assert ticket.id == t.id and linked == [i.id] and ticket.sla_due_at is not None
        assert [(r.score, r.customer_id) for r in surveys] == [(5, people["regular"].id)]
    finally:
        await client.aclose()
        await down.close()
        await up.drop_schema()
        await up.close()


async def test_a_batch_is_written_in_one_transaction_and_a_refused_entry_alone_goes_to_dead_letters(
        client, redis_prefix, database):
    from crm_core.fencing import fenced_batch

    async def open_(ext, s):
        return await apply_interaction_op(s, {"op": "open", "external_id": ext, "state": "queued"})

    def item(entry, ext):
        return entry, lambda s: open_(ext, s)

    first = [item("5-0", "B1"), item("6-0", "B2")]
    assert await fenced_batch(database, "outbox:9", 2, first) == ["5-0", "6-0"]
    # delivered again with newer ones (the writer died before its XACK): only the new ones apply
    assert await fenced_batch(database, "outbox:9", 2, [item("6-0", "B2"), item("7-0", "B3")]) == ["7-0"]
    with pytest.raises(StaleToken):
        await fenced_batch(database, "outbox:9", 1, [item("8-0", "B4")])

    _, prefix = redis_prefix
    box = Outbox(client, prefix, partitions=1)
    for n in range(6):
        await box.put({"op": "open", "external_id": f"R{n}", "state": "queued"})
        if n == 3:  # no such interaction: refused for good
            await box.put({"op": "state", "external_id": "nobody", "state": "answered"})
    worker = OutboxWorker(box, database, "w1", block_ms=50)
    task = asyncio.get_running_loop().create_task(worker.run())
    try:
        for _ in range(200):
            if await box.backlog() == 0:
                break
            await asyncio.sleep(0.05)
    finally:
        await stop(task)
    dead = await client.xrange(f"{prefix}outbox:dead")
    assert [b"nobody" in f[b"op"] for _, f in dead] == [True]
    async with database.session() as s:
        rows = (await s.execute(select(Interaction.external_id).where(
            Interaction.external_id.like("R%")))).scalars().all()
    assert sorted(rows) == [f"R{n}" for n in range(6)] and worker.written == 6
