"""Automatic ticket escalation and supervisor alerts.

Every `poll_s` (or when a test calls `check()`), open tickets that have used `threshold` of their
SLA are escalated to their escalation queue (sla_policy.py decides which), the escalation is
logged on the ticket (`ticket_events` kind `sla_escalated`), and an alert is stored and sent to
every connected supervisor's console (`alert`). A supervisor who connects later gets the alerts
nobody acknowledged yet. The routing engine's `Alert` decisions (a contact waiting too long)
become alerts the same way. Time comes from the injected UTC clock.

Team scope: an alert about a queue that teams own goes only to the supervisors of those teams
(and to admins); only they may acknowledge it (others get `not_found`, as for an unknown alert).
Alerts about a queue no team owns, or about no queue, go to every supervisor.

Several processes (scale-out): the ticket escalation is claimed in the database (one process
escalates a ticket); a routing alert about a contact reaches every process (the decisions about
another process's contact are forwarded), so it is stored by the one that claims it in Redis.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from callcenter.facade import MessageRefused, WebUser
from callcenter.services.sla_policy import Escalation, SlaPolicy, due_escalations
from crm_core.callbacks import Alert, CallbackStore
from crm_core.errors import CrmError
from routing import Alert as RoutingAlert
from routing import Decision

log = logging.getLogger(__name__)
SUPERVISORS = frozenset({"supervisor", "admin"})


class SlaService:
    def __init__(self, center: Any, *, policy: SlaPolicy = SlaPolicy(),
                 utc: Callable[[], datetime] = lambda: datetime.now(UTC), poll_s: float = 60.0) -> None:
        self.center = center
        self.crm = center.store
        self.store = CallbackStore(center.store.db)
        self.hub = center.hub
        self.policy = policy
        self.utc = utc
        self.poll_s = poll_s
        # supervisors who connected a console: user id -> their teams (None: an admin, sees all)
        self.supervisors: dict[int, frozenset[str] | None] = {}
        self._loop: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.poll_s > 0 and self._loop is None:
            self._loop = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the watcher must outlive one bad pass
                log.exception("SLA check failed")
            await asyncio.sleep(self.poll_s)

    async def close(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)

    # ------------------------------------------------------------------ tickets near their SLA
    async def check(self) -> list[Escalation]:
        """Escalate the tickets that reached the threshold; returns those escalated now."""
        now = self.utc()
        done = []
        for e in due_escalations(await self.store.tickets_for_sla(), now, self.policy):
            data = {"queue": e.queue, "fraction": e.fraction, "breached": e.breached,
                    "threshold": self.policy.threshold, "automatic": True}
            try:
                if not await self.store.escalate_ticket(e.ticket_id, e.queue, data, at=now,
                                                        priority=self.policy.raise_priority):
                    continue  # another process escalated it first
            except CrmError:
                log.exception("could not escalate ticket %s", e.number)
                continue
            alert = await self.store.add_alert("sla_escalation", e.message(), at=now, ticket_id=e.ticket_id,
                                               queue=e.queue, data={"ticket": e.number, **data})
            await self.broadcast(alert)
            done.append(e)
        return done

    # ------------------------------------------------------------------ routing alerts
    async def perform(self, decisions: list[Decision]) -> set[str]:
        for d in decisions:
            if isinstance(d, RoutingAlert):
                so = getattr(self.center, "scaleout", None)
                if so is not None and not await so.claim_once(
                        f"sla:{d.contact_id}:{d.queue}:{d.message}", ttl_s=3600):
                    continue  # another process of the center stores and sends it
                try:
                    alert = await self.store.add_alert("routing", d.message, at=self.utc(), queue=d.queue,
                                                       data={"contact_id": d.contact_id})
                except Exception:  # noqa: BLE001 - never raised into the routing runner
                    log.exception("could not store the routing alert %r", d.message)
                    continue
                await self.broadcast(alert)
        return set()

    # ------------------------------------------------------------------ supervisors' consoles
    def message(self, alert: Alert) -> dict[str, Any]:
        return {"alert_id": alert.id, "kind": alert.kind, "message": alert.message,
                "at": alert.at.isoformat(), "ticket": alert.data.get("ticket"), "queue": alert.queue}

    async def _owners(self, queue: str | None) -> frozenset[str]:
        if not queue:
            return frozenset()
        try:
            return frozenset((await self.crm.queue_teams()).get(queue, ()))
        except Exception:  # noqa: BLE001 - an old schema without queue teams: nobody owns it
            log.warning("could not read the teams of queue %r", queue, exc_info=True)
            return frozenset()

    @staticmethod
    def _sees(teams: frozenset[str] | None, owners: frozenset[str]) -> bool:
        return teams is None or not owners or bool(teams & owners)

    async def audience(self, queue: str | None) -> list[int]:
        """Connected supervisors who may see alerts about `queue`."""
        owners = await self._owners(queue)
        return [uid for uid, teams in list(self.supervisors.items()) if self._sees(teams, owners)]

    async def broadcast(self, alert: Alert) -> int:
        sent = 0
        for uid in await self.audience(alert.queue):
            if self.hub.connected(uid):
                sent += self.hub.send(uid, "alert", **self.message(alert))
        return sent

    async def console_connected(self, user: WebUser, link: Any) -> None:
        """A supervisor's console gets the alerts nobody acknowledged yet, then every new one."""
        if not set(user.roles) & SUPERVISORS:
            return
        teams = None if "admin" in user.roles else frozenset(user.teams)
        self.supervisors[user.id] = teams
        from callcenter.facade import PROTOCOL_VERSION

        owned: dict[str, list[str]] = {}
        if teams is not None:
            try:
                owned = await self.crm.queue_teams()
            except Exception:  # noqa: BLE001 - see _owners
                owned = {}
        for alert in await self.store.open_alerts():
            if self._sees(teams, frozenset(owned.get(alert.queue or "", ()))):
                link.put({"type": "alert", "v": PROTOCOL_VERSION, **self.message(alert)})

    async def msg_ack(self, user: WebUser, msg: dict[str, Any]) -> None:
        if not set(user.roles) & SUPERVISORS:
            raise MessageRefused("forbidden", "only supervisors acknowledge alerts")
        alert_id = msg.get("alert_id")
        if not isinstance(alert_id, int):
            raise MessageRefused("invalid", "alert_id must be a number")
        alert = await self.store.alert(alert_id)
        teams = None if "admin" in user.roles else frozenset(user.teams)
        if alert is None or not self._sees(teams, await self._owners(alert.queue)):
            raise MessageRefused("not_found", "no such alert")  # another team's: told nothing more
        if await self.store.ack_alert(alert_id, user.id, at=self.utc()):  # stored, then its audience
            for uid in await self.audience(alert.queue):
                if self.hub.connected(uid):
                    self.hub.send(uid, "alert_cleared", alert_id=alert_id, by=user.username)


def install(center: Any, settings: Any = None, *, utc: Callable[[], datetime] | None = None) -> SlaService:
    """Build the service from `settings.sla`, register it with the center and start it."""
    conf = getattr(settings, "sla", None)
    kwargs: dict[str, Any] = {}
    if conf is not None:
        kwargs = {"policy": SlaPolicy(conf.threshold, conf.default_queue, dict(conf.queue_by_type),
                                      conf.raise_priority), "poll_s": conf.poll_s}
    if utc is not None:
        kwargs["utc"] = utc
    svc = SlaService(center, **kwargs)
    center.sla = svc
    center.performers.append(svc)
    center.on_console_connect.append(svc.console_connected)
    center.console.handlers["ack_alert"] = svc.msg_ack
    svc.start()
    return svc
