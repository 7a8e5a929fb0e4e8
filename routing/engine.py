"""The routing engine: events and "now" in, decisions out.

Every state change goes through the store (:mod:`routing.store`), one atomic step at a time;
the engine itself keeps only caches that can be rebuilt from the store (decoded buckets, the
buckets each agent may serve). The engine matches greedily after every change, so when a call
returns there is no waiting contact and ready agent that could be paired (*quiescence*): a
contact that arrives therefore never jumps a waiting one for the same agent, and an agent that
frees up takes the waiting contact with the highest priority key among those it may serve.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from routing.errors import BadInput, Misuse, StaleEvent
from routing.events import (
    AgentPresence,
    Alert,
    CallbackAccepted,
    ContactArrived,
    ContactFinished,
    ContactHungUp,
    ContactMoved,
    Decision,
    Ended,
    Escalate,
    Event,
    Offer,
    OfferAccepted,
    OfferCallback,
    OfferDeclined,
    PresenceChanged,
    PriorityRaised,
    Requeue,
    ScorePart,
    TimeOut,
    Timer,
    TimerKind,
    WrapUpEnded,
)
from routing.model import (
    CHANNELS,
    AgentProfile,
    AlertSupervisor,
    Channel,
    ContactStatus,
    EngineConfig,
    OfferCallbackStep,
    Overflow,
    Presence,
    QueueConfig,
    RaisePriority,
    Requirement,
    SendTo,
    SlotState,
    Strategy,
    WidenSkills,
    can_take,
)
from routing.priority import base_weight, priority_key
from routing.store import AgentRecord, ContactRecord, InMemoryStore, RoutingStore

# -- transition tables ---------------------------------------------------------------------------

_W, _O, _C = ContactStatus.WAITING, ContactStatus.OFFERED, ContactStatus.CONNECTED

#: (status, action) -> new status. Anything missing is refused (StaleEvent / BadInput).
CONTACT_TRANSITIONS: dict[tuple[ContactStatus, str], ContactStatus] = {
    (_W, "offer"): _O,
    (_O, "accept"): _C,
    (_O, "decline"): _W,
    (_O, "no-answer"): _W,
    (_O, "agent-offline"): _W,
    (_W, "hang-up"): ContactStatus.ABANDONED,
    (_O, "hang-up"): ContactStatus.ABANDONED,
    (_C, "hang-up"): ContactStatus.HANDLED,
    (_C, "finish"): ContactStatus.HANDLED,
    (_W, "time-out"): ContactStatus.TIMED_OUT,
    (_W, "callback"): ContactStatus.CALLED_BACK,
    (_O, "callback"): ContactStatus.CALLED_BACK,
}

#: presence an agent asks for -> presences it may come from. WRAP_UP is entered only by the engine.
PRESENCE_REQUESTS: dict[Presence, frozenset[Presence]] = {
    Presence.READY: frozenset({Presence.OFFLINE, Presence.NOT_READY, Presence.WRAP_UP, Presence.READY}),
    Presence.NOT_READY: frozenset({Presence.OFFLINE, Presence.READY, Presence.WRAP_UP, Presence.NOT_READY}),
    Presence.OFFLINE: frozenset({Presence.READY, Presence.NOT_READY, Presence.WRAP_UP, Presence.OFFLINE}),
}

#: how often an agent that frees up retries after losing a claim race to another process
_MAX_LOST_RACES = 8

_CONTACT_TIMERS = (TimerKind.RING, TimerKind.ESCALATE, TimerKind.MAX_WAIT, TimerKind.STICKY, TimerKind.RETRY)


def _transition(status: ContactStatus, action: str, contact_id: str) -> ContactStatus:
    new = CONTACT_TRANSITIONS.get((status, action))
    if new is None:
        raise StaleEvent(f"contact {contact_id}: cannot {action} while {status}")
    return new


# -- buckets -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bucket:
    """Waiting contacts that any agent either may or may not serve all alike."""

    id: str
    channel: Channel
    requirement: Requirement
    language: str | None
    teams: frozenset[str] | None
    sticky_agent: str | None = None

    @staticmethod
    def make(
        channel: Channel, requirement: Requirement, language: str | None,
        teams: frozenset[str] | None, sticky_agent: str | None = None,
    ) -> Bucket:
        tid = ",".join(sorted(teams)) if teams is not None else "*"
        bid = f"{channel.value}|{requirement.encode()}|{language or '*'}|{tid}"
        if sticky_agent is not None:
            bid = f"@{sticky_agent}|{bid}"
        return Bucket(bid, channel, requirement, language, teams, sticky_agent)

    @staticmethod
    def decode(bid: str) -> Bucket:
        sticky: str | None = None
        rest = bid
        if bid.startswith("@"):
            sticky, _, rest = bid[1:].partition("|")
        ch, req, lang, teams = rest.split("|")
        alts: list[tuple[tuple[str, int], ...]] = []
        for alt in req.split(";"):
            if alt == "*":
                alts.append(())
                continue
            pairs = []
            for item in alt.split(","):
                name, _, level = item.partition(">=")
                pairs.append((name, int(level)))
            alts.append(tuple(pairs))
        return Bucket(
            bid, Channel(ch), Requirement(tuple(alts)), None if lang == "*" else lang,
            None if teams == "*" else frozenset(t for t in teams.split(",") if t), sticky,
        )


# -- strategies ----------------------------------------------------------------------------------

Candidate = tuple[AgentRecord, int]  # agent, index of the requirement alternative it meets


def _occupancy(agent: AgentRecord, rules_cap: dict[Channel, int]) -> float:
    cap = agent.profile.capacity or rules_cap
    return sum(agent.load.get(ch, 0) / c for ch, c in cap.items() if c > 0)


def _proficiency(agent: AgentRecord, req: Requirement, alt: int) -> int:
    skills = agent.profile.skills
    return sum(skills.get(name, 0) for name, _ in req.alternatives[alt])


SortKey = tuple[float, float, str]
StrategyFn = Callable[[Candidate, Requirement, str | None, dict[Channel, int]], SortKey]

#: strategy -> sort key of a candidate (lower is better). Ties go to the longest idle, then the id.
STRATEGIES: dict[Strategy, StrategyFn] = {
    Strategy.LONGEST_IDLE: lambda c, req, rr, cap: (c[0].idle_since, 0.0, c[0].profile.id),
    Strategy.MOST_SKILLED: lambda c, req, rr, cap: (
        -_proficiency(c[0], req, c[1]), c[0].idle_since, c[0].profile.id),
    Strategy.LEAST_OCCUPIED: lambda c, req, rr, cap: (
        _occupancy(c[0], cap), c[0].idle_since, c[0].profile.id),
    # the next agent id after the queue's pointer, cyclically
    Strategy.ROUND_ROBIN: lambda c, req, rr, cap: (
        0.0 if rr is None or c[0].profile.id > rr else 1.0, 0.0, c[0].profile.id),
}


class Engine:
    """Skill-based routing and escalation. ``handle(event, now)`` and ``tick(now)`` return decisions."""

    def __init__(self, config: EngineConfig, store: RoutingStore | None = None) -> None:
        self.config = config
        self.store: RoutingStore = store if store is not None else InMemoryStore(config.mixing)
        if self.store.rules != config.mixing:
            raise Misuse("the store enforces other mixing rules than the engine's configuration")
        self._rules = config.mixing
        self._cap = dict(config.mixing.capacity)
        self._k = config.priority.aging_k
        self._buckets: dict[str, Bucket] = {}
        self._agent_buckets: dict[str, tuple[int, dict[Channel, list[Bucket]]]] = {}
        self._sticky_index: dict[str, set[str]] = {}
        # While tick applies a batch of timers: agents and contacts to match afterwards (id -> why).
        self._batch: tuple[dict[str, str], dict[str, str]] | None = None
        self._now = -math.inf
        self._handlers: dict[type, Callable[[object, float, list[Decision]], None]] = {
            ContactArrived: self._on_arrived,  # type: ignore[dict-item]
            ContactHungUp: self._on_hung_up,  # type: ignore[dict-item]
            AgentPresence: self._on_presence,  # type: ignore[dict-item]
            WrapUpEnded: self._on_wrap_up_ended,  # type: ignore[dict-item]
            OfferAccepted: self._on_accepted,  # type: ignore[dict-item]
            OfferDeclined: self._on_declined,  # type: ignore[dict-item]
            ContactFinished: self._on_finished,  # type: ignore[dict-item]
            CallbackAccepted: self._on_callback_accepted,  # type: ignore[dict-item]
            ContactMoved: self._on_moved,  # type: ignore[dict-item]
            PriorityRaised: self._on_priority_raised,  # type: ignore[dict-item]
        }
        # Register every queue's own bucket per channel up front, so that agents' bucket lists
        # are built once (at add_agent) rather than growing while traffic flows.
        for q in config.queues.values():
            for ch in CHANNELS:
                b = Bucket.make(ch, Requirement.of(q.skills), None, q.teams)
                self._buckets[b.id] = b
                self.store.register_bucket(b.id)
        self._timer_handlers: dict[TimerKind, Callable[[str, float, list[Decision]], None]] = {
            TimerKind.RING: self._timer_ring,
            TimerKind.ESCALATE: self._timer_escalate,
            TimerKind.MAX_WAIT: self._timer_max_wait,
            TimerKind.STICKY: self._timer_sticky,
            TimerKind.RETRY: self._timer_retry,
            TimerKind.WRAP_UP: self._timer_wrap_up,
        }

    # -- public API ------------------------------------------------------------------------------

    def add_agent(self, profile: AgentProfile, now: float) -> None:
        """Register an agent; it starts offline."""
        self._advance(now)
        if not self.store.add_agent(profile, now):
            raise BadInput(f"agent {profile.id} already exists")
        self._agent_buckets.pop(profile.id, None)
        rec = self.store.agent(profile.id)
        if rec is not None:
            self._eligible_buckets(rec)

    def remove_agent(self, agent_id: str) -> None:
        if not self.store.remove_agent(agent_id):
            raise BadInput(f"agent {agent_id} is unknown or still holds contacts")
        self._agent_buckets.pop(agent_id, None)

    def handle(self, event: Event, now: float) -> list[Decision]:
        handler = self._handlers.get(type(event))
        if handler is None:
            raise Misuse(f"not a routing event: {event!r}")
        self._advance(now)
        out: list[Decision] = []
        handler(event, now, out)
        return out

    def tick(self, now: float) -> list[Decision]:
        """Fire every timer due at or before ``now`` (timers that others set while firing too)."""
        self._advance(now)
        out: list[Decision] = []
        while True:
            due = self.store.pop_due(now)
            if not due:
                return out
            # The timers due by now change the state at once: several contacts may stop waiting
            # for their preferred agent, be widened or have a refusal lifted at the same instant.
            # Matching each one as its timer fires would give an agent the first one while a
            # higher key that it may serve waits for its own timer. So apply them all, then match.
            batch: tuple[dict[str, str], dict[str, str]] = ({}, {})
            self._batch = batch
            try:
                for t in due:
                    self._timer_handlers[t.kind](t.subject, now, out)
            finally:
                self._batch = None
            self._settle(batch[0], batch[1], now, out)

    @property
    def now(self) -> float:
        """The latest time the engine was given."""
        return self._now

    def next_due(self) -> float | None:
        """When ``tick`` next has something to do."""
        return self.store.next_due()

    def waiting(self, limit: int = 100) -> list[tuple[str, float]]:
        """Waiting contacts (id, key), highest key first, across buckets (for wallboards)."""
        rows: list[tuple[str, float]] = []
        for bid in self.store.bucket_ids():
            rows.extend(self.store.peek(bid, limit))
        rows.sort(key=lambda r: -r[1])
        return rows[:limit]

    def eligible(self, agent: AgentRecord, rec: ContactRecord, now: float) -> bool:
        """May this agent serve this contact (skills, language, team, not recently declined)?"""
        return self._fits(agent, self._bucket(rec.bucket)) >= 0 and rec.declined.get(
            agent.profile.id, -math.inf) <= now

    # -- helpers ---------------------------------------------------------------------------------

    def _advance(self, now: float) -> None:
        if not isinstance(now, (int, float)) or math.isnan(now):
            raise Misuse(f"now must be a number, got {now!r}")
        if now < self._now:
            raise Misuse(f"time went backwards: {now} < {self._now}")
        self._now = now

    def _queue(self, name: str) -> QueueConfig:
        q = self.config.queues.get(name)
        if q is None:
            raise BadInput(f"unknown queue {name!r}")
        return q

    def _agent(self, agent_id: str) -> AgentRecord:
        a = self.store.agent(agent_id)
        if a is None:
            raise BadInput(f"unknown agent {agent_id!r}")
        return a

    def _contact(self, contact_id: str) -> ContactRecord:
        c = self.store.contact(contact_id)
        if c is None or c.status not in (_W, _O, _C):
            raise StaleEvent(f"contact {contact_id!r} is unknown or over")
        return c

    def _bucket(self, bid: str) -> Bucket:
        b = self._buckets.get(bid)
        if b is None:
            b = self._buckets[bid] = Bucket.decode(bid)
        return b

    def _bucket_for(self, rec: ContactRecord, now: float) -> Bucket:
        c = rec.contact
        sticky = c.preferred_agent if rec.sticky_until is not None and rec.sticky_until > now else None
        b = Bucket.make(c.channel, rec.requirement, c.language, self.config.queues[rec.queue].teams, sticky)
        if b.id not in self._buckets:
            self._buckets[b.id] = b
        if sticky is None:
            self.store.register_bucket(b.id)
        return self._buckets[b.id]

    def _fits(self, agent: AgentRecord, b: Bucket) -> int:
        p = agent.profile
        if b.sticky_agent is not None and b.sticky_agent != p.id:
            return -1
        if b.language is not None and p.languages and b.language not in p.languages:
            return -1
        if b.teams is not None and p.team not in b.teams:
            return -1
        if (p.capacity or self._cap).get(b.channel, 0) <= 0:
            return -1
        return b.requirement.match(p.skills)

    def _eligible_buckets(self, agent: AgentRecord) -> dict[Channel, list[Bucket]]:
        """The registered buckets this agent may serve, per channel (cached, extended as new
        buckets appear; sticky buckets are looked up separately)."""
        aid = agent.profile.id
        cached = self._agent_buckets.get(aid)
        known = cached[0] if cached is not None else 0
        new = self.store.bucket_ids(known)
        if cached is not None and not new:
            return cached[1]
        by_ch: dict[Channel, list[Bucket]] = {ch: [] for ch in CHANNELS}
        if cached is not None:
            by_ch = {ch: list(v) for ch, v in cached[1].items()}
        for bid in new:
            b = self._bucket(bid)
            if self._fits(agent, b) >= 0:
                by_ch[b.channel].append(b)
        self._agent_buckets[aid] = (known + len(new), by_ch)
        return by_ch

    def _set_timer(self, kind: TimerKind, subject: str, due: float, out: list[Decision]) -> None:
        self.store.set_timer(kind, subject, due)
        out.append(Timer(due, kind, subject))

    def _arm_contact_timers(self, rec: ContactRecord, now: float, out: list[Decision]) -> None:
        """(Re)arm max-wait and the next escalation step of the contact's current queue."""
        q = self.config.queues[rec.queue]
        cid = rec.contact.id
        if q.max_wait is not None:
            self._set_timer(TimerKind.MAX_WAIT, cid, max(now, rec.entered_queue_at + q.max_wait), out)
        else:
            self.store.cancel_timer(TimerKind.MAX_WAIT, cid)
        if rec.step < len(q.escalation):
            due = max(now, rec.entered_queue_at + q.escalation[rec.step].after)
            self._set_timer(TimerKind.ESCALATE, cid, due, out)
        else:
            self.store.cancel_timer(TimerKind.ESCALATE, cid)
        if rec.sticky_until is not None and rec.sticky_until > now:
            self._set_timer(TimerKind.STICKY, cid, rec.sticky_until, out)
        if rec.declined:
            self._set_timer(TimerKind.RETRY, cid, max(now, min(rec.declined.values())), out)

    def _cancel_contact_timers(self, cid: str) -> None:
        for kind in _CONTACT_TIMERS:
            self.store.cancel_timer(kind, cid)

    def _key(self, rec: ContactRecord) -> float:
        return priority_key(rec.weight + rec.boost, rec.contact.arrived_at, self.config.priority)

    def _end(self, rec: ContactRecord, outcome: ContactStatus, now: float, out: list[Decision]) -> str | None:
        cid = rec.contact.id
        agent_id = self.store.close(cid, outcome, now)
        self._cancel_contact_timers(cid)
        self.store.forget(cid)
        out.append(Ended(cid, outcome))
        return agent_id

    # -- matching --------------------------------------------------------------------------------

    def _reasons(
        self, rec: ContactRecord, agent: AgentRecord, alt: int, now: float, why: str,
        strategy: Strategy | None,
    ) -> tuple[ScorePart, ...]:
        c = rec.contact
        cfg = self.config
        parts = [
            ScorePart("matched", 0.0, why),
            ScorePart("priority_key", rec.key, "weight - k*arrival"),
            ScorePart("tier_weight", cfg.priority.tier_weights[c.tier], c.tier.value),
            ScorePart("queue_weight", cfg.queues[rec.queue].priority + c.priority, rec.queue),
            ScorePart("wait_s", now - c.arrived_at),
            ScorePart("idle_s", now - agent.idle_since),
            ScorePart("proficiency", float(_proficiency(agent, rec.requirement, alt))),
            ScorePart("occupancy", _occupancy(agent, self._cap)),
        ]
        if strategy is not None:
            parts.append(ScorePart("strategy", 0.0, strategy.value))
        if rec.boost:
            parts.append(ScorePart("escalation_boost", rec.boost))
        if rec.widened:
            parts.append(ScorePart("widened", float(alt), "skills widened by escalation"))
        if c.preferred_agent == agent.profile.id:
            parts.append(ScorePart("sticky", 1.0, "the customer's last agent"))
        return tuple(parts)

    def _offer(
        self, rec: ContactRecord, agent: AgentRecord, alt: int, now: float, out: list[Decision],
        why: str, strategy: Strategy | None,
    ) -> bool:
        cid, aid = rec.contact.id, agent.profile.id
        lease = now + self.config.ring_timeout_s
        reasons = self._reasons(rec, agent, alt, now, why, strategy)  # before the claim changes the load
        if not self.store.claim(cid, aid, rec.contact.channel, lease, now):
            return False
        if strategy is Strategy.ROUND_ROBIN:
            self.store.set_rr_pointer(rec.queue, aid)
        out.append(Offer(cid, aid, rec.contact.channel, rec.queue, lease, reasons))
        self._set_timer(TimerKind.RING, cid, lease, out)
        return True

    def _candidates(self, rec: ContactRecord, b: Bucket, now: float) -> list[Candidate]:
        store = self.store
        ch = b.channel
        declined = rec.declined
        found: dict[str, Candidate] = {}
        if b.sticky_agent is not None:
            a = store.agent(b.sticky_agent)
            if a is not None and a.profile.id in store.available(ch):
                fit = self._fits(a, b)
                if fit >= 0 and declined.get(a.profile.id, -math.inf) <= now:
                    found[a.profile.id] = (a, fit)
            return list(found.values())
        for alt_i, alt in enumerate(b.requirement.alternatives):
            if alt:
                pool = min((store.available(ch, name) for name, _ in alt), key=len)
            else:
                pool = store.available(ch)
            for aid in pool:
                if aid in found:
                    continue
                a = store.agent(aid)
                if a is None:
                    continue
                skills = a.profile.skills
                for name, level in alt:
                    if skills.get(name, 0) < level:
                        break
                else:
                    if (b.language is not None and a.profile.languages
                            and b.language not in a.profile.languages):
                        continue
                    if b.teams is not None and a.profile.team not in b.teams:
                        continue
                    if declined and declined.get(aid, -math.inf) > now:
                        continue
                    found[aid] = (a, alt_i)
        return list(found.values())

    def _settle(
        self, agents: dict[str, str], contacts: dict[str, str], now: float, out: list[Decision]
    ) -> None:
        """Restore quiescence after a change that freed these agents and made these contacts
        waiting or more widely eligible, all at once (id -> why).

        Matching a contact to an agent assumes the agent may serve nothing better, which holds
        when only that contact changed. So the freed agents first take their own best contacts;
        then the contacts go by priority, highest first: each finds its agents with nothing
        better left (a higher one either has an agent or no agent could take it).
        """
        for aid, why in agents.items():
            self._match_agent(aid, now, out, why)
        recs = [r for cid in contacts if (r := self.store.contact(cid)) is not None and r.status is _W]
        recs.sort(key=lambda r: (-r.key, r.seq))
        for rec in recs:
            self._match_contact(rec, now, out, contacts[rec.contact.id])

    def _match_contact(self, rec: ContactRecord, now: float, out: list[Decision], why: str) -> None:
        """A contact became waiting or more widely eligible: offer it to the best available agent."""
        if self._batch is not None:
            self._batch[1].setdefault(rec.contact.id, why)
            return
        if rec.status is not _W:
            return
        b = self._bucket(rec.bucket)
        q = self.config.queues[rec.queue]
        if (q.strategy is Strategy.LONGEST_IDLE and b.sticky_agent is None and not rec.declined
                and len(b.requirement.alternatives) == 1):
            # Fast path (the common case): one pass over the smallest availability set.
            found = self._longest_idle(b)
            if found is not None and self._offer(rec, found, 0, now, out, why, q.strategy):
                return
        cands = self._candidates(rec, b, now)
        if not cands:
            return
        fn = STRATEGIES[q.strategy]
        rr = self.store.rr_pointer(rec.queue) if q.strategy is Strategy.ROUND_ROBIN else None
        req = rec.requirement
        cap = self._cap
        while cands:
            best = min(cands, key=lambda c: fn(c, req, rr, cap))
            if self._offer(rec, best[0], best[1], now, out, why, q.strategy):
                return
            cands.remove(best)  # lost a race with another process; try the next one

    def _longest_idle(self, b: Bucket) -> AgentRecord | None:
        store = self.store
        alt = b.requirement.alternatives[0]
        ch = b.channel
        pool = min((store.available(ch, name) for name, _ in alt), key=len) if alt else store.available(ch)
        lang, teams = b.language, b.teams
        get = store.agent
        best: AgentRecord | None = None
        best_key: tuple[float, str] = (math.inf, "")
        for aid in pool:
            a = get(aid)
            if a is None:
                continue
            key = (a.idle_since, aid)
            if key >= best_key:
                continue
            p = a.profile
            skills = p.skills
            for name, level in alt:
                if skills.get(name, 0) < level:
                    break
            else:
                if lang is not None and p.languages and lang not in p.languages:
                    continue
                if teams is not None and p.team not in teams:
                    continue
                best, best_key = a, key
        return best

    def _best_for_agent(self, agent: AgentRecord, now: float) -> tuple[ContactRecord, int] | None:
        """The waiting contact with the highest key among those this agent may serve now."""
        store = self.store
        aid = agent.profile.id
        open_channels = [ch for ch in CHANNELS
                         if can_take(agent.load, ch, self._rules, agent.profile.capacity)]
        if not open_channels:
            return None
        best: ContactRecord | None = None
        best_alt = -1
        by_ch = self._eligible_buckets(agent)
        buckets: list[Bucket] = [b for ch in open_channels for b in by_ch[ch]]
        if self._sticky_index.get(aid):
            for ch in open_channels:
                for bid in self._sticky_ids(aid, ch):
                    b = self._bucket(bid)
                    if self._fits(agent, b) >= 0:
                        buckets.append(b)
        peek = store.peek
        for b in buckets:
            rows = peek(b.id, 1)
            if not rows or (best is not None and rows[0][1] < best.key):
                continue  # empty, or its best cannot win: no record read
            n = 1
            chosen: ContactRecord | None = None
            while True:
                for cid, _key in rows:
                    rec = store.contact(cid)
                    if rec is None or (rec.declined and rec.declined.get(aid, -math.inf) > now):
                        continue
                    chosen = rec
                    break
                if chosen is not None or len(rows) < n:
                    break
                n *= 4  # the first ones declined by this agent: read further
                rows = peek(b.id, n)
            if chosen is None:
                continue
            if best is None or chosen.key > best.key or (chosen.key == best.key and chosen.seq < best.seq):
                best = chosen
                best_alt = self._fits(agent, b)
        return None if best is None else (best, best_alt)

    def _sticky_ids(self, aid: str, ch: Channel) -> list[str]:
        # Sticky buckets are not registered (one per agent would make every agent's list long);
        # this process remembers the ones it made, and drops those found empty.
        ids = self._sticky_index.get(aid)
        if not ids:
            return []
        prefix = f"@{aid}|{ch.value}|"
        for bid in [b for b in ids if not self.store.waiting_count(b)]:
            ids.discard(bid)
        return [bid for bid in ids if bid.startswith(prefix)]

    def _match_agent(self, aid: str, now: float, out: list[Decision], why: str) -> None:
        """An agent may take more: offer it the best waiting contacts until it is full."""
        if self._batch is not None:
            self._batch[0].setdefault(aid, why)
            return
        lost = 0
        while True:
            agent = self.store.agent(aid)
            if agent is None or agent.presence is not Presence.READY:
                return
            found = self._best_for_agent(agent, now)
            if found is None:
                return
            rec, alt = found
            if not self._offer(rec, agent, alt, now, out, why, None):
                # Only a store shared with other processes refuses here (they took the contact or
                # the agent first): read again and try the next best, a bounded number of times.
                lost += 1
                if lost > _MAX_LOST_RACES:
                    return

    def _index_sticky(self, b: Bucket) -> None:
        """Remember a preferred-agent bucket that a contact enters (placed, or requeued: its
        bucket may have been found empty and forgotten while the contact was ringing)."""
        if b.sticky_agent is not None:
            self._sticky_index.setdefault(b.sticky_agent, set()).add(b.id)

    def _place(self, rec: ContactRecord, now: float) -> None:
        """Put a contact in the right bucket with its key (same key: same place)."""
        b = self._bucket_for(rec, now)
        self._index_sticky(b)
        rec.key = self._key(rec)
        self.store.save_contact(rec)
        self.store.enqueue(rec.contact.id, b.id, rec.key)

    # -- event handlers --------------------------------------------------------------------------

    def _on_arrived(self, ev: ContactArrived, now: float, out: list[Decision]) -> None:
        c = ev.contact
        q = self._queue(c.queue)
        if self.store.contact(c.id) is not None:
            raise BadInput(f"contact {c.id} already exists")
        sticky_s = c.sticky_s if c.sticky_s is not None else q.sticky_s
        sticky_until = now + sticky_s if c.preferred_agent and sticky_s > 0 else None
        requirement = Requirement.of(q.skills, c.skills)
        if sticky_until is not None:
            # Only wait for a preferred agent who could take the contact at all.
            pref = self.store.agent(c.preferred_agent or "")
            if pref is None or self._fits(pref, Bucket.make(c.channel, requirement, c.language, q.teams)) < 0:
                sticky_until = None
        rec = ContactRecord(
            contact=c, queue=q.name, entered_queue_at=now,
            weight=base_weight(c, q, self.config.priority),
            requirement=requirement, sticky_until=sticky_until,
        )
        self.store.add_contact(rec)
        self._place(rec, now)
        self._arm_contact_timers(rec, now, out)
        self._match_contact(rec, now, out, "contact arrived")

    def _on_hung_up(self, ev: ContactHungUp, now: float, out: list[Decision]) -> None:
        rec = self._contact(ev.contact_id)
        was = rec.status
        outcome = _transition(was, "hang-up", rec.contact.id)
        agent_id = self._end(rec, outcome, now, out)
        if agent_id is None:
            return
        if was is _C:
            self._after_work(agent_id, rec.contact.channel, None, now, out)
        else:
            self._match_agent(agent_id, now, out, "agent freed up (customer hung up while ringing)")

    def _on_presence(self, ev: AgentPresence, now: float, out: list[Decision]) -> None:
        agent = self._agent(ev.agent_id)
        allowed = PRESENCE_REQUESTS.get(ev.presence)
        if allowed is None:
            raise BadInput(f"agent {ev.agent_id}: cannot ask for presence {ev.presence}")
        if agent.presence not in allowed:
            raise BadInput(f"agent {ev.agent_id}: {agent.presence} -> {ev.presence} not allowed")
        aid = ev.agent_id
        self.store.cancel_timer(TimerKind.WRAP_UP, aid)
        requeued: list[ContactRecord] = []
        if ev.presence is Presence.OFFLINE:
            for cid, (_ch, state) in list(agent.slots.items()):
                if state is SlotState.RESERVED:
                    rec = self.store.contact(cid)
                    if rec is not None and self.store.requeue(cid, aid, now):
                        self._index_sticky(self._bucket(rec.bucket))
                        self.store.cancel_timer(TimerKind.RING, cid)
                        out.append(Requeue(cid, aid, "agent-offline"))
                        requeued.append(rec)
        self.store.set_presence(aid, ev.presence, ev.reason, now)
        for rec in requeued:
            self._arm_contact_timers(rec, now, out)
        # They all wait again at once: the highest key first, or a lower one could take the only
        # slot of an agent that may serve both.
        self._settle({}, {rec.contact.id: "requeued (agent went offline)" for rec in requeued}, now, out)
        if ev.presence is Presence.READY:
            self._match_agent(aid, now, out, "agent became ready")

    def _on_wrap_up_ended(self, ev: WrapUpEnded, now: float, out: list[Decision]) -> None:
        agent = self._agent(ev.agent_id)
        if agent.presence is not Presence.WRAP_UP:
            raise StaleEvent(f"agent {ev.agent_id} is not in wrap-up")
        self._timer_wrap_up(ev.agent_id, now, out)

    def _on_accepted(self, ev: OfferAccepted, now: float, out: list[Decision]) -> None:
        rec = self._contact(ev.contact_id)
        _transition(rec.status, "accept", rec.contact.id)
        if not self.store.accept(ev.contact_id, ev.agent_id, now):
            raise StaleEvent(f"contact {ev.contact_id} is not offered to agent {ev.agent_id}")
        self._cancel_contact_timers(ev.contact_id)

    def _on_declined(self, ev: OfferDeclined, now: float, out: list[Decision]) -> None:
        rec = self._contact(ev.contact_id)
        action = "no-answer" if ev.no_answer else "decline"
        _transition(rec.status, action, rec.contact.id)
        if rec.agent_id != ev.agent_id:
            raise StaleEvent(f"contact {ev.contact_id} is not offered to agent {ev.agent_id}")
        self._refused(rec, ev.agent_id, ev.no_answer, now, out)

    def _refused(
        self, rec: ContactRecord, aid: str, no_answer: bool, now: float, out: list[Decision]
    ) -> None:
        cid = rec.contact.id
        cfg = self.config
        if cfg.retry_same_agent_s > 0:
            rec.declined[aid] = now + cfg.retry_same_agent_s
            self.store.save_contact(rec)
        self.store.cancel_timer(TimerKind.RING, cid)
        if not self.store.requeue(cid, aid, now):
            raise StaleEvent(f"contact {cid} is not offered to agent {aid}")
        self._index_sticky(self._bucket(rec.bucket))
        out.append(Requeue(cid, aid, "no-answer" if no_answer else "declined"))
        if no_answer and cfg.not_ready_on_no_answer or (not no_answer and cfg.not_ready_on_decline):
            reason = cfg.no_answer_reason if no_answer else cfg.decline_reason
            self.store.set_presence(aid, Presence.NOT_READY, reason, now)
            out.append(PresenceChanged(aid, Presence.NOT_READY, reason))
        self._arm_contact_timers(rec, now, out)
        self._match_contact(rec, now, out, "requeued")
        self._match_agent(aid, now, out, "agent freed up")

    def _on_finished(self, ev: ContactFinished, now: float, out: list[Decision]) -> None:
        rec = self._contact(ev.contact_id)
        _transition(rec.status, "finish", rec.contact.id)
        if rec.agent_id != ev.agent_id:
            raise StaleEvent(f"contact {ev.contact_id} is not with agent {ev.agent_id}")
        self._end(rec, ContactStatus.HANDLED, now, out)
        self._after_work(ev.agent_id, rec.contact.channel, ev.wrap_up_s, now, out)

    def _after_work(
        self, aid: str, channel: Channel, wrap_up_s: float | None, now: float, out: list[Decision]
    ) -> None:
        wrap = wrap_up_s if wrap_up_s is not None else self.config.wrap_up_s.get(channel, 0.0)
        agent = self.store.agent(aid)
        if agent is None:
            return
        if wrap > 0 and agent.presence is Presence.READY:
            self.store.set_presence(aid, Presence.WRAP_UP, None, now, wrap_up_until=now + wrap)
            out.append(PresenceChanged(aid, Presence.WRAP_UP, None))
            self._set_timer(TimerKind.WRAP_UP, aid, now + wrap, out)
            return
        self._match_agent(aid, now, out, "agent freed up")

    def _on_callback_accepted(self, ev: CallbackAccepted, now: float, out: list[Decision]) -> None:
        rec = self._contact(ev.contact_id)
        if not rec.callback_offered:
            raise BadInput(f"contact {ev.contact_id} was not offered a callback")
        was = rec.status
        outcome = _transition(was, "callback", rec.contact.id)
        agent_id = self._end(rec, outcome, now, out)
        if agent_id is not None:
            self._match_agent(agent_id, now, out, "agent freed up (callback taken)")

    # -- supervisor actions on a waiting contact ----------------------------------------------------

    def _move_to_queue(self, rec: ContactRecord, nq: QueueConfig, now: float) -> None:
        """The contact starts over in queue ``nq`` (an overflow, or a supervisor's move)."""
        rec.queue = nq.name
        rec.entered_queue_at = now
        rec.step = 0
        rec.weight = base_weight(rec.contact, nq, self.config.priority)
        rec.requirement = Requirement.of(nq.skills, rec.contact.skills)
        rec.widened = False
        self._place(rec, now)

    def _waiting(self, contact_id: str) -> ContactRecord:
        rec = self._contact(contact_id)
        if rec.status is not _W:
            raise BadInput(f"contact {contact_id} is not waiting (it is {rec.status.value})")
        return rec

    def _on_moved(self, ev: ContactMoved, now: float, out: list[Decision]) -> None:
        rec = self._waiting(ev.contact_id)
        cid, was = rec.contact.id, rec.queue
        if (ev.queue is None) == (ev.agent_id is None):
            raise BadInput("move a contact to a queue or to an agent")
        if ev.queue is not None:
            self._move_to_queue(rec, self._queue(ev.queue), now)
            out.append(Escalate(cid, was, -1, "move-queue", ev.queue))
            why = f"moved from {was} by a supervisor"
        else:
            agent = self._agent(ev.agent_id or "")
            b = Bucket.make(rec.contact.channel, rec.requirement, rec.contact.language,
                            self.config.queues[rec.queue].teams)
            if self._fits(agent, b) < 0:
                raise BadInput(f"agent {agent.profile.id} cannot take contact {cid}")
            if ev.sticky_s <= 0:
                raise BadInput("sticky_s must be positive")
            rec.contact = replace(rec.contact, preferred_agent=agent.profile.id)
            rec.sticky_until = now + ev.sticky_s
            rec.declined.pop(agent.profile.id, None)
            self._place(rec, now)
            out.append(Escalate(cid, was, -1, "move-agent", agent.profile.id))
            why = "moved to this agent by a supervisor"
        self._arm_contact_timers(rec, now, out)
        self._match_contact(rec, now, out, why)

    def _on_priority_raised(self, ev: PriorityRaised, now: float, out: list[Decision]) -> None:
        if not math.isfinite(ev.by) or ev.by <= 0:
            raise BadInput("raise the priority by a positive number")
        rec = self._waiting(ev.contact_id)
        rec.boost += ev.by
        self._place(rec, now)
        out.append(Escalate(rec.contact.id, rec.queue, -1, "raise-priority", f"+{ev.by:g}"))

    # -- timers ----------------------------------------------------------------------------------

    def _timer_ring(self, cid: str, now: float, out: list[Decision]) -> None:
        rec = self.store.contact(cid)
        if rec is None or rec.status is not _O or rec.agent_id is None:
            return
        self._refused(rec, rec.agent_id, True, now, out)

    def _timer_wrap_up(self, aid: str, now: float, out: list[Decision]) -> None:
        agent = self.store.agent(aid)
        if agent is None or agent.presence is not Presence.WRAP_UP:
            return
        self.store.cancel_timer(TimerKind.WRAP_UP, aid)
        self.store.set_presence(aid, Presence.READY, None, now)
        out.append(PresenceChanged(aid, Presence.READY, None))
        self._match_agent(aid, now, out, "agent ready after wrap-up")

    def _timer_max_wait(self, cid: str, now: float, out: list[Decision]) -> None:
        rec = self.store.contact(cid)
        if rec is None or rec.status is not _W:
            return  # ringing: re-armed if it comes back
        q = self.config.queues[rec.queue]
        out.append(TimeOut(cid, rec.queue, q.on_timeout))
        self._end(rec, ContactStatus.TIMED_OUT, now, out)

    def _timer_sticky(self, cid: str, now: float, out: list[Decision]) -> None:
        rec = self.store.contact(cid)
        if rec is None or rec.status is not _W:
            return
        rec.sticky_until = None
        self._place(rec, now)
        self._match_contact(rec, now, out, "stopped waiting for the preferred agent")

    def _timer_retry(self, cid: str, now: float, out: list[Decision]) -> None:
        rec = self.store.contact(cid)
        if rec is None:
            return
        rec.declined = {a: t for a, t in rec.declined.items() if t > now}
        self.store.save_contact(rec)
        if rec.declined:
            self._set_timer(TimerKind.RETRY, cid, min(rec.declined.values()), out)
        self._match_contact(rec, now, out, "retry after a decline")

    def _timer_escalate(self, cid: str, now: float, out: list[Decision]) -> None:
        rec = self.store.contact(cid)
        if rec is None or rec.status is not _W:
            return  # ringing or connected: re-armed if it comes back
        q = self.config.queues[rec.queue]
        if rec.step >= len(q.escalation):
            return
        i = rec.step
        step = q.escalation[i]
        rec.step += 1
        if isinstance(step, WidenSkills):
            rec.requirement = rec.requirement.widened(step.lower_by, step.alternatives)
            rec.widened = True
            self._place(rec, now)
            out.append(Escalate(cid, q.name, i, step.action, rec.requirement.encode()))
            self._arm_contact_timers(rec, now, out)
            self._match_contact(rec, now, out, "skills widened")
        elif isinstance(step, RaisePriority):
            rec.boost += step.by
            self._place(rec, now)
            out.append(Escalate(cid, q.name, i, step.action, f"+{step.by:g}"))
            self._arm_contact_timers(rec, now, out)
        elif isinstance(step, Overflow):
            self._move_to_queue(rec, self.config.queues[step.queue], now)
            out.append(Escalate(cid, q.name, i, step.action, step.queue))
            self._arm_contact_timers(rec, now, out)
            self._match_contact(rec, now, out, f"overflowed from {q.name}")
        elif isinstance(step, OfferCallbackStep):
            rec.callback_offered = True
            self.store.save_contact(rec)
            out.append(OfferCallback(cid, q.name))
            self._arm_contact_timers(rec, now, out)
        elif isinstance(step, AlertSupervisor):
            self.store.save_contact(rec)
            out.append(Alert(cid, q.name, step.message))
            self._arm_contact_timers(rec, now, out)
        elif isinstance(step, SendTo):
            out.append(TimeOut(cid, q.name, step.destination))
            self._end(rec, ContactStatus.TIMED_OUT, now, out)
        else:  # pragma: no cover - the union is closed
            raise Misuse(f"unknown escalation step {step!r}")
