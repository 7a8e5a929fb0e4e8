"""Drive a Dialer against a PBX with a pool of simulated agents (the simulator test and bench/dialer.py).

The agents are phones the PBX knows (PJSIP/<prefix><n>, answering at once and staying until the
customer hangs up); this module only keeps their free/busy state and their wrap-up time. Time is
the caller's clock (virtual seconds: the simulator's ScaledClock runs handle times faster).

    report = await drive(ami, mode="predictive", agents=20, duration_s=600, now=clock.now,
                         sleep=clock.sleep)
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from callcenter.services.dialer import Dial, Dialer
from callcenter.services.dialer_pacing import Window


@dataclass(eq=False)
class SimAgent:
    agent_id: str
    dial_string: str | None
    busy_since: float | None = None
    busy_s: float = 0.0
    calls: int = 0


@dataclass
class SimPool:
    agents: list[SimAgent]
    now: Callable[[], float]
    free: list[SimAgent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.free = list(self.agents)

    def take(self) -> SimAgent | None:
        if not self.free:
            return None
        a = self.free.pop(0)
        a.busy_since = self.now()
        a.calls += 1
        return a

    def release(self, a: SimAgent) -> None:
        if a.busy_since is not None:
            a.busy_s += self.now() - a.busy_since
            a.busy_since = None
        self.free.append(a)

    def counts(self) -> tuple[int, int]:
        return len(self.free), len(self.agents) - len(self.free)


@dataclass
class DriveReport:
    mode: str
    agents: int
    duration_s: float
    dialed: int
    connected: int
    abandoned: int
    busy: int
    no_answer: int
    machine: int
    failed: int
    abandon_rate: float  # abandoned / (connected + abandoned)
    max_window_abandon_rate: float
    occupancy: float
    connects_per_agent_hour: float
    originate_ms: list[float] = field(default_factory=list)  # Originate -> Response, real ms
    # the worst rolling-window rate at any tick from the cold start (warm-up and first window included)
    worst_window_abandon_rate: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("originate_ms")
        return d


class _Hooks:
    def __init__(
        self, pool: SimPool, wrap_s: float, sleep: Callable[[float], Awaitable[Any]], wake: asyncio.Event
    ) -> None:
        self.pool, self.wrap_s, self.sleep, self.wake = pool, wrap_s, sleep, wake
        self.dialer: Dialer | None = None
        self.tasks: set[asyncio.Task[Any]] = set()

    async def connected(self, dial: Dial, agent: Any) -> None:
        return None

    async def outcome(self, dial: Dial, outcome: str) -> None:
        self.wake.set()

    async def ended(self, dial: Dial) -> None:
        t = asyncio.ensure_future(self._wrap(dial))
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def _wrap(self, dial: Dial) -> None:
        await self.sleep(self.wrap_s)
        assert self.dialer is not None and dial.agent is not None
        if dial.connected_at is not None:
            self.dialer.window.handled(self.dialer.now(), self.dialer.now() - dial.connected_at)
        self.pool.release(dial.agent)  # type: ignore[arg-type]
        await self.dialer.agent_freed()
        self.wake.set()


async def drive(
    ami: Any,
    *,
    mode: str,
    agents: int,
    duration_s: float,
    now: Callable[[], float],
    sleep: Callable[[float], Awaitable[Any]],
    wrap_s: float = 10.0,
    cap: float = 0.03,
    hold_s: float = 2.0,
    agent_prefix: str = "ag",
    number_base: int = 12025500000,
    tick_s: float = 0.5,
    window: Window | None = None,
    prefix: str = "cc-camp",
    warmup_s: float = 0.0,
) -> DriveReport:
    """Run one campaign for `warmup_s` + `duration_s` virtual seconds; the figures cover the time
    after the warm-up (a cold start, all agents free, is not the steady state). Busy time counts
    until the end."""
    pool = SimPool([SimAgent(f"{agent_prefix}{i}", f"PJSIP/{agent_prefix}{i}") for i in range(agents)], now)
    wake = asyncio.Event()
    hooks = _Hooks(pool, wrap_s, sleep, wake)
    dialer = Dialer(
        ami,
        pool,
        hooks,
        mode=mode,
        now=now,
        cap=cap,
        hold_s=hold_s,
        prefix=prefix,
        window=window or Window(span_s=300, prior_handle_s=120.0, prior_ring_s=10.0),
    )
    dialer.sleep = sleep
    hooks.dialer = dialer
    dialer.start()
    numbers = itertools.count(number_base)
    start = now()
    worst = worst_all = 0.0
    base: dict[str, Any] | None = None

    def busy_now() -> float:
        return sum(
            a.busy_s + (now() - a.busy_since if a.busy_since is not None else 0.0) for a in pool.agents
        )

    if warmup_s <= 0:
        base = {"t": start, "busy": 0.0, "counts": {k: 0 for k in dialer.counts}}
    try:
        while now() - start < warmup_s + duration_s:
            if base is None and now() - start >= warmup_s:
                base = {"t": now(), "busy": busy_now(), "counts": dict(dialer.counts)}
            est = dialer.window.estimate(now())
            if base is not None and now() - base["t"] > 60 and est.answered >= 50:
                worst = max(worst, est.abandon_rate)
            if est.answered:
                worst_all = max(worst_all, est.abandon_rate)
            n = dialer.wanted()
            if n:
                await asyncio.gather(*(dialer.place(None, f"+{next(numbers)}") for _ in range(n)))
            wake.clear()
            try:
                await asyncio.wait_for(wake.wait(), timeout=max(0.001, tick_s * _scale(now, sleep)))
            except TimeoutError:
                pass
    finally:
        if base is None:
            base = {"t": start, "busy": 0.0, "counts": {k: 0 for k in dialer.counts}}
        elapsed = now() - base["t"]
        busy_total = busy_now() - base["busy"]
        await dialer.close()
        for t in list(hooks.tasks):
            t.cancel()
    c = {k: v - base["counts"].get(k, 0) for k, v in dialer.counts.items()}
    answered = c["answered"] + c["abandoned"]
    agent_s = agents * elapsed
    return DriveReport(
        mode=mode,
        agents=agents,
        duration_s=round(elapsed, 1),
        dialed=c["dialed"],
        connected=c["answered"],
        abandoned=c["abandoned"],
        busy=c["busy"],
        no_answer=c["no_answer"],
        machine=c["machine"],
        failed=c["failed"],
        abandon_rate=c["abandoned"] / answered if answered else 0.0,
        max_window_abandon_rate=worst,
        occupancy=busy_total / agent_s if agent_s else 0.0,
        connects_per_agent_hour=c["answered"] / (agent_s / 3600.0) if agent_s else 0.0,
        originate_ms=list(dialer.originate_ms),
        worst_window_abandon_rate=worst_all,
    )


def _scale(now: Callable[[], float], sleep: Any) -> float:
    """Real seconds per virtual second, when the clock is the simulator's ScaledClock."""
    owner = getattr(sleep, "__self__", None)
    return float(getattr(owner, "scale", 1.0))
