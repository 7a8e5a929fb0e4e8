"""The Redis routing store read from the event loop while the routing runner's worker thread runs
an engine step: such reads are views (the step's pending save is not sent by them, the records
the engine holds are not changed under it), and the batch reads that replaced one blocking round
trip per agent or per waiting contact give what the per-item reads gave."""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from callcenter.routing_redis import RedisStore, connect
from routing import (
    AgentPresence,
    AgentProfile,
    Channel,
    Contact,
    ContactArrived,
    Engine,
    EngineConfig,
    Presence,
    QueueConfig,
)
from tests.conftest import unique_name
from tests.services import need_redis


@pytest.fixture
def url_prefix() -> Iterator[tuple[str, str]]:
    url, p = need_redis(), unique_name("cc_t") + ":"
    yield url, p
    r = connect(url)
    for key in r.scan_iter(match=p + "*", count=1000):
        r.unlink(key)
    r.close()


def _engine(url: str, prefix: str) -> Engine:
    cfg = EngineConfig(queues={"billing": QueueConfig("billing", skills={"s": 1}),
                               "sales": QueueConfig("sales", skills={"s": 1}),
                               "odd \"q\\": QueueConfig("odd \"q\\", skills={"x": 1})})
    return Engine(cfg, RedisStore.from_url(url, prefix, cfg.mixing))


def test_batch_reads_match_the_item_reads(url_prefix: tuple[str, str]) -> None:
    url, prefix = url_prefix
    e = _engine(url, prefix)
    store = e.store
    for n, q in enumerate(["billing", "sales", "billing", "odd \"q\\", "sales"]):
        e.handle(ContactArrived(Contact(f"c{n}", Channel.CHAT if n % 2 else Channel.VOICE, q, float(n),
                                        priority=float(n % 3))), float(n))
    for i in range(30):
        cap = None if i % 7 == 0 else {Channel.VOICE: 1, Channel.CHAT: i % 4, Channel.EMAIL: 2}
        e.add_agent(AgentProfile(f"a{i}", {"z": 1}, capacity=cap), 10.0)
        if i % 3:
            e.handle(AgentPresence(f"a{i}", Presence.READY if i % 3 == 1 else Presence.NOT_READY), 10.0)
    # waiting contacts with their queue, best first: as Engine.waiting + one contact() each
    want = [(cid, key, store.contact(cid).queue) for cid, key in e.waiting(limit=1000)]
    assert store.waiting_queues(1000) == want and len(want) == 5
    assert asyncio.run(store.awaiting_queues(1000)) == want
    # the chat capacity of the signed-in agents: as reading each agent's record
    ids = [f"a{i}" for i in range(30)] + ["nobody"]
    recs = [store.agent(a) for a in ids]
    expect = sum((r.profile.capacity or {}).get(Channel.CHAT, 0) for r in recs
                 if r is not None and r.presence not in (Presence.OFFLINE, Presence.NOT_READY))
    assert expect > 0 and store.capacity(Channel.CHAT, ids) == expect
    assert store.capacity(Channel.CHAT, ids, enough=1) >= 1
    assert asyncio.run(store.acapacity(Channel.CHAT, ids)) == expect
    got = asyncio.run(store.aagents(ids))
    assert got.keys() == {a for a in ids if a != "nobody"}
    assert all(got[a] == store.agent(a) for a in got)


def test_reads_from_another_thread_during_a_step_are_views(url_prefix: tuple[str, str]) -> None:
    url, prefix = url_prefix
    e = _engine(url, prefix)
    store = e.store
    e.handle(ContactArrived(Contact("c1", Channel.VOICE, "billing", 0.0)), 0.0)
    held = store.contact("c1")  # the record the engine holds (tracked)
    in_step, done = threading.Event(), threading.Event()

    def step() -> None:  # the runner's worker thread, mid-step: a save not sent yet
        with store.stepping():
            held.boost = 7.5
            store.save_contact(held)
            in_step.set()
            done.wait(10)

    t = threading.Thread(target=step)
    t.start()
    try:
        assert in_step.wait(10)
        view = store.contact("c1")  # the event loop's read
        assert view is not held and view.boost == 0.0  # what Redis has
        assert held.boost == 7.5  # the engine's unsaved change is kept
        assert store._pending_save is not None  # not sent by the loop's read
        assert store.agent("nobody") is None
    finally:
        done.set()
        t.join()
    assert store.contact("c1") is held and store._pending_save is None  # the engine's own read sends it
    assert store.contact("c1").boost == 7.5


def test_the_pool_read_sends_only_what_changed_and_copies_stay_fresh(url_prefix: tuple[str, str]) -> None:
    """Two processes: A reads a pool, B changes an agent in it; A's next reads give B's change,
    also when A's copy is older than A's last read (the agent changed while A read other pools)."""
    url, prefix = url_prefix
    a, b = RedisStore.from_url(url, prefix), RedisStore.from_url(url, prefix)
    a.add_agent(AgentProfile("a1", {"s": 1}), 0.0)
    a.add_agent(AgentProfile("a2", {"t": 1}), 0.0)
    for aid in ("a1", "a2"):
        a.set_presence(aid, Presence.READY, None, 1.0)

    def pool(store: RedisStore, skill: str) -> dict[str, float]:
        return {aid: store.agent(aid).presence_since for aid in store.available(Channel.VOICE, skill)}

    assert pool(a, "s") == {"a1": 1.0}
    b.set_presence("a1", Presence.NOT_READY, "break", 5.0)
    b.set_presence("a1", Presence.READY, None, 6.0)
    assert pool(a, "t") == {"a2": 1.0}  # A's counter moves past a1's change
    assert pool(a, "s") == {"a1": 6.0}  # a stale copy is not used: read again
    rows = a._s_pool(a._r, [f"{a.base}av:voice:s"], [a.base, a._pool_since]).split("\x1e")
    assert rows[1].count("\x1f") == 1  # unchanged since: only its version came
    b.set_presence("a1", Presence.READY, "x", 7.0)
    assert pool(a, "s") == {"a1": 6.0} and a.agent("a1").reason == "x"
