"""Admin changes reach every process: with Redis configured, the process that made a change
announces it on `<prefix>admin`, and every other process reloads the same thing (queues, one
agent's routing profile, the live IVR flow). Without Redis there is only one process."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

from aiohttp import web

from callcenter.api import live
from callcenter.keys import CENTER, REDIS, SETTINGS

log = logging.getLogger(__name__)
ORIGIN = web.AppKey("admin_sync_origin", str)
TASK = web.AppKey("admin_sync_task", asyncio.Task)  # type: ignore[type-arg]
APPLIED = web.AppKey("admin_sync_applied", asyncio.Queue)  # type: ignore[type-arg]  # tests watch it


def _channel(app: web.Application) -> str:
    return f"{app[SETTINGS].redis.prefix}admin"


async def announce(app: web.Application, kind: str, **data: Any) -> None:
    """Tell the other processes (a no-op without Redis). Never fails the admin's request."""
    client = app.get(REDIS)
    if client is None or ORIGIN not in app:
        return
    try:
        await client.publish(_channel(app), json.dumps({"origin": app[ORIGIN], "kind": kind, **data}))
    except Exception:  # noqa: BLE001 - the change is stored; other processes get it at restart
        log.warning("could not announce an admin change (%s)", kind, exc_info=True)


async def apply(app: web.Application, msg: dict[str, Any]) -> None:
    center = app[CENTER]
    kind = msg.get("kind")
    if kind == "queues":
        await live.reload_queues(center)
    elif kind == "agent" and isinstance(msg.get("user_id"), int):
        await live.reload_agent(center, msg["user_id"])
    elif kind == "reason_codes":
        await live.reload_reason_codes(center)
    elif kind == "hours":
        from callcenter.api.hours import reload_hours

        await reload_hours(center)
    elif kind == "flow" and isinstance(msg.get("name"), str):
        if msg["name"] == app[SETTINGS].voice.ivr_flow:
            await live.apply_active_flow(center, msg["name"])
    else:
        log.warning("unknown admin change %r", kind)


async def _listen(app: web.Application, pubsub: Any) -> None:
    async for raw in pubsub.listen():
        if raw.get("type") != "message":
            continue
        try:
            msg = json.loads(raw["data"])
            if msg.get("origin") == app[ORIGIN]:
                continue
            await apply(app, msg)
            app[APPLIED].put_nowait(msg)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - one bad message must not stop the listener
            log.exception("applying an admin change failed")


async def _subscribe(app: web.Application, client: Any) -> Any:
    """A pubsub whose SUBSCRIBE the server has confirmed: from here on no announcement is missed."""
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(_channel(app))
        async with asyncio.timeout(5):
            while (m := await pubsub.get_message(timeout=1.0)) is None or m.get("type") != "subscribe":
                pass
    except BaseException:
        with contextlib.suppress(Exception):
            await pubsub.aclose()
        raise
    return pubsub


async def _run(app: web.Application, client: Any, first: Any = None) -> None:
    """Listen (on `first`, subscribed before the app served) and, while Redis is away, retry.
    After a reconnect everything an announcement could have carried is reloaded, since messages
    sent meanwhile are lost."""
    delay, missed = 0.5, first is None  # no subscription at start: changes may have been missed
    while True:
        pubsub = None
        try:
            pubsub, first = first or await _subscribe(app, client), None
            if missed:
                await resync(app)
            delay = 0.5
            await _listen(app, pubsub)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - Redis down or gone: admin changes wait for it
            log.warning("admin change channel unavailable (%s); retrying in %.1f s", e, delay)
        finally:
            if pubsub is not None:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
        missed = True
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30.0)


async def resync(app: web.Application) -> None:
    center = app[CENTER]
    await live.reload_queues(center)
    await live.reload_reason_codes(center)
    await live.apply_active_flow(center, app[SETTINGS].voice.ivr_flow)
    from callcenter.api.hours import reload_hours

    await reload_hours(center)


async def _start(app: web.Application) -> None:
    client = app.get(REDIS)
    if client is None:
        return
    app[ORIGIN] = uuid.uuid4().hex
    app[APPLIED] = asyncio.Queue(maxsize=1000)
    try:  # subscribed before the app serves, so a change made right after start reaches us
        first = await _subscribe(app, client)
    except Exception as e:  # noqa: BLE001 - Redis down: the task retries and resyncs
        log.warning("admin change channel unavailable at start (%s)", e)
        first = None
    app[TASK] = asyncio.get_running_loop().create_task(_run(app, client, first), name="admin-sync")


async def _stop(app: web.Application) -> None:
    task = app.get(TASK)
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def setup(app: web.Application) -> None:
    # on_startup runs after every cleanup_ctx (Redis, the center); on_shutdown before they end
    app.on_startup.append(_start)
    app.on_shutdown.append(_stop)
