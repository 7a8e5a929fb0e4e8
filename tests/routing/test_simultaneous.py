"""Several contacts become eligible for an agent at the same instant: the agent still gets the
highest key first.

Matching a contact to an agent (contact arrives, widened, requeued) assumes quiescence: the chosen
agent has nothing else waiting that it may serve. These are the cases where several contacts
become servable together and that assumption had to be restored by the engine. The first test
replays the example Hypothesis found (tests/routing/test_properties.py). The last one is a stale
cache of preferred-agent buckets, found by the same property tests.
"""
from __future__ import annotations

from routing import (
    AgentPresence,
    Channel,
    ContactFinished,
    ContactStatus,
    OfferAccepted,
    OfferDeclined,
    Presence,
    QueueConfig,
    Tier,
    WidenSkills,
)
from tests.routing.conftest import agent, arrive, offered_pairs, offers
from tests.routing.test_properties import Harness

P, C, T = Presence, Channel, Tier


def test_hypothesis_example_refusals_expiring_together() -> None:
    """c1 and c2 (key 170: widened, then raised) and c4 (key 95) were refused by ag1 until the same
    instant; c4's RETRY timer fired first and c4 was offered to ag1 while c2 waited."""
    agents = [
        {"skills": {"a": 6}, "team": "t1", "langs": frozenset()},
        {"skills": {"a": 6}, "team": "t1", "langs": frozenset({"fr"})},
        {"skills": {}, "team": "t1", "langs": frozenset()},
        {"skills": {}, "team": "t1", "langs": frozenset()},
    ]
    chat = ("arrive", "q1", C.CHAT, T.VIP, None, None, {})
    voice = ("arrive", "q1", C.VOICE, T.VIP, None, None, {})
    ops = [
        ("presence", 0, P.READY), ("presence", 0, P.READY), ("presence", 0, P.READY),
        chat, chat, ("presence", 1, P.READY), ("time", 0.0), ("time", 25.0),
        ("arrive", "q1", C.VOICE, T.VIP, "en", None, {}), chat, ("time", 45.0),
        ("presence", 0, P.NOT_READY), chat, voice, voice, voice, ("presence", 1, P.READY),
        voice, voice, ("time", 19.0),
    ]
    h = Harness(agents, True)
    for op in ops:
        h.step(op)  # checks the priority invariant on every offer
        if h.connected and op[0] == "time":
            cid = h.connected[0]
            h.apply(h.engine.handle(ContactFinished(cid, h.holder[cid][0], 0.0), h.now))
            h.drain()
            h.check_state()
    h.finish_everything()


def _refuse_two(make_engine):  # type: ignore[no-untyped-def]
    """Agent a (chat capacity 2) refuses "lo" then "hi" at t=1, and holds one other chat: one slot
    is left when both refusals expire at t=11."""
    e = make_engine(QueueConfig("q", skills={"s": 1}), not_ready_on_decline=False, retry_same_agent_s=10)
    agent(e, "a", {"s": 5}, capacity={Channel.CHAT: 2})
    assert offered_pairs(arrive(e, "hi", 0, queue="q", channel=Channel.CHAT, tier=Tier.VIP)) == [("hi", "a")]
    assert offered_pairs(arrive(e, "lo", 0, queue="q", channel=Channel.CHAT)) == [("lo", "a")]
    e.handle(OfferDeclined("lo", "a"), 1)  # its RETRY timer is set first, so it fires first
    e.handle(OfferDeclined("hi", "a"), 1)
    assert offered_pairs(arrive(e, "other", 2, queue="q", channel=Channel.CHAT)) == [("other", "a")]
    e.handle(OfferAccepted("other", "a"), 2)
    return e


def test_refusals_expiring_together_highest_key_first(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = _refuse_two(make_engine)
    assert offered_pairs(e.tick(11)) == [("hi", "a")]
    lo = e.store.contact("lo")
    assert lo is not None and lo.status is ContactStatus.WAITING and not lo.declined


def test_late_tick_lifts_refusals_before_other_timers(make_engine) -> None:  # type: ignore[no-untyped-def]
    """A widening due before the refusals expire, processed by a tick after both: the widened
    contact must not take the agent's last slot while "hi" (servable again) waits."""
    e = make_engine(QueueConfig("q", skills={"s": 1}),
                    QueueConfig("w", skills={"s": 9}, escalation=(WidenSkills(5, lower_by=8),)),
                    not_ready_on_decline=False, retry_same_agent_s=10)
    agent(e, "a", {"s": 5}, capacity={Channel.CHAT: 2})
    assert offered_pairs(arrive(e, "hi", 0, queue="q", channel=Channel.CHAT, tier=Tier.VIP)) == [("hi", "a")]
    assert offered_pairs(arrive(e, "lo", 0, queue="q", channel=Channel.CHAT)) == [("lo", "a")]
    e.handle(OfferDeclined("lo", "a"), 1)
    e.handle(OfferDeclined("hi", "a"), 1)
    assert offered_pairs(arrive(e, "other", 2, queue="q", channel=Channel.CHAT)) == [("other", "a")]
    e.handle(OfferAccepted("other", "a"), 2)
    assert offers(arrive(e, "wide", 2, queue="w", channel=Channel.CHAT)) == []  # widened at 7
    assert offered_pairs(e.tick(20)) == [("hi", "a")]


def test_offline_requeues_highest_key_first(make_engine) -> None:  # type: ignore[no-untyped-def]
    """An agent goes offline with two offers ringing; the one other agent has one slot."""
    e = make_engine(QueueConfig("q", skills={"s": 1}))
    agent(e, "a", {"s": 5})
    assert offered_pairs(arrive(e, "lo", 0, queue="q", channel=Channel.CHAT)) == [("lo", "a")]
    assert offered_pairs(arrive(e, "hi", 0, queue="q", channel=Channel.CHAT, tier=Tier.VIP)) == [("hi", "a")]
    agent(e, "b", {"s": 5}, now=1, capacity={Channel.CHAT: 1})
    out = e.handle(AgentPresence("a", Presence.OFFLINE), 2)
    assert offered_pairs(out) == [("hi", "b")]


def test_sticky_waits_ending_together_highest_key_first(make_engine) -> None:  # type: ignore[no-untyped-def]
    """Two contacts wait for the same preferred agent until the same instant; the lower key's
    STICKY timer fires first. Another agent with one slot must get the higher key.
    (Found by Hypothesis after the first fix: test_busy_traffic_keeps_invariants.)"""
    e = make_engine(QueueConfig("q", skills={"s": 1}, sticky_s=20))
    agent(e, "pref", {"s": 5}, ready=False)
    agent(e, "b", {"s": 5})
    e.handle(AgentPresence("b", Presence.NOT_READY), 0)
    assert offers(arrive(e, "lo", 0, queue="q", preferred_agent="pref")) == []
    assert offers(arrive(e, "hi", 0, queue="q", tier=Tier.VIP, preferred_agent="pref")) == []
    assert offers(e.handle(AgentPresence("b", Presence.READY), 1)) == []  # both wait for "pref"
    assert offered_pairs(e.tick(25)) == [("hi", "b")]


def test_widened_together_highest_key_first(make_engine) -> None:  # type: ignore[no-untyped-def]
    """Two contacts widened at the same instant (the lower key's timer first): the one agent
    they can now reach gets the higher key."""
    e = make_engine(QueueConfig("q", skills={"s": 9}, escalation=(WidenSkills(10, lower_by=8),)))
    agent(e, "a", {"s": 5})
    assert offers(arrive(e, "lo", 0, queue="q")) == []
    assert offers(arrive(e, "hi", 0, queue="q", tier=Tier.VIP)) == []
    assert offered_pairs(e.tick(10)) == [("hi", "a")]


def test_requeued_into_forgotten_sticky_bucket(make_engine) -> None:  # type: ignore[no-untyped-def]
    """The engine forgets preferred-agent buckets it finds empty. A contact offered to its
    preferred agent leaves its bucket empty; requeued there, the bucket must be known again, or
    the agent doesn't see it when it becomes ready. (Found by Hypothesis, same run.)"""
    e = make_engine(QueueConfig("q", skills={"s": 1}, sticky_s=60))
    agent(e, "pref", {"s": 5})
    e.handle(AgentPresence("pref", Presence.NOT_READY), 0)
    agent(e, "b", {"s": 5}, capacity={Channel.CHAT: 0})  # never takes a chat
    assert offers(arrive(e, "c1", 0, queue="q", channel=Channel.CHAT, preferred_agent="pref")) == []
    assert offered_pairs(e.handle(AgentPresence("pref", Presence.READY), 1)) == [("c1", "pref")]
    assert offers(e.handle(AgentPresence("pref", Presence.READY), 2)) == []  # finds the bucket empty
    e.handle(AgentPresence("pref", Presence.OFFLINE), 3)  # c1 back in its preferred-agent bucket
    assert offered_pairs(e.handle(AgentPresence("pref", Presence.READY), 4)) == [("c1", "pref")]
