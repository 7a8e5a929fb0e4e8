"""Connected consoles: one queue of outgoing messages per websocket, grouped by user."""
from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

from callcenter.facade import PROTOCOL_VERSION

MAX_BACKLOG = 1000  # a console that stops reading is cut off rather than growing memory


class Link:
    """One console connection (implements facade.ConsoleLink)."""

    def __init__(self, hub: ConsoleHub, user_id: int) -> None:
        self.hub = hub
        self.user_id = user_id
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.closed = False

    def put(self, message: dict[str, Any]) -> None:
        if self.closed:
            return
        if self.queue.qsize() >= MAX_BACKLOG:
            self.closed = True
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(message)

    async def messages(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            msg = await self.queue.get()
            if msg is None:
                return
            yield msg

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(None)
        await self.hub.disconnect(self)


class ConsoleHub:
    def __init__(self) -> None:
        self._links: dict[int, set[Link]] = defaultdict(set)
        self.on_last_disconnect: list[Any] = []  # async callables (user_id)
        # Several processes (callcenter/scaleout/setup.py): consoles held by the other processes;
        # send(user_id, msg) -> how many got it, connected(user_id), links_changed(user_id, on).
        self.remote: Any = None

    def connect(self, user_id: int) -> Link:
        link = Link(self, user_id)
        first = not self._links.get(user_id)
        self._links[user_id].add(link)
        if first and self.remote is not None:
            self.remote.links_changed(user_id, True)
        return link

    async def disconnect(self, link: Link) -> None:
        links = self._links.get(link.user_id)
        if not links or link not in links:
            return
        links.discard(link)
        if not links:
            del self._links[link.user_id]
            if self.remote is not None:
                self.remote.links_changed(link.user_id, False)
                if self.remote.connected(link.user_id):
                    return  # the user's console is open on another process
            for callback in self.on_last_disconnect:
                await callback(link.user_id)

    def connected(self, user_id: int) -> bool:
        if self._links.get(user_id):
            return True
        return self.remote is not None and bool(self.remote.connected(user_id))

    def local_users(self) -> list[int]:
        return list(self._links)

    def send(self, user_id: int, type_: str, **fields: Any) -> int:
        """Queue a server message for every console of the user; returns how many got it."""
        msg = {"type": type_, "v": PROTOCOL_VERSION, **fields}
        n = self.deliver(user_id, msg)
        if self.remote is not None:
            n += self.remote.send(user_id, msg)
        return n

    def deliver(self, user_id: int, msg: dict[str, Any]) -> int:
        """To this process's consoles of the user only."""
        links = self._links.get(user_id, ())
        for link in links:
            link.put(msg)
        return len(links)
