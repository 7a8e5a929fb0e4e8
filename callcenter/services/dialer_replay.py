"""Outbound what-if replay (pure, seeded, simulated clock): predictive against progressive.

The outbound twin of routing/replay.py: the same event-heap simulation and handle-time draws,
but the traffic is the dialer's own calls. Each dial rings for a while, then reaches a person
(the answer rate), or not. A person who answers gets a free agent, or waits up to `hold_s` for
one, else is abandoned (the message is played). Agents talk for a handle time, then wrap up.

    r = run_outbound(OutboundPlan(agents=50, answer_rate=0.2, mode="predictive"))
    r.abandon_rate, r.occupancy, r.connects_per_agent_hour
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import asdict, dataclass
from typing import Any

from callcenter.services.dialer_pacing import Load, Window, calls_to_place, progressive_calls


@dataclass(frozen=True, slots=True)
class OutboundPlan:
    agents: int = 50
    answer_rate: float = 0.2
    mode: str = "predictive"  # or "progressive"
    duration_s: float = 4 * 3600.0
    handle_mean_s: float = 180.0
    handle_dist: str = "exponential"  # or "lognormal"
    handle_sigma: float = 0.5
    wrap_up_s: float = 15.0
    ring_mean_s: float = 12.0  # time to answer, or to give up ringing
    hold_s: float = 2.0  # an answered call waits this long for an agent before it is abandoned
    cap: float = 0.03
    pace_every_s: float = 1.0
    window_s: float = 900.0
    seed: int = 1


@dataclass
class OutboundReport:
    mode: str
    agents: int
    answer_rate: float
    dialed: int
    answered: int
    connected: int
    abandoned: int
    abandon_rate: float  # abandoned / answered
    max_window_abandon_rate: float  # the worst rolling-window rate seen after the first window
    occupancy: float  # agent time talking or wrapping up / agent time logged in
    connects_per_agent_hour: float
    # the worst rolling-window rate at any pacing tick from the start (the first window included,
    # any window with an answered call in it)
    worst_window_abandon_rate: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_RING_END, _FREE, _HOLD_END, _PACE = 0, 1, 2, 3


def run_outbound(plan: OutboundPlan) -> OutboundReport:
    rng = random.Random(plan.seed)
    mu = math.log(plan.handle_mean_s) - plan.handle_sigma**2 / 2

    def handle_time() -> float:
        if plan.handle_dist == "exponential":
            return rng.expovariate(1.0 / plan.handle_mean_s)
        return rng.lognormvariate(mu, plan.handle_sigma)

    events: list[tuple[float, int, int, int]] = []
    seq = 0

    def push(t: float, kind: int, subject: int = 0) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, kind, subject))

    window = Window(
        plan.window_s, prior_handle_s=plan.handle_mean_s + plan.wrap_up_s, prior_ring_s=plan.ring_mean_s
    )
    free = plan.agents
    busy = 0
    dialing = 0
    holding: list[int] = []  # answered calls waiting (at most hold_s) for an agent
    held_since: dict[int, float] = {}
    handles: dict[int, float] = {}  # connected call -> its handle time (talk + wrap-up)
    next_call = 0
    dialed_at: dict[int, float] = {}
    busy_time = 0.0
    dialed = answered = connected = abandoned = 0
    worst = worst_all = 0.0

    def connect(now: float) -> None:
        nonlocal free, busy, busy_time, connected
        while holding and free > 0:
            call = holding.pop(0)
            held_since.pop(call, None)
            free -= 1
            busy += 1
            connected += 1
            window.connected(now)
            ht = handle_time() + plan.wrap_up_s
            busy_time += min(ht, plan.duration_s - now)
            # measured when it ends, as the live dialer does (the short calls are measured first)
            handles[call] = ht
            push(now + ht, _FREE, call)

    def pace(now: float) -> None:
        nonlocal dialing, next_call, dialed
        load = Load(free=max(0, free - len(holding)), busy=busy, dialing=dialing)
        if plan.mode == "progressive":
            n = progressive_calls(Load(max(0, free - len(holding)), busy, dialing))
        else:
            n = calls_to_place(load, window.estimate(now), cap=plan.cap)
        for _ in range(n):
            cid = next_call
            next_call += 1
            dialing += 1
            dialed += 1
            dialed_at[cid] = now
            push(now + plan.ring_mean_s * rng.uniform(0.3, 1.7), _RING_END, cid)

    push(0.0, _PACE)
    while events:
        now, _, kind, subject = heapq.heappop(events)
        if now >= plan.duration_s:
            break
        if kind == _PACE:
            est = window.estimate(now)
            if now > plan.window_s and est.answered >= 50:
                worst = max(worst, est.abandon_rate)
            if est.answered:
                worst_all = max(worst_all, est.abandon_rate)
            pace(now)
            push(now + plan.pace_every_s, _PACE)
            continue
        if kind == _RING_END:
            dialing -= 1
            ring = now - dialed_at.pop(subject)
            human = rng.random() < plan.answer_rate
            window.dialed(now, answered=human, ring_s=ring)
            if human:
                answered += 1
                holding.append(subject)
                held_since[subject] = now
                push(now + plan.hold_s, _HOLD_END, subject)
                connect(now)
        elif kind == _FREE:
            window.handled(now, handles.pop(subject))
            busy -= 1
            free += 1
            connect(now)
        elif kind == _HOLD_END and subject in held_since:
            holding.remove(subject)
            del held_since[subject]
            abandoned += 1
            window.abandoned(now)
        if plan.mode == "progressive" and kind in (_RING_END, _FREE):
            pace(now)  # progressive dials the moment an agent is free
    agent_s = plan.agents * plan.duration_s
    return OutboundReport(
        mode=plan.mode,
        agents=plan.agents,
        answer_rate=plan.answer_rate,
        dialed=dialed,
        answered=answered,
        connected=connected,
        abandoned=abandoned,
        abandon_rate=abandoned / answered if answered else 0.0,
        max_window_abandon_rate=worst,
        occupancy=busy_time / agent_s if agent_s else 0.0,
        connects_per_agent_hour=connected / (agent_s / 3600.0) if agent_s else 0.0,
        worst_window_abandon_rate=worst_all,
    )
