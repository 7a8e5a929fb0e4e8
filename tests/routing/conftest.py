"""Engine tests run against every store implementation: in memory, and Redis (a real server; each
test gets its own key prefix, deleted afterwards; skipped without Redis unless CC_REQUIRE_SERVICES=1)."""
from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from routing import (
    AgentPresence,
    AgentProfile,
    Channel,
    Contact,
    ContactArrived,
    Decision,
    Engine,
    EngineConfig,
    InMemoryStore,
    MixingRules,
    Offer,
    Presence,
    QueueConfig,
    RoutingStore,
    Tier,
)

StoreFactory = Callable[[MixingRules], RoutingStore]


def _memory(request: pytest.FixtureRequest) -> StoreFactory:
    return lambda rules: InMemoryStore(rules)


def _redis(request: pytest.FixtureRequest) -> StoreFactory:
    from callcenter.routing_redis import RedisStore, connect
    from tests.conftest import unique_name
    from tests.services import need_redis

    client = connect(need_redis())
    prefix = unique_name("cc_t") + ":"
    made: list[RedisStore] = []

    def make(rules: MixingRules) -> RoutingStore:
        store = RedisStore(client, f"{prefix}{len(made)}:", rules)
        made.append(store)
        return store

    def cleanup() -> None:
        try:
            for key in client.scan_iter(match=prefix + "*", count=1000):
                client.unlink(key)
        finally:
            client.close()

    request.addfinalizer(cleanup)
    return make


#: store name -> (test request -> factory of stores for that test)
STORES: dict[str, Callable[[pytest.FixtureRequest], StoreFactory]] = {
    "memory": _memory,
    "redis": _redis,
}


@pytest.fixture(params=sorted(STORES))
def make_store(request: pytest.FixtureRequest) -> StoreFactory:
    return STORES[request.param](request)


@pytest.fixture
def make_engine(make_store: StoreFactory) -> Callable[..., Engine]:
    def build(*queues: QueueConfig, **kwargs: object) -> Engine:
        if not queues:
            queues = (QueueConfig("support", skills={"support": 3}),)
        cfg = EngineConfig(queues={q.name: q for q in queues}, **kwargs)  # type: ignore[arg-type]
        return Engine(cfg, make_store(cfg.mixing))

    return build


def agent(engine: Engine, aid: str, skills: Mapping[str, int] | None = None, now: float = 0.0,
          ready: bool = True, **kw: object) -> list[Decision]:
    engine.add_agent(AgentProfile(aid, dict(skills if skills is not None else {"support": 5}), **kw), now)  # type: ignore[arg-type]
    return engine.handle(AgentPresence(aid, Presence.READY), now) if ready else []


def arrive(engine: Engine, cid: str, now: float, queue: str = "support", channel: Channel = Channel.VOICE,
           tier: Tier = Tier.REGULAR, **kw: object) -> list[Decision]:
    return engine.handle(ContactArrived(Contact(cid, channel, queue, now, tier=tier, **kw)), now)  # type: ignore[arg-type]


def offers(decisions: list[Decision]) -> list[Offer]:
    return [d for d in decisions if isinstance(d, Offer)]


def offered_pairs(decisions: list[Decision]) -> list[tuple[str, str]]:
    return [(d.contact_id, d.agent_id) for d in offers(decisions)]
