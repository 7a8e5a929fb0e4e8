"""Priority by tier and queue, aging without reordering, and the starvation bound."""
from __future__ import annotations

from routing import (
    ContactFinished,
    OfferAccepted,
    PriorityConfig,
    QueueConfig,
    Tier,
)
from routing.priority import overtake_horizon, priority_key
from tests.routing.conftest import agent, arrive, offers


def test_tier_order(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine()
    arrive(e, "reg", 0)
    arrive(e, "key", 1, tier=Tier.KEY)
    arrive(e, "vip", 2, tier=Tier.VIP)
    served = []
    agent(e, "a1", now=3)
    for t in range(4, 7):
        rec = e.store.agent("a1")
        assert rec is not None
        (cid,) = rec.slots
        served.append(cid)
        e.handle(OfferAccepted(cid, "a1"), t)
        e.handle(ContactFinished(cid, "a1"), t)
    assert served == ["vip", "key", "reg"]


def test_aging_lets_an_old_regular_go_first(make_engine) -> None:  # type: ignore[no-untyped-def]
    # VIP weight 120 s: a regular who waited more than 120 s longer goes first.
    e = make_engine()
    arrive(e, "reg", 0)
    arrive(e, "vip", 121, tier=Tier.VIP)
    (o,) = offers(agent(e, "a1", now=200))
    assert o.contact_id == "reg"


def test_queue_weight(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine(QueueConfig("support", skills={"support": 1}),
                    QueueConfig("urgent", skills={"support": 1}, priority=500))
    arrive(e, "s", 0)
    arrive(e, "u", 100, queue="urgent")
    (o,) = offers(agent(e, "a1", now=101))
    assert o.contact_id == "u"
    assert {p.name: p.value for p in o.reasons}["queue_weight"] == 500


def test_keys_never_change_while_waiting(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine()
    for i, tier in enumerate([Tier.REGULAR, Tier.VIP, Tier.KEY, Tier.REGULAR, Tier.VIP]):
        arrive(e, f"c{i}", float(i * 7), tier=tier)
    before = e.waiting()
    e.tick(10_000)  # time passes: nothing moves
    assert e.waiting() == before
    assert [k for _, k in before] == sorted((k for _, k in before), reverse=True)


def test_formula() -> None:
    cfg = PriorityConfig(aging_k=2.0)
    assert priority_key(100.0, 10.0, cfg) == 80.0
    assert overtake_horizon(0.0, 120.0, cfg) == 60.0


def test_low_tier_served_within_bound(make_engine) -> None:  # type: ignore[no-untyped-def]
    """A steady stream of VIPs that saturates the only agent cannot starve a regular contact.

    One agent, service 10 s, a VIP every 10 s (load 1). The regular arrives at t=0. VIPs arriving
    after 0 + 120 s (the VIP weight, k = 1) rank below it, so at most the VIPs that arrive in
    [0, 120] go first: it must be offered by 120 + 10 x (120/10 + 2) seconds.
    """
    e = make_engine()
    agent(e, "a1", now=0)
    arrive(e, "vip-1", 0, tier=Tier.VIP)  # keeps the agent busy from the start
    arrive(e, "reg", 0)
    bound = 120 + 10 * (120 / 10 + 2)
    served_at = None
    t = 0.0
    current = "vip-1"
    e.handle(OfferAccepted(current, "a1"), t)
    n = 0
    while t < 2000:
        t += 10
        n += 1
        arrive(e, f"vip{n}", t, tier=Tier.VIP)
        out = e.handle(ContactFinished(current, "a1"), t)
        (o,) = offers(out)
        if o.contact_id == "reg":
            served_at = t
            break
        current = o.contact_id
        e.handle(OfferAccepted(current, "a1"), t)
    assert served_at is not None and served_at <= bound
