"""Runs the pure routing engine: feeds it events with "now", wakes it at its timers, and hands
its decisions to the services that perform them. One runner per process."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from routing import AgentPresence, AgentProfile, Decision, Engine, Event, InMemoryStore, Presence

T = TypeVar("T")

log = logging.getLogger(__name__)

Perform = Callable[[Sequence[Decision]], Awaitable[None]]


class RoutingRunner:
    """Serialises engine calls, performs decisions in order, and keeps one wake-up timer.

    `clock` is the engine's time base (monotonic seconds); tests pass a manual clock and call
    `tick()` themselves, with `autotick=False`.

    With a store that does I/O (the Redis store: each step is a blocking round trip), engine calls
    run in a worker thread (`asyncio.to_thread`), one at a time, so the event loop never blocks;
    the clock must then be shared by every process (wall-clock seconds), and the runner also
    wakes every `poll_s` to fire timers that other processes set and to reclaim expired leases.
    The in-memory store keeps running inline, as before.
    """

    def __init__(self, engine: Engine, perform: Perform, *, clock: Callable[[], float],
                 autotick: bool = True, in_thread: bool | None = None, poll_s: float = 1.0) -> None:
        self.engine = engine
        self._in_thread = not isinstance(engine.store, InMemoryStore) if in_thread is None else in_thread
        self._poll_s = poll_s
        self._perform = perform
        self.clock = clock
        self._autotick = autotick
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        # Watchers of every applied event and its decisions: fn(event or None for a tick,
        # decisions, now). Called in the event loop, after the engine call, before performing.
        # The wallboard's statistics come from here (services/wallboard.py).
        self.observers: list[Callable[[Event | None, Sequence[Decision], float], None]] = []
        # profiles an admin changed while their agent held a contact: applied once the agent is free
        self.pending_profiles: dict[str, AgentProfile] = {}

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        if self._in_thread:
            return await asyncio.to_thread(self._step, fn, *args)
        return fn(*args)

    def _step(self, fn: Callable[..., T], *args: object) -> T:
        """One engine step in the worker thread, marked on the store (the Redis store then answers
        reads from other threads, e.g. the event loop's, as views: routing_redis.py)."""
        stepping = getattr(self.engine.store, "stepping", None)
        if stepping is None:
            return fn(*args)
        with stepping():
            return fn(*args)

    async def add_agent(self, profile: AgentProfile) -> None:
        async with self._lock:
            await self._call(self.engine.add_agent, profile, self.clock())

    async def replace_agent(self, profile: AgentProfile) -> bool:
        """Give a signed-in agent a new profile (skills, capacities) without signing them out: True
        when it is in effect now; False when the agent holds a contact or is in wrap-up, and then it
        takes effect after the event that frees them. The agent keeps their presence."""
        async with self._lock:
            now = self.clock()
            decisions = await self._call(self._swap_profile, profile, now)
            if decisions is None:
                self.pending_profiles[profile.id] = profile
                return False
            self.pending_profiles.pop(profile.id, None)
            self._observe(None, decisions, now)
            await self._run(decisions)
            return True

    def _swap_profile(self, profile: AgentProfile, now: float) -> list[Decision] | None:
        eng = self.engine
        rec = eng.store.agent(profile.id)
        if rec is None:
            eng.add_agent(profile, now)
            return []
        if rec.profile == profile:  # already (e.g. another process on the shared store did it)
            return []
        if rec.slots or rec.presence is Presence.WRAP_UP:
            return None
        presence, reason = rec.presence, rec.reason
        eng.remove_agent(profile.id)
        eng.add_agent(profile, now)
        if presence is Presence.OFFLINE:
            return []
        return eng.handle(AgentPresence(profile.id, presence, reason), now)  # READY matches at once

    async def _apply_pending(self) -> None:
        for aid, profile in list(self.pending_profiles.items()):
            now = self.clock()
            decisions = await self._call(self._swap_profile, profile, now)
            if decisions is not None:
                self.pending_profiles.pop(aid, None)
                log.info("agent %s: the changed routing profile is in effect", aid)
                self._observe(None, decisions, now)
                await self._run(decisions)

    async def handle(self, event: Event) -> list[Decision]:
        """Apply one event; the decisions are performed before this returns."""
        async with self._lock:
            now = self.clock()
            decisions = await self._call(self.engine.handle, event, now)
            self._observe(event, decisions, now)
            await self._run(decisions)
            if self.pending_profiles:
                await self._apply_pending()
        return decisions

    async def tick(self) -> list[Decision]:
        async with self._lock:
            now = self.clock()
            decisions = await self._call(self.engine.tick, now)
            if decisions:
                self._observe(None, decisions, now)
            await self._run(decisions)
            if self.pending_profiles:
                await self._apply_pending()
        return decisions

    def _observe(self, event: Event | None, decisions: Sequence[Decision], now: float) -> None:
        for observer in self.observers:
            try:
                observer(event, decisions, now)
            except Exception:  # noqa: BLE001 - a watcher never breaks routing
                log.exception("routing observer failed")

    async def _run(self, decisions: Sequence[Decision]) -> None:
        try:
            if decisions:
                await self._perform(decisions)
        finally:
            if self._autotick and not self._closed:
                due = await self._call(self.engine.next_due)
                if self._in_thread:
                    poll = self.clock() + self._poll_s
                    due = poll if due is None else min(due, poll)
                self._schedule(due)

    def _schedule(self, due: float | None) -> None:
        if not self._autotick or self._closed:
            return
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
