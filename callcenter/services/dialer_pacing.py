"""Predictive pacing (pure: no I/O, times are parameters).

The dialer asks, whenever something changes, how many new calls to place:

    window = Window(span_s=900)                       # rolling window of measurements
    window.dialed(t, answered=True, ring_s=8.5)       # each settled dial
    window.connected(t) / window.abandoned(t)         # each answered (human) call
    window.handled(t, handle_s=180)                   # each call an agent finished (talk + wrap-up)
    n = calls_to_place(Load(free=3, busy=40, dialing=12), window.estimate(t), cap=0.03)

The model: the N calls in the air (dialing + new) each reach a person with probability p (the
measured answer rate). Agents available for them are the free ones plus the busy ones expected to
finish within the ring time (exponential handle times). The expected share of answered calls
that find no agent is E[max(0, X - A)] / E[X] with X ~ Binomial(N, p). We place the largest N
whose expected abandon share is under a target, and the target itself is steered by the abandon
rate measured over the window: when the measured rate nears the cap the target falls, when it is
well under the cap the target rises back to the cap. Progressive dialing is the special case
"one call per free agent" (`progressive_calls`).

From a cold start the pacing is conservative (every rolling window, the first included, stays
under the cap): it dials one call per free agent until the window holds `min_answered` answered
calls and `min_handled` finished ones, and most of its connected calls have finished (before,
the handle time is measured on the short calls only: `handle_known`); then lets the over-dial
ratio grow with the answered calls seen (`ramp_answered` more to reach `max_ratio`), paces on
an upper confidence bound of the answer rate, and over-dials only while the window has room for
another abandon (`room`): one more must keep the window's rate under half the cap.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Load:
    free: int  # agents waiting for a call
    busy: int  # agents talking or in wrap-up
    dialing: int  # calls placed, not yet answered or failed


@dataclass(frozen=True, slots=True)
class Estimate:
    answer_rate: float  # share of dials that reach a person (machines and busy excluded)
    ring_s: float  # mean time from dial to answer (or to failure)
    handle_s: float  # mean agent time per connected call (talk + wrap-up)
    abandon_rate: float  # abandoned / (connected + abandoned), over the window
    answered: int  # answered calls in the window (how much the abandon rate is worth)
    dials: int = 1_000_000  # settled dials behind answer_rate (few: not enough to over-dial on)
    handled: int = 1_000_000  # finished calls behind handle_s (the short ones finish first)
    answer_horizon_s: float = math.inf  # answered calls rang at most this long (p95): older ones will not
    abandoned: int = -1  # abandoned calls in the window (-1: derive from abandon_rate * answered)

    @property
    def abandons(self) -> int:
        return self.abandoned if self.abandoned >= 0 else round(self.abandon_rate * self.answered)


class Window:
    """Rolling measurements (by the caller's clock, in seconds), with priors until enough data."""

    def __init__(
        self,
        span_s: float = 900.0,
        *,
        prior_answer: float = 0.3,
        prior_ring_s: float = 15.0,
        prior_handle_s: float = 180.0,
        prior_weight: int = 20,
        settle_s: float = 30.0,
    ) -> None:
        self.span_s = span_s
        # the answer rate counts only dials placed at least settle_s ago (the ring timeout): the
        # quick failures (busy) settle first, and counting them alone would under-rate answers
        self.settle_s = settle_s
        self.prior_answer, self.prior_ring_s, self.prior_handle_s = prior_answer, prior_ring_s, prior_handle_s
        self.prior_weight = prior_weight
        self._dials: deque[tuple[float, bool, float]] = deque()
        self._answers: deque[tuple[float, bool]] = deque()  # (t, abandoned)
        self._handles: deque[tuple[float, float]] = deque()

    def dialed(self, t: float, *, answered: bool, ring_s: float) -> None:
        self._dials.append((t - ring_s, answered, ring_s))  # by the time it was placed

    def connected(self, t: float) -> None:
        self._answers.append((t, False))

    def abandoned(self, t: float) -> None:
        self._answers.append((t, True))

    def handled(self, t: float, handle_s: float) -> None:
        self._handles.append((t, handle_s))

    def _trim(self, now: float) -> None:
        edge = now - self.span_s
        for q in (self._dials, self._answers, self._handles):
            while q and q[0][0] < edge:
                q.popleft()

    def estimate(self, now: float) -> Estimate:
        self._trim(now)
        w = self.prior_weight
        cohort = [d for d in self._dials if d[0] <= now - self.settle_s]
        n = len(cohort)
        answered = sum(1 for _, a, _ in cohort if a)
        rings = sorted(r for _, a, r in self._dials if a)
        horizon = rings[min(len(rings) - 1, int(0.95 * len(rings)))] * 1.2 if len(rings) >= 20 else math.inf
        ring = sum(r for _, _, r in cohort)
        handles = sum(h for _, h in self._handles)
        abandoned = sum(1 for _, ab in self._answers if ab)
        total = len(self._answers)
        nd, nh = max(n + w, 1), max(len(self._handles) + w, 1)
        return Estimate(
            answer_rate=(answered + self.prior_answer * w) / nd if n + w else self.prior_answer,
            ring_s=(ring + self.prior_ring_s * w) / nd if n + w else self.prior_ring_s,
            handle_s=(handles + self.prior_handle_s * w) / nh
            if len(self._handles) + w
            else self.prior_handle_s,
            abandon_rate=abandoned / total if total else 0.0,
            answered=total,
            dials=n,
            handled=len(self._handles),
            answer_horizon_s=horizon,
            abandoned=abandoned,
        )


def progressive_calls(load: Load) -> int:
    """One call per free agent (calls already in the air count)."""
    return max(0, load.free - load.dialing)


def expected_abandon_share(n: int, p: float, agents: float) -> float:
    """E[max(0, X - agents)] / E[X] for X ~ Binomial(n, p)."""
    if n <= 0 or p <= 0:
        return 0.0
    mean = n * p
    excess = 0.0
    agents = max(0.0, agents)
    a = math.floor(agents)
    frac = agents - a
    log_p, log_q = math.log(p), math.log1p(-p) if p < 1 else -math.inf
    top = min(n, int(mean + 10 * math.sqrt(mean * (1 - p)) + 10))  # beyond: negligible mass
    for k in range(a + 1, top + 1):
        if p >= 1:
            pk = 1.0 if k == n else 0.0
        else:
            pk = math.exp(
                math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_p + (n - k) * log_q
            )
        excess += pk * max(0.0, k - a - frac)
    return excess / mean


def target_share(cap: float, est: Estimate, *, confidence: int = 50) -> float:
    """The abandon share to aim for: the cap, lowered as the measured rate approaches it (the
    measurement counts more as the window holds more answered calls)."""
    if est.answered == 0:
        return cap * 0.7
    weight = min(1.0, est.answered / confidence)
    ratio = est.abandon_rate / cap if cap > 0 else 1.0
    # under 50 % of the cap: aim at the cap; at or over the cap: aim at a tenth of it
    steer = 1.0 if ratio <= 0.5 else max(0.1, 1.0 - (ratio - 0.5) * 1.8)
    return cap * (1.0 - weight + weight * steer) * 0.7


def room(est: Estimate, cap: float) -> bool:
    """Whether the window can take one more abandon and stay under half the cap (the other half
    is the margin for the answered calls that leave the window and for bursts)."""
    return est.abandons + 1 <= 0.5 * cap * est.answered


def handle_known(est: Estimate, min_handled: int) -> bool:
    """Whether the handle time is measured: enough calls finished, and most of the window's
    connected calls (while most are still talking, only the short ones have finished and the
    mean is too short: agents would be counted free too soon)."""
    return est.handled >= max(min_handled, 0.8 * (est.answered - est.abandons))


def ratio_limit(est: Estimate, max_ratio: float, *, min_answered: int, ramp_answered: int) -> float:
    """Calls in the air per available agent, growing from 1 to `max_ratio` as answers are seen."""
    done = max(0, est.answered - min_answered) / max(1, ramp_answered)
    return 1.0 + (max_ratio - 1.0) * min(1.0, done)


def calls_to_place(
    load: Load,
    est: Estimate,
    *,
    cap: float = 0.03,
    max_ratio: float = 6.0,
    min_answered: int = 100,
    min_handled: int = 50,
    ramp_answered: int = 200,
    z: float = 2.0,
) -> int:
    """New calls for predictive dialing: the most whose expected abandon share stays under the
    target (never more than the ramp's ratio of calls in the air per available agent)."""
    if load.free + load.busy == 0:
        return 0
    if est.dials < 50 or est.answered < min_answered or not handle_known(est, min_handled):
        return progressive_calls(load)  # not measured yet: no over-dialing on a guess
    if est.abandon_rate >= cap * 0.5 or not room(est, cap):
        return progressive_calls(load)  # no room for one more abandon: none risked
    p = min(max(est.answer_rate, 0.01), 1.0)
    # an answer rate measured too low over-dials: pace on its upper confidence bound (z sigma)
    p = min(1.0, p + z * math.sqrt(p * (1 - p) / max(est.dials, 1)))
    max_ratio = ratio_limit(est, max_ratio, min_answered=min_answered, ramp_answered=ramp_answered)
    # busy agents who will probably be free in time: calls answer all through the ring time and
    # agents free all through it too, so only half of it is counted (a call answered early cannot
    # use an agent who frees up late)
    # (none until enough calls have finished: the short ones finish first, and a handle time
    # measured on them alone would count agents free who are not)
    soon = (
        0.0 if est.handled < 50 else load.busy * (1.0 - math.exp(-0.5 * est.ring_s / max(est.handle_s, 1.0)))
    )
    agents = max(0, load.free) + soon
    target = target_share(cap, est)
    limit = max(load.free, int(math.ceil(agents * max_ratio)))
    lo, hi = load.dialing, max(load.dialing, limit)
    if expected_abandon_share(lo, p, agents) > target:
        return 0
    while lo < hi:  # the share grows with n: binary search for the largest n under the target
        mid = (lo + hi + 1) // 2
        if expected_abandon_share(mid, p, agents) <= target:
            lo = mid
        else:
            hi = mid - 1
    n = lo - load.dialing
    if n == 0 and load.free > 0 and load.dialing == 0:
        n = 1  # never starve: an idle agent with nothing in the air gets at least one call
    return n
