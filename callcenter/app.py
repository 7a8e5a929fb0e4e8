"""The composition root: builds the store, the optional Redis link and the web app."""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from aiohttp import web

from agent_ui import routes as ui_routes
from callcenter import ops
from callcenter.keys import DB, REDIS, SETTINGS
from callcenter.settings import Settings
from crm_core.db import Database

log = logging.getLogger(__name__)



def init_app(settings: Settings, *, database: Database | None = None) -> web.Application:
    """Build the application. The tests use this same factory."""
    app = web.Application(middlewares=[ops.metrics_middleware])
    app[SETTINGS] = settings
    ops.setup(app)
    ui_routes.setup(app)
    app.cleanup_ctx.append(_database_ctx(database))
    if settings.redis.url:
        app.cleanup_ctx.append(_redis_ctx)
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
    client = aioredis.from_url(app[SETTINGS].redis.url, socket_timeout=2.0)
    app[REDIS] = client
    yield
    await client.aclose()
