"""The API rate limit: a token bucket per caller (API token, else client address), in this process.

    limiter = RateLimiter(per_minute=600, burst=60, clock=time.monotonic)
    wait = limiter.take("token:ab12...")   # 0.0: go ahead; else seconds until one request is allowed

Each key holds `burst` requests and refills at `per_minute / 60` per second. The clock is injected
(monotonic seconds) so tests move time instead of sleeping. With several server processes each
keeps its own buckets, so a caller spread over N processes may get up to N times the rate.
"""
from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable


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


def caller_key(authorization: str, remote: str | None) -> str:
    """The bucket of a request: its bearer token (hashed; never kept in clear), else its address."""
    if authorization[:7].lower() == "bearer ":
        return "token:" + hashlib.sha256(authorization[7:].strip().encode()).hexdigest()[:32]
    return "ip:" + (remote or "unknown")


def retry_after(wait: float) -> str:
    return str(max(1, math.ceil(wait)))


__all__ = ["RateLimiter", "caller_key", "retry_after"]
