"""The engine's state, behind a Protocol, and the in-memory store.

Every method of :class:`RoutingStore` is one atomic step. The Redis store implements each as one
Lua script (or one command), so several engine processes can share the state: two processes can
never claim the same contact, nor fill an agent beyond :func:`routing.model.can_take`.

Layout (the Redis key in brackets):

* agents: a record per agent [hash], and the **availability index**: for each channel and each
  skill, the set of agents that are ready and may take a new contact on that channel [set
  ``avail:{channel}:{skill}``; skill ``""`` = every agent]. The store keeps the index up to date in
  the same step as every change of presence or load.
* contacts: a record per contact [hash], and for each *bucket* (contacts with the same channel,
  requirement, language and teams) the waiting contacts sorted by priority key, highest first [zset
  scored ``-key``]. The key never changes while a contact waits, so reads are range reads.
* timers: one per (kind, subject), sorted by due time [zset].
"""
from __future__ import annotations

import heapq
import itertools
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from routing.events import Timer, TimerKind
from routing.model import (
    CHANNELS,
    DEFAULT_MIXING,
    TERMINAL,
    AgentProfile,
    Channel,
    Contact,
    ContactStatus,
    MixingRules,
    Presence,
    Requirement,
    SlotState,
    can_take,
)


@dataclass(slots=True)
class AgentRecord:
    """An agent's state. Only the store changes it; the engine reads it."""

    profile: AgentProfile
    presence: Presence = Presence.OFFLINE
    reason: str | None = None  # not-ready reason code
    presence_since: float = 0.0
    wrap_up_until: float | None = None
    idle_since: float = 0.0  # last became ready, or last finished a contact
    load: dict[Channel, int] = field(default_factory=dict)  # reserved + busy per channel
    slots: dict[str, tuple[Channel, SlotState]] = field(default_factory=dict)  # contact id -> slot


@dataclass(slots=True)
class ContactRecord:
    """A contact's routing state.

    The store owns ``status``, ``agent_id``, ``bucket``, ``key`` and ``seq`` (changed only by
    enqueue/claim/accept/requeue/close); the engine owns the rest and persists it with
    ``save_contact``.
    """

    contact: Contact
    queue: str
    entered_queue_at: float
    weight: float
    requirement: Requirement
    status: ContactStatus = ContactStatus.WAITING
    agent_id: str | None = None
    bucket: str = ""
    key: float = 0.0
    seq: int = 0  # arrival order; ties of equal keys go first-come first-served
    step: int = 0  # next escalation step of the current queue
    boost: float = 0.0  # priority raised by escalation
    widened: bool = False
    declined: dict[str, float] = field(default_factory=dict)  # agent -> not re-offered before
    sticky_until: float | None = None
    callback_offered: bool = False


class RoutingStore(Protocol):
    """State of the routing engine; each method is atomic. See the module docstring."""

    @property
    def rules(self) -> MixingRules:
        """The mixing rules that ``claim`` enforces."""
        ...

    # agents
    def add_agent(self, profile: AgentProfile, now: float) -> bool:
        """Register an agent (offline, no load). False if the id exists."""
        ...

    def remove_agent(self, agent_id: str) -> bool:
        """Forget an agent that holds no contact. False if unknown or still holding one."""
        ...

    def agent(self, agent_id: str) -> AgentRecord | None: ...

    def agent_ids(self) -> Collection[str]: ...

    def set_presence(
        self, agent_id: str, presence: Presence, reason: str | None, now: float,
        wrap_up_until: float | None = None,
    ) -> None:
        """Set presence and update the availability index. Becoming READY from another presence
        sets ``idle_since = now``."""
        ...

    def available(self, channel: Channel, skill: str = "") -> Collection[str]:
        """Ready agents that ``can_take`` a new ``channel`` contact and have ``skill`` ("" = any).
        Read only; do not mutate the result."""
        ...

    # contacts
    def add_contact(self, record: ContactRecord) -> bool:
        """Store a new contact (not yet waiting) and give it the next ``seq``. False if the id exists."""
        ...

    def contact(self, contact_id: str) -> ContactRecord | None: ...

    def save_contact(self, record: ContactRecord) -> None:
        """Persist the engine-owned fields of a contact."""
        ...

    def enqueue(self, contact_id: str, bucket: str, key: float) -> None:
        """Status WAITING, placed in ``bucket`` by ``key`` (moved out of any other bucket)."""
        ...

    def register_bucket(self, bucket: str) -> None:
        """Add a bucket to the list of known buckets (idempotent)."""
        ...

    def bucket_ids(self, start: int = 0) -> Sequence[str]:
        """Known buckets, in the order they were registered, from index ``start``."""
        ...

    def peek(self, bucket: str, n: int = 1) -> list[tuple[str, float]]:
        """The first ``n`` waiting contacts of a bucket as (id, key), highest key first (range read)."""
        ...

    def waiting_count(self, bucket: str | None = None) -> int: ...

    def claim(self, contact_id: str, agent_id: str, channel: Channel, lease_until: float, now: float) -> bool:
        """Atomically: the contact is WAITING and the agent READY and ``can_take(load, channel)``;
        then the contact leaves its bucket (status OFFERED, agent set) and the agent gets a
        RESERVED slot. False, and nothing changed, otherwise."""
        ...

    def accept(self, contact_id: str, agent_id: str, now: float) -> bool:
        """OFFERED to this agent -> CONNECTED, slot RESERVED -> BUSY. False otherwise."""
        ...

    def requeue(self, contact_id: str, agent_id: str, now: float) -> bool:
        """OFFERED to this agent -> WAITING in its bucket with its key and seq (its place);
        the agent's slot is freed. False otherwise."""
        ...

    def close(self, contact_id: str, outcome: ContactStatus, now: float) -> str | None:
        """Terminal status; leaves its bucket and frees its agent's slot. Returns that agent's id.
        With ``HANDLED`` and no contact left, the agent's ``idle_since`` becomes ``now``."""
        ...

    def forget(self, contact_id: str) -> None:
        """Delete a contact record (after it is terminal)."""
        ...

    # timers
    def set_timer(self, kind: TimerKind, subject: str, due: float) -> None:
        """One timer per (kind, subject): setting replaces."""
        ...

    def cancel_timer(self, kind: TimerKind, subject: str) -> None: ...

    def pop_due(self, now: float) -> list[Timer]:
        """Remove and return the timers due at or before ``now``, earliest first."""
        ...

    def next_due(self) -> float | None: ...

    # round robin
    def rr_pointer(self, queue: str) -> str | None: ...

    def set_rr_pointer(self, queue: str, agent_id: str) -> None: ...


_REMOVED = None


class InMemoryStore:
    """The default store: dicts, sets and heaps in one process."""

    def __init__(self, rules: MixingRules = DEFAULT_MIXING) -> None:
        self._rules = rules
        self._agents: dict[str, AgentRecord] = {}
        self._avail: dict[tuple[Channel, str], set[str]] = {}
        self._avail_of: dict[str, int] = {}  # agent -> bit per channel it is indexed under
        self._contacts: dict[str, ContactRecord] = {}
        # bucket -> heap of [-key, seq, n, contact id] (n: unique); removed entries get the id _REMOVED
        self._heaps: dict[str, list[list[Any]]] = {}
        self._entries: dict[str, list[Any]] = {}
        self._sizes: dict[str, int] = {}
        self._bucket_list: list[str] = []
        self._bucket_set: set[str] = set()
        self._seq = itertools.count(1)
        self._entry_seq = itertools.count(1)
        self._timers: list[tuple[float, int, TimerKind, str]] = []
        self._timer_ids: dict[tuple[TimerKind, str], int] = {}
        self._timer_seq = itertools.count(1)
        self._rr: dict[str, str] = {}
        self._empty: frozenset[str] = frozenset()

    @property
    def rules(self) -> MixingRules:
        return self._rules

    # -- agents ----------------------------------------------------------------------------------

    def add_agent(self, profile: AgentProfile, now: float) -> bool:
        if profile.id in self._agents:
            return False
        self._agents[profile.id] = AgentRecord(
            profile=profile, presence_since=now, idle_since=now, load={c: 0 for c in CHANNELS}
        )
        return True

    def remove_agent(self, agent_id: str) -> bool:
        rec = self._agents.get(agent_id)
        if rec is None or rec.slots:
            return False
        rec.presence = Presence.OFFLINE
        self._reindex(rec)
        del self._agents[agent_id]
        self._avail_of.pop(agent_id, None)
        return True

    def agent(self, agent_id: str) -> AgentRecord | None:
        return self._agents.get(agent_id)

    def agent_ids(self) -> Collection[str]:
        return self._agents.keys()

    def set_presence(
        self, agent_id: str, presence: Presence, reason: str | None, now: float,
        wrap_up_until: float | None = None,
    ) -> None:
        rec = self._agents[agent_id]
        if presence is Presence.READY and rec.presence is not Presence.READY:
            rec.idle_since = now
        if presence is not rec.presence:
            rec.presence_since = now
        rec.presence = presence
        rec.reason = reason
        rec.wrap_up_until = wrap_up_until
        self._reindex(rec)

    def available(self, channel: Channel, skill: str = "") -> Collection[str]:
        return self._avail.get((channel, skill), self._empty)

    def _reindex(self, rec: AgentRecord) -> None:
        """Keep the availability index in step with the agent's presence and load."""
        aid = rec.profile.id
        ready = rec.presence is Presence.READY
        was = self._avail_of.get(aid, 0)
        now = 0
        for bit, ch in enumerate(CHANNELS):
            if ready and can_take(rec.load, ch, self._rules, rec.profile.capacity):
                now |= 1 << bit
        if now == was:
            return
        self._avail_of[aid] = now
        for bit, ch in enumerate(CHANNELS):
            mask = 1 << bit
            if (now ^ was) & mask:
                ok = bool(now & mask)
                for skill in itertools.chain(("",), rec.profile.skills):
                    key = (ch, skill)
                    s = self._avail.get(key)
                    if ok:
                        if s is None:
                            s = self._avail[key] = set()
                        s.add(aid)
                    elif s is not None:
                        s.discard(aid)

    # -- contacts --------------------------------------------------------------------------------

    def add_contact(self, record: ContactRecord) -> bool:
        cid = record.contact.id
        if cid in self._contacts:
            return False
        record.seq = next(self._seq)
        self._contacts[cid] = record
        return True

    def contact(self, contact_id: str) -> ContactRecord | None:
        return self._contacts.get(contact_id)

    def save_contact(self, record: ContactRecord) -> None:
        # The record is the stored object itself; nothing to copy.
        self._contacts[record.contact.id] = record

    def _unlink(self, contact_id: str) -> None:
        entry = self._entries.pop(contact_id, None)
        if entry is not None:
            entry[3] = _REMOVED
            bucket = self._contacts[contact_id].bucket
            self._sizes[bucket] -= 1

    def _link(self, rec: ContactRecord) -> None:
        entry: list[Any] = [-rec.key, rec.seq, next(self._entry_seq), rec.contact.id]
        heap = self._heaps.get(rec.bucket)
        if heap is None:
            heap = self._heaps[rec.bucket] = []
            self._sizes[rec.bucket] = 0
        heapq.heappush(heap, entry)
        self._entries[rec.contact.id] = entry
        self._sizes[rec.bucket] += 1

    def enqueue(self, contact_id: str, bucket: str, key: float) -> None:
        rec = self._contacts[contact_id]
        self._unlink(contact_id)
        rec.bucket = bucket
        rec.key = key
        rec.status = ContactStatus.WAITING
        rec.agent_id = None
        self._link(rec)

    def register_bucket(self, bucket: str) -> None:
        if bucket not in self._bucket_set:
            self._bucket_set.add(bucket)
            self._bucket_list.append(bucket)

    def bucket_ids(self, start: int = 0) -> Sequence[str]:
        return self._bucket_list[start:] if start else self._bucket_list

    def peek(self, bucket: str, n: int = 1) -> list[tuple[str, float]]:
        heap = self._heaps.get(bucket)
        if not heap:
            return []
        while heap and heap[0][3] is _REMOVED:
            heapq.heappop(heap)
        if not heap:
            return []
        if n == 1:
            top = heap[0]
            return [(top[3], -top[0])]
        best = heapq.nsmallest(n + len(heap) - self._sizes[bucket], heap)
        return [(e[3], -e[0]) for e in best if e[3] is not _REMOVED][:n]

    def waiting_count(self, bucket: str | None = None) -> int:
        if bucket is None:
            return len(self._entries)
        return self._sizes.get(bucket, 0)

    def claim(self, contact_id: str, agent_id: str, channel: Channel, lease_until: float, now: float) -> bool:
        rec = self._contacts.get(contact_id)
        agent = self._agents.get(agent_id)
        if rec is None or agent is None or rec.status is not ContactStatus.WAITING:
            return False
        if agent.presence is not Presence.READY or not can_take(
            agent.load, channel, self._rules, agent.profile.capacity
        ):
            return False
        self._unlink(contact_id)
        rec.status = ContactStatus.OFFERED
        rec.agent_id = agent_id
        agent.slots[contact_id] = (channel, SlotState.RESERVED)
        agent.load[channel] += 1
        self._reindex(agent)
        return True

    def accept(self, contact_id: str, agent_id: str, now: float) -> bool:
        rec = self._contacts.get(contact_id)
        if rec is None or rec.status is not ContactStatus.OFFERED or rec.agent_id != agent_id:
            return False
        agent = self._agents[agent_id]
        channel, _ = agent.slots[contact_id]
        agent.slots[contact_id] = (channel, SlotState.BUSY)
        rec.status = ContactStatus.CONNECTED
        return True

    def _free_slot(self, agent_id: str, contact_id: str) -> AgentRecord | None:
        agent = self._agents.get(agent_id)
        if agent is None:
            return None
        slot = agent.slots.pop(contact_id, None)
        if slot is not None:
            agent.load[slot[0]] -= 1
            self._reindex(agent)
        return agent

    def requeue(self, contact_id: str, agent_id: str, now: float) -> bool:
        rec = self._contacts.get(contact_id)
        if rec is None or rec.status is not ContactStatus.OFFERED or rec.agent_id != agent_id:
            return False
        self._free_slot(agent_id, contact_id)
        rec.status = ContactStatus.WAITING
        rec.agent_id = None
        self._link(rec)
        return True

    def close(self, contact_id: str, outcome: ContactStatus, now: float) -> str | None:
        if outcome not in TERMINAL:
            raise ValueError(f"close needs a terminal outcome, got {outcome}")
        rec = self._contacts[contact_id]
        self._unlink(contact_id)
        agent_id = rec.agent_id
        if agent_id is not None:
            agent = self._free_slot(agent_id, contact_id)
            if agent is not None and outcome is ContactStatus.HANDLED and not agent.slots:
                agent.idle_since = now
        rec.status = outcome
        return agent_id

    def forget(self, contact_id: str) -> None:
        if contact_id in self._entries:
            self._unlink(contact_id)
        self._contacts.pop(contact_id, None)

    # -- timers ----------------------------------------------------------------------------------

    def set_timer(self, kind: TimerKind, subject: str, due: float) -> None:
        n = next(self._timer_seq)
        self._timer_ids[(kind, subject)] = n
        heapq.heappush(self._timers, (due, n, kind, subject))

    def cancel_timer(self, kind: TimerKind, subject: str) -> None:
        self._timer_ids.pop((kind, subject), None)

    def _clean_timers(self) -> None:
        t = self._timers
        while t and self._timer_ids.get((t[0][2], t[0][3])) != t[0][1]:
            heapq.heappop(t)

    def pop_due(self, now: float) -> list[Timer]:
        out: list[Timer] = []
        t = self._timers
        while True:
            self._clean_timers()
            if not t or t[0][0] > now:
                return out
            due, _, kind, subject = heapq.heappop(t)
            del self._timer_ids[(kind, subject)]
            out.append(Timer(due, kind, subject))

    def next_due(self) -> float | None:
        self._clean_timers()
        return self._timers[0][0] if self._timers else None

    # -- round robin -----------------------------------------------------------------------------

    def rr_pointer(self, queue: str) -> str | None:
        return self._rr.get(queue)

    def set_rr_pointer(self, queue: str, agent_id: str) -> None:
        self._rr[queue] = agent_id
