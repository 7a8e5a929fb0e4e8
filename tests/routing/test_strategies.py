from __future__ import annotations

from routing import (
    AgentPresence,
    Channel,
    ContactFinished,
    OfferAccepted,
    Presence,
    QueueConfig,
    Strategy,
)
from tests.routing.conftest import agent, arrive, offers


def q(strategy: Strategy) -> QueueConfig:
    return QueueConfig("support", skills={"support": 3}, strategy=strategy)


def test_longest_idle(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine(q(Strategy.LONGEST_IDLE))
    agent(e, "a2", now=1)  # ready earliest
    agent(e, "a3", now=3)
    agent(e, "a1", now=5)
    (o,) = offers(arrive(e, "c1", 10))
    assert o.agent_id == "a2"
    idle = {p.name: p.value for p in o.reasons}["idle_s"]
    assert idle == 9
    assert {p.name: p.note for p in o.reasons}["strategy"] == "longest-idle"
    (o2,) = offers(arrive(e, "c2", 11))
    assert o2.agent_id == "a3"


def test_most_skilled(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine(q(Strategy.MOST_SKILLED))
    agent(e, "a1", {"support": 4}, now=0)
    agent(e, "a3", {"support": 2}, now=0)  # not eligible (min 3)
    agent(e, "a2", {"support": 9}, now=5)
    (o,) = offers(arrive(e, "c1", 10))
    assert o.agent_id == "a2"
    assert {p.name: p.value for p in o.reasons}["proficiency"] == 9


def test_least_occupied(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine(q(Strategy.LEAST_OCCUPIED))
    agent(e, "a1", now=0)
    agent(e, "a2", now=1)
    # two chats: longest idle (a1) gets the first; least occupied (a2) the second
    (o1,) = offers(arrive(e, "c1", 10, channel=Channel.CHAT))
    (o2,) = offers(arrive(e, "c2", 11, channel=Channel.CHAT))
    (o3,) = offers(arrive(e, "c3", 12, channel=Channel.CHAT))
    assert [o1.agent_id, o2.agent_id] == ["a1", "a2"]
    assert o3.agent_id == "a1"  # both one chat: tie -> longest idle
    occ = {p.name: p.value for p in o3.reasons}["occupancy"]
    assert abs(occ - 1 / 3) < 1e-9


def test_round_robin(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine(q(Strategy.ROUND_ROBIN))
    for aid in ("a3", "a1", "a2"):
        agent(e, aid, now=0)
    seen = []
    for i in range(5):
        (o,) = offers(arrive(e, f"c{i}", 10 + i))
        seen.append(o.agent_id)
        e.handle(OfferAccepted(o.contact_id, o.agent_id), 10 + i)
        e.handle(ContactFinished(o.contact_id, o.agent_id), 10 + i)
    assert seen == ["a1", "a2", "a3", "a1", "a2"]


def test_not_ready_and_offline_agents_get_nothing(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine()
    agent(e, "a1", now=0)
    agent(e, "a2", now=0, ready=False)
    e.handle(AgentPresence("a1", Presence.NOT_READY, "lunch"), 1)
    assert offers(arrive(e, "c1", 2)) == []
    rec = e.store.agent("a1")
    assert rec is not None and rec.reason == "lunch"
    (o,) = offers(e.handle(AgentPresence("a2", Presence.READY), 3))
    assert (o.contact_id, o.agent_id) == ("c1", "a2")


def test_language_and_team(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine(QueueConfig("support", skills={"support": 3}, teams=frozenset({"blue"})))
    agent(e, "red", now=0, team="red")
    agent(e, "blue_en", now=1, team="blue", languages=frozenset({"en"}))
    agent(e, "blue_fr", now=2, team="blue", languages=frozenset({"fr"}))
    (o,) = offers(arrive(e, "c1", 5, language="fr"))
    assert o.agent_id == "blue_fr"
    (o,) = offers(arrive(e, "c2", 6))  # no language: anyone on the team
    assert o.agent_id == "blue_en"
    assert offers(arrive(e, "c3", 7, language="en")) == []  # red is not on the team
