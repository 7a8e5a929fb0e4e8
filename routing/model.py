"""Plain data of the routing engine: channels, agents, contacts, queues and escalation steps.

Everything here is a small frozen dataclass or an enum. Configuration is validated when it is
built (:class:`~routing.errors.ConfigError`), so the engine never meets an impossible value.
"""
from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from routing.errors import ConfigError

MIN_PROFICIENCY = 1
MAX_PROFICIENCY = 10


class Channel(enum.StrEnum):
    VOICE = "voice"
    CHAT = "chat"
    EMAIL = "email"


CHANNELS: tuple[Channel, ...] = (Channel.VOICE, Channel.CHAT, Channel.EMAIL)


class Tier(enum.StrEnum):
    VIP = "vip"
    KEY = "key"
    REGULAR = "regular"


class Presence(enum.StrEnum):
    OFFLINE = "offline"
    READY = "ready"
    NOT_READY = "not-ready"
    WRAP_UP = "wrap-up"


class SlotState(enum.StrEnum):
    """A channel slot of an agent: free slots are simply absent; these are the taken ones."""

    RESERVED = "reserved"  # offered, ringing, waiting for the agent to accept
    BUSY = "busy"


class ContactStatus(enum.StrEnum):
    WAITING = "waiting"
    OFFERED = "offered"
    CONNECTED = "connected"
    # terminal
    HANDLED = "handled"
    ABANDONED = "abandoned"
    TIMED_OUT = "timed-out"
    CALLED_BACK = "called-back"


TERMINAL: frozenset[ContactStatus] = frozenset(
    {ContactStatus.HANDLED, ContactStatus.ABANDONED, ContactStatus.TIMED_OUT, ContactStatus.CALLED_BACK}
)


class Strategy(enum.StrEnum):
    LONGEST_IDLE = "longest-idle"
    MOST_SKILLED = "most-skilled"
    LEAST_OCCUPIED = "least-occupied"
    ROUND_ROBIN = "round-robin"


def _check_skills(skills: Mapping[str, int], what: str) -> None:
    for name, level in skills.items():
        if not isinstance(name, str) or not name or "|" in name or "," in name or ">" in name:
            raise ConfigError(f"{what}: bad skill name {name!r}")
        if isinstance(level, bool) or not isinstance(level, int) or not (
            MIN_PROFICIENCY <= level <= MAX_PROFICIENCY
        ):
            raise ConfigError(f"{what}: skill {name!r} proficiency must be 1..10, got {level!r}")


# -- requirements --------------------------------------------------------------------------------

Alternative = tuple[tuple[str, int], ...]  # sorted (skill, minimum proficiency) pairs, all needed


@dataclass(frozen=True, slots=True)
class Requirement:
    """Skills a contact needs: any one of the alternatives, each a set of (skill, minimum) pairs.

    A fresh contact has one alternative (the queue's skills plus the contact's own). Escalation
    may lower the minimums and add alternatives; an agent qualifies if it meets any alternative.
    """

    alternatives: tuple[Alternative, ...]

    @staticmethod
    def of(*skill_maps: Mapping[str, int]) -> Requirement:
        merged: dict[str, int] = {}
        for m in skill_maps:
            for k, v in m.items():
                merged[k] = max(v, merged.get(k, 0))
        return Requirement((tuple(sorted(merged.items())),))

    def match(self, skills: Mapping[str, int]) -> int:
        """Index of the first alternative the skills meet, or -1."""
        for i, alt in enumerate(self.alternatives):
            for name, level in alt:
                if skills.get(name, 0) < level:
                    break
            else:
                return i
        return -1

    def widened(self, lower_by: int, alternatives: tuple[Mapping[str, int], ...]) -> Requirement:
        alts: list[Alternative] = []
        for alt in self.alternatives:
            new = tuple((name, max(MIN_PROFICIENCY, level - lower_by)) for name, level in alt)
            if new not in alts:
                alts.append(new)
        for extra in alternatives:
            new = tuple(sorted(extra.items()))
            if new not in alts:
                alts.append(new)
        return Requirement(tuple(alts))

    def encode(self) -> str:
        """Stable text form, e.g. ``billing>=5,sales>=3;general>=2`` (``*`` = no skills)."""
        return ";".join(",".join(f"{n}>={v}" for n, v in alt) or "*" for alt in self.alternatives)


# -- mixing --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MixingRules:
    """Capacity per channel and which open channels block a new offer on a channel.

    ``blocked_by[c]`` lists the channels that, when the agent has any contact on them (reserved or
    busy), forbid a new offer on ``c``. The default: voice blocks everything; any chat or email
    blocks voice; chat and email fill up to their capacities side by side. ``max_total`` optionally
    caps the sum over channels.
    """

    capacity: Mapping[Channel, int] = field(
        default_factory=lambda: {Channel.VOICE: 1, Channel.CHAT: 3, Channel.EMAIL: 5}
    )
    blocked_by: Mapping[Channel, frozenset[Channel]] = field(
        default_factory=lambda: {
            Channel.VOICE: frozenset({Channel.VOICE, Channel.CHAT, Channel.EMAIL}),
            Channel.CHAT: frozenset({Channel.VOICE}),
            Channel.EMAIL: frozenset({Channel.VOICE}),
        }
    )
    max_total: int | None = None

    def __post_init__(self) -> None:
        for ch in CHANNELS:
            cap = self.capacity.get(ch, 0)
            if isinstance(cap, bool) or not isinstance(cap, int) or cap < 0:
                raise ConfigError(f"mixing: capacity of {ch} must be an integer >= 0, got {cap!r}")
        for ch, blockers in self.blocked_by.items():
            if ch not in CHANNELS or not set(blockers) <= set(CHANNELS):
                raise ConfigError(f"mixing: blocked_by has unknown channels for {ch!r}")
        if self.max_total is not None and self.max_total < 0:
            raise ConfigError("mixing: max_total must be >= 0")


DEFAULT_MIXING = MixingRules()


def can_take(
    load: Mapping[Channel, int],
    channel: Channel,
    rules: MixingRules,
    capacity: Mapping[Channel, int] | None = None,
) -> bool:
    """May an agent with this load (reserved + busy contacts per channel) get a new offer on channel?

    The one place where capacity and mixing are decided; stores mirror it (the Redis store in
    Lua) when they claim. ``capacity`` overrides the rules' capacities for one agent.
    """
    cap = (capacity if capacity is not None else rules.capacity).get(channel, 0)
    if load.get(channel, 0) >= cap:
        return False
    for other in rules.blocked_by.get(channel, ()):
        if load.get(other, 0) > 0:
            return False
    if rules.max_total is not None and sum(load.values()) >= rules.max_total:
        return False
    return True


# -- agents and contacts -------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentProfile:
    """Who an agent is: skills (1-10), languages, team, optional per-channel capacity override."""

    id: str
    skills: Mapping[str, int] = field(default_factory=dict)
    languages: frozenset[str] = frozenset()  # empty: serves contacts of any language
    team: str | None = None
    capacity: Mapping[Channel, int] | None = None

    def __post_init__(self) -> None:
        if not self.id or "|" in self.id:
            raise ConfigError(f"agent id {self.id!r} is empty or contains '|'")
        _check_skills(self.skills, f"agent {self.id}")
        if self.capacity is not None:
            for ch, cap in self.capacity.items():
                if ch not in CHANNELS or not isinstance(cap, int) or cap < 0:
                    raise ConfigError(f"agent {self.id}: bad capacity {ch!r}={cap!r}")


@dataclass(frozen=True)
class Contact:
    """A voice call, chat or email to be routed. ``skills`` add to the queue's required skills."""

    id: str
    channel: Channel
    queue: str
    arrived_at: float
    customer_id: str = ""
    tier: Tier = Tier.REGULAR
    skills: Mapping[str, int] = field(default_factory=dict)
    language: str | None = None
    preferred_agent: str | None = None  # sticky routing: the last agent this customer spoke to
    sticky_s: float | None = None  # how long to wait for the preferred agent (None: the queue's)
    priority: float = 0.0  # extra weight, e.g. from the IVR flow

    def __post_init__(self) -> None:
        if not self.id or "|" in self.id:
            raise ConfigError(f"contact id {self.id!r} is empty or contains '|'")
        if not isinstance(self.channel, Channel):
            raise ConfigError(f"contact {self.id}: unknown channel {self.channel!r}")
        _check_skills(self.skills, f"contact {self.id}")


# -- queues and escalation -----------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceLevel:
    """E.g. 80 % answered within 20 s."""

    fraction: float = 0.8
    seconds: float = 20.0


@dataclass(frozen=True)
class WidenSkills:
    """Lower every minimum proficiency by ``lower_by`` (not below 1) and accept alternative skills."""

    after: float
    lower_by: int = 0
    alternatives: tuple[Mapping[str, int], ...] = ()
    action = "widen-skills"


@dataclass(frozen=True)
class RaisePriority:
    after: float
    by: float
    action = "raise-priority"


@dataclass(frozen=True)
class Overflow:
    """Move the contact to another queue; it keeps its arrival time, so it keeps its place."""

    after: float
    queue: str
    action = "overflow"


@dataclass(frozen=True)
class OfferCallbackStep:
    after: float
    action = "offer-callback"


@dataclass(frozen=True)
class AlertSupervisor:
    after: float
    message: str = "contact waiting too long"
    action = "alert-supervisor"


@dataclass(frozen=True)
class SendTo:
    """End the wait: voicemail (voice) or a ticket (chat/email)."""

    after: float
    destination: str = "voicemail"
    action = "send-to"


EscalationStep = WidenSkills | RaisePriority | Overflow | OfferCallbackStep | AlertSupervisor | SendTo


@dataclass(frozen=True)
class QueueConfig:
    name: str
    skills: Mapping[str, int] = field(default_factory=dict)
    strategy: Strategy = Strategy.LONGEST_IDLE
    service_level: ServiceLevel = ServiceLevel()
    max_wait: float | None = None  # then TimeOut to ``on_timeout``
    on_timeout: str = "voicemail"
    priority: float = 0.0  # queue weight, added to the tier weight
    escalation: tuple[EscalationStep, ...] = ()
    sticky_s: float = 0.0  # how long a contact waits for its preferred agent
    teams: frozenset[str] | None = None  # only agents of these teams

    def __post_init__(self) -> None:
        if not self.name or "|" in self.name:
            raise ConfigError(f"queue name {self.name!r} is empty or contains '|'")
        _check_skills(self.skills, f"queue {self.name}")
        if not isinstance(self.strategy, Strategy):
            raise ConfigError(f"queue {self.name}: unknown strategy {self.strategy!r}")
        if self.max_wait is not None and self.max_wait < 0:
            raise ConfigError(f"queue {self.name}: max_wait must be >= 0")
        if not 0.0 <= self.service_level.fraction <= 1.0 or self.service_level.seconds < 0:
            raise ConfigError(f"queue {self.name}: bad service level {self.service_level}")
        last = 0.0
        for i, step in enumerate(self.escalation):
            if step.after < last:
                raise ConfigError(f"queue {self.name}: escalation step {i} is earlier than the one before")
            last = step.after
            if isinstance(step, WidenSkills):
                if step.lower_by < 0:
                    raise ConfigError(f"queue {self.name}: step {i}: lower_by must be >= 0")
                for alt in step.alternatives:
                    _check_skills(alt, f"queue {self.name} step {i}")
        if self.sticky_s < 0:
            raise ConfigError(f"queue {self.name}: sticky_s must be >= 0")


@dataclass(frozen=True)
class PriorityConfig:
    """Weights in 'seconds of waiting': with k = 1 a VIP goes ahead of regulars who came up to 120 s
    earlier, and never of anyone who came earlier than that. See docs/routing.md."""

    tier_weights: Mapping[Tier, float] = field(
        default_factory=lambda: {Tier.VIP: 120.0, Tier.KEY: 60.0, Tier.REGULAR: 0.0}
    )
    aging_k: float = 1.0

    def __post_init__(self) -> None:
        if self.aging_k <= 0:
            raise ConfigError("priority: aging_k must be > 0 (else low tiers could starve)")
        for t in Tier:
            if t not in self.tier_weights:
                raise ConfigError(f"priority: no weight for tier {t}")


@dataclass(frozen=True)
class EngineConfig:
    queues: Mapping[str, QueueConfig]
    mixing: MixingRules = DEFAULT_MIXING
    priority: PriorityConfig = PriorityConfig()
    ring_timeout_s: float = 20.0  # an offer not accepted by then is a ring-no-answer
    not_ready_on_no_answer: bool = True
    not_ready_on_decline: bool = True
    no_answer_reason: str = "no-answer"
    decline_reason: str = "declined"
    retry_same_agent_s: float = 60.0  # a declined contact is not re-offered to that agent for this long
    wrap_up_s: Mapping[Channel, float] = field(
        default_factory=lambda: {Channel.VOICE: 0.0, Channel.CHAT: 0.0, Channel.EMAIL: 0.0}
    )

    def __post_init__(self) -> None:
        for name, q in self.queues.items():
            if name != q.name:
                raise ConfigError(f"queue key {name!r} differs from its name {q.name!r}")
            for i, step in enumerate(q.escalation):
                if isinstance(step, Overflow) and step.queue not in self.queues:
                    raise ConfigError(f"queue {name}: step {i} overflows to unknown queue {step.queue!r}")
        if self.ring_timeout_s <= 0:
            raise ConfigError("ring_timeout_s must be > 0")
        if self.retry_same_agent_s < 0:
            raise ConfigError("retry_same_agent_s must be >= 0")
