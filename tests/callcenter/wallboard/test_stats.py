"""The wallboard's statistics from a scripted scenario, against values worked out by hand."""
from __future__ import annotations

import pytest

from callcenter.services.wallboard_stats import (
    AgentInfo,
    AgentState,
    Answered,
    CustomerKnown,
    Ended,
    Moved,
    Offered,
    Queued,
    Requeued,
    Target,
    Thresholds,
    WallboardStats,
)

BV, BC, SV = ("billing", "voice"), ("billing", "chat"), ("support", "voice")


def scenario() -> WallboardStats:
    s = WallboardStats({"billing": Target(0.8, 20), "support": Target(0.9, 10)},
                       Thresholds(max_wait_s=30, not_ready_s=90, sl_min_contacts=3))
    s.add_agent(AgentInfo("a1", "Ann", ("red",), frozenset({BV, SV})))
    s.add_agent(AgentInfo("a2", "Bob", ("red",), frozenset({BV})))
    s.add_agent(AgentInfo("a3", "Cid", ("blue",), frozenset({BC})))
    s.apply_all([
        AgentState("a1", "ready", 0), AgentState("a2", "ready", 0), AgentState("a3", "not_ready", 0, "break"),
        Queued("1", "billing", "voice", 0, tier="vip", customer_id="7", interaction_id=1),
        CustomerKnown("1", "Victoria Important"),
        Queued("2", "billing", "voice", 1, interaction_id=2),
        Queued("3", "billing", "voice", 2, customer_id="8", interaction_id=3),
        CustomerKnown("3", "Rob Regular", "regular"),
        Offered("1", "a1", 5),
        Answered("1", "a1", 8),  # waited 8 s: within 20 s
        Offered("3", "a2", 9), Requeued("3", "a2", 11),  # rang out: waits on
        Ended("3", "abandoned", 12),  # waited 10 s, then hung up
        Offered("2", "a2", 28), Answered("2", "a2", 30),  # waited 29 s: late
        Queued("4", "billing", "chat", 40, tier="vip", interaction_id=4),
        Ended("1", "handled", 50), AgentState("a1", "wrap_up", 50),  # talked 42 s
        AgentState("a1", "ready", 60),
        Ended("2", "handled", 70),  # a2 talked 40 s, then blind-transferred it to support
        Queued("2", "support", "voice", 70, interaction_id=2),
        Answered("2", "a1", 75),  # waited 5 s in support
        Ended("2", "handled", 100),  # talked 25 s
    ])
    return s


def rows(s, now):
    snap = s.snapshot(now)
    return ({(q["queue"], q["channel"]): q for q in snap["queues"]},
            {a["agent_id"]: a for a in snap["agents"]}, snap["alerts"])


def test_queue_figures_match_the_hand_count():
    q, _a, _al = rows(scenario(), 100)
    b = q[BV]
    # answered 2 (1 within 20 s), abandoned 1: SL = 1 / (2 + 1)
    assert (b["answered"], b["answered_in_sl"], b["abandoned"], b["handled"]) == (2, 1, 1, 2)
    assert b["sl_pct"] == pytest.approx(33.3)
    assert b["asa_s"] == pytest.approx((8 + 29) / 2)
    assert b["aht_s"] == pytest.approx((42 + 40) / 2)
    assert b["abandon_pct"] == pytest.approx(33.3)
    assert b["transferred"] == 1 and b["waiting"] == 0 and b["longest_wait_since"] is None
    assert b["sl_target_pct"] == 80.0 and b["sl_target_s"] == 20
    assert b["abandoned_contacts"] == [{"interaction_id": 3, "customer_id": 8, "customer": "Rob Regular",
                                        "tier": "regular", "waited_s": 10.0, "at": 12,
                                        "callback_id": None}]
    sup = q[SV]
    assert (sup["answered"], sup["handled"], sup["sl_pct"]) == (1, 1, 100.0)
    assert (sup["asa_s"], sup["aht_s"]) == (5.0, 25.0)
    chat = q[BC]
    assert chat["waiting"] == 1 and chat["longest_wait_since"] == 40 and chat["sl_pct"] is None
    assert chat["contacts"][0]["interaction_id"] == 4 and chat["contacts"][0]["tier"] == "vip"
    # agents by state: a1 and a2 serve billing voice, both ready now
    assert b["agents"]["ready"] == 2 and b["agents"]["busy"] == 0
    assert chat["agents"]["not_ready"] == 1


def test_agent_figures_match_the_hand_count():
    s = scenario()
    _q, a, _al = rows(s, 100)
    # a1: ready 0-8, busy 8-50, wrap-up 50-60, ready 60-75, busy 75-100 -> busy 67 of 100
    assert a["a1"]["state"] == "ready" and a["a1"]["since"] == 100
    assert (a["a1"]["busy_s"], a["a1"]["worked_s"]) == (67.0, 100.0)
    assert s.occupancy("a1", 100) == 67.0 and s.occupancy("a1", 133) == pytest.approx(50.4)
    assert a["a1"]["handled"] == 2 and a["a1"]["aht_s"] == pytest.approx((42 + 25) / 2)
    # a2: ready 0-30, busy 30-70, ready since 70
    assert (a["a2"]["busy_s"], a["a2"]["worked_s"]) == (40.0, 70.0)
    assert s.occupancy("a2", 100) == 40.0 and a["a2"]["handled"] == 1 and a["a2"]["aht_s"] == 40.0
    assert a["a3"]["state"] == "not_ready" and a["a3"]["reason"] == "break"
    assert a["a3"]["since"] == 0 and s.occupancy("a3", 100) is None


def test_mid_scenario_busy_agent_shows_contact_and_customer():
    s = scenario()
    s.apply(Queued("9", "billing", "voice", 110, tier="vip", customer_id="7", interaction_id=9))
    s.apply(CustomerKnown("9", "Victoria Important"))
    s.apply(Answered("9", "a2", 112))
    _q, a, _al = rows(s, 120)
    assert a["a2"]["state"] == "busy" and a["a2"]["since"] == 112
    assert a["a2"]["contacts"] == [{"interaction_id": 9, "customer_id": 7, "customer": "Victoria Important",
                                    "tier": "vip", "queue": "billing", "channel": "voice", "since": 110}]


def test_alerts():
    _q, _a, alerts = rows(scenario(), 100)
    kinds = {(x["kind"], x["key"]) for x in alerts}
    assert kinds == {("sl_below_target", "sl:billing:voice"), ("long_wait", "wait:4"),
                     ("vip_waiting", "vip:4"), ("not_ready_too_long", "nr:a3")}
    # before the thresholds: the VIP alone
    s = WallboardStats(thresholds=Thresholds(max_wait_s=30, not_ready_s=90))
    s.apply(Queued("4", "billing", "chat", 40, tier="vip", interaction_id=4))
    assert [x["kind"] for x in s.alerts(60)] == ["vip_waiting"]
    s.apply(Answered("4", "a1", 61))
    assert s.alerts(200) == []


def test_overflow_starts_a_new_segment_and_unknown_events_change_nothing():
    s = WallboardStats({"billing": Target(0.8, 20)})
    s.apply(Queued("5", "billing", "voice", 0))
    s.apply(Moved("5", "support", 50))
    s.apply(Answered("5", "a1", 55))
    q, _a, _al = rows(s, 60)
    assert q[BV]["answered"] == 0 and q[BV]["waiting"] == 0
    assert q[SV]["answered"] == 1 and q[SV]["asa_s"] == 5.0
    v = s.version
    assert not s.apply(Answered("nope", "a1", 60)) and s.version == v


def test_a_snapshot_changes_only_when_something_happened():
    s = scenario()
    before = s.snapshot(101)
    assert before == s.snapshot(105)  # absolute times: nothing grows by itself
    s.apply(AgentState("a2", "not_ready", 105, "lunch"))
    assert s.snapshot(106) != before
