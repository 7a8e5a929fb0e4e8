"""The composition root: the store, the center (routing, voice, consoles), the PBX edge, the web app."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from sqlalchemy.exc import DBAPIError

from agent_ui import access, admin_routes
from agent_ui import routes as ui_routes
from callcenter import api as rest_api
from callcenter import ops
from callcenter.keys import CENTER, DB, REDIS, SETTINGS, TELEPHONY
from callcenter.services.auth import AuthService
from callcenter.services.center import Center, queue_configs, recorded_queues, recordings_dir
from callcenter.services.voice import VoiceOptions
from callcenter.settings import Settings
from callcenter.telephony import Telephony
from crm_core.db import Database
from crm_core.rules import Rules
from crm_core.store import CrmStore

log = logging.getLogger(__name__)


def init_app(settings: Settings, *, database: Database | None = None,
             ivr_clock: Callable[[], datetime] | None = None) -> web.Application:
    """Build the application. The tests use this same factory.

    The PBX edge starts when `settings.agi.enabled` / `settings.ami.enabled` say so, or, with
    `settings.demo.enabled`, against the built-in simulator (see callcenter.demo)."""
    app = web.Application(middlewares=[ops.metrics_middleware, rest_api.rate_limit_middleware,
                                       access.middleware])  # agent_ui/access.py
    app[SETTINGS] = settings
    ops.setup(app)
    ui_routes.setup(app, ui_routes.UiConfig(cookie_secure=settings.web.cookie_secure,
                                            allowed_origins=tuple(settings.web.allowed_origins),
                                            trust_forwarded_proto=settings.web.trust_forwarded_proto))
    rest_api.setup(app)  # /api/v1 (callcenter/api/, docs/api.md)
    admin_routes.setup(app)  # GET /admin (agent_ui/pages/admin.html)
    from agent_ui import wallboard_routes

    wallboard_routes.setup(app)  # GET /wallboard, /ws/wallboard (docs/wallboard.md)
    from agent_ui import reports_routes

    reports_routes.setup(app)  # GET /reports (docs/reports.md)
    from agent_ui import campaign_routes

    campaign_routes.setup(app)  # GET /campaigns (docs/campaigns.md)
    app.cleanup_ctx.append(_database_ctx(database))
    if settings.redis.url:
        app.cleanup_ctx.append(_redis_ctx)
    app.cleanup_ctx.append(_center_ctx(ivr_clock))
    app.cleanup_ctx.append(_telephony_ctx)
    if settings.scaleout.enabled and settings.redis.url:  # several processes (callcenter/scaleout/)
        from callcenter.scaleout.setup import scaleout_ctx

        app.cleanup_ctx.append(scaleout_ctx)
    if settings.chat.enabled:  # the widget's websocket, script and status (agent_ui/chat_routes.py)
        from agent_ui import chat_routes
        from callcenter.channels.chat.setup import demo_site_ctx

        chat_routes.setup(app, chat_routes.WidgetConfig(max_frame_bytes=settings.chat.max_frame_bytes))
        if settings.demo.enabled and settings.chat.demo_site_port is not None:
            app.cleanup_ctx.append(demo_site_ctx)
    if settings.email.enabled:  # SMTP listener, IMAP poller, smarthost (callcenter/channels/email/)
        from callcenter.channels.email.setup import email_ctx

        app.cleanup_ctx.append(email_ctx)
    if settings.twilio.enabled:  # Twilio as the voice carrier (callcenter/twilio/)
        from callcenter.twilio.web import setup as twilio_setup

        twilio_setup(app)
    return app


def _database_ctx(given: Database | None):  # type: ignore[no-untyped-def]
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        s = app[SETTINGS]
        db = given or Database(s.database.url, schema=s.database.schema_name)
        app[DB] = db
        yield
        if given is None:
            await db.close()

    return ctx


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    # a blocking pool: a burst waits up to 5 s for a free connection (MaxConnectionsError else)
    client = aioredis.Redis.from_pool(aioredis.BlockingConnectionPool.from_url(
        app[SETTINGS].redis.url, socket_timeout=2.0, max_connections=200, timeout=5))
    app[REDIS] = client
    yield
    await client.aclose()


def build_store(settings: Settings, db: Database) -> CrmStore:
    path = settings.config_path(settings.crm.rules_file)
    rules = Rules.from_yaml(path) if path.exists() else Rules.default()
    return CrmStore(db, rules, default_region=settings.crm.default_region)


def _center_ctx(ivr_clock: Callable[[], datetime] | None):  # type: ignore[no-untyped-def]
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        from callcenter.api.live import load_admin_state
        from callcenter.ivr_agi import load_flow_file
        from ivr import Engine as FlowEngine

        s = app[SETTINGS]
        store = build_store(s, app[DB])
        flow = load_flow_file(s.config_path(f"ivr/{s.voice.ivr_flow}.yaml"))
        try:
            queues = await queue_configs(store)
        except DBAPIError as e:
            raise RuntimeError(f"the database is not ready ({type(e.orig).__name__}): "
                               "run `callcenter db upgrade` first") from e
        options = VoiceOptions(default_queue=s.voice.default_queue, ack_timeout_s=s.voice.ack_timeout_s,
                               wrapup_s=s.voice.wrapup_s, survey=s.voice.survey,
                               reconnect_grace_s=s.voice.reconnect_grace_s,
                               queue_skills={n: dict(q.skills) for n, q in queues.items()},
                               record_queues=await recorded_queues(store),
                               recordings_dir=recordings_dir(s))
        clock = ivr_clock
        if clock is None and s.demo.enabled:
            from callcenter.demo import demo_clock as clock
        extra: dict[str, Any] = {"ivr_clock": clock} if clock else {}
        if s.scaleout.enabled and s.redis.url:  # routing on the shared Redis store, wall-clock time
            import time

            from callcenter.scaleout.setup import routing_store

            extra.update(routing_store=routing_store(s), mono=time.time)
        center = Center(store, AuthService(app[DB], store), FlowEngine(flow), options=options,
                        queues=queues or _fallback_queues(s.voice.default_queue), **extra)
        await center.load_agents()
        await load_admin_state(center, s.voice.ivr_flow)  # stored IVR flow, reason codes (/api/v1)
        from callcenter.services import callbacks, sla

        followups = [callbacks.install(center, s), sla.install(center, s)]  # callbacks, SLA escalation
        from callcenter.services import wallboard

        followups.append(wallboard.install(center, s))  # the supervisors' live wallboard
        from callcenter.services import report_feed

        followups.append(report_feed.install(center, s))  # reports: agent time, daily summary emails
        from callcenter.services import campaigns

        followups.append(campaigns.install(center, s))  # outbound campaigns (docs/campaigns.md)
        if s.chat.enabled:  # web chat (callcenter/channels/chat/)
            from callcenter.channels.chat.setup import attach

            attach(center, s)
        app[CENTER] = center
        app[ui_routes.FACADE] = center
        purge = asyncio.get_running_loop().create_task(_purge_daily(store, s))
        yield
        purge.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await purge
        for followup in followups:
            await followup.close()
        await center.close()

    return ctx


async def _purge_daily(store: CrmStore, s: Settings) -> None:
    """Recording retention: purge once at start, then every day."""
    from callcenter.services.recordings import purge_recordings

    while True:
        try:
            gone = await purge_recordings(store, recordings_dir(s), s.voice.recording_retention_days)
            if gone:
                log.info("purged %d recordings older than %d days", len(gone),
                         s.voice.recording_retention_days)
        except Exception:  # noqa: BLE001 - retention must never stop the center
            log.exception("recording purge failed")
        await asyncio.sleep(86400)


def _fallback_queues(name: str) -> dict[str, Any]:
    from routing import QueueConfig

    log.warning("no queues in the database: routing everything to %r (run `callcenter db upgrade`)", name)
    return {name: QueueConfig(name)}


async def _telephony_ctx(app: web.Application) -> AsyncIterator[None]:
    s = app[SETTINGS]
    tel = Telephony(app[CENTER].voice)
    app[TELEPHONY] = tel
    sim = None
    try:
        if s.demo.enabled:
            from callcenter.demo import start_simulated_pbx

            sim = await start_simulated_pbx(app, tel)
        else:
            if s.agi.enabled:
                await tel.start_agi(s.agi.host, s.agi.port, s.agi.max_sessions)
            if s.ami.enabled and not (s.scaleout.enabled and s.redis.url):  # else: the AMI lease's holder
                await tel.start_ami(s.ami.host, s.ami.port, s.ami.username, s.ami.resolved_secret() or "")
        yield
    finally:
        await tel.close()
        if sim is not None:
            await sim.close()
