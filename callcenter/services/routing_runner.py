"""Runs the pure routing engine: feeds it events with "now", wakes it at its timers, and hands
its decisions to the services that perform them. One runner per process."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from routing import AgentProfile, Decision, Engine, Event

log = logging.getLogger(__name__)

Perform = Callable[[Sequence[Decision]], Awaitable[None]]


class RoutingRunner:
    """Serialises engine calls, performs decisions in order, and keeps one wake-up timer.

    `clock` is the engine's time base (monotonic seconds); tests pass a manual clock and call
    `tick()` themselves, with `autotick=False`.
    """

    def __init__(self, engine: Engine, perform: Perform, *, clock: Callable[[], float],
                 autotick: bool = True) -> None:
        self.engine = engine
        self._perform = perform
        self.clock = clock
        self._autotick = autotick
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    async def add_agent(self, profile: AgentProfile) -> None:
        async with self._lock:
            self.engine.add_agent(profile, self.clock())

    async def handle(self, event: Event) -> list[Decision]:
        """Apply one event; the decisions are performed before this returns."""
        async with self._lock:
            decisions = self.engine.handle(event, self.clock())
            await self._run(decisions)
        return decisions

    async def tick(self) -> list[Decision]:
        async with self._lock:
            decisions = self.engine.tick(self.clock())
            await self._run(decisions)
        return decisions

    async def _run(self, decisions: Sequence[Decision]) -> None:
        try:
            if decisions:
                await self._perform(decisions)
        finally:
            self._schedule()

    def _schedule(self) -> None:
        if not self._autotick or self._closed:
            return
        due = self.engine.next_due()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if due is None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, due - self.clock())
        self._timer = loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        task = asyncio.get_running_loop().create_task(self.tick())
        task.add_done_callback(_log_failure)

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _log_failure(task: asyncio.Task[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("routing tick failed", exc_info=task.exception())
