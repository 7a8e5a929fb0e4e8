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
from callcenter.asterisk.tracker import CallTracker
from callcenter.services.voice import Softphone, VoiceService

log = logging.getLogger(__name__)


@dataclass
class Telephony:
    """What is running: the FastAGI server, the AMI client and the call tracker."""

    voice: VoiceService
    agi: FastAgiServer | None = None
    ami: AMIClient | None = None
    tracker: CallTracker = field(default_factory=CallTracker)
    _pump: asyncio.Task[None] | None = None

    async def start_agi(self, host: str, port: int, max_sessions: int) -> FastAgiServer:
        handlers = {**extra_handlers(), **self.voice.agi_handlers()}
        self.agi = FastAgiServer(handlers, host=host, port=port, max_sessions=max_sessions)
        await self.agi.start()
        log.info("FastAGI listening on %s:%s", host, self.agi.port)
        return self.agi

    async def start_ami(self, host: str, port: int, username: str, secret: str) -> AMIClient:
        self.ami = AMIClient(host, port, username, secret, auth="md5")
        sub = self.ami.subscribe(None)
        self._pump = asyncio.get_running_loop().create_task(self._read(sub))
        await self.ami.start()
        log.info("AMI connected to %s:%s as %s", host, port, username)
        return self.ami

    async def _read(self, sub: AsyncIterator[Any]) -> None:
        """Every AMI event, in order: the tracker first, then the voice service."""
        async for ev in sub:
            try:
                if isinstance(ev, LocalEvent):
                    if ev.name == "Resynced":
                        self.tracker.resync(*_resync_lists(ev.events))
                        await self.voice.ami_resynced(set(self.tracker.calls))
                    continue
                self.tracker.feed(ev)
                await self.voice.on_ami_event(ev)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one bad event must not stop the pump
                log.exception("AMI event %s failed", getattr(ev, "name", "?"))

    async def close(self) -> None:
        if self.ami is not None:
            await self.ami.close()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
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
