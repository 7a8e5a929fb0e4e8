"""Wiring the email channel into a running center and the aiohttp app (cleanup context)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import web

from callcenter.channels.email import imap, outbound, smtp
from callcenter.channels.email.parse import Limits
from callcenter.channels.email.service import EmailOptions, EmailService

log = logging.getLogger(__name__)

EMAIL = web.AppKey("email", EmailService)
EMAIL_SMTP = web.AppKey("email_smtp", asyncio.Server)
EMAIL_IMAP = web.AppKey("email_imap", imap.ImapPoller)


def options_from(settings: Any) -> EmailOptions:
    e = settings.email
    addresses = frozenset(a.lower() for a in [e.address, *e.accept_addresses])
    return EmailOptions(
        address=e.address, display_name=e.display_name, queue=e.queue, skill=e.skill,
        acknowledge=e.acknowledge, wrapup_s=e.wrapup_s,
        attachments_dir=Path(e.attachments_dir).expanduser().resolve(),
        limits=Limits(max_attachments=e.max_attachments, max_attachment_bytes=e.max_attachment_bytes),
        smarthost=outbound.Smarthost(e.smarthost_host, e.smarthost_port, e.smarthost_starttls,
                                     e.smarthost_username, e.smarthost_password),
        own_addresses=addresses)


def attach(center: Any, settings: Any) -> EmailService:
    """The email service joins the center: routing decisions, console messages, console resume."""
    # SQLite has one writer at a time: one worker avoids lock waits; PostgreSQL takes several
    options = replace(options_from(settings), workers=1 if center.store.db.is_sqlite else 4)
    service = EmailService(center.store, center.runner, center.directory, center.hub, options,
                           mono=center.runner.clock)
    center.performers.append(service)
    center.console.handlers.update(service.console_handlers(dict(center.console.handlers)))
    center.on_console_connect.append(service.console_connected)
    center.email = service
    campaigns = getattr(center, "campaigns", None)
    if campaigns is not None:  # email campaigns: hard bounces mark addresses invalid
        service.on_parsed.append(campaigns.email.on_parsed)
    return service


async def email_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start the SMTP listener and the IMAP poller (as configured); stop them on shutdown."""
    from callcenter.keys import CENTER, SETTINGS

    s = app[SETTINGS]
    e = s.email
    service = attach(app[CENTER], s)
    app[EMAIL] = service
    recovered = await service.recover()
    if recovered:
        log.info("email: %d emails from before the restart processed or routed again", recovered)
    server = None
    poller_task = None
    if e.smtp_enabled:
        recipients = smtp.Recipients(e.accept_domains, [e.address, *e.accept_addresses])
        handler = smtp.Handler(recipients, service.deliver)
        server = await smtp.start(e.smtp_host, e.smtp_port, handler, max_bytes=e.max_message_bytes,
                                  hostname=e.address.rsplit("@", 1)[-1])
        app[EMAIL_SMTP] = server
        log.info("email: SMTP listener on %s", server.sockets[0].getsockname()[:2])
    if e.imap_enabled:
        poller = imap.ImapPoller(imap.ImapConfig(
            e.imap_host, e.imap_port, e.imap_username, e.imap_password or "", e.imap_mailbox, e.imap_tls,
            e.imap_move_to, e.imap_poll_s, max_bytes=e.max_message_bytes), service.take_imap,
            service.imap_taken, service.imap_too_big)
        app[EMAIL_IMAP] = poller
        poller_task = asyncio.ensure_future(poller.run())
    try:
        yield
    finally:
        if poller_task is not None:
            poller_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller_task
            await app[EMAIL_IMAP].close()
        if server is not None:
            server.close()
            await server.wait_closed()
        await service.close()
