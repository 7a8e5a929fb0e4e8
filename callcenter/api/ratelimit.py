"""The API rate limit: a token bucket per caller (API token, else client address), in this process.

    limiter = RateLimiter(per_minute=600, burst=60, clock=time.monotonic)
    wait = limiter.take("token:ab12...")   # 0.0: go ahead; else seconds until one request is allowed

Each key holds `burst` requests and refills at `per_minute / 60` per second. The clock is injected
(monotonic seconds) so tests move time instead of sleeping.

With several processes on one Redis (scale-out), `SharedRateLimiter` keeps the buckets in Redis
(``P rl:<caller>``, one Lua script: atomic), so the limit holds for the center as a whole; its
clock is wall-clock seconds (the center's common time base). If Redis does not answer, each
process falls back to its own in-process bucket (logged): never everything refused, never unlimited.
`take_shared` is the same bucket for other callers (the email campaigns' send rate).
"""
from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class RateLimiter:
    def __init__(self, per_minute: int = 600, burst: int = 60,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 50_000) -> None:
        if per_minute < 1 or burst < 1:
            raise ValueError("the API rate limit needs per_minute >= 1 and burst >= 1")
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, key: str) -> float:
        """Spend one request of `key`: 0.0 when allowed, else the seconds to wait (nothing spent)."""
        now = self.clock()
        tokens, at = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)  # most recently used last
        while len(self._buckets) > self.max_keys:  # forget the idlest callers (they had full buckets)
            self._buckets.popitem(last=False)
        return wait


# A token bucket in a Redis hash (t: tokens, at: time): take up to ARGV[4] tokens, or, with
# ARGV[5] = 1, exactly one or none. Returns {granted, wait as a string (seconds)}.
_BUCKET = """
local now, rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local want, one = tonumber(ARGV[4]), ARGV[5] == '1'
local h = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens, at = tonumber(h[1]), tonumber(h[2])
if tokens == nil or at == nil then tokens, at = burst, now end
if now > at then tokens = math.min(burst, tokens + (now - at) * rate); at = now end
local granted, wait = 0, 0
if one then
  if tokens >= 1 then granted = 1; tokens = tokens - 1 else wait = (1 - tokens) / rate end
else
  granted = math.min(want, math.floor(tokens)); tokens = tokens - granted
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'at', tostring(at))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst / rate + 60) * 1000))
return {granted, tostring(wait)}
"""


async def take_shared(client: Any, key: str, now: float, rate_per_s: float, burst: float,
                      want: int = 1, *, one: bool = False) -> tuple[int, float]:
    """Spend tokens of the bucket `key` in Redis: (granted, seconds to wait when `one` and refused).
    Raises RedisError / OSError when Redis does not answer (the caller falls back)."""
    granted, wait = await client.eval(_BUCKET, 1, key, repr(now), repr(rate_per_s), repr(float(burst)),
                                      int(want), "1" if one else "0")
    return int(granted), float(wait.decode() if isinstance(wait, bytes) else wait)


class SharedRateLimiter:
    """The center-wide limiter: `await take_async(key)` counts in Redis, the local limiter else."""

    def __init__(self, local: RateLimiter, prefix: str, client: Callable[[], Any],
                 clock: Callable[[], float] = time.time) -> None:
        self.local, self.prefix, self.client = local, prefix, client
        self.rate, self.burst = local.rate, local.burst
        self._clock = clock
        self.fallbacks = 0  # requests counted locally because Redis did not answer
        self._warned_at = -1e18

    @property
    def clock(self) -> Callable[[], float]:
        return self._clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:  # tests: one injected clock for both
        self._clock = self.local.clock = clock

    def take(self, key: str) -> float:
        return self.local.take(key)

    async def take_async(self, key: str) -> float:
        client = self.client()
        if client is None:
            return self.local.take(key)
        now = self._clock()
        try:
            _granted, wait = await take_shared(client, f"{self.prefix}rl:{key}", now, self.rate,
                                               self.burst, one=True)
            return wait
        except (RedisError, OSError) as e:
            self.fallbacks += 1
            if now - self._warned_at >= 30:
                self._warned_at = now
                log.warning("API rate limit: Redis unavailable (%s); counting in this process", e)
            return self.local.take(key)


def caller_key(authorization: str, remote: str | None) -> str:
    """The bucket of a request: its bearer token (hashed; never kept in clear), else its address."""
    if authorization[:7].lower() == "bearer ":
        return "token:" + hashlib.sha256(authorization[7:].strip().encode()).hexdigest()[:32]
    return "ip:" + (remote or "unknown")


def retry_after(wait: float) -> str:
    return str(max(1, math.ceil(wait)))


__all__ = ["RateLimiter", "SharedRateLimiter", "caller_key", "retry_after", "take_shared"]
