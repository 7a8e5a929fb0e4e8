"""Live state that every process must see (an agent's state, offers and messages for a console,
wallboard updates): published on Redis pub/sub ``P live``, delivered by every process to the
consoles it holds. Pub/sub loses what is sent while a subscriber is away, so after every
(re)subscription the subscriber runs `on_resync` (e.g. push every local agent's state again from
the shared routing store). Work that exactly one process must do goes through streams instead
(outbox.py)."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


class LiveBus:
    def __init__(self, client: Any, prefix: str, origin: str,
                 deliver: Callable[[dict[str, Any]], None],
                 on_resync: Callable[[], Awaitable[None]] | None = None) -> None:
        self.client, self.channel, self.origin = client, f"{prefix}live", origin
        self.deliver, self.on_resync = deliver, on_resync
        self.subscribed = asyncio.Event()
        self.published = 0
        self.dropped = 0  # messages that could not be published (Redis away): the resync covers them
        self._out: asyncio.Queue[str] = asyncio.Queue(maxsize=100_000)

    def publish(self, message: dict[str, Any]) -> None:
        """Queue a message for the other processes (never blocks, never raises)."""
        try:
            self._out.put_nowait(json.dumps({"o": self.origin, **message}))
        except asyncio.QueueFull:
            self.dropped += 1

    async def _sender(self) -> None:
        while True:
            raw = await self._out.get()
            try:
                await self.client.publish(self.channel, raw)
                self.published += 1
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - Redis away: the receivers resync when it is back
                self.dropped += 1

    async def run(self) -> None:
        sender = asyncio.get_running_loop().create_task(self._sender())
        try:
            await self._listen_forever()
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    async def _listen_forever(self) -> None:
        delay, first = 0.2, True
        while True:
            pubsub = self.client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                self.subscribed.set()
                if not first and self.on_resync is not None:
                    await self.on_resync()
                first, delay = False, 0.2
                async for raw in pubsub.listen():
                    if raw.get("type") != "message":
                        continue
                    try:
                        msg = json.loads(raw["data"])
                        origin = msg.pop("o", None)
                        if origin != self.origin:
                            self.deliver({**msg, "from": origin})
                    except Exception:  # noqa: BLE001 - one bad message must not stop the bus
                        log.exception("live message failed")
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - Redis down: retry, then resync
                log.warning("live channel unavailable (%s); retrying in %.1f s", e, delay)
            finally:
                self.subscribed.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            first = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
