"""The inbound SMTP listener (aiosmtpd): takes mail for the accepted recipients only, refuses
anything over the size limit (552), and answers 250 only once the message is stored."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger(__name__)

Deliver = Callable[[bytes, str, list[str]], Awaitable[Any]]
MAX_RECIPIENTS = 100


class Recipients:
    """Which recipient addresses the center takes mail for: whole domains and single addresses."""

    def __init__(self, domains: Iterable[str], addresses: Iterable[str]) -> None:
        self.domains = frozenset(d.strip().lower().lstrip("@") for d in domains if d.strip())
        self.addresses = frozenset(a.strip().lower() for a in addresses if a.strip())

    def accepts(self, address: str) -> bool:
        a = address.strip().strip("<>").lower()
        if a in self.addresses:
            return True
        return "@" in a and a.rsplit("@", 1)[1] in self.domains


class Handler:
    def __init__(self, recipients: Recipients, deliver: Deliver) -> None:
        self.recipients = recipients
        self.deliver = deliver

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if not self.recipients.accepts(address):
            return f"550 5.1.1 <{address[:100]}>: no such recipient here"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        try:
            await self.deliver(bytes(raw), envelope.mail_from or "", list(envelope.rcpt_tos))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the sender keeps the message and retries
            log.exception("could not store an inbound email")
            return "451 4.3.0 the message could not be stored; try again later"
        return "250 2.0.0 OK: queued"


async def start(host: str, port: int, handler: Handler, *, max_bytes: int, hostname: str,
                timeout_s: float = 60.0) -> asyncio.Server:
    """Listen on host:port (0: any free port); the caller closes the server."""
    loop = asyncio.get_running_loop()

    def factory() -> Any:
        return SMTP(handler, data_size_limit=max_bytes, enable_SMTPUTF8=True, decode_data=False,
                    hostname=hostname, timeout=timeout_s, ident="callcenter ESMTP")

    return await loop.create_server(factory, host, port)
