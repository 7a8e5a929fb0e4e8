# ruff: noqa: E501
"""The simulator's clock: virtual seconds mapped onto the event loop's monotonic clock.

``ScaledClock(scale=0.01)`` makes a 30 s dialplan ``Wait`` last 0.3 s of real time, so tests
never wait for real call durations.  Every delay in the simulator goes through :meth:`sleep`;
``now()`` is in virtual seconds (monotonic), ``wall()`` is the virtual wall-clock epoch time.
"""
from __future__ import annotations

import asyncio
import time


class ScaledClock:
    def __init__(self, scale: float = 1.0, *, epoch: float | None = None) -> None:
        if scale <= 0:
            raise ValueError("scale must be > 0")
        self.scale = scale
        self._epoch = time.time() if epoch is None else epoch
        self._t0: float | None = None

    def _loop_time(self) -> float:
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            return time.monotonic()

    def now(self) -> float:
        """Virtual seconds since the clock was first read."""
        t = self._loop_time()
        if self._t0 is None:
            self._t0 = t
        return (t - self._t0) / self.scale

    def wall(self) -> float:
        return self._epoch + self.now()

    async def sleep(self, seconds: float) -> None:
        self.now()
        await asyncio.sleep(max(0.0, seconds) * self.scale)

    def real(self, seconds: float) -> float:
        """The real duration of ``seconds`` virtual seconds (for bounded waits in tests)."""
        return seconds * self.scale
