"""Events the engine receives and decisions it returns. All small frozen dataclasses.

The caller performs the decisions (rings the phone, plays the callback prompt, pages the
supervisor, schedules a wake-up at ``Timer.due``); the engine never does I/O.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from routing.model import Channel, Contact, ContactStatus, Presence

# -- events --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContactArrived:
    contact: Contact


@dataclass(frozen=True, slots=True)
class ContactHungUp:
    """The customer hung up / left the chat. Waiting or ringing: abandoned; connected: handled."""

    contact_id: str


@dataclass(frozen=True, slots=True)
class AgentPresence:
    """The agent asks to be ready, not-ready (with a reason code) or offline."""

    agent_id: str
    presence: Presence
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class WrapUpEnded:
    agent_id: str


@dataclass(frozen=True, slots=True)
class OfferAccepted:
    contact_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class OfferDeclined:
    """The agent declined, or (``no_answer``) the phone rang out."""

    contact_id: str
    agent_id: str
    no_answer: bool = False


@dataclass(frozen=True, slots=True)
class ContactFinished:
    """The agent finished the contact; wrap-up for ``wrap_up_s`` (None: the channel's default)."""

    contact_id: str
    agent_id: str
    wrap_up_s: float | None = None


@dataclass(frozen=True, slots=True)
class CallbackAccepted:
    """The customer accepted the callback offered to them; the contact leaves the queue."""

    contact_id: str


@dataclass(frozen=True, slots=True)
class ContactMoved:
    """A supervisor moves a waiting contact: to another ``queue`` (it starts over there, as an
    overflow does), or to one agent (``agent_id``: only they are offered it for ``sticky_s``, then
    anyone of its queue). Gives an ``Escalate`` with step -1 (not a policy step)."""

    contact_id: str
    queue: str | None = None
    agent_id: str | None = None
    sticky_s: float = 120.0


@dataclass(frozen=True, slots=True)
class PriorityRaised:
    """A supervisor raises a waiting contact's priority by ``by`` (as a raise-priority step)."""

    contact_id: str
    by: float


Event = (
    ContactArrived
    | ContactHungUp
    | AgentPresence
    | WrapUpEnded
    | OfferAccepted
    | OfferDeclined
    | ContactFinished
    | CallbackAccepted
    | ContactMoved
    | PriorityRaised
)

# -- decisions -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScorePart:
    """One reason an agent was chosen, for the supervisor: a name, a number, and a note."""

    name: str
    value: float
    note: str = ""


@dataclass(frozen=True, slots=True)
class Offer:
    contact_id: str
    agent_id: str
    channel: Channel
    queue: str
    lease_until: float  # ring timeout: after this, a ring-no-answer
    reasons: tuple[ScorePart, ...]


@dataclass(frozen=True, slots=True)
class Requeue:
    """The contact went back to its queue, keeping its place (its priority key is unchanged)."""

    contact_id: str
    agent_id: str
    reason: str  # "no-answer", "declined", "agent-offline"


@dataclass(frozen=True, slots=True)
class Escalate:
    contact_id: str
    queue: str
    step: int
    action: str  # "widen-skills", "raise-priority", "overflow"
    detail: str


@dataclass(frozen=True, slots=True)
class TimeOut:
    contact_id: str
    queue: str
    destination: str  # "voicemail", "ticket", ...


@dataclass(frozen=True, slots=True)
class OfferCallback:
    contact_id: str
    queue: str


@dataclass(frozen=True, slots=True)
class Alert:
    contact_id: str
    queue: str
    message: str


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    """The engine changed an agent's presence (not-ready after a no-answer, ready after wrap-up)."""

    agent_id: str
    presence: Presence
    reason: str | None = None


class TimerKind(enum.StrEnum):
    RING = "ring"  # subject: contact; the offer's lease ends
    ESCALATE = "escalate"  # subject: contact; the next escalation step is due
    MAX_WAIT = "max-wait"  # subject: contact
    STICKY = "sticky"  # subject: contact; stop waiting for the preferred agent
    RETRY = "retry"  # subject: contact; an agent who declined may be offered it again
    WRAP_UP = "wrap-up"  # subject: agent


@dataclass(frozen=True, slots=True)
class Timer:
    """Wake the engine (``tick(now)``) at ``due``. Informational: ``Engine.next_due()`` is the source."""

    due: float
    kind: TimerKind
    subject: str


@dataclass(frozen=True, slots=True)
class Ended:
    """The contact reached a terminal status and left the engine."""

    contact_id: str
    outcome: ContactStatus


Decision = (
    Offer | Requeue | Escalate | TimeOut | OfferCallback | Alert | PresenceChanged | Timer | Ended
)
