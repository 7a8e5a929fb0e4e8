"""Predictive pacing (pure) and the outbound replay: under the cap, busier than progressive."""

from __future__ import annotations

import pytest

from callcenter.services.dialer_pacing import (
    Estimate,
    Load,
    Window,
    calls_to_place,
    expected_abandon_share,
    progressive_calls,
)
from callcenter.services.dialer_replay import OutboundPlan, run_outbound


def est(answer_rate=0.2, abandon_rate=0.0, answered=0):
    return Estimate(
        answer_rate=answer_rate, ring_s=12.0, handle_s=180.0, abandon_rate=abandon_rate, answered=answered
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
