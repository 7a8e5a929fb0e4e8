"""Predictive pacing (pure) and the outbound replay: under the cap, busier than progressive."""

from __future__ import annotations

import pytest

from callcenter.services.dialer_pacing import (
    Estimate,
    Load,
    Window,
    calls_to_place,
    expected_abandon_share,
    handle_known,
    progressive_calls,
    ratio_limit,
    room,
)
from callcenter.services.dialer_replay import OutboundPlan, run_outbound


def est(answer_rate=0.2, abandon_rate=0.0, answered=1000, dials=1_000_000, handled=1_000_000):
    return Estimate(
        answer_rate=answer_rate,
        ring_s=12.0,
        handle_s=180.0,
        abandon_rate=abandon_rate,
        answered=answered,
        dials=dials,
        handled=handled,
    )


def test_expected_abandon_share():
    assert expected_abandon_share(10, 0.2, 10) == 0.0  # never more answers than agents
    assert expected_abandon_share(0, 0.2, 1) == 0.0
    assert 0 < expected_abandon_share(20, 0.2, 2) < expected_abandon_share(40, 0.2, 2) < 1


def test_progressive_is_one_call_per_free_agent():
    assert progressive_calls(Load(free=5, busy=10, dialing=2)) == 3
    assert progressive_calls(Load(free=0, busy=10, dialing=0)) == 0


def test_predictive_over_dials_more_at_lower_answer_rates():
    load = Load(free=10, busy=40, dialing=0)
    low, high = calls_to_place(load, est(0.2)), calls_to_place(load, est(0.5))
    assert low > high > 10


def test_predictive_backs_off_to_progressive_at_the_cap():
    load = Load(free=10, busy=40, dialing=0)
    assert calls_to_place(load, est(0.2, abandon_rate=0.05, answered=200), cap=0.03) == 10
    assert calls_to_place(Load(0, 0, 0), est()) == 0


def test_window_forgets_old_measurements():
    w = Window(span_s=100, prior_weight=0)
    for t in range(10):
        w.dialed(float(t), answered=t < 5, ring_s=10)
    w.abandoned(5.0)
    w.connected(6.0)
    e = w.estimate(50.0)
    assert e.answer_rate == 0.5 and e.abandon_rate == 0.5 and e.answered == 2
    assert w.estimate(200.0).answered == 0


@pytest.mark.parametrize("answer_rate", [0.2, 0.4])
def test_replay_predictive_under_the_cap_and_busier_than_progressive(answer_rate):
    plan = dict(agents=100, answer_rate=answer_rate, duration_s=2 * 3600, seed=7)
    pred = run_outbound(OutboundPlan(mode="predictive", **plan))
    prog = run_outbound(OutboundPlan(mode="progressive", **plan))
    assert pred.abandon_rate < 0.03
    assert prog.abandoned == 0
    assert pred.occupancy > prog.occupancy + 0.05
    assert pred.connects_per_agent_hour > prog.connects_per_agent_hour


# ---------------------------------------------------------------- cold start (every window under the cap)


def test_cold_start_dials_one_call_per_free_agent_until_measured():
    load = Load(free=50, busy=0, dialing=0)
    assert calls_to_place(load, est(answered=0)) == 50  # nothing measured
    assert calls_to_place(load, est(answered=99)) == 50  # too few answered calls
    assert calls_to_place(load, est(answered=500, handled=10)) == 50  # no handle time yet
    assert calls_to_place(load, est(answered=500, dials=20)) == 50  # too few dials
    assert calls_to_place(load, est(answered=1000)) > 50  # measured: over-dials


def test_no_over_dialing_while_most_connected_calls_still_talk():
    # 300 connected calls, 100 finished: only the short ones, the mean handle time is too short
    assert not handle_known(est(answered=300, handled=100), 50)
    assert handle_known(est(answered=300, handled=250), 50)
    load = Load(free=50, busy=150, dialing=0)
    assert calls_to_place(load, est(answered=300, handled=100)) == 50
    assert calls_to_place(load, est(answered=300, handled=250)) > 50


def test_ramp_grows_the_over_dial_ratio_with_the_answers_seen():
    assert ratio_limit(est(answered=100), 6.0, min_answered=100, ramp_answered=200) == 1.0
    assert ratio_limit(est(answered=200), 6.0, min_answered=100, ramp_answered=200) == 3.5
    assert ratio_limit(est(answered=900), 6.0, min_answered=100, ramp_answered=200) == 6.0
    load = Load(free=20, busy=0, dialing=0)
    first = calls_to_place(load, est(answered=100))
    later = calls_to_place(load, est(answered=300))
    assert first <= 20 < later  # at the ramp's start: no more calls in the air than agents


def test_no_over_dialing_without_room_for_one_more_abandon():
    # 120 answered calls, cap 3 %: half the cap is 1.8 abandons, so one abandon leaves no room
    assert room(est(answered=120, abandon_rate=0.0), 0.03)
    assert not room(est(answered=120, abandon_rate=1 / 120), 0.03)
    load = Load(free=10, busy=40, dialing=0)
    assert calls_to_place(load, est(answered=120, abandon_rate=1 / 120)) == 10
    assert calls_to_place(load, est(answered=120)) > 10


def test_answer_rate_upper_bound_paces_fewer_calls_on_few_dials():
    load = Load(free=30, busy=30, dialing=0)
    assert calls_to_place(load, est(dials=60)) < calls_to_place(load, est(dials=100_000))


@pytest.mark.parametrize(
    ("agents", "answer_rate", "seed"),
    [(200, 0.2, 1), (200, 0.2, 3), (200, 0.4, 5), (100, 0.3, 2), (50, 0.2, 3), (16, 0.3, 5)],
)
def test_every_rolling_window_from_a_cold_start_stays_under_the_cap(agents, answer_rate, seed):
    """A scripted run (seeded replay, all agents free at t=0, 5-minute window as the live dialer):
    the window's abandon rate, checked at every pacing tick from the first answered call on, never
    reaches the cap."""
    plan = OutboundPlan(
        mode="predictive",
        agents=agents,
        answer_rate=answer_rate,
        duration_s=1800,
        seed=seed,
        window_s=300,
        handle_mean_s=120,
        wrap_up_s=10,
        ring_mean_s=10,
    )
    r = run_outbound(plan)
    assert r.answered > 100
    assert r.worst_window_abandon_rate < 0.03, r.to_dict()
