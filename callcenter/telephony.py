"""The PBX edge: the FastAGI server and the AMI client, connected to the voice service.

With a real Asterisk, `settings.ami` and `settings.agi` say where. With the built-in simulator
(the demo), the simulator's AMI server and FastAGI client are pointed at this process."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from callcenter.agi_routes import handlers as extra_handlers
from callcenter.asterisk.ami_client import AMIClient, LocalEvent
from callcenter.asterisk.fastagi import FastAgiServer
from callcenter.asterisk.queue_sync import AgentState, DesiredAgent, QueueSync
from callcenter.asterisk.tracker import CallTracker
from callcenter.services.voice import Softphone, VoiceService

log = logging.getLogger(__name__)
LANE_IDLE_S = 30.0  # a call's event lane ends after this long without events


@dataclass
class Telephony:
    """What is running: the FastAGI server, the AMI client and the call tracker."""

    voice: VoiceService
    agi: FastAgiServer | None = None
    ami: AMIClient | None = None
    tracker: CallTracker = field(default_factory=CallTracker)
    fallback_queue: str = "cc-fallback"
    sync: QueueSync | None = None
    _pump: asyncio.Task[None] | None = None
    _sync_task: asyncio.Task[None] | None = None
    _sync_again: bool = False
    _lanes: dict[str, asyncio.Queue[Any]] = field(default_factory=dict)
    _lane_tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start_agi(self, host: str, port: int, max_sessions: int) -> FastAgiServer:
        handlers = {**extra_handlers(), **self.voice.agi_handlers()}
        self.agi = FastAgiServer(handlers, host=host, port=port, max_sessions=max_sessions)
        await self.agi.start()
        log.info("FastAGI listening on %s:%s", host, self.agi.port)
        return self.agi

    async def start_ami(self, host: str, port: int, username: str, secret: str) -> AMIClient:
        self.ami = AMIClient(host, port, username, secret, auth="md5")
        self.voice.ami = self.ami  # call controls (hold, transfer, ...) send actions through it
        # never drop an event: a lost DialEnd would leave a call ringing in our books
        sub = self.ami.subscribe(None, maxsize=10_000_000)
        self._pump = asyncio.get_running_loop().create_task(self._read(sub))
        await self.ami.start()
        log.info("AMI connected to %s:%s as %s", host, port, username)
        self.sync = QueueSync(self.ami, self.fallback_queue, self.tracker)
        self.sync.on_device_state.append(self._device_state)
        self.voice.directory.on_change.append(lambda _agent: self.schedule_sync())
        self.schedule_sync(resync=True)
        return self.ami

    # ---- the fallback queue follows the agents' state -------------------------------------------
    def desired_members(self) -> dict[str, DesiredAgent]:
        """Ready agents are unpaused members of the fallback queue, not-ready, busy or in
        wrap-up ones are paused, offline ones are not members."""
        out = {}
        directory = self.voice.directory
        for aid, agent in directory.agents.items():
            if not agent.dial_string:
                continue
            state = directory.status(aid)["state"]
            desired = (AgentState.READY if state == "ready" else
                       AgentState.OFFLINE if state == "offline" else AgentState.NOT_READY)
            out[aid] = DesiredAgent(desired, agent.dial_string, name=agent.username)
        return out

    def schedule_sync(self, *, resync: bool = False) -> None:
        """Coalesce agent changes into one QueueAdd/QueuePause/QueueRemove pass at a time."""
        if self.sync is None:
            return
        if self._sync_task is not None and not self._sync_task.done():
            self._sync_again = True
            return
        self._sync_task = asyncio.get_running_loop().create_task(self._run_sync(resync))

    async def _run_sync(self, resync: bool) -> None:
        assert self.sync is not None
        while True:
            self._sync_again = False
            try:
                await self.sync.apply(self.desired_members(), resync=resync)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - AMI down: the next change or resync retries
                log.warning("fallback queue sync failed", exc_info=True)
                return
            resync = False
            if not self._sync_again:
                return

    def _device_state(self, device: str, state: str) -> None:
        agent = self.voice.directory.by_device(device)
        if agent is not None:
            self.voice.spawn(self.voice.device_state(agent.agent_id, state))

    async def _read(self, sub: AsyncIterator[Any]) -> None:
        """Every AMI event, in order: the tracker at once, then the voice service in one lane per
        call (Linkedid), so one call's database writes never hold up the events of the others."""
        async for ev in sub:
            try:
                if isinstance(ev, LocalEvent):
                    if ev.name == "Resynced":
                        self.tracker.resync(*_resync_lists(ev.events))
                        await self.voice.ami_resynced(set(self.tracker.calls))
                        self.schedule_sync(resync=True)
                    continue
                self.tracker.feed(ev)
                self._lane(ev.get("Linkedid") or "").put_nowait(ev)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one bad event must not stop the pump
                log.exception("AMI event %s failed", getattr(ev, "name", "?"))

    def _lane(self, key: str) -> asyncio.Queue[Any]:
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = asyncio.Queue()
            task = asyncio.get_running_loop().create_task(self._run_lane(key, lane))
            self._lane_tasks.add(task)
            task.add_done_callback(self._lane_tasks.discard)
        return lane

    async def _run_lane(self, key: str, lane: asyncio.Queue[Any]) -> None:
        while True:
            try:
                ev = await asyncio.wait_for(lane.get(), LANE_IDLE_S)
            except TimeoutError:
                if lane.empty():  # no await between the check and the removal: nothing is lost
                    del self._lanes[key]
                    return
                continue
            try:
                await self.voice.on_ami_event(ev)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one bad event must not stop the call's lane
                log.exception("AMI event %s failed", getattr(ev, "name", "?"))

    async def close(self) -> None:
        if self._sync_task is not None:
            self._sync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sync_task
        if self.ami is not None:
            await self.ami.close()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        for task in list(self._lane_tasks):
            task.cancel()
        await asyncio.gather(*self._lane_tasks, return_exceptions=True)
        if self.agi is not None:
            await self.agi.close()


def _resync_lists(events: tuple[Any, ...]) -> tuple[list[Any], list[Any]]:
    channels = [e for e in events if e.name == "CoreShowChannel"]
    queue = [e for e in events if e.name in ("QueueParams", "QueueMember", "QueueEntry")]
    return channels, queue


class SimulatorPhone(Softphone):
    """The demo's soft-phone buttons press the simulated agent phone's keys."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim

    async def answer(self, extension: str) -> bool:
        return bool(self.sim.answer_phone(_number(extension)))

    async def hangup(self, extension: str) -> bool:
        return bool(self.sim.hangup_phone(_number(extension)))


def _number(extension: str) -> str:
    return extension.split("/", 1)[-1].split("@", 1)[0]
