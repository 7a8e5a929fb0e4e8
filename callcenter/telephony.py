"""The PBX edge: the FastAGI server and the AMI client, connected to the voice service.

With a real Asterisk, `settings.ami` and `settings.agi` say where. With the built-in simulator
(the demo), the simulator's AMI server and FastAGI client are pointed at this process."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from callcenter.agi_routes import handlers as extra_handlers
from callcenter.asterisk.ami_client import AMIClient, LocalEvent
from callcenter.asterisk.fastagi import FastAgiServer
from callcenter.asterisk.queue_sync import AgentState, DesiredAgent, QueueSync
from callcenter.asterisk.tracker import CallTracker
from callcenter.services.agents import Agent
from callcenter.services.voice import Softphone, VoiceService

log = logging.getLogger(__name__)
AMI_EVENT_CLASSES = "system,call,agent,user"  # the login's event mask
SYNC_PAUSE_S = 0.2  # between two fallback-queue sync passes while changes keep coming
FULL_SYNC_S = 5.0  # the fallback queue sync looks at every agent at least this often


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
    _resync_again: bool = False  # a resync asked for while a pass was running
    _lanes: dict[str, deque[Any]] = field(default_factory=dict)
    _desired: dict[str, DesiredAgent] = field(default_factory=dict)
    _dirty: set[str] = field(default_factory=set)
    _full_at: float = -1e9  # monotonic time of the last pass over every agent
    _devices: dict[str, Agent] = field(default_factory=dict)  # device or extension -> agent
    _devices_n: int = -1
    _devices_at: float = -1e9
    _lane_tasks: set[asyncio.Task[None]] = field(default_factory=set)
    forward: Any = None  # several processes: called with each event (callcenter/scaleout/setup.py)

    async def start_agi(self, host: str, port: int, max_sessions: int) -> FastAgiServer:
        handlers = {**extra_handlers(), **self.voice.agi_handlers()}
        self.agi = FastAgiServer(handlers, host=host, port=port, max_sessions=max_sessions)
        await self.agi.start()
        log.info("FastAGI listening on %s:%s", host, self.agi.port)
        return self.agi

    async def start_ami(self, host: str, port: int, username: str, secret: str) -> AMIClient:
        # Only the event classes the center uses: dialplan (Newexten, VarSet), agi (AGIExec*)
        # and dtmf events are most of a call's traffic and nothing here reads them.
        self.ami = AMIClient(host, port, username, secret, auth="md5", events=AMI_EVENT_CLASSES)
        self.voice.ami = self.ami  # call controls (hold, transfer, ...) send actions through it
        # never drop an event: a lost DialEnd would leave a call ringing in our books
        sub = self.ami.subscribe(None, maxsize=10_000_000)
        self._pump = asyncio.get_running_loop().create_task(self._read(sub))
        await self.ami.start()
        log.info("AMI connected to %s:%s as %s", host, port, username)
        self.sync = QueueSync(self.ami, self.fallback_queue, self.tracker)
        self.sync.on_device_state.append(self._device_state)
        self.voice.directory.on_change.append(self._agent_changed)
        self.schedule_sync(resync=True)
        return self.ami

    # ---- the fallback queue follows the agents' state -------------------------------------------
    def desired_members(self, records: dict[str, Any] | None = None) -> dict[str, DesiredAgent]:
        """Ready agents are unpaused members of the fallback queue, not-ready, busy or in
        wrap-up ones are paused, offline ones are not members. `records`: the agents' routing
        records read beforehand (see _records)."""
        out = {}
        for aid in self.voice.directory.agents:
            desired = self._desired_for(aid, records)
            if desired is not None:
                out[aid] = desired
        return out

    async def _records(self, ids: list[str]) -> dict[str, Any] | None:
        """The agents' routing records in one batch off the event loop, on a shared (Redis)
        store; None: read each on its own (the in-memory store). Every agent x one blocking
        round trip every FULL_SYNC_S stalled the event loop under 2,000 agents."""
        many = getattr(self.voice.directory.engine.store, "aagents", None)
        return await many(ids) if many is not None and ids else None

    def _desired_for(self, aid: str, records: dict[str, Any] | None = None) -> DesiredAgent | None:
        directory = self.voice.directory
        agent = directory.agents.get(aid)
        if agent is None or not agent.dial_string:
            return None
        state = (directory.status(aid) if records is None else
                 directory.status_of(aid, records.get(aid)))["state"]
        desired = (AgentState.READY if state == "ready" else
                   AgentState.OFFLINE if state == "offline" else AgentState.NOT_READY)
        return DesiredAgent(desired, agent.dial_string, name=agent.username)

    async def _desired_now(self) -> dict[str, DesiredAgent] | None:
        """desired_members(), recomputed only for the agents that changed since the last pass
        (every agent at least every FULL_SYNC_S, in case a change came without a notice);
        None when nothing changed."""
        now = time.monotonic()
        changed = True
        dirty = list(self._dirty)
        self._dirty.clear()  # (changes from now on are for the next pass)
        if now - self._full_at >= FULL_SYNC_S:
            records = await self._records(list(self.voice.directory.agents))
            self._desired, self._full_at = self.desired_members(records), now
        else:
            changed = False
            records = await self._records(dirty)
            for aid in dirty:
                desired = self._desired_for(aid, records)
                if desired == self._desired.get(aid):
                    continue
                changed = True
                if desired is None:
                    del self._desired[aid]
                else:
                    self._desired[aid] = desired
        return self._desired if changed else None

    def _agent_changed(self, agent_id: str) -> None:
        self._dirty.add(agent_id)
        self.schedule_sync()

    def schedule_sync(self, *, resync: bool = False) -> None:
        """Coalesce agent changes into one QueueAdd/QueuePause/QueueRemove pass at a time."""
        if self.sync is None:
            return
        if self._sync_task is not None and not self._sync_task.done():
            self._sync_again = True
            self._resync_again = self._resync_again or resync
            return
        self._sync_task = asyncio.get_running_loop().create_task(self._run_sync(resync))

    async def _run_sync(self, resync: bool) -> None:
        assert self.sync is not None
        while True:
            self._sync_again = False
            try:
                if resync:
                    self._full_at = -1e9
                desired = await self._desired_now()
                if desired is not None:
                    await self.sync.apply(desired, resync=resync)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - AMI down: the next change or resync retries
                log.warning("fallback queue sync failed", exc_info=True)
                return
            resync, self._resync_again = self._resync_again, False
            if not self._sync_again:
                return
            await asyncio.sleep(SYNC_PAUSE_S)  # under load, one pass carries many changes

    def _device_state(self, device: str, state: str) -> None:
        agent = self._agent_of_device(device)
        if agent is not None:
            self.voice.spawn(self.voice.device_state(agent.agent_id, state))

    def _agent_of_device(self, device: str) -> Agent | None:
        """directory.by_device() through a map rebuilt when the agents change (and every
        FULL_SYNC_S): a call's DeviceStateChange events no longer scan every agent."""
        directory = self.voice.directory
        for _attempt in range(2):
            if (len(directory.agents) != self._devices_n
                    or time.monotonic() - self._devices_at >= FULL_SYNC_S):
                self._devices = {}
                for agent in directory.agents.values():
                    for key in (agent.dial_string, agent.extension):
                        if key:
                            self._devices.setdefault(key, agent)
                self._devices_n, self._devices_at = len(directory.agents), time.monotonic()
            found = self._devices.get(device)
            if found is None or directory.agents.get(found.agent_id) is found:
                return found
            self._devices_at = -1e9  # that agent was replaced: rebuild once
        return directory.by_device(device)

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
                        if self.forward is not None:
                            self.forward(ev)
                    continue
                self.tracker.feed(ev)
                if self.forward is not None:
                    self.forward(ev)
                self._lane(ev.get("Linkedid") or "").append(ev)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one bad event must not stop the pump
                log.exception("AMI event %s failed", getattr(ev, "name", "?"))

    def _lane(self, key: str) -> deque[Any]:
        """The call's lane: a queue and, while it has events, one task working through them."""
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = deque()
            task = asyncio.get_running_loop().create_task(self._run_lane(key, lane))
            self._lane_tasks.add(task)
            task.add_done_callback(self._lane_tasks.discard)
        return lane

    async def _run_lane(self, key: str, lane: deque[Any]) -> None:
        try:
            while lane:  # no await between the last check and the removal: nothing is lost
                ev = lane.popleft()
                try:
                    await self.voice.on_ami_event(ev)
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - one bad event must not stop the call's lane
                    log.exception("AMI event %s failed", getattr(ev, "name", "?"))
        finally:
            if self._lanes.get(key) is lane:
                del self._lanes[key]

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
