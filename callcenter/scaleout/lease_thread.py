"""The AMI leader lease kept from a thread of its own (its own event loop and Redis connection).

Renewed from the process's main event loop, the lease was lost whenever that loop lagged longer
than the lease (a CPU-starved process with 2,000 consoles and a burst of work: seconds); the other
process took over, the AMI link moved, the events forwarded meanwhile carried the old token and
were refused, and calls in flight were lost. Here a lagging main loop no longer costs the lease.
A main loop that stops answering for `stall_s` (hung, not merely late) gives the lease up, as a
dead process would.

The callbacks (`on_elected`, `on_lost`, `floor`) run on the main loop; the election steps run in
the thread."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from callcenter.scaleout.lease import Elector, Lease

log = logging.getLogger(__name__)


class _Watched(Elector):
    """An Elector that lets the lease go while `alive()` says the main loop is stuck."""

    def __init__(self, *a: Any, alive: Callable[[], bool], **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.alive = alive

    async def step(self) -> None:
        if not self.alive():
            if self.leader:
                await self._lose("the process's event loop does not answer")
                await self.lease.release()
            return
        await super().step()


class ThreadedElector:
    """`Elector` for the main loop's code (`leader`, `run()`, `_lose()`), run in a thread."""

    def __init__(self, url: str, prefix: str, name: str, owner: str, ttl_s: float, *,
                 on_elected: Callable[[int], Awaitable[None]], on_lost: Callable[[], Awaitable[None]],
                 floor: Callable[[], Awaitable[int]] | None = None, stall_s: float | None = None) -> None:
        self.url, self.prefix, self.name, self.owner, self.ttl_s = url, prefix, name, owner, ttl_s
        self.on_elected, self.on_lost, self.floor = on_elected, on_lost, floor
        self.stall_s = stall_s if stall_s is not None else max(3 * ttl_s, 10.0)
        self.elector: _Watched | None = None
        self._main: asyncio.AbstractEventLoop | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._beat = time.monotonic()
        self._ready = threading.Event()

    @property
    def leader(self) -> bool:
        return self.elector is not None and self.elector.leader

    # ---- on the main loop -----------------------------------------------------------------------
    async def run(self) -> None:
        self._main = asyncio.get_running_loop()
        thread = threading.Thread(target=self._thread, name=f"lease-{self.name}", daemon=True)
        thread.start()
        try:
            while True:  # the heartbeat the thread checks before each renewal
                self._beat = time.monotonic()
                await asyncio.sleep(0.5)
        finally:
            await asyncio.to_thread(self._ready.wait, 5)
            if self._loop is not None and self._task is not None:
                with contextlib.suppress(RuntimeError):  # the thread's loop already ended
                    self._loop.call_soon_threadsafe(self._task.cancel)
            await asyncio.to_thread(thread.join, 10)

    async def _lose(self, why: str) -> None:
        """Step down now (e.g. a newer token reached the database)."""
        if self.elector is not None and self._loop is not None:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.elector._lose(why), self._loop))

    # ---- in the thread --------------------------------------------------------------------------
    def _thread(self) -> None:
        try:
            asyncio.run(self._thread_main())
        except Exception:  # noqa: BLE001 - logged; the process goes on without the lease
            log.exception("lease %s: the lease thread failed", self.name)
        finally:
            self._ready.set()

    def _on_main(self, coro: Awaitable[Any]) -> Awaitable[Any]:
        assert self._main is not None
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._main))  # type: ignore[arg-type]

    async def _thread_main(self) -> None:
        import redis.asyncio as aioredis

        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        client = aioredis.from_url(self.url, socket_timeout=2.0, single_connection_client=True)

        async def elected(token: int) -> None:
            await self._on_main(self.on_elected(token))

        async def lost() -> None:
            await self._on_main(self.on_lost())

        async def floor() -> int:
            return int(await self._on_main(self.floor())) if self.floor is not None else 0

        self.elector = _Watched(Lease(client, self.prefix, self.name, self.owner, self.ttl_s),
                                on_elected=elected, on_lost=lost, floor=floor,
                                alive=lambda: time.monotonic() - self._beat < self.stall_s)
        self._ready.set()
        try:
            await self.elector.run()
        except asyncio.CancelledError:
            pass
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()
