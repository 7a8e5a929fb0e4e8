"""The real app on a loopback port, run in its own thread and event loop, so that synchronous
fuzzers (Hypothesis `@given`, schemathesis) can drive it over real HTTP and websockets while
shrinking as usual. One migrated SQLite database per server, seeded with a user of every role.

    with CenterThread(tmp_path) as srv:
        srv.base, srv.tokens["admin"], srv.call(coro)   # run a coroutine on the server's loop
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from callcenter.app import build_store
from callcenter.settings import load_settings
from crm_core.db import Database
from tests.callcenter.voice_harness import running_center, seed_people

T = TypeVar("T")
PASSWORD = "fuzz-password-123"
# how many examples the I/O fuzzers draw: a few in CI, many more under `make fuzz`
BUDGET = 25 if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz" and not os.environ.get("CI") else 1


def budget(n: int) -> int:
    return n * BUDGET


class CenterThread:
    def __init__(self, tmp: Path, **env: str) -> None:
        self.tmp, self.env = tmp, env
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-center", daemon=True)
        self.base = ""
        self.tokens: dict[str, str] = {}
        self.ids: dict[str, Any] = {}
        self.rc: Any = None
        self._stop: asyncio.Event | None = None
        self._done: Any = None

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _main(self, ready: asyncio.Future[None]) -> None:
        db = Database(f"sqlite+aiosqlite:///{self.tmp}/fuzz.db")
        await db.upgrade()
        store = build_store(load_settings(env={}), db)
        people = await seed_people(store)
        self.ids["customer"] = people["vip"].id
        await store.create_team("red")
        root = await store.create_user("root", PASSWORD, roles=["agent", "supervisor", "admin"],
                                       display_name="Root", team="red")
        self.ids["root"] = root.id
        spare = await store.create_user("spare", PASSWORD, roles=["agent"], display_name="Spare", team="red")
        self.ids["spare"] = spare.id  # the user the API fuzzer may change (never root: its tokens)
        for role in ("agent", "supervisor", "admin"):
            _t, self.tokens[role] = await store.create_api_token(root.id, f"fuzz {role}", role)
        self._stop = asyncio.Event()
        try:
            async with running_center(db, CC_WEB__API_RATE_PER_MINUTE="1000000",
                                      CC_WEB__API_BURST="1000000", **self.env) as rc:
                self.rc, self.base = rc, rc.base
                ready.set_result(None)
                await self._stop.wait()
        finally:
            await db.close()

    def __enter__(self) -> CenterThread:
        self.thread.start()

        async def start() -> None:
            started = asyncio.get_running_loop().create_future()
            self._done = asyncio.ensure_future(self._main(started))
            await asyncio.wait({started, self._done}, return_when=asyncio.FIRST_COMPLETED)
            if self._done.done():
                self._done.result()  # raise why it did not start

        self.call(start(), timeout=120)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._stop is not None
            self._stop.set()
            with contextlib.suppress(Exception):
                await self._done

        try:
            self.call(stop(), timeout=60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()
