"""Routes for the web pages. agent_ui sees only callcenter.facade, never the database.

The composition root mounts them and hands in the facade:

    app[FACADE] = facade                       # implements callcenter.facade.Facade
    app[UI_CONFIG] = UiConfig(cookie_secure=True, allowed_origins=("https://cc.example.com",))
    setup(app)                                 # UI_CONFIG defaults to UiConfig() if unset

Pages: `GET /` (landing), `GET /login`, `POST /login`, `POST /logout`, `GET /console`, the agent
websocket `GET /ws/agent` (docs/protocol.md), and `/static/`. Every response carries the security
headers (CSP without inline script, nosniff, Referrer-Policy, frame-ancestors 'none').
"""
from __future__ import annotations

import asyncio
import hmac
import html
import json
import logging
import random
import secrets
import time
import urllib.parse
import weakref
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from agent_ui import access, schemas
from callcenter.facade import (
    PROTOCOL_VERSION,
    ConsoleLink,
    Facade,
    LoginRefused,
    MessageRefused,
    WebSession,
    WebUser,
)

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
PAGES = Path(__file__).with_name("pages")

SESSION_COOKIE = "cc_session"
LOGIN_CSRF_COOKIE = "cc_login_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"

# websocket close codes (docs/protocol.md)
CLOSE_SESSION_ENDED = 4401  # signed out or expired: go to /login
CLOSE_RESYNC = 4000  # the server dropped this console's stream: reconnect and resume

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    # same-origin (not no-referrer): browsers then still send Origin on same-origin POSTs
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


@dataclass(frozen=True)
class UiConfig:
    """Web settings. `cookie_secure` forces the Secure flag (https requests always get it);
    `allowed_origins` adds origins (scheme://host[:port]) accepted besides the request's own host,
    e.g. the public https URL when a proxy terminates TLS."""

    cookie_secure: bool = False
    allowed_origins: tuple[str, ...] = ()
    # a TLS proxy in front: its X-Forwarded-Proto: https makes the request count as https
    trust_forwarded_proto: bool = False
    max_frame_bytes: int = 64 * 1024
    heartbeat_s: float = 25.0
    session_recheck_s: float = 30.0  # how often an open websocket re-checks its session (min 0.05)
    login_form_ttl_s: int = 3600
    # check every outgoing message against its schema (log only); the tests' clients check what
    # they receive, so production can skip this per-message cost
    check_outgoing: bool = False


class Sockets:
    """Open console websockets of this process, by session token (closed on logout/shutdown)."""

    def __init__(self) -> None:
        self.by_token: dict[str, set[web.WebSocketResponse]] = defaultdict(set)

    def add(self, token: str, ws: web.WebSocketResponse) -> None:
        self.by_token[token].add(ws)

    def discard(self, token: str, ws: web.WebSocketResponse) -> None:
        group = self.by_token.get(token)
        if group is not None:
            group.discard(ws)
            if not group:
                del self.by_token[token]

    async def close_token(self, token: str, code: int, message: bytes) -> None:
        for ws in list(self.by_token.get(token, ())):
            await ws.close(code=code, message=message)

    async def close_all(self) -> None:
        for group in list(self.by_token.values()):
            for ws in list(group):
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


FACADE = web.AppKey("facade", Facade)
UI_CONFIG = web.AppKey("agent_ui_config", UiConfig)
SOCKETS = web.AppKey("agent_ui_sockets", Sockets)


# --------------------------------------------------------------------------- helpers
def _page(name: str, status: int = 200, **values: str) -> web.Response:
    text = (PAGES / name).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", html.escape(value, quote=True))
    resp = web.Response(text=text, status=status, content_type="text/html", charset="utf-8")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _redirect(location: str, status: int = 303) -> web.Response:
    return web.Response(status=status, headers={"Location": location, "Cache-Control": "no-store"})


def _is_https(request: web.Request) -> bool:
    if request.secure:
        return True
    trusted = request.app[UI_CONFIG].trust_forwarded_proto
    proto = request.headers.get("X-Forwarded-Proto", "") if trusted else ""
    return proto.split(",")[0].strip().lower() == "https"


def _secure(request: web.Request) -> bool:
    return request.app[UI_CONFIG].cookie_secure or _is_https(request)


def _origin_allowed(request: web.Request, origin: str) -> bool:
    host = request.host
    allowed = {f"http://{host}", f"https://{host}", *request.app[UI_CONFIG].allowed_origins}
    return origin.rstrip("/") in {a.rstrip("/") for a in allowed}


def _post_origin_ok(request: web.Request) -> bool:
    """A POST may lack Origin (old clients; the CSRF token still guards it), but a present Origin
    must be ours ("null" included: refused)."""
    origin = request.headers.get("Origin")
    return origin is None or _origin_allowed(request, origin)


def _tokens_equal(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    return hmac.compare_digest(a.encode(), b.encode())


async def _current_session(request: web.Request) -> WebSession | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    return await request.app[FACADE].session(token)


def _form_str(form: Any, key: str) -> str:
    value = form.get(key)
    return value if isinstance(value, str) else ""


# --------------------------------------------------------------------------- pages
async def index(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


def _login_page(request: web.Request, status: int = 200, error: str = "",
                username: str = "") -> web.Response:
    token = secrets.token_urlsafe(32)
    resp = _page("login.html", status, csrf=token, error=error, username=username,
                 error_hidden="" if error else "hidden")
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, path="/login", httponly=True, samesite="Strict",
                    secure=_secure(request), max_age=request.app[UI_CONFIG].login_form_ttl_s)
    return resp


async def login_form(request: web.Request) -> web.StreamResponse:
    if await _current_session(request) is not None:
        return _redirect("/console", 302)
    return _login_page(request)


async def login_submit(request: web.Request) -> web.StreamResponse:
    if not _post_origin_ok(request):
        raise web.HTTPForbidden(text="cross-origin request refused")
    form = await request.post()
    username = _form_str(form, "username")[:256]
    if not _tokens_equal(request.cookies.get(LOGIN_CSRF_COOKIE), _form_str(form, CSRF_FIELD)):
        return _login_page(request, 403, "Your sign-in form expired. Please try again.", username)
    facade = request.app[FACADE]
    try:
        session = await facade.login(username, _form_str(form, "password"), request.remote or "unknown")
    except LoginRefused as e:
        resp = _login_page(request, 429 if e.locked_until else 401, str(e), username)
        if e.locked_until:
            resp.headers["Retry-After"] = str(max(1, int(e.locked_until - time.time())))
        return resp
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        await facade.logout(old)  # the previous session of this browser ends here
    resp = _redirect("/console")
    resp.set_cookie(SESSION_COOKIE, session.token, path="/", httponly=True, samesite="Lax",
                    secure=_secure(request))
    resp.del_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return resp


async def logout(request: web.Request) -> web.StreamResponse:
    if not _post_origin_ok(request):
        raise web.HTTPForbidden(text="cross-origin request refused")
    session = await _current_session(request)
    if session is None:
        return _redirect("/login")
    form = await request.post()
    presented = request.headers.get(CSRF_HEADER) or _form_str(form, CSRF_FIELD)
    if not _tokens_equal(session.csrf, presented):
        raise web.HTTPForbidden(text="missing or wrong CSRF token")
    await request.app[FACADE].logout(session.token)
    await request.app[SOCKETS].close_token(session.token, CLOSE_SESSION_ENDED, b"signed out")
    resp = _redirect("/login")
    resp.del_cookie(SESSION_COOKIE, path="/")
    return resp


async def console(request: web.Request) -> web.StreamResponse:
    session = await _current_session(request)
    if session is None:
        return _redirect("/login", 302)
    u = session.user
    return _page("console.html", csrf=session.csrf, display_name=u.display_name,
                 username=u.username, extension=u.extension or "")


async def recording(request: web.Request) -> web.StreamResponse:
    """Playback of a call recording: the agent who handled the call and supervisors only."""
    session = await _current_session(request)
    if session is None:
        raise web.HTTPUnauthorized(text="sign in first")
    raw = request.match_info["interaction_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise web.HTTPNotFound(text="no such recording")
    try:
        path = await request.app[FACADE].recording_file(session.user, int(raw))
    except MessageRefused as e:
        if e.code == "forbidden":
            raise web.HTTPForbidden(text=str(e)) from None
        raise web.HTTPNotFound(text="no such recording") from None
    return web.FileResponse(path, headers={"Content-Type": "audio/wav", "Cache-Control": "private, no-store"})


async def email_attachment(request: web.Request) -> web.StreamResponse:
    """An email attachment: always a download, with the content type stored for it."""
    session = await _current_session(request)
    if session is None:
        raise web.HTTPUnauthorized(text="sign in first")
    raw = request.match_info["attachment_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise web.HTTPNotFound(text="no such attachment")
    try:
        path, ctype, name = await request.app[FACADE].email_attachment(session.user, int(raw))
    except MessageRefused as e:
        if e.code == "forbidden":
            raise web.HTTPForbidden(text=str(e)) from None
        raise web.HTTPNotFound(text="no such attachment") from None
    quoted = urllib.parse.quote(name, safe="")
    return web.FileResponse(path, headers={
        "Content-Type": ctype, "Cache-Control": "private, no-store",
        "Content-Disposition": f"attachment; filename=\"attachment\"; filename*=UTF-8''{quoted}"})


# --------------------------------------------------------------------------- websocket
def _error(code: str, message: str, request_id: str | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": "error", "v": PROTOCOL_VERSION, "code": code, "message": message}
    if request_id is not None:
        msg["request_id"] = request_id
    return msg


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def handle_text(facade: Facade, user: WebUser, data: str) -> dict[str, Any] | None:
    """One console frame in, the reply (or an `error`) out. Never raises for bad input."""
    try:
        msg = json.loads(data, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return _error("bad_message", "the frame is not valid JSON")
    rid = msg.get("request_id") if isinstance(msg, dict) else None
    request_id = rid if isinstance(rid, str) and 0 < len(rid) <= 64 else None
    if isinstance(msg, dict) and msg.get("type") in schemas.message_types("client"):
        denied = access.check_message(user, msg["type"])  # agent_ui/access.py, before anything else
        if denied is not None:
            return _error("forbidden", denied, request_id)
    try:
        schemas.validate(msg, direction="client")
    except schemas.MessageInvalid as e:
        return _error(e.code, str(e), request_id)
    try:
        reply = await facade.console_message(user, msg)
    except MessageRefused as e:
        return _error(e.code, str(e), request_id)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("console message %s from user %s failed", msg.get("type"), user.id)
        return _error("internal", "the server could not handle this message", request_id)
    if reply is None:
        return None
    reply = dict(reply)
    reply.setdefault("v", PROTOCOL_VERSION)
    if request_id is not None:
        reply.setdefault("request_id", request_id)
    return reply


class _Sender:
    """Serialises sends from the reader and the forwarder; checks server messages (log only)."""

    def __init__(self, ws: web.WebSocketResponse, check: bool = False) -> None:
        self.ws = ws
        self.lock = asyncio.Lock()
        self.check = check

    async def send(self, msg: dict[str, Any]) -> None:
        if self.check:
            try:
                schemas.validate(msg, direction="server")
            except schemas.MessageInvalid as e:
                log.warning("sending a message that breaks the protocol schema: %s", e)
        async with self.lock:
            await self.ws.send_str(json.dumps(msg, separators=(",", ":"), default=str))


async def _forward(link: ConsoleLink, sender: _Sender) -> None:
    """Push the link's messages to the socket; when the link ends, ask the console to resync."""
    try:
        async for msg in link.messages():
            if sender.ws.closed:
                return
            await sender.send(msg)
    except (ConnectionResetError, RuntimeError) as e:  # the socket went away under us
        log.debug("console forwarder stopped: %s", e)
        return
    if not sender.ws.closed:
        await sender.ws.close(code=CLOSE_RESYNC, message=b"reconnect")


_RECHECK_GATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = \
    weakref.WeakKeyDictionary()


async def _watch_session(facade: Facade, token: str, ws: web.WebSocketResponse, every_s: float) -> None:
    """Close the socket with 4401 once its session is gone (signed out in another process,
    expired, idle, user disabled): checked every `every_s` seconds, whether or not frames arrive.
    Each wait is 50-100 % of `every_s` (consoles opened together do not check together) and a few
    checks run at a time per process (2,000 consoles must not take the whole database pool)."""
    loop = asyncio.get_running_loop()
    gate = _RECHECK_GATES.get(loop)
    if gate is None:
        gate = _RECHECK_GATES[loop] = asyncio.Semaphore(4)
    while not ws.closed:
        await asyncio.sleep(max(every_s, 0.05) * random.uniform(0.5, 1.0))
        try:
            async with gate:
                alive = await facade.session(token) is not None
        except Exception:  # the store is briefly unreachable: keep the console, try again later
            log.warning("session re-check failed", exc_info=True)
            continue
        if not alive:
            await ws.close(code=CLOSE_SESSION_ENDED, message=b"session ended")
            return


async def agent_ws(request: web.Request) -> web.StreamResponse:
    app = request.app
    facade, cfg = app[FACADE], app[UI_CONFIG]
    token = request.cookies.get(SESSION_COOKIE) or ""
    session = await facade.session(token) if token else None
    if session is None:
        raise web.HTTPUnauthorized(text="sign in first")
    origin = request.headers.get("Origin")
    if origin is None or not _origin_allowed(request, origin):
        raise web.HTTPForbidden(text="origin not allowed")
    ws = web.WebSocketResponse(max_msg_size=cfg.max_frame_bytes, heartbeat=cfg.heartbeat_s)
    await ws.prepare(request)
    sockets = app[SOCKETS]
    sockets.add(token, ws)
    sender = _Sender(ws, cfg.check_outgoing)
    link: ConsoleLink | None = None
    forward: asyncio.Task[None] | None = None
    watch: asyncio.Task[None] | None = None
    try:
        link = await facade.connect_console(session.user)
        forward = asyncio.create_task(_forward(link, sender), name=f"console-forward-{session.user.id}")
        watch = asyncio.create_task(_watch_session(facade, token, ws, cfg.session_recheck_s),
                                    name=f"console-session-{session.user.id}")
        async for frame in ws:
            if frame.type == WSMsgType.TEXT:
                reply = await handle_text(facade, session.user, frame.data)
            elif frame.type == WSMsgType.BINARY:
                reply = _error("bad_message", "binary frames are not part of the protocol")
            else:  # ERROR (e.g. a frame over the size limit): aiohttp closes the socket
                break
            if reply is not None and not ws.closed:
                await sender.send(reply)
    except (TimeoutError, ConnectionResetError) as e:
        log.debug("console socket of user %s dropped: %s", session.user.id, e)
    finally:
        for helper in (forward, watch):
            if helper is None:
                continue
            helper.cancel()
            try:
                await helper
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
            except Exception:
                log.exception("console helper task failed")
        try:
            if link is not None:
                await link.close()
        finally:
            sockets.discard(token, ws)
            if not ws.closed:
                await ws.close()
    return ws


async def _security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


async def _close_sockets(app: web.Application) -> None:
    await app[SOCKETS].close_all()


def setup(app: web.Application, config: UiConfig | None = None) -> None:
    """Mount the pages, the websocket and the static files on `app`. Set `app[FACADE]` before
    the app starts; `config` (or an `app[UI_CONFIG]` already set) tunes cookies and origins."""
    if config is not None:
        app[UI_CONFIG] = config
    elif UI_CONFIG not in app:
        app[UI_CONFIG] = UiConfig()
    app[SOCKETS] = Sockets()
    app.router.add_get("/", index, name="index")
    app.router.add_get("/login", login_form, name="login")
    app.router.add_post("/login", login_submit)
    app.router.add_post("/logout", logout, name="logout")
    app.router.add_get("/console", console, name="console")
    app.router.add_get("/ws/agent", agent_ws, name="agent_ws")
    app.router.add_get("/recordings/{interaction_id}", recording, name="recording")
    app.router.add_get("/email/attachments/{attachment_id}", email_attachment, name="email_attachment")
    app.router.add_static("/static/", STATIC, name="static")
    app.on_response_prepare.append(_security_headers)
    app.on_shutdown.append(_close_sockets)
