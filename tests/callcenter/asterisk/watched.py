"""A started simulator with an AMI client logged in whose every event is kept in a list and fed to
a CallTracker (shared set-up of test_atxfer.py and test_confbridge.py)."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from callcenter.asterisk.ami import Event
from callcenter.asterisk.ami_client import AMIClient
from callcenter.asterisk.simulator import Simulator
from callcenter.asterisk.tracker import CallTracker

Env = tuple[Simulator, AMIClient, list[Event], CallTracker]


@asynccontextmanager
async def watched_sim(sim: Simulator) -> AsyncIterator[Env]:
    """Start `sim` and log in over real TCP; yields (sim, client, seen events, tracker)."""
    await sim.start()
    client = AMIClient("127.0.0.1", sim.ami_port, "cc", "ccsecret", ping_interval=None, reconnect=False)
    await client.start()
    seen: list[Event] = []
    tracker = CallTracker()

    def keep(ev: object) -> None:
        if isinstance(ev, Event):
            seen.append(ev)
            tracker.feed(ev)

    client.subscribe(callback=keep)
    yield sim, client, seen, tracker
    await client.close()
    await sim.close()


async def until(seen: list[Event], pred: Callable[[Event], bool], timeout: float = 5.0) -> Event:
    """The first event in `seen` that `pred` accepts, waiting up to `timeout` seconds for it."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        for e in seen:
            if pred(e):
                return e
        await asyncio.sleep(0.01)
    raise AssertionError(f"event not seen; last: {[e.name for e in seen[-10:]]}")
