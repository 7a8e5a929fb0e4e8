"""Live wallboard statistics, computed incrementally from domain events. Pure: no I/O, no clock
of its own (every event carries its time `at`, in seconds of one monotonic time base; snapshots
and alerts take `now`).

Per queue and channel (a contact's wait *segment*: it enters a queue, then is answered or
abandoned; a transferred or overflowed contact starts a new segment in its new queue):

- waiting: contacts in the queue now, offered ones included (not answered yet);
- longest wait: the oldest of them;
- service level  SL = answered within T / (answered + abandoned), T the queue's target seconds,
  over the segments that ended their wait since the counters started (the day);
- ASA = sum of waits of answered segments / answered;
- AHT = sum of (end - answer) of handled segments / handled (talk time, wrap-up excluded);
- abandonment rate = abandoned / (answered + abandoned);
- handled: answered segments that ended (a transfer ends the first agent's segment);
- agents by state: agents who serve the queue (skills and channel capacity), by their state.

Per agent: state (busy when a contact is connected, else presence) and time in it, current
contacts, occupancy = busy time / (busy + wrap-up + ready time), handled, AHT.
"""
from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

Stamp = Callable[[float], Any]  # a time of the event time base -> what a snapshot shows


def _same(t: float) -> float:
    return t


AGENT_STATES = ("ready", "busy", "wrap_up", "not_ready", "offline")
MAX_ABANDONED = 20  # abandoned contacts listed per queue and channel
MAX_REMEMBERED = 10_000  # handled contacts remembered to recognise a transfer


# -- events -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Queued:
    contact_id: str
    queue: str
    channel: str
    at: float
    tier: str = "regular"
    customer_id: str = ""
    interaction_id: int | None = None


@dataclass(frozen=True, slots=True)
class Offered:
    contact_id: str
    agent_id: str
    at: float


@dataclass(frozen=True, slots=True)
class Requeued:
    """The offer was refused or rang out: the contact waits again (keeping its wait)."""

    contact_id: str
    agent_id: str
    at: float


@dataclass(frozen=True, slots=True)
class Answered:
    contact_id: str
    agent_id: str
    at: float


@dataclass(frozen=True, slots=True)
class Moved:
    """Overflow or a supervisor's move: the wait ends in the old queue (not counted) and a new
    segment starts in `queue`."""

    contact_id: str
    queue: str
    at: float


@dataclass(frozen=True, slots=True)
class Ended:
    """The contact left routing: `handled` (after an answer), `abandoned`, `timed-out`,
    `called-back`."""

    contact_id: str
    outcome: str
    at: float


@dataclass(frozen=True, slots=True)
class AgentState:
    """Presence: ready, not_ready (reason), wrap_up or offline."""

    agent_id: str
    presence: str
    at: float
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class CustomerKnown:
    """Who the contact's customer is (looked up after it queued)."""

    contact_id: str
    name: str
    tier: str | None = None
    customer_id: str | None = None


Event = Queued | Offered | Requeued | Answered | Moved | Ended | AgentState | CustomerKnown


# -- configuration ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """A queue's service-level target: `fraction` answered within `seconds`."""

    fraction: float = 0.8
    seconds: float = 20.0


@dataclass(frozen=True)
class Thresholds:
    max_wait_s: float = 60.0  # a contact waiting longer raises `long_wait`
    not_ready_s: float = 600.0  # an agent longer in not-ready raises `not_ready_too_long`
    sl_min_contacts: int = 5  # `sl_below_target` only once this many segments count


@dataclass
class AgentInfo:
    agent_id: str
    name: str
    teams: tuple[str, ...] = ()
    queues: frozenset[tuple[str, str]] = frozenset()  # (queue, channel) the agent serves


# -- state ------------------------------------------------------------------------------------
@dataclass
class _Contact:
    id: str
    queue: str
    channel: str
    queued_at: float
    tier: str
    customer_id: str
    interaction_id: int | None
    customer: str | None = None
    agent_id: str | None = None  # offered to, then answered by
    answered_at: float | None = None


@dataclass
class _Queue:
    queue: str
    channel: str
    answered: int = 0
    answered_in_sl: int = 0
    abandoned: int = 0
    handled: int = 0
    transferred: int = 0
    wait_sum: float = 0.0
    handle_sum: float = 0.0
    abandoned_list: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_ABANDONED))


@dataclass
class _Agent:
    info: AgentInfo
    presence: str = "offline"
    reason: str | None = None
    state: str = "offline"
    since: float = 0.0
    contacts: dict[str, _Contact] = field(default_factory=dict)  # connected
    handled: int = 0
    handle_sum: float = 0.0
    spent: dict[str, float] = field(default_factory=lambda: dict.fromkeys(AGENT_STATES, 0.0))
    counted_from: float = 0.0  # time in state before this (the day's reset) is not counted


class WallboardStats:
    """Feed events with `apply`; read `snapshot(now)` and `alerts(now)`."""

    def __init__(self, targets: dict[str, Target] | None = None, thresholds: Thresholds = Thresholds(),
                 queue_teams: dict[str, tuple[str, ...]] | None = None) -> None:
        self.targets = dict(targets or {})
        self.thresholds = thresholds
        self.queue_teams = dict(queue_teams or {})
        self.contacts: dict[str, _Contact] = {}
        self.queues: dict[tuple[str, str], _Queue] = {}
        self.agents: dict[str, _Agent] = {}
        self._handled_in: OrderedDict[str, tuple[str, str]] = OrderedDict()  # contact -> queue key
        self.version = 0  # bumped by every event that changed something

    # ------------------------------------------------------------------ set-up
    def add_agent(self, info: AgentInfo, at: float = 0.0) -> None:
        a = self.agents.get(info.agent_id)
        if a is None:
            self.agents[info.agent_id] = _Agent(info, since=at)
        else:
            a.info = info
        for key in info.queues:
            self._queue(key)
        self.version += 1

    def _queue(self, key: tuple[str, str]) -> _Queue:
        q = self.queues.get(key)
        if q is None:
            q = self.queues[key] = _Queue(*key)
        return q

    def _agent(self, agent_id: str, at: float) -> _Agent:
        a = self.agents.get(agent_id)
        if a is None:
            a = self.agents[agent_id] = _Agent(AgentInfo(agent_id, agent_id), since=at)
        return a

    # ------------------------------------------------------------------ events
    def apply(self, ev: Event) -> bool:
        """Apply one event; True when something changed."""
        changed = self._apply(ev)
        if changed:
            self.version += 1
        return changed

    def apply_all(self, events: Iterable[Event]) -> bool:
        changed = False
        for ev in events:
            changed = self.apply(ev) or changed
        return changed

    def _apply(self, ev: Event) -> bool:
        if isinstance(ev, Queued):
            prev = self._handled_in.pop(ev.contact_id, None)
            if prev is not None:  # routed again after it was handled: a transfer
                self._queue(prev).transferred += 1
            old = self.contacts.get(ev.contact_id)
            self.contacts[ev.contact_id] = _Contact(
                ev.contact_id, ev.queue, ev.channel, ev.at, ev.tier, ev.customer_id, ev.interaction_id,
                customer=old.customer if old else None)
            self._queue((ev.queue, ev.channel))
            return True
        if isinstance(ev, CustomerKnown):
            known = self.contacts.get(ev.contact_id)
            if known is None:
                return False
            known.customer = ev.name
            if ev.tier:
                known.tier = ev.tier
            if ev.customer_id:
                known.customer_id = ev.customer_id
            return True
        if isinstance(ev, AgentState):
            a = self._agent(ev.agent_id, ev.at)
            a.presence, a.reason = ev.presence, ev.reason if ev.presence == "not_ready" else None
            self._restate(a, ev.at)
            return True
        c = self.contacts.get(ev.contact_id)
        if c is None:
            return False
        if isinstance(ev, Offered):
            c.agent_id = ev.agent_id
            return True
        if isinstance(ev, Requeued):
            c.agent_id = None
            return True
        if isinstance(ev, Answered):
            if c.answered_at is not None:
                return False
            c.agent_id, c.answered_at = ev.agent_id, ev.at
            q = self._queue((c.queue, c.channel))
            wait = max(0.0, ev.at - c.queued_at)
            q.answered += 1
            q.wait_sum += wait
            if wait <= self._target(c.queue).seconds:
                q.answered_in_sl += 1
            a = self._agent(ev.agent_id, ev.at)
            a.contacts[c.id] = c
            self._restate(a, ev.at)
            return True
        if isinstance(ev, Moved):
            if c.answered_at is not None:
                return False
            c.queue, c.queued_at, c.agent_id = ev.queue, ev.at, None
            self._queue((c.queue, c.channel))
            return True
        if isinstance(ev, Ended):
            del self.contacts[c.id]
            q = self._queue((c.queue, c.channel))
            if c.answered_at is not None:  # handled, whatever the outcome says
                q.handled += 1
                q.handle_sum += max(0.0, ev.at - c.answered_at)
                a = self._agent(c.agent_id or "", ev.at)
                a.contacts.pop(c.id, None)
                a.handled += 1
                a.handle_sum += max(0.0, ev.at - c.answered_at)
                self._restate(a, ev.at)
                self._handled_in[c.id] = (c.queue, c.channel)
                while len(self._handled_in) > MAX_REMEMBERED:
                    self._handled_in.popitem(last=False)
            elif ev.outcome == "abandoned":
                q.abandoned += 1
                q.abandoned_list.appendleft({
                    "interaction_id": c.interaction_id, "customer_id": _int(c.customer_id),
                    "customer": c.customer, "tier": c.tier, "waited_s": round(ev.at - c.queued_at, 1),
                    "at": ev.at, "callback_id": None})
            return True
        return False

    def _target(self, queue: str) -> Target:
        return self.targets.get(queue) or Target()

    def _restate(self, a: _Agent, at: float) -> None:
        state = "busy" if a.contacts else a.presence
        if state == a.state:
            return
        a.spent[a.state] = a.spent.get(a.state, 0.0) + max(0.0, at - max(a.since, a.counted_from))
        a.state, a.since = state, at

    def reset_day(self, at: float) -> None:
        """Local midnight: the day's counters start again at zero. Contacts waiting or connected
        and every agent's state stay (an agent's time in state counts from `at` on)."""
        for q in self.queues.values():
            self.queues[(q.queue, q.channel)] = _Queue(q.queue, q.channel)
        for a in self.agents.values():
            a.handled, a.handle_sum = 0, 0.0
            a.spent = dict.fromkeys(AGENT_STATES, 0.0)
            a.counted_from = at
        self._handled_in.clear()
        self.version += 1

    def abandoned_row(self, interaction_id: int) -> tuple[str, str, dict[str, Any]] | None:
        """(queue, channel, row) of an abandoned contact still listed."""
        for (queue, channel), q in self.queues.items():
            for row in q.abandoned_list:
                if row["interaction_id"] == interaction_id:
                    return queue, channel, row
        return None

    def mark_callback(self, interaction_id: int, callback_id: int) -> bool:
        """A callback was scheduled for an abandoned contact: its row says so."""
        found = self.abandoned_row(interaction_id)
        if found is None:
            return False
        found[2]["callback_id"] = callback_id
        self.version += 1
        return True

    # ------------------------------------------------------------------ reading
    def queue_row(self, q: _Queue, stamp: Stamp = _same) -> dict[str, Any]:
        waiting = [c for c in self.contacts.values()
                   if c.queue == q.queue and c.channel == q.channel and c.answered_at is None]
        waiting.sort(key=lambda c: c.queued_at)
        done = q.answered + q.abandoned
        by_state = dict.fromkeys(AGENT_STATES, 0)
        for a in self.agents.values():
            if (q.queue, q.channel) in a.info.queues:
                by_state[a.state] = by_state.get(a.state, 0) + 1
        t = self._target(q.queue)
        return {
            "queue": q.queue, "channel": q.channel, "waiting": len(waiting),
            "longest_wait_since": stamp(waiting[0].queued_at) if waiting else None,
            "sl_pct": _pct(q.answered_in_sl, done), "sl_target_pct": round(t.fraction * 100, 1),
            "sl_target_s": t.seconds,
            "asa_s": round(q.wait_sum / q.answered, 1) if q.answered else None,
            "aht_s": round(q.handle_sum / q.handled, 1) if q.handled else None,
            "abandon_pct": _pct(q.abandoned, done),
            "answered": q.answered, "answered_in_sl": q.answered_in_sl, "abandoned": q.abandoned,
            "handled": q.handled, "transferred": q.transferred, "agents": by_state,
            "contacts": [self._contact_row(c, stamp) for c in waiting],
            "abandoned_contacts": [{**r, "at": stamp(r["at"])} for r in q.abandoned_list],
        }

    def _contact_row(self, c: _Contact, stamp: Stamp) -> dict[str, Any]:
        return {"interaction_id": c.interaction_id, "customer_id": _int(c.customer_id),
                "customer": c.customer, "tier": c.tier, "queue": c.queue, "channel": c.channel,
                "since": stamp(c.queued_at), "agent_id": c.agent_id}

    def agent_row(self, a: _Agent, stamp: Stamp = _same) -> dict[str, Any]:
        """Times are absolute (`since`), and occupancy is given as its parts up to `since`, so a
        row changes only when the agent's state does (see `occupancy` for the live figure)."""
        spent = a.spent
        return {
            "agent_id": a.info.agent_id, "name": a.info.name, "teams": list(a.info.teams),
            "state": a.state, "reason": a.reason, "since": stamp(a.since),
            "contacts": [{k: v for k, v in self._contact_row(c, stamp).items() if k != "agent_id"}
                         for c in a.contacts.values()],
            "busy_s": round(spent["busy"], 1),
            "worked_s": round(spent["busy"] + spent["wrap_up"] + spent["ready"], 1),
            "handled": a.handled, "aht_s": round(a.handle_sum / a.handled, 1) if a.handled else None,
        }

    def occupancy(self, agent_id: str, now: float) -> float | None:
        """busy / (busy + wrap-up + ready) time, as of `now` (%)."""
        a = self.agents[agent_id]
        spent = dict(a.spent)
        spent[a.state] = spent.get(a.state, 0.0) + max(0.0, now - max(a.since, a.counted_from))
        worked = spent["busy"] + spent["wrap_up"] + spent["ready"]
        return _pct(spent["busy"], worked)

    def snapshot(self, now: float, stamp: Stamp = _same) -> dict[str, Any]:
        """Every queue and agent (the caller scopes it per supervisor). Times go through `stamp`
        (e.g. to epoch milliseconds); nothing in it depends on `now` but the alerts' presence, so
        a snapshot changes only when something happened."""
        return {"queues": [self.queue_row(q, stamp) for _k, q in sorted(self.queues.items())],
                "agents": [self.agent_row(a, stamp) for _k, a in sorted(self.agents.items())],
                "alerts": self.alerts(now)}

    def alerts(self, now: float) -> list[dict[str, Any]]:
        """Live conditions (they clear by themselves): SL below target, a wait over the threshold,
        a VIP waiting, an agent too long in not-ready. `key` is stable while the condition lasts."""
        th = self.thresholds
        out: list[dict[str, Any]] = []
        for (queue, channel), q in sorted(self.queues.items()):
            done = q.answered + q.abandoned
            t = self._target(queue)
            if done >= th.sl_min_contacts and q.answered_in_sl < t.fraction * done:
                out.append(_alert("sl_below_target", f"sl:{queue}:{channel}", queue=queue,
                                  message=f"{queue} ({channel}): service level "
                                          f"{_pct(q.answered_in_sl, done)}% is below its target "
                                          f"{round(t.fraction * 100, 1)}%"))
        for c in sorted(self.contacts.values(), key=lambda c: c.queued_at):
            if c.answered_at is not None:
                continue
            who = c.customer or "an unknown customer"
            if now - c.queued_at > th.max_wait_s:
                out.append(_alert("long_wait", f"wait:{c.id}", queue=c.queue,
                                  interaction_id=c.interaction_id,
                                  message=f"{who} has waited over {th.max_wait_s:g} s in {c.queue} "
                                          f"({c.channel})"))
            if c.tier == "vip":
                out.append(_alert("vip_waiting", f"vip:{c.id}", queue=c.queue,
                                  interaction_id=c.interaction_id,
                                  message=f"VIP {who} is waiting in {c.queue} ({c.channel})"))
        for aid, a in sorted(self.agents.items()):
            if a.state == "not_ready" and now - a.since > th.not_ready_s:
                out.append(_alert("not_ready_too_long", f"nr:{aid}", agent_id=aid,
                                  message=f"{a.info.name} has been not ready for over {th.not_ready_s:g} s"
                                          + (f" ({a.reason})" if a.reason else "")))
        return out


def _alert(kind: str, key: str, *, message: str, queue: str | None = None, agent_id: str | None = None,
           interaction_id: int | None = None) -> dict[str, Any]:
    return {"kind": kind, "key": key, "message": message, "queue": queue, "agent_id": agent_id,
            "interaction_id": interaction_id}


def _pct(part: float, whole: float, *, exact: bool = True) -> float | None:
    if not whole or not exact:
        return None
    return round(100.0 * part / whole, 1)


def _int(raw: str | None) -> int | None:
    return int(raw) if raw and raw.isdigit() else None
