"""What the reports need from a running center (issue 16), besides the interactions' rollup
(crm_core/reports.py, written with the interactions themselves):

- agent time: every change of an agent's state (ready, busy, wrap-up, not ready with its
  reason) closes the previous period, which is added to `report_agent_time` per 15-minute slot;
- the daily tick: the daily summary emails (services/report_mail.py) and the customer snapshot.

The clock is injected (`utc`), so tests drive time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from callcenter.services import report_mail
from crm_core import reports as R

log = logging.getLogger(__name__)
RECORDED = frozenset({"ready", "busy", "wrap_up", "not_ready"})


class ReportFeed:
    def __init__(
        self, center: Any, settings: Any, *, utc: Callable[[], datetime] | None = None, every_s: float = 60.0
    ) -> None:
        self.center, self.settings = center, settings
        self.utc = utc or (lambda: datetime.now(UTC))
        self.every_s = every_s
        self.current: dict[str, tuple[str, str | None, datetime]] = {}  # agent id: state, reason, since
        self.tasks: set[asyncio.Task[Any]] = set()
        self.stop = asyncio.Event()
        self.daily: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.center.directory.on_change.append(self.agent_changed)
        self.daily = asyncio.get_running_loop().create_task(
            report_mail.run_daily(self.center.store, self.settings, self.utc, self.every_s, self.stop,
                                  claim=self._claim)
        )

    async def _claim(self, key: str, ttl_s: float) -> bool:
        """Work done once for the center: with scale-out, by the process that claims it."""
        so = getattr(self.center, "scaleout", None)
        return True if so is None else bool(await so.claim_once(key, ttl_s))

    def agent_changed(self, agent_id: str) -> None:
        st = self.center.directory.status(agent_id)
        state, reason = str(st["state"]), st.get("reason")
        now = self.utc()
        prev = self.current.get(agent_id)
        if prev is not None and (prev[0], prev[1]) == (state, reason):
            return
        if state in RECORDED:
            self.current[agent_id] = (state, reason if state == "not_ready" else None, now)  # type: ignore[arg-type]
        else:
            self.current.pop(agent_id, None)
        if prev is not None and now > prev[2]:
            self._spawn(self._write(agent_id, *prev, now))

    async def _write(
        self, agent_id: str, state: str, reason: str | None, start: datetime, end: datetime
    ) -> None:
        agent = self.center.directory.agents.get(agent_id)
        teams = getattr(agent, "teams", ()) or ()
        try:
            await R.add_agent_time(
                self.center.store.db, int(agent_id), min(teams) if teams else "", state, reason, start, end
            )
        except Exception:  # noqa: BLE001 - a lost period is logged; the center goes on
            log.exception("agent time of %s (%s) not recorded", agent_id, state)

    def _spawn(self, aw: Any) -> None:
        task = asyncio.ensure_future(aw)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def flush(self) -> None:
        """Wait for the agent-time writes under way (tests; shutdown)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def close(self) -> None:
        now = self.utc()
        for agent_id, (state, reason, since) in list(self.current.items()):  # close the open periods
            if now > since:
                self._spawn(self._write(agent_id, state, reason, since, now))
        self.current.clear()
        self.stop.set()
        if self.daily is not None:
            self.daily.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.daily
        await self.flush()
        with contextlib.suppress(ValueError):
            self.center.directory.on_change.remove(self.agent_changed)


def install(center: Any, settings: Any = None, *, utc: Callable[[], datetime] | None = None) -> ReportFeed:
    feed = ReportFeed(center, settings, utc=utc)
    center.reports = feed
    feed.start()
    return feed
