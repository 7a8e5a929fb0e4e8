# ruff: noqa: E501
"""The scenario API: an Asterisk simulator for tests, benchmarks and the demo.

::

    sim = Simulator(agi_target="agi://127.0.0.1:4573", time_scale=0.01)
    sim.agent("1001", answer_after=2)                 # answers after 2 s, talks 5 s
    sim.agent("1002", never_answer=True)              # ring-no-answer
    sim.agent("1003", busy=True)
    async with sim:                                   # AMI server on sim.ami_port (port 0)
        call = sim.call("+14155550100", digits=["1"], hangup_after=None)
        await call.wait_hangup(timeout=5)
        sim.traffic(rate=2.0, count=10, caller_ids=["+1415555..."], digits=["1"])   # N calls/s

Callers are ``PJSIP/trunk-XXXXXXXX`` channels entering ``[cc-inbound]`` of the shipped
``config/asterisk/extensions.conf`` (or any dialplan given).  Every delay is virtual and scaled by
``time_scale``, so 30 s of call time take 0.3 s at ``time_scale=0.01``.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callcenter.asterisk.ami import Event
from callcenter.asterisk.simulator.agi_client import run_agi
from callcenter.asterisk.simulator.ami_server import AMIServer
from callcenter.asterisk.simulator.clock import ScaledClock
from callcenter.asterisk.simulator.dialplan import Dialplan
from callcenter.asterisk.simulator.pbx import Behaviour, Channel, Pbx, Queue, parse_queues_conf

CONFIG_DIR = Path(__file__).resolve().parents[3] / "config" / "asterisk"


@dataclass
class CallHandle:
    """One simulated inbound call (the caller's channel)."""

    sim: Simulator
    channel: Channel
    events: list[Event] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.channel.name

    @property
    def linkedid(self) -> str:
        return self.channel.linkedid

    @property
    def vars(self) -> dict[str, str]:
        return self.channel.vars

    async def wait_hangup(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self.channel.gone.wait(), timeout)

    def hangup(self) -> None:
        self.sim.pbx.request_hangup(self.channel, 16)

    def press(self, digits: str) -> None:
        for d in digits:
            self.sim.pbx.dtmf(self.channel, d)


class Simulator:
    def __init__(
        self, *, dialplan: Dialplan | str | Path | None = None, queues: dict[str, Queue] | str | Path | None = None,
        agi_target: str | None = "agi://127.0.0.1:4573", time_scale: float = 1.0,
        ami_users: dict[str, str] | None = None, ami_host: str = "127.0.0.1", ami_port: int = 0,
        inbound_context: str = "cc-inbound", trunk: str = "PJSIP/trunk", seed: int = 0,
        clock: ScaledClock | None = None,
    ) -> None:
        if dialplan is None:
            dialplan = CONFIG_DIR / "extensions.conf"
        if not isinstance(dialplan, Dialplan):
            dialplan = Dialplan.load(dialplan)
        if queues is None:
            queues = CONFIG_DIR / "queues.conf"
        if not isinstance(queues, dict):
            queues = parse_queues_conf(Path(queues).read_text())
        self.clock = clock or ScaledClock(time_scale)
        self.pbx = Pbx(dialplan, clock=self.clock, queues=queues, agi_target=agi_target, seed=seed)
        self.pbx.agi_runner = run_agi
        self.ami = AMIServer(self.pbx, ami_users if ami_users is not None else {"cc": "ccsecret"},
                             ami_host, ami_port)
        self.inbound_context = inbound_context
        self.trunk = trunk
        self.calls: list[CallHandle] = []
        self._numbers = itertools.count(1)
        self._traffic: set[asyncio.Task[Any]] = set()

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> Simulator:
        await self.ami.start()
        return self

    async def close(self) -> None:
        for t in list(self._traffic):
            t.cancel()
        await self.pbx.close()
        await self.ami.close()

    async def __aenter__(self) -> Simulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def ami_port(self) -> int:
        return self.ami.port

    def set_agi_target(self, url: str) -> None:
        self.pbx.globals["CC_AGI"] = url

    # ---- endpoints -------------------------------------------------------------------------

    def agent(self, number: str, *, answer_after: float | None = 1.0, talk_time: float | None = 5.0,
              never_answer: bool = False, busy: bool = False, hangup_after: float | None = None,
              manual: bool = False) -> Behaviour:
        """How agent ``number``'s phone behaves (PJSIP/number or Local/number@ctx without dialplan).
        ``manual``: a soft-phone driven by :meth:`answer_phone` and :meth:`hangup_phone`."""
        b = Behaviour(answer_after=None if never_answer else answer_after, talk_time=talk_time, busy=busy,
                      hangup_after=hangup_after, manual=manual)
        self.pbx.behaviours[number] = b
        return b

    def outbound(self, script: Any) -> Any:
        """Scripted outcomes for calls out through the trunk (simulator/outbound.py)."""
        self.pbx.outbound = script
        return script

    def answer_phone(self, number: str) -> bool:
        """Press Answer on agent ``number``'s ringing soft-phone; False if it is not ringing."""
        return self.pbx.answer_device(number)

    def hangup_phone(self, number: str) -> bool:
        """Press Hang up on agent ``number``'s phone; False if it has no call."""
        return self.pbx.hangup_device(number)

    def call(self, caller_id: str = "+14155550100", *, name: str = "", exten: str = "100",
             digits: Iterable[str] = (), hangup_after: float | None = None, context: str | None = None,
             abandon_after: float | None = None) -> CallHandle:
        """Start an inbound call now.  ``digits``: what the caller presses, one string per prompt.
        ``hangup_after`` (or ``abandon_after``): the caller hangs up after that many seconds."""
        pbx = self.pbx
        ch = pbx.new_simple(self.trunk, state=4, context=context or self.inbound_context, exten=exten)
        ch.behaviour = Behaviour(digits=list(digits), hangup_after=hangup_after or abandon_after)
        pbx.set_callerid(ch, caller_id, name)
        handle = CallHandle(self, ch)
        self.calls.append(handle)
        pbx.start_pbx(ch)
        if ch.behaviour.hangup_after is not None:
            pbx.spawn(self._hangup_later(ch, ch.behaviour.hangup_after))
        return handle

    async def _hangup_later(self, ch: Channel, after: float) -> None:
        await self.clock.sleep(after)
        if not ch.hungup:
            self.pbx.request_hangup(ch, 16)

    def traffic(self, *, rate: float, count: int, caller_ids: Iterable[str] = ("+14155550100",),
                digits: Iterable[str] = (), hangup_after: float | None = None) -> asyncio.Task[list[CallHandle]]:
        """``rate`` calls per (virtual) second, ``count`` calls, caller IDs used in turn."""
        ids = list(caller_ids)
        presses = list(digits)

        async def run() -> list[CallHandle]:
            out = []
            for i in range(count):
                out.append(self.call(ids[i % len(ids)], digits=presses, hangup_after=hangup_after))
                if i + 1 < count:
                    await self.clock.sleep(1.0 / rate)
            return out
        task = asyncio.get_running_loop().create_task(run())
        self._traffic.add(task)
        task.add_done_callback(self._traffic.discard)
        return task

    def subscribe(self) -> asyncio.Queue[Event]:
        """Every event the model emits, in order (for tests)."""
        q: asyncio.Queue[Event] = asyncio.Queue()
        self.pbx.listeners.append(q.put_nowait)
        return q

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Until no channel is left."""
        async def idle() -> None:
            while self.pbx.channels:
                await asyncio.sleep(0.005)
        await asyncio.wait_for(idle(), timeout)

    async def wait_for_event(self, q: asyncio.Queue[Event], name: str, timeout: float = 5.0,
                             **match: str) -> Event:
        async def find() -> Event:
            while True:
                ev = await q.get()
                if ev.name == name and all(ev.get(k) == v for k, v in match.items()):
                    return ev
        return await asyncio.wait_for(find(), timeout)

    def close_nowait(self) -> None:
        with contextlib.suppress(Exception):
            for t in list(self._traffic):
                t.cancel()
