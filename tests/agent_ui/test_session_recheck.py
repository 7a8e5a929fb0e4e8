"""Many consoles re-check their sessions without taking the whole database pool: a few checks
at a time per process (2,000 consoles opened together used to check together and time out)."""
from __future__ import annotations

import asyncio

import pytest

from agent_ui.routes import _watch_session

pytestmark = pytest.mark.timeout(60)


class _Ws:
    def __init__(self) -> None:
        self.closed = False
        self.code: int | None = None

    async def close(self, code: int, message: bytes) -> None:
        self.closed, self.code = True, code


class _Facade:
    def __init__(self) -> None:
        self.running = self.peak = self.calls = 0
        self.gone = asyncio.Event()

    async def session(self, token: str):
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(0.01)  # a database round trip
        finally:
            self.running -= 1
        self.calls += 1
        return None if self.gone.is_set() else object()


async def test_session_rechecks_of_many_consoles_are_bounded_and_still_close_ended_sessions():
    facade, sockets = _Facade(), [_Ws() for _ in range(200)]
    watchers = [asyncio.create_task(_watch_session(facade, "t", ws, 0.05)) for ws in sockets]
    while facade.calls < 400:  # every console checked about twice
        await asyncio.sleep(0.01)
    facade.gone.set()  # the sessions end: every socket is closed with 4401
    await asyncio.wait_for(asyncio.gather(*watchers), 30)
    assert facade.peak <= 4, facade.peak
    assert {ws.code for ws in sockets} == {4401}
