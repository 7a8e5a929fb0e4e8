"""A burst of work for the other processes (2,000 consoles signing in at once, each asking the
others to resume its call; an AMI event storm) must not open one Redis connection per item: the
client pool has a limit (redis-py raises MaxConnectionsError past it), and the heartbeat, the live
channel and the lease share it. One sender task batches the items in a pipeline."""
from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest

from callcenter.keys import REDIS
from callcenter.scaleout.setup import SCALEOUT
from tests.callcenter.scaleout.test_two_processes import process, until

pytestmark = pytest.mark.timeout(120)


async def test_a_burst_of_forwarded_work_is_sent_on_a_bounded_number_of_connections(database, redis_prefix):
    if database.is_sqlite:
        pytest.skip("several processes share PostgreSQL")
    url, prefix = redis_prefix
    env = {"CC_REDIS__URL": url, "CC_REDIS__PREFIX": prefix, "CC_SCALEOUT__ENABLED": "true",
           "CC_AMI__ENABLED": "false", "CC_AGI__ENABLED": "false", "CC_CHAT__DEMO_SITE_PORT": ""}
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(process(database, env))
        b = await stack.enter_async_context(process(database, env))
        sa = a[SCALEOUT]

        async def sees_b() -> bool:
            return len(await sa.others()) == 1
        await until(sees_b)
        pool = a[REDIS].connection_pool
        before = len(pool._available_connections) + len(pool._in_use_connections)
        n = 2_000  # more than the pool's limit (redis-py's default: 100)
        got = await asyncio.gather(*(sa._broadcast("resume", 10**9 + i) for i in range(n)))
        assert got == [1] * n  # every item reached the one other process
        for i in range(n):
            sa._post("resume", 10**9 + i)  # fire-and-forget, as AMI events
        await until(lambda: _true(sa._work_out.empty()))
        after = len(pool._available_connections) + len(pool._in_use_connections)
        assert after - before <= 3, (before, after)
        assert b[SCALEOUT] is not None


async def _true(v: bool) -> bool:
    return v
