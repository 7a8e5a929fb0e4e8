"""The supervisors' live wallboard: statistics fed by the routing runner's events (every channel's
contacts pass through it: voice, chat, email, callbacks), pushed to the wallboard websockets.

- `observe` turns each routing event and its decisions into wallboard_stats events (pure).
- Changes mark the board dirty; one publisher builds the snapshot at most `max_updates_per_s`
  times a second, serializes it ONCE per team scope, and hands the same text to every client of
  that scope. A slow client skips to the newest frame (every frame is a full snapshot), so a
  (re)connecting client starts from a full snapshot too. Clients never poll.
- Alerts are live conditions (wallboard_stats.alerts); each new one is also stored and sent to
  supervisors' consoles through the SLA service (services/sla.py), like the routing alerts.
"""
from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from callcenter.facade import PROTOCOL_VERSION, MessageRefused, WebUser
from callcenter.services import wallboard_day as day
from callcenter.services import wallboard_stats as ws
from routing import (
    AgentPresence,
    Channel,
    ContactArrived,
    Decision,
    Ended,
    Escalate,
    Offer,
    OfferAccepted,
    PresenceChanged,
    Requeue,
)

log = logging.getLogger(__name__)
SUPERVISORS = frozenset({"supervisor", "admin"})
ALL = "*"  # the scope of admins


class Feed:
    """One wallboard client: the newest frame for it, and a flag that a new one came.

    The web layer may set `direct`: a function that writes a frame to the socket at once and
    returns False when it cannot (a slow client, a closing socket). Frames then go that way, with
    no task woken per client; otherwise, and while an earlier frame is still on its way, they wait
    in the slot that `frames()` reads (the newest replaces an unsent one)."""

    def __init__(self, service: WallboardService, scope: str, teams: frozenset[str] | None) -> None:
        self.service, self.scope, self.teams = service, scope, teams
        self._frame: bytes | None = None
        self._ready = asyncio.Event()
        self._closed = False
        self._busy = False  # frames() handed a frame out and it is not sent yet
        self.direct: Callable[[bytes], bool] | None = None
        self.sent = 0

    def put(self, frame: bytes) -> None:
        if (self.direct is not None and self._frame is None and not self._busy
                and not self._closed and self.direct(frame)):
            self.sent += 1
            return
        self._frame = frame
        self._ready.set()

    async def frames(self) -> AsyncIterator[bytes]:
        while not self._closed:
            await self._ready.wait()
            self._ready.clear()
            frame, self._frame = self._frame, None
            if frame is not None and not self._closed:
                self.sent += 1
                self._busy = True
                try:
                    yield frame
                finally:
                    self._busy = False

    async def close(self) -> None:
        self._closed = True
        self._ready.set()
        self.service.unsubscribe(self)


class WallboardService:
    def __init__(self, center: Any, *, thresholds: ws.Thresholds = ws.Thresholds(),
                 max_updates_per_s: float = 10.0, wall: Callable[[], float] = time.time,
                 check_s: float = 1.0, timezone: str = "UTC") -> None:
        self.center = center
        self.runner = center.runner
        self.mono = center.runner.clock
        self.wall = wall
        self.interval = 1.0 / max_updates_per_s
        self.check_s = check_s
        self.stats = ws.WallboardStats(thresholds=thresholds)
        self.tz = day.zone(timezone)
        self.day = day.local_day(wall(), self.tz)  # the local day the counters are about
        # scale-out (callcenter/scaleout/setup.py): sends this process's events to the others
        self.fanout: Callable[[list[dict[str, Any]]], None] | None = None
        # scale-out: only the process that claims a new alert stores and sends it (all see it)
        self.claim_alert: Callable[[str], Awaitable[bool]] | None = None
        self.loaded = asyncio.Event()  # today's figures are rebuilt from the database
        self._pending: list[ws.Event] | None = None  # events seen while a rebuild reads
        self._queues: Any = None
        self._sync_queues()
        self.feeds: dict[str, set[Feed]] = {}
        self._last: dict[str, tuple[bytes, bytes, int]] = {}  # scope -> (body, frame, seq) last sent
        self._offset = wall() - self.mono()  # event times -> epoch seconds
        self._dirty = asyncio.Event()
        self._alert_keys: frozenset[str] = frozenset()
        self._raised: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self.published = 0  # snapshots built (each serialized once per scope)
        self.on_publish: list[Callable[[int], None]] = []  # stats version published (the benchmark)
        now = self.mono()
        for aid in list(center.directory.agents):
            self._register(aid, now)
        self.runner.observers.append(self.observe)

    def _sync_queues(self) -> None:
        """Targets and teams from the routing queues (an admin may change them while running)."""
        queues = self.runner.engine.config.queues
        if queues is self._queues:
            return
        self._queues = queues
        self.stats.targets = {n: ws.Target(q.service_level.fraction, q.service_level.seconds)
                              for n, q in queues.items()}
        self.stats.queue_teams = {n: tuple(sorted(q.teams or ())) for n, q in queues.items()}

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._loops = [loop.create_task(self._publisher()), loop.create_task(self._checker())]
        self._spawn(self.rebuild())

    async def close(self) -> None:
        for t in [*self._loops, *self._tasks]:
            t.cancel()
        await asyncio.gather(*self._loops, *self._tasks, return_exceptions=True)
        if self.observe in self.runner.observers:
            self.runner.observers.remove(self.observe)

    # ------------------------------------------------------------------ agents
    def _register(self, aid: str, now: float) -> None:
        agent = self.center.directory.agents.get(aid)
        rec = self.runner.engine.store.agent(aid)
        name = agent.display_name if agent is not None else aid
        teams = tuple(agent.teams) if agent is not None else ()
        served: set[tuple[str, str]] = set()
        if rec is not None:
            p = rec.profile
            mixing = getattr(self.runner.engine.config, "mixing", None)
            caps = p.capacity if p.capacity is not None else getattr(mixing, "capacity", {})
            channels = [ch.value for ch in Channel if caps.get(ch, 1) > 0]
            for qname, q in self.runner.engine.config.queues.items():
                if q.teams and not set(teams) & set(q.teams):
                    continue
                if all(p.skills.get(s, 0) >= lvl for s, lvl in q.skills.items()):
                    served |= {(qname, ch) for ch in channels}
        self.stats.add_agent(ws.AgentInfo(aid, name, teams, frozenset(served)), now)
        if rec is not None:
            presence = _presence(rec.presence.value)
            if presence != "offline":
                self.stats.apply(ws.AgentState(aid, presence, now, rec.reason))

    # ------------------------------------------------------------------ events in
    def observe(self, event: Any, decisions: Sequence[Decision], now: float) -> None:
        out: list[ws.Event] = []
        if isinstance(event, ContactArrived):
            c = event.contact
            out.append(ws.Queued(c.id, c.queue, c.channel.value, now, tier=c.tier.value,
                                 customer_id=c.customer_id, interaction_id=self._interaction(c.id)))
            self._spawn(self._customer(c.id, c.customer_id))
        elif isinstance(event, OfferAccepted):
            out.append(ws.Answered(event.contact_id, event.agent_id, now))
        elif isinstance(event, AgentPresence):
            out.append(ws.AgentState(event.agent_id, _presence(event.presence.value), now, event.reason))
        for d in decisions:
            if isinstance(d, Offer):
                out.append(ws.Offered(d.contact_id, d.agent_id, now))
            elif isinstance(d, Requeue):
                out.append(ws.Requeued(d.contact_id, d.agent_id, now))
            elif isinstance(d, Ended):
                out.append(ws.Ended(d.contact_id, d.outcome.value, now))
            elif isinstance(d, PresenceChanged):
                out.append(ws.AgentState(d.agent_id, _presence(d.presence.value), now, d.reason))
            elif isinstance(d, Escalate) and d.action in ("overflow", "move-queue"):
                out.append(ws.Moved(d.contact_id, d.detail, now))
        self._take(out, now, share=True)

    def _take(self, out: list[ws.Event], now: float, *, share: bool) -> None:
        """Apply events (this process's, or another's when `share` is False)."""
        if not out:
            return
        for e in out:
            aid = getattr(e, "agent_id", None)
            if aid is not None and aid not in self.stats.agents:
                self._register(aid, now)
        if self._pending is not None:
            self._pending.extend(out)
        if share and self.fanout is not None:
            self.fanout(day.to_wire(out, self._offset))
        if self.stats.apply_all(out):
            self._dirty.set()

    def receive(self, rows: list[dict[str, Any]]) -> None:
        """Events another process applied (scale-out's live channel)."""
        self._take(day.from_wire(rows, self._offset), self.mono(), share=False)

    # ------------------------------------------------------------------ the day
    async def rebuild(self) -> None:
        """Today's figures from the database (the interactions created since local midnight and
        their timelines, replayed into fresh statistics), then the events seen meanwhile. Run at
        start and after a gap on the scale-out live channel."""
        self._pending = []
        try:
            stored = await self._today()
        except Exception:  # noqa: BLE001 - the board still counts from now on
            log.exception("could not rebuild the wallboard from the database")
            self._pending = None
            self.loaded.set()
            return
        now = self.mono()
        old = self.stats
        new = ws.WallboardStats(old.targets, old.thresholds, old.queue_teams)
        events = [_shift(e, -self._offset) for e in day.replay(stored)]
        self.stats = new
        new.apply_all(events)
        for a in new.agents.values():  # only busy time is stored: occupancy counts from now on
            a.spent = dict.fromkeys(ws.AGENT_STATES, 0.0)
            a.counted_from = now
        for aid in {*self.center.directory.agents, *old.agents}:
            self._register(aid, now)
        for key, q in old.queues.items():  # abandoned rows keep their scheduled callbacks
            for row in q.abandoned_list:
                if row.get("callback_id") and row.get("interaction_id") is not None:
                    new.mark_callback(row["interaction_id"], row["callback_id"])
            new._queue(key)
        pending, self._pending = self._pending, None
        new.apply_all(pending or ())
        new.version = max(new.version, old.version) + 1
        self.loaded.set()
        self._dirty.set()

    async def _today(self) -> list[day.Stored]:
        from sqlalchemy import select

        from crm_core.models import Interaction, InteractionEvent

        since = day.day_start(self.day, self.tz)
        names = {a.username: a.agent_id for a in self.center.directory.agents.values()}
        async with self.center.store.db.session() as s:
            rows = (await s.execute(select(Interaction).where(Interaction.created_at >= since)
                                    .order_by(Interaction.id))).scalars().all()
            ids = [i.id for i in rows]
            timeline: dict[int, list[tuple[str, float, dict[str, Any]]]] = {i: [] for i in ids}
            for chunk in range(0, len(ids), 500):
                part = ids[chunk:chunk + 500]
                evs = (await s.execute(select(InteractionEvent)
                                       .where(InteractionEvent.interaction_id.in_(part))
                                       .order_by(InteractionEvent.id))).scalars().all()
                for e in evs:
                    data = dict(e.data or {})
                    if e.kind == "offer" and data.get("agent") in names:
                        data["agent"] = names[data["agent"]]
                    timeline[e.interaction_id].append((e.kind, e.at.timestamp(), data))

        def ts(t: Any) -> float | None:
            return t.timestamp() if t is not None else None
        return [day.Stored(i.id, i.channel, i.state, i.queue, i.customer_id, ts(i.queued_at),
                           ts(i.answered_at), ts(i.ended_at),
                           str(i.agent_id) if i.agent_id is not None else None, timeline[i.id])
                for i in rows]

    def check_day(self) -> bool:
        """At local midnight the day's counters start again (True when they did)."""
        today = day.local_day(self.wall(), self.tz)
        if today == self.day:
            return False
        self.day = today
        self.stats.reset_day(self.mono())
        self._dirty.set()
        return True

    def _interaction(self, contact_id: str) -> int | None:
        if contact_id.isdigit():
            return int(contact_id)
        callbacks = getattr(self.center, "callbacks", None)
        live = getattr(callbacks, "live", {}).get(contact_id) if callbacks is not None else None
        return getattr(getattr(live, "cb", None), "interaction_id", None)

    async def _customer(self, contact_id: str, customer_id: str) -> None:
        """Who the customer is: the CRM's name and tier, else the caller's number."""
        name, tier = None, None
        call = self.center.voice.calls.get(int(contact_id)) if contact_id.isdigit() else None
        if getattr(call, "customer_name", None) is not None:  # identified by the voice path: no read
            name, tier = call.customer_name, call.tier  # type: ignore[union-attr]
        elif customer_id.isdigit():
            try:
                c = await self.center.store.get_customer(int(customer_id))
                name, tier = c.name, c.tier
            except Exception:  # noqa: BLE001 - a name is a nicety, never an error
                log.debug("no customer %s for the wallboard", customer_id)
        if name is None and contact_id.isdigit():
            call = self.center.voice.calls.get(int(contact_id))
            name = getattr(call, "caller", None) or None
        if name is None:
            return
        self._take([ws.CustomerKnown(contact_id, name, tier)], self.mono(), share=True)

    def _spawn(self, aw: Any) -> None:
        task = asyncio.get_running_loop().create_task(aw)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ frames out
    def scope_of(self, user: WebUser) -> tuple[str, frozenset[str] | None]:
        if "admin" in user.roles:
            return ALL, None
        teams = frozenset(user.teams)
        return "teams:" + ",".join(sorted(teams)), teams

    def _stamp(self, t: float) -> int:
        """An event time (the runner's clock) as epoch milliseconds, the same every time."""
        return int((t + self._offset) * 1000)

    def _body(self, teams: frozenset[str] | None, snap: dict[str, Any]) -> bytes:
        if teams is None:
            body = snap
        else:
            agents = [a for a in snap["agents"] if set(a["teams"]) & teams]
            served = {key for a in agents for key in self.stats.agents[a["agent_id"]].info.queues}
            queues = [q for q in snap["queues"] if (q["queue"], q["channel"]) in served
                      or set(self.stats.queue_teams.get(q["queue"], ())) & teams]
            names = {q["queue"] for q in queues}
            ids = {a["agent_id"] for a in agents}
            queues = [{**q, "agents": self._by_state(q, agents)} for q in queues]  # their agents only
            alerts = [x for x in snap["alerts"] if x["queue"] in names or x["agent_id"] in ids]
            body = {"queues": queues, "agents": agents, "alerts": alerts}
        return json.dumps(body, separators=(",", ":")).encode()

    def _by_state(self, q: dict[str, Any], agents: list[dict[str, Any]]) -> dict[str, int]:
        out = dict.fromkeys(ws.AGENT_STATES, 0)
        key = (q["queue"], q["channel"])
        for a in agents:
            if key in self.stats.agents[a["agent_id"]].info.queues:
                out[a["state"]] += 1
        return out

    @staticmethod
    def _frame(teams: frozenset[str] | None, body: bytes, version: int, at_ms: int) -> bytes:
        head = json.dumps({"type": "wallboard", "v": PROTOCOL_VERSION, "seq": version, "at": at_ms,
                           "scope": "all" if teams is None else sorted(teams)}, separators=(",", ":"))
        return head[:-1].encode() + b"," + body[1:]

    def _build(self, scopes: dict[str, frozenset[str] | None]) -> dict[str, bytes]:
        """The frames of the scopes whose content changed (each serialized once)."""
        self._sync_queues()
        version = self.stats.version
        snap = self.stats.snapshot(self.mono(), self._stamp)
        at_ms = int(self.wall() * 1000)
        self._note_alerts(snap["alerts"])
        self.published += 1
        out: dict[str, bytes] = {}
        for scope, teams in scopes.items():
            body = self._body(teams, snap)
            last = self._last.get(scope)
            if last is not None and last[0] == body:
                continue  # nothing changed for this scope: nothing to send
            frame = self._frame(teams, body, version, at_ms)
            self._last[scope] = (body, frame, version)
            out[scope] = frame
        return out

    def publish(self) -> None:
        """Build the snapshot once, serialize once per scope, hand the bytes to every client."""
        scopes = {s: next(iter(f)).teams for s, f in self.feeds.items() if f}
        if not scopes:
            self._note_alerts(self.stats.alerts(self.mono()))
            return
        frames = self._build(scopes)
        for cb in self.on_publish:
            cb(self.stats.version)
        for scope, frame in frames.items():
            for feed in list(self.feeds[scope]):
                feed.put(frame)

    async def _publisher(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                self.publish()
            except Exception:  # noqa: BLE001 - the board must outlive one bad pass
                log.exception("wallboard publish failed")
            await asyncio.sleep(self.interval)  # coalesce: at most one update per interval

    async def _checker(self) -> None:
        """Time-based alerts (a wait or a not-ready growing past its threshold) need no event."""
        while True:
            await asyncio.sleep(self.check_s)
            self.check_day()
            keys = frozenset(a["key"] for a in self.stats.alerts(self.mono()))
            if keys != self._alert_keys:
                self._dirty.set()

    def _note_alerts(self, alerts: list[dict[str, Any]]) -> None:
        self._alert_keys = frozenset(a["key"] for a in alerts)
        sla = getattr(self.center, "sla", None)
        for a in alerts:
            if a["key"] in self._raised:
                continue
            self._raised.add(a["key"])
            if sla is not None:
                self._spawn(self._store_alert(sla, a))
        self._raised &= self._alert_keys  # a condition that cleared may alert again later

    async def _store_alert(self, sla: Any, a: dict[str, Any]) -> None:
        try:
            if self.claim_alert is not None and not await self.claim_alert(a["key"]):
                return  # another process stores and sends this one
            alert = await sla.store.add_alert("wallboard", a["message"][:500], at=sla.utc(), queue=a["queue"],
                                              data={"condition": a["kind"], "key": a["key"],
                                                    "interaction_id": a["interaction_id"],
                                                    "agent_id": a["agent_id"]})
        except Exception:  # noqa: BLE001 - the board shows it anyway
            log.exception("could not store the wallboard alert %r", a["message"])
            return
        sent = sla.broadcast(alert)
        if inspect.isawaitable(sent):
            await sent

    # ------------------------------------------------------------------ clients
    async def subscribe(self, user: WebUser) -> Feed:
        if not set(user.roles) & SUPERVISORS:
            raise MessageRefused("forbidden", "the wallboard is for supervisors")
        scope, teams = self.scope_of(user)
        feed = Feed(self, scope, teams)
        self.feeds.setdefault(scope, set()).add(feed)
        if scope not in self._last:
            self._build({scope: teams})
        body, _frame, version = self._last[scope]
        # a full snapshot first, on every (re)connect: the last body, stamped now (the page
        # takes the server's time from `at`)
        feed.put(self._frame(teams, body, version, int(self.wall() * 1000)))
        return feed

    def unsubscribe(self, feed: Feed) -> None:
        group = self.feeds.get(feed.scope)
        if group is not None:
            group.discard(feed)
            if not group:
                del self.feeds[feed.scope]
                self._last.pop(feed.scope, None)

    # ------------------------------------------------------------------ one-click callback
    async def msg_callback(self, user: WebUser, msg: dict[str, Any]) -> dict[str, Any]:
        """Call back an abandoned contact of the supervisor's scope (services/callbacks.py)."""
        if not set(user.roles) & SUPERVISORS:
            raise MessageRefused("forbidden", "only supervisors call back from the wallboard")
        iid = msg.get("interaction_id")
        _scope, teams = self.scope_of(user)
        row = self.stats.abandoned_row(iid) if isinstance(iid, int) else None
        if row is None or not isinstance(iid, int):
            raise MessageRefused("not_found", "no such abandoned contact on the wallboard")
        queue, channel, found = row
        if teams is not None and not self._in_scope(queue, channel, teams):
            raise MessageRefused("forbidden", "that contact is not in your teams' queues")
        if found.get("callback_id"):
            raise MessageRefused("conflict", "a callback is already scheduled for that contact")
        callbacks = getattr(self.center, "callbacks", None)
        if callbacks is None:
            raise MessageRefused("invalid", "callbacks are not enabled")
        interaction = await self.center.store.get_interaction(iid)
        customer_id = interaction.customer_id
        number = interaction.from_address if channel == "voice" else None
        if customer_id is not None and not (number and number.startswith("+")):
            card = await self.center.store.customer_card(customer_id)
            phones = [p.value for p in card.contact_points if p.kind == "phone"]
            number = phones[0] if phones else None
        if not number or not number.startswith("+"):
            raise MessageRefused("invalid", "no phone number to call back")
        queue_to = queue if queue in self.runner.engine.config.queues else None
        cb = await callbacks.schedule(number=number, origin="console", queue=queue_to,
                                      customer_id=customer_id,
                                      origin_interaction_id=iid, requested_by=user.id, by=user.username,
                                      note="abandoned contact, called back from the wallboard")
        if self.stats.mark_callback(iid, cb.id):  # confirmed by the store: the board shows it
            self._dirty.set()
        return {"type": "callback_scheduled", "callback_id": cb.id, "interaction_id": cb.interaction_id,
                "customer_id": cb.customer_id, "number": cb.number, "queue": cb.queue,
                "due_at": cb.due_at.isoformat(), "max_attempts": cb.max_attempts}

    def _in_scope(self, queue: str, channel: str, teams: frozenset[str]) -> bool:
        if set(self.stats.queue_teams.get(queue, ())) & teams:
            return True
        return any(set(a.info.teams) & teams and (queue, channel) in a.info.queues
                   for a in self.stats.agents.values())


def _shift(ev: ws.Event, by: float) -> ws.Event:
    return dataclasses.replace(ev, at=ev.at + by) if hasattr(ev, "at") else ev


def _presence(value: str) -> str:
    return value.replace("-", "_")


def install(center: Any, settings: Any = None, *,
            wall: Callable[[], float] | None = None) -> WallboardService:
    """Build the service from `settings.wallboard`, hook it to the routing runner, start it."""
    conf = getattr(settings, "wallboard", None)
    kwargs: dict[str, Any] = {}
    if conf is not None:
        kwargs = {"thresholds": ws.Thresholds(conf.max_wait_s, conf.not_ready_s, conf.sl_min_contacts),
                  "max_updates_per_s": conf.max_updates_per_s,
                  "timezone": getattr(conf, "timezone", "UTC")}
    if wall is not None:
        kwargs["wall"] = wall
    svc = WallboardService(center, **kwargs)
    center.wallboard = svc
    center.console.handlers["wallboard_callback"] = svc.msg_callback
    svc.start()
    return svc
