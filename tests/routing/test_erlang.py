"""Erlang C on textbook values, and a replay through the real engine against the formula."""
from __future__ import annotations

import math
from fractions import Fraction

import pytest

from routing import QueueConfig, ServiceLevel
from routing.erlang import agents_for, asa, erlang_b, erlang_c, service_level
from routing.replay import Interval, ReplayPlan, Traffic, run_replay


def erlang_c_closed_form(n: int, a: int) -> float:
    """C(N, A) = (A^N/N! * N/(N-A)) / (sum_{k<N} A^k/k! + A^N/N! * N/(N-A)), exactly."""
    top = Fraction(a**n, math.factorial(n)) * Fraction(n, n - a)
    return float(top / (sum(Fraction(a**k, math.factorial(k)) for k in range(n)) + top))


def test_textbook_values() -> None:
    # A = 10 Erlangs, N = 11: Pw = 0.6821; AHT 180 s: ASA = 122.8 s, SL(20 s) = 39.0 %
    assert erlang_c(11, 10) == pytest.approx(0.682118, abs=1e-6)
    assert asa(11, 10, 180) == pytest.approx(122.78, abs=0.01)
    assert service_level(11, 10, 180, 20) == pytest.approx(0.38961, abs=1e-5)
    # N = 12: Pw = 0.4494, SL(20 s) = 64.0 %
    assert erlang_c(12, 10) == pytest.approx(0.449388, abs=1e-6)
    assert service_level(12, 10, 180, 20) == pytest.approx(0.6402, abs=1e-4)
    # M/M/2 with A = 1: Pw = 2 rho^2 / (1 + rho) = 1/3 exactly
    assert erlang_c(2, 1) == pytest.approx(1 / 3, abs=1e-12)
    # M/M/1: Pw = rho
    assert erlang_c(1, 0.7) == pytest.approx(0.7)
    # Erlang B(N=10, A=5) = 0.01838 (table value)
    assert erlang_b(10, 5) == pytest.approx(0.018385, abs=1e-6)
    # 80/20 with A = 10, AHT 180 s needs 14 agents
    assert agents_for(10, 180, 0.8, 20) == 14
    assert service_level(13, 10, 180, 20) < 0.8 <= service_level(14, 10, 180, 20)


@pytest.mark.parametrize(("n", "a"), [(11, 10), (12, 10), (20, 15), (55, 48), (3, 2)])
def test_recursion_matches_closed_form(n: int, a: int) -> None:
    assert erlang_c(n, a) == pytest.approx(erlang_c_closed_form(n, a), rel=1e-9)


def test_unstable_queue() -> None:
    assert erlang_c(10, 10) == 1.0 and asa(10, 12, 180) == math.inf and service_level(5, 6, 1, 1) == 0.0


def test_replay_matches_erlang_c() -> None:
    """One queue, one skill, no abandonment, steady load: A = 10 Erlangs, N = 14, AHT 180 s."""
    n, a, aht, t = 14, 10.0, 180.0, 20.0
    hourly = a / aht * 3600
    plan = ReplayPlan(
        intervals=tuple(Interval(hourly, n) for _ in range(251)),
        queues={"q": QueueConfig("q", skills={"s": 1}, service_level=ServiceLevel(0.8, t))},
        traffic=(Traffic("q"),), interval_s=3600, handle_mean_s=aht, warmup_s=3600, seed=7,
    )
    r = run_replay(plan)
    assert r.contacts > 45_000
    assert r.abandoned == 0 and r.answered == r.contacts
    assert abs(r.service_level_answered - service_level(n, a, aht, t)) < 0.02
    assert abs(r.asa_s - asa(n, a, aht)) / asa(n, a, aht) < 0.10
    assert r.occupancy == pytest.approx(a / n, abs=0.02)
