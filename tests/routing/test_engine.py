"""Lifecycle, ring-no-answer, decline, wrap-up, sticky routing, errors."""
from __future__ import annotations

import pytest

from routing import (
    AgentPresence,
    BadInput,
    CallbackAccepted,
    Channel,
    ConfigError,
    Contact,
    ContactArrived,
    ContactFinished,
    ContactHungUp,
    ContactStatus,
    Ended,
    EngineConfig,
    Misuse,
    MixingRules,
    OfferAccepted,
    OfferDeclined,
    Overflow,
    Presence,
    PresenceChanged,
    QueueConfig,
    Requeue,
    StaleEvent,
    Tier,
    WrapUpEnded,
)
from routing.engine import Engine
from routing.events import TimerKind
from routing.store import InMemoryStore
from tests.routing.conftest import agent, arrive, offered_pairs, offers


def test_full_lifecycle(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine()
    agent(e, "a1")
    (o,) = offers(arrive(e, "c1", 1))
    assert o.lease_until == 21 and e.next_due() == 21
    assert e.handle(OfferAccepted("c1", "a1"), 2) == []
    assert e.next_due() is None  # no ring timer once connected
    rec = e.store.contact("c1")
    assert rec is not None and rec.status is ContactStatus.CONNECTED
    out = e.handle(ContactFinished("c1", "a1", wrap_up_s=15), 60)
    assert Ended("c1", ContactStatus.HANDLED) in out
    assert PresenceChanged("a1", Presence.WRAP_UP) in out
    assert offers(arrive(e, "c2", 61)) == []  # in wrap-up
    out = e.tick(75)
    assert PresenceChanged("a1", Presence.READY) in out
    assert offered_pairs(out) == [("c2", "a1")]


def test_ring_no_answer_keeps_place_and_sets_not_ready(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine()
    agent(e, "a1", now=0)
    arrive(e, "c1", 1)
    arrive(e, "c2", 2)
    arrive(e, "c3", 3)
    out = e.tick(21)  # c1 rang out at a1
    assert Requeue("c1", "a1", "no-answer") in out
    assert PresenceChanged("a1", Presence.NOT_READY, "no-answer") in out
    assert e.waiting()[0][0] == "c1"  # still first
    assert offered_pairs(agent(e, "a2", now=22)) == [("c1", "a2")]  # first in line, not c2


def test_decline_is_configurable(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine(not_ready_on_decline=False, retry_same_agent_s=30)
    agent(e, "a1", now=0)
    arrive(e, "c1", 1)
    arrive(e, "c2", 2)
    out = e.handle(OfferDeclined("c1", "a1"), 3)
    assert Requeue("c1", "a1", "declined") in out
    assert not any(isinstance(d, PresenceChanged) for d in out)
    assert offered_pairs(out) == [("c2", "a1")]  # not c1 again, yet
    e.handle(OfferAccepted("c2", "a1"), 4)
    e.handle(ContactFinished("c2", "a1"), 5)
    rec = e.store.agent("a1")
    assert rec is not None and not rec.slots  # c1 is still excluded for a1
    assert offered_pairs(e.tick(33)) == [("c1", "a1")]  # retry window over


def test_hang_up_while_waiting_ringing_connected(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine()
    arrive(e, "w", 0)
    assert e.handle(ContactHungUp("w"), 1) == [Ended("w", ContactStatus.ABANDONED)]
    agent(e, "a1", now=2)
    arrive(e, "r", 3)
    arrive(e, "next", 4)
    out = e.handle(ContactHungUp("r"), 5)
    assert out[0] == Ended("r", ContactStatus.ABANDONED)
    assert offered_pairs(out) == [("next", "a1")]
    e.handle(OfferAccepted("next", "a1"), 6)
    assert Ended("next", ContactStatus.HANDLED) in e.handle(ContactHungUp("next"), 7)
    assert e.store.waiting_count() == 0 and e.next_due() is None


def test_offline_requeues_reserved_offers(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine()
    agent(e, "a1", now=0)
    agent(e, "a2", now=1, ready=False)
    arrive(e, "c1", 2)
    out = e.handle(AgentPresence("a1", Presence.OFFLINE), 3)
    assert Requeue("c1", "a1", "agent-offline") in out
    assert offered_pairs(e.handle(AgentPresence("a2", Presence.READY), 4)) == [("c1", "a2")]


def test_sticky_routing_waits_for_the_preferred_agent(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine(QueueConfig("support", skills={"support": 1}, sticky_s=30))
    agent(e, "other", now=0)
    agent(e, "pref", now=0, ready=False)
    assert offers(arrive(e, "c1", 1, preferred_agent="pref")) == []  # waits for pref
    (o,) = offers(e.handle(AgentPresence("pref", Presence.READY), 10))
    assert o.agent_id == "pref" and any(p.name == "sticky" for p in o.reasons)
    e.handle(AgentPresence("pref", Presence.OFFLINE), 11)  # c1 requeued, still sticky until 31
    assert e.store.contact("c1") is not None
    rec = e.store.agent("other")
    assert rec is not None and not rec.slots
    assert offered_pairs(e.tick(31)) == [("c1", "other")]


def test_sticky_preferred_agent_ready_gets_it_at_once(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine(QueueConfig("support", skills={"support": 1}, sticky_s=30))
    agent(e, "a", now=0)
    agent(e, "pref", now=5)
    assert offered_pairs(arrive(e, "c1", 6, preferred_agent="pref")) == [("c1", "pref")]


def test_errors_separate_misuse_from_bad_input(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine()
    agent(e, "a1", now=10)
    with pytest.raises(Misuse):
        e.handle(ContactHungUp("x"), 5)  # time went backwards
    with pytest.raises(Misuse):
        e.handle("not an event", 11)  # type: ignore[arg-type]
    with pytest.raises(BadInput):
        arrive(e, "c1", 11, queue="nope")
    with pytest.raises(ConfigError):
        Contact("c1", Channel.VOICE, "support", 0, skills={"x": 11})
    arrive(e, "c1", 12)
    with pytest.raises(BadInput):
        arrive(e, "c1", 12)  # duplicate
    with pytest.raises(StaleEvent):
        e.handle(OfferAccepted("c1", "someone-else"), 13)
    with pytest.raises(StaleEvent):
        e.handle(ContactFinished("c1", "a1"), 13)  # still ringing
    with pytest.raises(BadInput):
        e.handle(AgentPresence("ghost", Presence.READY), 13)
    with pytest.raises(BadInput):
        e.handle(AgentPresence("a1", Presence.WRAP_UP), 13)
    with pytest.raises(StaleEvent):
        e.handle(WrapUpEnded("a1"), 13)
    with pytest.raises(BadInput):
        e.handle(CallbackAccepted("c1"), 13)  # no callback offered
    e.handle(ContactHungUp("c1"), 14)
    with pytest.raises(StaleEvent):
        e.handle(OfferAccepted("c1", "a1"), 15)  # accepted after the customer left
    assert issubclass(StaleEvent, BadInput) and issubclass(BadInput, ValueError)


def test_state_unchanged_after_bad_input(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine()
    agent(e, "a1")
    arrive(e, "c1", 1)
    snapshot = (e.store.contact("c1").status, dict(e.store.agent("a1").slots))  # type: ignore[union-attr]
    with pytest.raises(StaleEvent):
        e.handle(OfferDeclined("c1", "a2"), 2)
    assert (e.store.contact("c1").status, dict(e.store.agent("a1").slots)) == snapshot  # type: ignore[union-attr]


def test_config_validation() -> None:
    with pytest.raises(ConfigError):
        EngineConfig(queues={"a": QueueConfig("a", escalation=(Overflow(5, "missing"),))})
    with pytest.raises(ConfigError):
        QueueConfig("a", skills={"x": 0})
    with pytest.raises(ConfigError):
        QueueConfig("a", escalation=(Overflow(50, "a"), Overflow(10, "a")))
    with pytest.raises(Misuse):
        Engine(EngineConfig(queues={}), InMemoryStore(MixingRules(max_total=1)))


def test_ring_timer_and_next_due(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine(ring_timeout_s=5)
    agent(e, "a1")
    out = arrive(e, "c1", 1, tier=Tier.VIP)
    assert any(getattr(d, "kind", None) is TimerKind.RING and d.due == 6 for d in out)  # type: ignore[union-attr]
    assert e.next_due() == 6


def test_contact_arrived_event_type(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine()
    ev = ContactArrived(Contact("c9", Channel.EMAIL, "support", 0.0, customer_id="cust-1"))
    assert e.handle(ev, 0.0) == []  # no agent, no max wait, no escalation: nothing to do yet
    assert e.store.waiting_count() == 1
