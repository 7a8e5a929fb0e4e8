"""The chat widget's web edge: its script, its status endpoint and its websocket (docs/chat.md).

The widget runs on the customer's website, another origin: `GET /ws/chat?site=S` and
`GET /widget/status?site=S` accept only the origins on the site's allow-list (CORS answers name
that one origin; any other origin gets 403 and no CORS header). Frames are JSON, checked against
`agent_ui/schemas/widget/*.json`; bad frames get an `error` and change nothing.
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from agent_ui.routes import FACADE, STATIC
from callcenter.facade import PROTOCOL_VERSION, ConsoleLink, Facade, MessageRefused

log = logging.getLogger(__name__)

WIDGET_SCHEMAS = Path(__file__).with_name("schemas") / "widget"
WIDGET_STATIC = STATIC / "widget"


@dataclass(frozen=True)
class WidgetConfig:
    max_frame_bytes: int = 32 * 1024
    heartbeat_s: float = 25.0


WIDGET_CONFIG = web.AppKey("chat_widget_config", WidgetConfig)


@cache
def _validators() -> dict[str, tuple[str, Draft202012Validator]]:
    out = {}
    for path in sorted(WIDGET_SCHEMAS.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        out[doc["properties"]["type"]["const"]] = (doc["x-direction"], Draft202012Validator(doc))
    return out


def widget_types(direction: str | None = None) -> frozenset[str]:
    return frozenset(t for t, (d, _v) in _validators().items() if direction in (None, d))


class WidgetInvalid(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def validate_widget(msg: Any, direction: str = "client") -> dict[str, Any]:
    """Return `msg` if it is a widget protocol message of `direction`; raise WidgetInvalid."""
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise WidgetInvalid("bad_message", "a message is a JSON object with a string 'type'")
    if direction == "client" and msg["type"] == "send" and _plain_send(msg):
        return msg  # the hot path; anything unusual gets the full schema check below
    found = _validators().get(msg["type"])
    if found is None or found[0] != direction:
        raise WidgetInvalid("unknown_type", f"unknown message type {msg['type'][:64]!r}")
    error = best_match(found[1].iter_errors(msg))
    if error is not None:
        path = "".join(f"/{p}" for p in error.absolute_path)
        raise WidgetInvalid("bad_message", f"{msg['type']}: {error.message[:300]} (at {path or '/'})")
    return msg


def _plain_send(msg: dict[str, Any]) -> bool:
    """A `send` exactly as its schema wants it (type, client_id of 1..64, text up to 100000)."""
    cid, text = msg.get("client_id"), msg.get("text")
    return (len(msg) == 3 and isinstance(cid, str) and 0 < len(cid) <= 64
            and isinstance(text, str) and len(text) <= 100_000)


def _error(code: str, message: str, client_id: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "error", "v": PROTOCOL_VERSION, "code": code, "message": message}
    if isinstance(client_id, str) and 0 < len(client_id) <= 64:
        out["client_id"] = client_id
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def handle_frame(facade: Facade, link: ConsoleLink, data: str) -> dict[str, Any] | None:
    """One widget frame in, the reply (or an `error`) out. Never raises for bad input."""
    try:
        msg = json.loads(data, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return _error("bad_message", "the frame is not valid JSON")
    cid = msg.get("client_id") if isinstance(msg, dict) else None
    try:
        validate_widget(msg)
    except WidgetInvalid as e:
        return _error(e.code, str(e), cid)
    try:
        return await facade.chat_message(link, msg)
    except MessageRefused as e:
        return _error(e.code, str(e), cid)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("widget message %s failed", msg.get("type"))
        return _error("internal", "the server could not handle this message", cid)


def _site(request: web.Request) -> str:
    return request.query.get("site", "")[:32]


async def widget_ws(request: web.Request) -> web.StreamResponse:
    facade = request.app[FACADE]
    cfg = request.app[WIDGET_CONFIG]
    site, origin = _site(request), request.headers.get("Origin")
    if origin is None or not facade.chat_origin_allowed(site, origin):
        raise web.HTTPForbidden(text="this origin may not open chats")
    try:
        link = facade.chat_open(site, origin, request.remote or "unknown")
    except MessageRefused as e:
        raise web.HTTPForbidden(text=str(e)) from None
    ws = web.WebSocketResponse(max_msg_size=cfg.max_frame_bytes, heartbeat=cfg.heartbeat_s)
    await ws.prepare(request)
    lock = asyncio.Lock()

    async def send(msg: dict[str, Any]) -> None:
        async with lock:
            await ws.send_str(json.dumps(msg, separators=(",", ":"), ensure_ascii=False))

    async def forward() -> None:
        try:
            async for msg in link.messages():
                if ws.closed:
                    return
                await send(msg)
        except (ConnectionResetError, RuntimeError):
            return
        if not ws.closed:
            await ws.close(code=4000, message=b"reconnect")

    forwarder = asyncio.create_task(forward(), name="widget-forward")
    try:
        async for frame in ws:
            if frame.type == WSMsgType.TEXT:
                reply = await handle_frame(facade, link, frame.data)
            elif frame.type == WSMsgType.BINARY:
                reply = _error("bad_message", "binary frames are not part of the protocol")
            else:  # ERROR: over the size limit, or a text frame that is not UTF-8
                break
            if reply is not None and not ws.closed:
                await send(reply)
    except (TimeoutError, ConnectionResetError) as e:
        log.debug("widget socket dropped: %s", e)
    finally:
        forwarder.cancel()
        try:
            await forwarder
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
        finally:
            await link.close()
            if not ws.closed:
                await ws.close()
    return ws


async def widget_status(request: web.Request) -> web.Response:
    """Before the chat: is anyone there? Strict CORS: only the site's allow-listed origins."""
    facade = request.app[FACADE]
    site, origin = _site(request), request.headers.get("Origin")
    if origin is None or not facade.chat_origin_allowed(site, origin):
        raise web.HTTPForbidden(text="this origin may not use the chat", headers={"Vary": "Origin"})
    return web.json_response(facade.chat_status(site), headers={
        "Access-Control-Allow-Origin": origin, "Vary": "Origin", "Cache-Control": "no-store"})


async def widget_preflight(request: web.Request) -> web.Response:
    facade = request.app[FACADE]
    origin = request.headers.get("Origin")
    if origin is None or not facade.chat_origin_allowed(_site(request), origin):
        raise web.HTTPForbidden(text="this origin may not use the chat", headers={"Vary": "Origin"})
    return web.Response(status=204, headers={
        "Access-Control-Allow-Origin": origin, "Access-Control-Allow-Methods": "GET",
        "Access-Control-Max-Age": "600", "Vary": "Origin"})


async def widget_script(_request: web.Request) -> web.FileResponse:
    # A script the customer's pages load from here: cross-origin use is the point of it.
    return web.FileResponse(WIDGET_STATIC / "widget.js", headers={
        "Content-Type": "text/javascript; charset=utf-8", "Cross-Origin-Resource-Policy": "cross-origin",
        "Cache-Control": "public, max-age=300"})


def setup(app: web.Application, config: WidgetConfig | None = None) -> None:
    app[WIDGET_CONFIG] = config or WidgetConfig()
    app.router.add_get("/ws/chat", widget_ws, name="widget_ws")
    app.router.add_get("/widget/status", widget_status, name="widget_status")
    app.router.add_route("OPTIONS", "/widget/status", widget_preflight)
    app.router.add_get("/widget/widget.js", widget_script, name="widget_script")
