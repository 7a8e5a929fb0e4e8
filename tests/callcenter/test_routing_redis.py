"""The Redis routing store on its own: scripts, leases, reclaim, prefixes, an unavailable Redis,
and the engine's random-sequence properties run against it (fewer examples than in memory)."""
from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from redis.crc import key_slot

from callcenter.routing_redis import RedisStore, RoutingStoreUnavailable, connect
from routing import (
    AgentPresence,
    AgentProfile,
    Channel,
    Contact,
    ContactArrived,
    ContactStatus,
    Engine,
    EngineConfig,
    Offer,
    OfferAccepted,
    Presence,
    QueueConfig,
    Requeue,
)
from routing.events import TimerKind
from tests.conftest import unique_name
from tests.routing import test_properties as props
from tests.services import need_redis


@pytest.fixture
def redis_url() -> Iterator[str]:
    yield need_redis()


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    p = unique_name("cc_t") + ":"
    yield p
    r = connect(redis_url)
    for key in r.scan_iter(match=p + "*", count=1000):
        r.unlink(key)
    r.close()


def _engine(url: str, prefix: str, **kw: Any) -> Engine:
    cfg = EngineConfig(queues={"q": QueueConfig("q", skills={"s": 1})}, **kw)
    return Engine(cfg, RedisStore(connect(url), prefix, cfg.mixing, lease_grace_s=2.0))


def test_keys_carry_the_prefix_and_one_hash_tag(redis_url: str, prefix: str) -> None:
    e = _engine(redis_url, prefix)
    e.add_agent(AgentProfile("a1", {"s": 5}), 0.0)
    e.handle(AgentPresence("a1", Presence.READY), 0.0)
    e.handle(ContactArrived(Contact("c1", Channel.VOICE, "q", 0.0)), 0.0)
    store = e.store
    assert isinstance(store, RedisStore)
    keys = list(store.client.scan_iter(match=prefix + "*"))
    assert keys and all(k.startswith(prefix + "{" + prefix.rstrip(":") + "}:") for k in keys)
    # one hash slot for the whole center (Redis Cluster: scripts may touch several keys)
    assert len({key_slot(k.encode()) for k in keys}) == 1
    tags = {k[k.index("{") + 1:k.index("}")] for k in keys}
    assert tags == {prefix.rstrip(":")}


def test_claim_is_refused_without_capacity_and_leaves_nothing_half_done(redis_url: str, prefix: str) -> None:
    e = _engine(redis_url, prefix)
    store = e.store
    assert isinstance(store, RedisStore)
    e.add_agent(AgentProfile("a1", {"s": 5}), 0.0)
    e.handle(AgentPresence("a1", Presence.READY), 0.0)
    ds = e.handle(ContactArrived(Contact("c1", Channel.VOICE, "q", 0.0)), 0.0)
    assert [d.agent_id for d in ds if isinstance(d, Offer)] == ["a1"]
    e.handle(ContactArrived(Contact("c2", Channel.CHAT, "q", 0.0)), 0.0)
    # voice blocks chat: the claim refuses, and nothing changed
    before = (store.agent("a1"), store.contact("c2"))
    assert not store.claim("c2", "a1", Channel.CHAT, 20.0, 0.0)
    a, c = store.agent("a1"), store.contact("c2")
    assert a is not None and c is not None and before[0] is not None
    assert a.load == before[0].load and a.slots == before[0].slots
    assert c.status is ContactStatus.WAITING and store.peek(c.bucket, 5)[0][0] == "c2"
    assert [cid for cid, _ in store.leases()] == ["c1"]


def test_scripts_reload_after_noscript(redis_url: str, prefix: str) -> None:
    e = _engine(redis_url, prefix)
    store = e.store
    assert isinstance(store, RedisStore)
    store.client.script_flush()  # as after a restart: every EVALSHA now says NOSCRIPT
    e.add_agent(AgentProfile("a1", {"s": 5}), 0.0)
    e.handle(AgentPresence("a1", Presence.READY), 0.0)
    ds = e.handle(ContactArrived(Contact("c1", Channel.VOICE, "q", 0.0)), 0.0)
    assert any(isinstance(d, Offer) for d in ds)


def test_lease_of_a_dead_process_is_reclaimed_with_place_and_priority(redis_url: str, prefix: str) -> None:
    # process A claims c1 for a1 and dies before anything else (no RING handling ever happens there)
    a = _engine(redis_url, prefix, ring_timeout_s=10.0, not_ready_on_no_answer=False,
                retry_same_agent_s=0.0)
    a.add_agent(AgentProfile("a1", {"s": 5}), 0.0)
    a.add_agent(AgentProfile("a2", {"s": 5}), 0.0)
    a.handle(AgentPresence("a1", Presence.READY), 0.0)
    offers = [d for d in a.handle(ContactArrived(Contact("c1", Channel.VOICE, "q", 0.0)), 0.0)
              if isinstance(d, Offer)]
    assert [o.agent_id for o in offers] == ["a1"]
    sa = a.store
    assert isinstance(sa, RedisStore)
    sa.client.zrem(sa.base + "tm", "ring|c1")  # its RING timer was popped by A, which then died
    # meanwhile c2 arrives (later, lower key) and waits; process B runs
    b = _engine(redis_url, prefix, ring_timeout_s=10.0, not_ready_on_no_answer=False,
                retry_same_agent_s=0.0)
    b.handle(ContactArrived(Contact("c2", Channel.VOICE, "q", 1.0)), 1.0)
    sb = b.store
    assert isinstance(sb, RedisStore)
    assert b.tick(11.0) == []  # lease over, but within the grace: a live process would handle it
    assert b.next_due() == pytest.approx(12.0)  # lease_until + grace
    ds = b.tick(12.0)
    assert [(d.contact_id, d.agent_id) for d in ds if isinstance(d, Requeue)] == [("c1", "a1")]
    # c1 kept its place ahead of c2 and is offered again (a1 is free again)
    assert [(d.contact_id, d.agent_id) for d in ds if isinstance(d, Offer)] == [("c1", "a1")]
    b.handle(OfferAccepted("c1", "a1"), 12.0)
    assert sb.leases() == []
    rec = sb.contact("c1")
    assert rec is not None and rec.status is ContactStatus.CONNECTED


def test_reclaim_expired_rearms_only_expired_offers(redis_url: str, prefix: str) -> None:
    e = _engine(redis_url, prefix, ring_timeout_s=10.0)
    store = e.store
    assert isinstance(store, RedisStore)
    e.add_agent(AgentProfile("a1", {"s": 5}), 0.0)
    e.handle(AgentPresence("a1", Presence.READY), 0.0)
    e.handle(ContactArrived(Contact("c1", Channel.VOICE, "q", 0.0)), 0.0)
    store.cancel_timer(TimerKind.RING, "c1")
    assert store.reclaim_expired(11.0) == []
    assert store.reclaim_expired(12.0) == ["c1"]
    assert store.next_due() == pytest.approx(10.0)  # the re-armed RING timer


def _dead_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_unavailable_redis_is_reported_clearly() -> None:
    store = RedisStore(connect(f"redis://127.0.0.1:{_dead_port()}/0", retries=1, socket_timeout=0.2),
                       "cc_none:")
    with pytest.raises(RoutingStoreUnavailable, match="Redis is unavailable"):
        Engine(EngineConfig(queues={"q": QueueConfig("q")}), store)
    with pytest.raises(RoutingStoreUnavailable):
        store.agent("a1")


def test_redis_going_away_mid_event_leaves_no_half_written_step(redis_url: str, prefix: str) -> None:
    e = _engine(redis_url, prefix)
    store = e.store
    assert isinstance(store, RedisStore)
    e.add_agent(AgentProfile("a1", {"s": 5}), 0.0)
    e.handle(AgentPresence("a1", Presence.READY), 0.0)
    real = store._s_claim.__call__

    calls = {"n": 0}

    class Down(type(store._s_claim)):  # type: ignore[misc]
        def __call__(self, client: Any, keys: Any, args: Any) -> Any:
            calls["n"] += 1
            raise ConnectionError("connection refused")  # as if Redis went away before the script ran

    down = Down.__new__(Down)
    down.__dict__.update(store._s_claim.__dict__)
    store._s_claim = down
    with pytest.raises(RoutingStoreUnavailable):
        e.handle(ContactArrived(Contact("c1", Channel.VOICE, "q", 0.0)), 0.0)
    assert calls["n"] == 1 and real is not None
    # the contact waits (its own steps completed), the agent is untouched: nothing half-claimed
    a, c = store.agent("a1"), store.contact("c1")
    assert a is not None and c is not None
    assert c.status is ContactStatus.WAITING and a.slots == {} and store.leases() == []


# -- the engine's random-sequence properties, against Redis ---------------------------------------

@pytest.fixture
def redis_harness(redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    client = connect(redis_url)
    n = iter(range(1_000_000))
    monkeypatch.setattr(props, "InMemoryStore",
                        lambda rules: RedisStore(client, f"{prefix}{next(n)}:", rules))
    yield
    assert next(n) > 0, "the harness did not build its engine on the Redis store"
    client.close()


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(agents=props.st.lists(props.agent_st, min_size=props.N_AGENTS, max_size=props.N_AGENTS),
       ops=props.st.lists(props.op_st, min_size=5, max_size=60), no_answer_not_ready=props.st.booleans())
def test_random_sequences_keep_invariants_on_redis(redis_harness: None, agents: Any, ops: Any,
                                                   no_answer_not_ready: bool) -> None:
    props.test_random_sequences_keep_invariants.hypothesis.inner_test(agents, ops, no_answer_not_ready)  # type: ignore[attr-defined]


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(agents=props.st.lists(props.agent_st, min_size=props.N_AGENTS, max_size=props.N_AGENTS),
       ops=props.st.lists(props.st.one_of(props.arrive_st, props.presence_st, props.time_st, props.accept_st),
                          min_size=20, max_size=100))
def test_busy_traffic_keeps_invariants_on_redis(redis_harness: None, agents: Any, ops: Any) -> None:
    props.test_busy_traffic_keeps_invariants.hypothesis.inner_test(agents, ops)  # type: ignore[attr-defined]


async def test_runner_runs_engine_calls_in_a_thread_with_the_redis_store(redis_url: str, prefix: str) -> None:
    import threading
    import time

    from callcenter.services.routing_runner import RoutingRunner

    e = _engine(redis_url, prefix)
    seen: list[str] = []
    real = e.handle

    def handle(event: Any, now: float) -> Any:
        seen.append(threading.current_thread().name)
        return real(event, now)

    e.handle = handle  # type: ignore[method-assign]
    performed: list[Any] = []

    async def perform(ds: Any) -> None:
        performed.extend(ds)

    runner = RoutingRunner(e, perform, clock=time.time, autotick=True, poll_s=0.5)
    try:
        await runner.add_agent(AgentProfile("a1", {"s": 5}))
        await runner.handle(AgentPresence("a1", Presence.READY))
        await runner.handle(ContactArrived(Contact("c1", Channel.VOICE, "q", time.time())))
    finally:
        runner.close()
    assert seen and threading.main_thread().name not in seen
    assert any(isinstance(d, Offer) for d in performed)
