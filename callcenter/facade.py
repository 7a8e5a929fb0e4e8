"""The one surface agent_ui sees: a Protocol plus the websocket message types.

agent_ui imports this module and nothing else of callcenter. Messages are versioned JSON
(`docs/protocol.md`, with a JSON Schema per type under `agent_ui/schemas/`). Every message has a
`type`; server messages also carry `v` (the protocol version).
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

PROTOCOL_VERSION = 1


@dataclass(frozen=True)
class WebUser:
    """A signed-in user as the web layer sees it."""

    id: int
    username: str
    display_name: str
    roles: tuple[str, ...]
    teams: tuple[str, ...] = ()
    extension: str | None = None


@dataclass(frozen=True)
class WebSession:
    """A server-side session: the cookie holds `token`; state-changing requests echo `csrf`."""

    token: str
    csrf: str
    user: WebUser


class LoginRefused(Exception):
    """Wrong credentials, a disabled user, or a locked-out account (the message says which
    only as far as is safe: never whether the username exists)."""

    def __init__(self, message: str, *, locked_until: float | None = None) -> None:
        super().__init__(message)
        self.locked_until = locked_until


class MessageRefused(Exception):
    """A websocket message that is malformed, unknown, or not allowed; `code` is stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Outbox:
    """Messages the server pushes to one connected console (JSON-ready dicts)."""

    messages: list[dict[str, Any]] = field(default_factory=list)


class ConsoleLink(Protocol):
    """One connected console. The web layer reads `messages()` and forwards to the socket."""

    def messages(self) -> AsyncIterator[dict[str, Any]]: ...

    async def close(self) -> None: ...


class WallboardFeed(Protocol):
    """One supervisor's wallboard: `wallboard` frames as UTF-8 JSON (a full snapshot each), the
    newest only when the client is slow. The web layer sends them as they are (text frames)."""

    def frames(self) -> AsyncIterator[bytes]: ...

    async def close(self) -> None: ...


class Facade(Protocol):
    # --- sign-in (argon2 in the store; lock-out after repeated failures; sessions server-side)
    async def login(self, username: str, password: str, remote: str) -> WebSession: ...

    async def session(self, token: str) -> WebSession | None: ...

    async def logout(self, token: str) -> None: ...

    # --- the agent console over a websocket
    async def connect_console(self, user: WebUser) -> ConsoleLink:
        """Register a console; the first messages resume it (state, pending offer, contact)."""
        ...

    async def console_message(self, user: WebUser, message: dict[str, Any]) -> dict[str, Any] | None:
        """Handle one message from a console; returns a direct reply, if any.
        Raises MessageRefused for a bad or forbidden message."""
        ...

    # --- call recordings
    async def recording_file(self, user: WebUser, interaction_id: int) -> Path:
        """The recording of an interaction, for the agent who handled it and supervisors.
        Raises MessageRefused("forbidden") or MessageRefused("not_found")."""
        ...

    # --- email attachments (docs/email.md)
    async def email_attachment(self, user: WebUser, attachment_id: int) -> tuple[Path, str, str]:
        """(file, stored content type, display name) of an email attachment, for the agent on its
        conversation and supervisors. Raises MessageRefused("forbidden") or ("not_found")."""
        ...

    # --- the web chat widget (docs/chat.md); the widget's page is on another origin
    def chat_origin_allowed(self, site: str, origin: str | None) -> bool:
        """May a page of this origin open chats for this site (the site's allow-list)?"""
        ...

    def chat_open(self, site: str, origin: str, remote: str) -> ConsoleLink:
        """A widget connected: its link (messages to send it). Raises MessageRefused."""
        ...

    async def chat_message(self, link: ConsoleLink, message: dict[str, Any]) -> dict[str, Any] | None:
        """One widget message (already schema-checked). Raises MessageRefused."""
        ...

    def chat_status(self, site: str) -> dict[str, Any]:
        """What the widget shows before a chat starts: {agents_available, max_message_chars}."""
        ...

    # --- the supervisors' live wallboard (docs/wallboard.md)
    async def wallboard_subscribe(self, user: WebUser) -> WallboardFeed:
        """A supervisor's (or admin's) feed, scoped to their teams. Raises MessageRefused."""
        ...
