"""Customer-first dialing through AMI (progressive and predictive campaigns).

    dialer = Dialer(ami, pool, hooks, mode="predictive", now=clock.now)
    dialer.start()                               # subscribes to the AMI events it needs
    for _ in range(dialer.wanted()): await dialer.place(ref, "+12025550143")
    ...                                           # hooks.connected / hooks.outcome / hooks.ended
    pool.release(agent); dialer.agent_freed()     # after the agent's wrap-up

One attempt, on the wire (config/asterisk/extensions.conf, [cc-campaign]):
  Originate (Async) Channel=PJSIP/<digits>@trunk, Context=cc-campaign, s  ->  the customer's phone
  rings -> OriginateResponse Failure (Reason 3 no answer, 5 busy, else failed) -> outcome
        -> OriginateResponse Success -> the dialplan runs AMD() -> UserEvent CcAmd (Status)
            MACHINE -> Hangup -> outcome machine
            HUMAN   -> a free agent: Setvar CC_AGENT=<their device>, Redirect to `connect` (Dial)
                       and hooks.connected (the console's pop arrives as the customer answers)
                    -> none free: the call holds up to `hold_s` for one, then Redirect to `abandon`
                       (the message is played, the call is logged as abandoned)
  Hangup of the customer's channel after `connect` -> hooks.ended (the agent's wrap-up starts)

The dialer never replays an Originate (DESIGN.md); an AMI failure is an attempt `failed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from callcenter.services.dialer_pacing import Load, Window, calls_to_place, progressive_calls
from callcenter.services.dialer_rules import ABANDONED, ANSWERED, BUSY, FAILED, MACHINE, NO_ANSWER

log = logging.getLogger(__name__)


class PoolAgent(Protocol):
    agent_id: str
    dial_string: str | None


class AgentPool(Protocol):
    def take(self) -> PoolAgent | None: ...  # a free agent, now busy with this campaign

    def counts(self) -> tuple[int, int]: ...  # (free, busy)


class Hooks(Protocol):
    async def connected(self, dial: Dial, agent: PoolAgent) -> None: ...

    async def outcome(self, dial: Dial, outcome: str) -> None: ...

    async def ended(self, dial: Dial) -> None: ...


@dataclass
class Dial:
    """One attempt in the air."""

    attempt_id: str
    ref: Any  # the owner's (a campaign record)
    number: str
    placed_at: float
    uniqueid: str | None = None
    channel: str | None = None
    answered_at: float | None = None
    agent: PoolAgent | None = None
    held_since: float | None = None
    outcome: str | None = None
    connected_at: float | None = None


class Dialer:
    def __init__(
        self,
        ami: Any,
        pool: AgentPool,
        hooks: Hooks,
        *,
        mode: str,
        now: Callable[[], float],
        cap: float = 0.03,
        hold_s: float = 2.0,
        ring_timeout_s: float = 25.0,
        trunk: str = "PJSIP/{digits}@trunk",
        context: str = "cc-campaign",
        prefix: str = "cc-camp",
        window: Window | None = None,
    ) -> None:
        if mode not in ("progressive", "predictive"):
            raise ValueError(f"the dialer dials progressive or predictive, not {mode!r}")
        self.ami, self.pool, self.hooks = ami, pool, hooks
        self.mode, self.now, self.cap, self.hold_s = mode, now, cap, hold_s
        self.ring_timeout_s, self.trunk, self.context = ring_timeout_s, trunk, context
        self.prefix = f"{prefix}-{id(self):x}-"
        self.window = window or Window()
        self.dials: dict[str, Dial] = {}  # by attempt id
        self.by_uid: dict[str, Dial] = {}
        self.holding: list[Dial] = []
        self.counts = {"dialed": 0, ANSWERED: 0, ABANDONED: 0, BUSY: 0, NO_ANSWER: 0, MACHINE: 0, FAILED: 0}
        self._ids = itertools.count(1)
        self.originate_ms: deque[float] = deque(maxlen=100_000)  # Originate -> its Response, real ms
        self._sub: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._sub = self.ami.subscribe(filter=self._mine, callback=self._on_event)

    async def close(self) -> None:
        if self._sub is not None:
            self._sub.unsubscribe()
            self._sub = None
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, aw: Any) -> None:
        t = asyncio.ensure_future(aw)
        self._tasks.add(t)
        t.add_done_callback(self._done)

    def _done(self, t: asyncio.Task[Any]) -> None:
        self._tasks.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.error("dialer task failed", exc_info=t.exception())

    # ------------------------------------------------------------------ pacing
    @property
    def in_air(self) -> int:
        return sum(1 for d in self.dials.values() if d.answered_at is None)

    @property
    def answering(self) -> int:
        """Answered calls that need an agent or soon may (AMD still listening, or holding)."""
        return len(self.holding) + sum(
            1
            for d in self.dials.values()
            if d.answered_at is not None and d.agent is None and d.held_since is None and d.outcome is None
        )

    def wanted(self) -> int:
        """New calls to place now: one per free agent (progressive), or paced (predictive)."""
        free, busy = self.pool.counts()
        free = max(0, free - self.answering)
        if self.mode == "progressive":
            return progressive_calls(Load(free=free, busy=busy, dialing=self.in_air))
        now = self.now()
        est = self.window.estimate(now)
        # calls ringing longer than any answered call rang will not be answered: not counted
        dialing = sum(
            1
            for d in self.dials.values()
            if d.answered_at is None and now - d.placed_at < est.answer_horizon_s
        )
        return calls_to_place(Load(free=free, busy=busy, dialing=dialing), est, cap=self.cap)

    # ------------------------------------------------------------------ placing a call
    async def place(self, ref: Any, number: str) -> Dial:
        from callcenter.asterisk.ami import make_action

        aid = f"{self.prefix}{next(self._ids)}"
        dial = Dial(aid, ref, number, self.now())
        self.dials[aid] = dial
        self.counts["dialed"] += 1
        digits = number.lstrip("+")
        action = make_action(
            "Originate",
            action_id=aid,
            Channel=self.trunk.format(digits=digits, number=number),
            Context=self.context,
            Exten="s",
            Priority=1,
            Async="true",
            Timeout=int(self.ring_timeout_s * 1000),
            CallerID=f"Campaign <{digits}>",
            variables={"CC_ATTEMPT": aid},
        )
        try:
            t0 = time.perf_counter()
            result = await self.ami.send_action(action)
            self.originate_ms.append((time.perf_counter() - t0) * 1000)
            ok = result.ok
        except Exception as e:  # noqa: BLE001 - AMI down or refused: the attempt failed, never replayed
            log.warning("campaign Originate %s failed: %s", aid, e)
            ok = False
        if not ok and dial.outcome is None:
            await self._settle(dial, FAILED)
        return dial

    # ------------------------------------------------------------------ AMI events
    def _mine(self, ev: Any) -> bool:
        name = ev.name
        if name == "OriginateResponse":
            return (ev.get("ActionID") or "").startswith(self.prefix)
        if name in ("UserEvent", "Hangup"):
            return (ev.get("Uniqueid") or "") in self.by_uid
        return False

    async def _on_event(self, ev: Any) -> None:
        name = ev.name
        if name == "OriginateResponse":
            dial = self.dials.get(ev.get("ActionID") or "")
            if dial is None or dial.outcome is not None:
                return
            if ev.get("Response") == "Success":
                dial.uniqueid, dial.channel = ev.get("Uniqueid"), ev.get("Channel")
                dial.answered_at = self.now()
                if dial.uniqueid:
                    self.by_uid[dial.uniqueid] = dial
                return
            reason = ev.get("Reason") or "0"
            outcome = NO_ANSWER if reason == "3" else BUSY if reason == "5" else FAILED
            self.window.dialed(self.now(), answered=False, ring_s=self.now() - dial.placed_at)
            await self._settle(dial, outcome)
            return
        dial = self.by_uid.get(ev.get("Uniqueid") or "")
        if dial is None:
            return
        if (
            name == "UserEvent"
            and ev.get("UserEvent") == "CcAmd"
            and dial.agent is None
            and dial.held_since is None
            and dial.outcome is None
        ):
            human = (ev.get("Status") or "").upper() != "MACHINE"
            now = self.now()
            self.window.dialed(now, answered=human, ring_s=(dial.answered_at or now) - dial.placed_at)
            if not human:
                await self._settle(dial, MACHINE)
                await self._action("Hangup", Channel=dial.channel or "", Cause=16)
                return
            dial.held_since = now
            self.holding.append(dial)
            await self._connect_waiting()
            if dial in self.holding:
                self._spawn(self._abandon_later(dial))
        elif name == "Hangup":
            self.by_uid.pop(dial.uniqueid or "", None)
            if dial in self.holding:  # hung up while waiting for an agent: abandoned
                self.holding.remove(dial)
                self.window.abandoned(self.now())
                await self._settle(dial, ABANDONED)
            elif dial.agent is not None:
                self.dials.pop(dial.attempt_id, None)
                await self.hooks.ended(dial)
            elif dial.outcome is None:  # hung up before AMD said anything: tried again later
                await self._settle(dial, NO_ANSWER)

    # ------------------------------------------------------------------ agents
    async def agent_freed(self) -> None:
        """An agent of the pool is free again: give them a waiting answered call, if any."""
        await self._connect_waiting()

    async def _connect_waiting(self) -> None:
        while self.holding:
            agent = self.pool.take()
            if agent is None:
                return
            dial = self.holding.pop(0)
            dial.agent, dial.held_since = agent, None
            dial.connected_at = self.now()
            dial.outcome = ANSWERED
            self.counts[ANSWERED] += 1
            self.window.connected(self.now())
            await self.hooks.connected(dial, agent)  # the pop, before the agent's phone rings
            ok = await self._action(
                "Setvar", Channel=dial.channel or "", Variable="CC_AGENT", Value=agent.dial_string or ""
            )
            ok = ok and await self._action(
                "Redirect", Channel=dial.channel or "", Context=self.context, Exten="connect", Priority=1
            )
            if not ok:
                log.warning("could not connect %s to %s", dial.attempt_id, agent.agent_id)

    async def _abandon_later(self, dial: Dial) -> None:
        await self._sleep(self.hold_s)
        if dial not in self.holding:
            return
        self.holding.remove(dial)
        self.window.abandoned(self.now())
        await self._settle(dial, ABANDONED)
        await self._action(
            "Redirect", Channel=dial.channel or "", Context=self.context, Exten="abandon", Priority=1
        )

    sleep: Callable[[float], Any] | None = None  # the owner's clock (virtual seconds), else asyncio

    async def _sleep(self, s: float) -> None:
        if self.sleep is not None:
            await self.sleep(s)
        else:
            await asyncio.sleep(s)

    async def _settle(self, dial: Dial, outcome: str) -> None:
        dial.outcome = outcome
        self.counts[outcome] += 1
        if outcome != ABANDONED:
            self.by_uid.pop(dial.uniqueid or "", None)
        self.dials.pop(dial.attempt_id, None)
        await self.hooks.outcome(dial, outcome)

    async def drop(self) -> int:
        """The PBX connection these calls were placed on is gone (scale-out: the AMI leader
        changed): their events will not come here. Each call not connected to an agent is settled
        now, once: abandoned if it was waiting for an agent, else failed (retried later by the
        rules). A connected call stays with its agent (the disposition ends it)."""
        n = 0
        for dial in list(self.dials.values()):
            if dial.outcome is None and dial.agent is None:
                held = dial in self.holding
                if held:
                    self.holding.remove(dial)
                await self._settle(dial, ABANDONED if held else FAILED)
                n += 1
        return n

    async def _action(self, name: str, **fields: Any) -> bool:
        with contextlib.suppress(Exception):
            result = await self.ami.send_action(name, **fields)
            return bool(result.ok)
        return False

    def stats(self) -> dict[str, Any]:
        answered = self.counts[ANSWERED] + self.counts[ABANDONED]
        est = self.window.estimate(self.now())
        return {
            **self.counts,
            "in_air": self.in_air,
            "holding": len(self.holding),
            "abandon_rate": self.counts[ABANDONED] / answered if answered else 0.0,
            "window_abandon_rate": est.abandon_rate,
            "answer_rate": est.answer_rate,
            "cap": self.cap,
        }
