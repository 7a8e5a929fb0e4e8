"""The chat channel's options and per-chat state (plain data)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from callcenter.facade import PROTOCOL_VERSION

MAX_BACKLOG = 2000
REPLAY_LIMIT = 5000


def msg(type_: str, **fields: Any) -> dict[str, Any]:
    """A server message (widget or console) with its protocol version."""
    return {"type": type_, "v": PROTOCOL_VERSION, **fields}


@dataclass(frozen=True)
class Site:
    id: str
    origins: frozenset[str]
    secret: str | None = None


@dataclass(frozen=True)
class ChatOptions:
    sites: dict[str, Site] = field(default_factory=dict)
    queue: str = "general"
    max_message_chars: int = 4000
    rate_per_session: float = 5.0
    burst_per_session: int = 20
    rate_per_ip: float = 20.0
    burst_per_ip: int = 60
    resume_s: float = 120.0
    handle_s: float = 240.0
    accept_timeout_s: float = 30.0
    canned: tuple[str, ...] = ()
    refresh_s: float = 2.0  # how often waiting customers' position and wait are re-checked
    hours: Any = None  # (ZoneInfo, ivr WeeklySchedule): business hours; None: always open

    def origin_allowed(self, site: str, origin: str | None) -> bool:
        s = self.sites.get(site)
        return s is not None and origin is not None and origin.rstrip("/") in s.origins


@dataclass
class Chat:
    interaction_id: int
    site: str
    customer_id: int | None
    name: str
    tier: str = "regular"
    verified: bool = False
    state: str = "new"  # bot, queued, offered, active, ended, done
    queue: str = ""
    next_seq: int = 1
    client_seq: dict[str, int] = field(default_factory=dict)  # client id -> seq (dedup)
    links: set[Any] = field(default_factory=set)  # the WidgetLinks open on it
    agent_id: str | None = None  # routing id of the agent handling (or offered) it
    offer_id: str | None = None
    offer_expires: str | None = None
    reasons: list[dict[str, Any]] = field(default_factory=list)
    receipts: dict[str, dict[str, int]] = field(default_factory=lambda: {
        "customer": {"delivered": 0, "read": 0}, "agent": {"delivered": 0, "read": 0}})
    ended_by: str | None = None
    wrapped_up: bool = False
    bot: Any = None  # the ChatBot turn state while the bot runs
    last_queue_msg: tuple[int, int | None] | None = None
    gone: asyncio.TimerHandle | None = None
    routed: bool = False
    transferred: bool = False
    surveyed: bool = False
    email: str | None = None  # where the transcript may go: the form's, or the record's
    transcript_sent: bool = False
    token: str = ""

    @property
    def contact_id(self) -> str:
        return str(self.interaction_id)
