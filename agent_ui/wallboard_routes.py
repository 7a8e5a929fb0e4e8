"""The supervisors' live wallboard: `GET /wallboard` (the page) and `GET /ws/wallboard` (its
websocket; docs/wallboard.md, docs/protocol.md). Supervisors and admins only (agent_ui/access.py).

The server pushes `wallboard` frames (each a full snapshot of the supervisor's teams) whenever
something changed, at most 10 a second; the same bytes go to every client of a scope. The client
may send console messages on this socket too (e.g. `wallboard_callback`); they go through the
console's dispatcher (`routes.handle_text`), role-checked like on /ws/agent.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from agent_ui import access
from agent_ui.routes import (
    FACADE,
    SESSION_COOKIE,
    SOCKETS,
    UI_CONFIG,
    _origin_allowed,
    _page,
    _watch_session,
    handle_text,
)
from callcenter.facade import PROTOCOL_VERSION, MessageRefused, WallboardFeed

log = logging.getLogger(__name__)


async def wallboard_page(request: web.Request) -> web.StreamResponse:
    user = await access.request_user(request)  # the middleware let only supervisors and admins in
    assert user is not None
    teams = "all teams" if access.is_admin(user) else (", ".join(user.teams) or "no team")
    return _page("wallboard.html", csrf=request.get(access.CSRF, ""), display_name=user.display_name,
                 teams=teams)


_WIRE: list[tuple[bytes, bytes]] = []  # (frame, its websocket frame): the last few, by identity


def _wire(frame: bytes) -> bytes:
    """The frame as a server websocket text frame (unmasked, uncompressed: the same bytes for every
    client), built once per frame."""
    for known, wire in _WIRE:
        if known is frame:
            return wire
    n = len(frame)
    if n < 126:
        head = bytes((0x81, n))
    elif n < 1 << 16:
        head = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 127)) + n.to_bytes(8, "big")
    wire = head + frame
    _WIRE.insert(0, (frame, wire))
    del _WIRE[8:]
    return wire


def _direct(ws: web.WebSocketResponse, transport: asyncio.Transport | None) -> Any:
    """Write a frame now when the socket takes it without waiting (else the feed's task sends it)."""
    def write(frame: bytes) -> bool:
        if transport is None or ws.closed or transport.is_closing():
            return False
        if transport.get_write_buffer_size() > DIRECT_MAX_BUFFERED:
            return False  # a slow client: its task waits for the socket to drain
        transport.write(_wire(frame))
        return True
    return write


DIRECT_MAX_BUFFERED = 256 * 1024


async def _push(feed: WallboardFeed, ws: web.WebSocketResponse, lock: asyncio.Lock) -> None:
    try:
        async for frame in feed.frames():
            if ws.closed:
                return
            async with lock:
                await ws.send_frame(frame, WSMsgType.TEXT)  # the bytes every client of the scope gets
    except (ConnectionResetError, RuntimeError) as e:
        log.debug("wallboard push stopped: %s", e)


async def wallboard_ws(request: web.Request) -> web.StreamResponse:
    app = request.app
    facade, cfg = app[FACADE], app[UI_CONFIG]
    token = request.cookies.get(SESSION_COOKIE) or ""
    session = await facade.session(token) if token else None
    if session is None:
        raise web.HTTPUnauthorized(text="sign in first")
    origin = request.headers.get("Origin")
    if origin is None or not _origin_allowed(request, origin):
        raise web.HTTPForbidden(text="origin not allowed")
    try:
        feed = await facade.wallboard_subscribe(session.user)
    except MessageRefused as e:
        raise web.HTTPForbidden(text=str(e)) from None
    # no per-message compression: every client gets the same bytes, compressed for nobody
    ws = web.WebSocketResponse(max_msg_size=cfg.max_frame_bytes, heartbeat=cfg.heartbeat_s, compress=False)
    tasks: list[asyncio.Task[Any]] = []
    try:
        await ws.prepare(request)
        app[SOCKETS].add(token, ws)
        lock = asyncio.Lock()
        if hasattr(feed, "direct"):  # no compression was negotiated (compress=False): raw frames
            feed.direct = _direct(ws, request.transport)  # type: ignore[arg-type]
        tasks = [asyncio.create_task(_push(feed, ws, lock), name=f"wallboard-{session.user.id}"),
                 asyncio.create_task(_watch_session(facade, token, ws, cfg.session_recheck_s))]
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:  # answered as on /ws/agent; the socket stays open
                reply: dict[str, Any] | None = {"type": "error", "v": PROTOCOL_VERSION, "code": "bad_message",
                                                "message": "binary frames are not part of the protocol"}
            elif msg.type != WSMsgType.TEXT:
                break
            else:
                reply = await handle_text(facade, session.user, msg.data)
            if reply is not None and not ws.closed:
                async with lock:
                    await ws.send_str(json.dumps(reply, separators=(",", ":"), default=str))
    except (TimeoutError, ConnectionResetError) as e:
        log.debug("wallboard socket of user %s dropped: %s", session.user.id, e)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await feed.close()
        app[SOCKETS].discard(token, ws)
        if not ws.closed:
            await ws.close()
    return ws


def setup(app: web.Application) -> None:
    app.router.add_get("/wallboard", wallboard_page, name="wallboard")
    app.router.add_get("/ws/wallboard", wallboard_ws, name="wallboard_ws")

