"""A lease in Redis with a fencing token: at most one holder at a time, and a number that grows
with every new holder, so that writes made on behalf of the lease can be refused when stale.

Lease times come from the caller's clock (`now`, seconds), not from Redis key expiry, so tests drive
time; every process of a center must use the same time base (wall-clock seconds in production).

Keys: ``P lease:<name>`` hash (owner, until, token) and ``P lease:<name>:seq`` the token counter.
If Redis lost its data, the counter restarts: `acquire(floor=...)` takes the newest token the
database has seen (crm_core.fencing.fence_token) so the new token is above it anyway.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError

log = logging.getLogger(__name__)

_ACQUIRE = """
local owner = redis.call('HGET', KEYS[1], 'owner')
local till = tonumber(redis.call('HGET', KEYS[1], 'until') or '-1')
local now, ttl, floor = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if owner == ARGV[1] and till >= now then
  redis.call('HSET', KEYS[1], 'until', tostring(now + ttl))
  return tonumber(redis.call('HGET', KEYS[1], 'token'))
end
if owner and till >= now then return 0 end
local t = redis.call('INCR', KEYS[2])
if t <= floor then t = floor + 1; redis.call('SET', KEYS[2], t) end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'until', tostring(now + ttl), 'token', t)
return t
"""
_RENEW = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'token')) ~= tonumber(ARGV[2]) then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'until')) < tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], 'until', tostring(tonumber(ARGV[3]) + tonumber(ARGV[4])))
return 1
"""
_RELEASE = """
local token = tonumber(redis.call('HGET', KEYS[1], 'token'))
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] and token == tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1]); return 1
end
return 0
"""
# A write to a Redis hash on behalf of the lease: refused unless the token is the current one.
_FENCED_HSET = """
local cur = tonumber(redis.call('HGET', KEYS[1], 'token') or '0')
if cur ~= tonumber(ARGV[1]) then return redis.error_reply('STALE token ' .. ARGV[1] .. ' current ' .. cur) end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
"""


class Lease:
    """One named lease. `token` is this holder's fencing token (0 when not held)."""

    def __init__(self, client: Any, prefix: str, name: str, owner: str, ttl_s: float = 5.0) -> None:
        self.client, self.name, self.owner, self.ttl_s = client, name, owner, ttl_s
        self.key = f"{prefix}lease:{name}"
        self.seq_key = f"{self.key}:seq"
        self.token = 0
        self.until = 0.0

    async def acquire(self, now: float, floor: int = 0) -> int:
        """Take (or keep) the lease; returns the token, 0 when another holder's lease is live."""
        t = int(await self.client.eval(_ACQUIRE, 2, self.key, self.seq_key, self.owner, repr(now),
                                       repr(self.ttl_s), floor))
        if t:
            self.token, self.until = t, now + self.ttl_s
        return t

    async def renew(self, now: float) -> bool:
        ok = bool(await self.client.eval(_RENEW, 1, self.key, self.owner, self.token, repr(now),
                                         repr(self.ttl_s))) if self.token else False
        if ok:
            self.until = now + self.ttl_s
        else:
            self.token = 0
        return ok

    async def release(self) -> None:
        if self.token:
            with contextlib.suppress(RedisError, OSError):
                await self.client.eval(_RELEASE, 1, self.key, self.owner, self.token)
        self.token = 0

    async def holder(self) -> tuple[str | None, int]:
        h = await self.client.hgetall(self.key)
        get = (lambda k: h.get(k) or h.get(k.encode()))  # noqa: E731 - bytes or str clients
        owner = get("owner")
        return (owner.decode() if isinstance(owner, bytes) else owner), int(get("token") or 0)

    async def fenced_hset(self, token: int, key: str, field: str, value: str) -> None:
        """HSET key field value, refused (redis ResponseError 'STALE ...') unless token is current."""
        await self.client.eval(_FENCED_HSET, 2, self.key, key, token, field, value)


class Elector:
    """Keeps trying to hold a lease and says when it is won or lost.

    `on_elected(token)` runs when this process becomes the holder, `on_lost()` when it stops
    being it: its renewal was refused, or Redis did not answer before the lease could have
    expired (a holder that cannot prove it holds the lease steps down)."""

    def __init__(self, lease: Lease, *, on_elected: Callable[[int], Awaitable[None]],
                 on_lost: Callable[[], Awaitable[None]], clock: Callable[[], float] = time.time,
                 floor: Callable[[], Awaitable[int]] | None = None, every_s: float | None = None) -> None:
        self.lease, self.on_elected, self.on_lost = lease, on_elected, on_lost
        self.clock, self.floor = clock, floor
        self.every_s = every_s if every_s is not None else lease.ttl_s / 4
        self.leader = False
        self.changed = asyncio.Event()  # set at every change (tests and benches wait on it)
        self._elected: asyncio.Task[None] | None = None

    async def step(self) -> None:
        now = self.clock()
        try:
            if self.leader:
                if not await self.lease.renew(now):
                    await self._lose("renewal refused")
            else:
                floor = await self.floor() if self.floor is not None else 0
                token = await self.lease.acquire(now, floor)
                if token:
                    self.leader = True
                    log.info("lease %s: elected with token %d", self.lease.name, token)
                    # the holder's work (e.g. the AMI login and resync) may take longer than the
                    # lease: it runs on its own while the renewals go on
                    self._elected = asyncio.get_running_loop().create_task(self._run_elected(token))
        except (RedisError, OSError) as e:
            if self.leader and self.clock() >= self.lease.until - self.every_s:
                await self._lose(f"Redis unavailable ({type(e).__name__})")
            else:
                log.warning("lease %s: Redis unavailable (%s)", self.lease.name, e)

    async def _run_elected(self, token: int) -> None:
        try:
            await self.on_elected(token)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - e.g. the AMI login failed: give the lease up
            log.exception("lease %s: the holder's start failed; stepping down", self.lease.name)
            await self._lose("start failed")
            await self.lease.release()
            return
        self.changed.set()

    async def _stop_elected(self) -> None:
        task, self._elected = self._elected, None
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _lose(self, why: str) -> None:
        log.warning("lease %s: lost (%s)", self.lease.name, why)
        self.leader = False
        self.lease.token = 0
        await self._stop_elected()
        await self.on_lost()
        self.changed.set()

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.step()
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - a failing callback must not end the election
                    log.exception("lease %s: step failed", self.lease.name)
                await asyncio.sleep(self.every_s)
        finally:
            await self._stop_elected()
            if self.leader:
                self.leader = False
                with contextlib.suppress(Exception):
                    await self.on_lost()
                await self.lease.release()
