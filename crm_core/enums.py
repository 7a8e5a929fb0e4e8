"""The closed vocabularies of the store. Values are the strings stored in the database."""
from __future__ import annotations

from enum import StrEnum


class Tier(StrEnum):
    VIP = "vip"
    KEY = "key"
    REGULAR = "regular"


class Loyalty(StrEnum):
    POTENTIAL = "potential"
    NEW = "new"
    RETURNING = "returning"
    LOYAL = "loyal"
    LOST = "lost"


class CustomerType(StrEnum):
    PROSPECT = "prospect"
    CUSTOMER = "customer"
    PARTNER = "partner"
    BLACKLISTED = "blacklisted"


class ContactKind(StrEnum):
    PHONE = "phone"
    EMAIL = "email"
    CHAT = "chat"


class Channel(StrEnum):
    VOICE = "voice"
    CHAT = "chat"
    EMAIL = "email"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class InteractionState(StrEnum):
    NEW = "new"
    IVR = "ivr"
    QUEUED = "queued"
    OFFERED = "offered"
    ANSWERED = "answered"
    ENDED = "ended"              # hung up / chat closed; the agent is in wrap-up
    WRAPUP_DONE = "wrapup_done"  # disposition and notes submitted
    ABANDONED = "abandoned"      # the customer left before an agent answered
    FAILED = "failed"


class TicketType(StrEnum):
    SERVICE_REQUEST = "service_request"
    COMPLAINT = "complaint"
    INQUIRY = "inquiry"


class TicketStatus(StrEnum):
    OPEN = "open"
    PENDING = "pending"
    SOLVED = "solved"
    CLOSED = "closed"


OPEN_TICKET_STATUSES = (TicketStatus.OPEN, TicketStatus.PENDING)


class TicketPriority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


def values(enum: type[StrEnum]) -> tuple[str, ...]:
    return tuple(m.value for m in enum)
