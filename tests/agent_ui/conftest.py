"""agent_ui fixtures: the real routes on a real aiohttp server, a real AuthService on the store.

`make_app` is the small test app factory: it mounts agent_ui's routes and sets `FACADE`.
`StubConsoleFacade` signs in through the real AuthService but replaces the console part.
"""
from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from argon2 import PasswordHasher

from agent_ui import routes, schemas
from agent_ui.routes import FACADE, UiConfig
from callcenter.facade import PROTOCOL_VERSION, MessageRefused, WebSession, WebUser
from callcenter.services.auth import AuthService, AuthSettings
from crm_core.db import Database
from crm_core.store import CrmStore
from tests.http import serve

FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
PASSWORD = "correct horse battery"


class FakeClock:
    """Aware UTC time moved by hand: lock-out windows and expiry without sleeping."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


class StubLink:
    """A console link whose messages the test pushes by hand; `end()` ends the stream."""

    def __init__(self, facade: StubConsoleFacade, user: WebUser) -> None:
        self.facade = facade
        self.user = user
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.closed = asyncio.Event()

    def push(self, type_: str, **fields: Any) -> None:
        self.queue.put_nowait({"type": type_, "v": PROTOCOL_VERSION, **fields})

    def end(self) -> None:
        self.queue.put_nowait(None)

    async def messages(self):  # type: ignore[no-untyped-def]
        while (msg := await self.queue.get()) is not None:
            yield msg

    async def close(self) -> None:
        self.closed.set()


class StubConsoleFacade:
    """Sign-in, sessions and logout are the REAL AuthService. The console half is a stand-in
    for the ConsoleService, good ONLY for testing the web transport (schema validation, error
    handling, origin check, 401 without a session, frame limits, forwarding, reconnect, and
    that the page renders what the server says): on connect it sends the resume (`hello`, then
    `agent_state` with `self.agent_state`); `search` is answered with empty results; `refuse`
    and `boom` as a search query raise MessageRefused / RuntimeError; `set_state` is recorded
    and answered only when the test calls `apply_state()` (so tests can check that nothing is
    optimistic). Every received message is appended to `received`."""

    def __init__(self, auth: AuthService) -> None:
        self.auth = auth
        self.links: list[StubLink] = []
        self.received: list[dict[str, Any]] = []
        self.message_seen = asyncio.Event()
        self.agent_state: tuple[str, str | None] = ("offline", None)

    async def login(self, username: str, password: str, remote: str) -> WebSession:
        return await self.auth.login(username, password, remote)

    async def session(self, token: str) -> WebSession | None:
        return await self.auth.session(token)

    async def logout(self, token: str) -> None:
        await self.auth.logout(token)

    def state_message(self, state: str, reason: str | None = None) -> dict[str, Any]:
        return {"state": state, "reason": reason, "since": "2026-11-26T09:00:00+00:00",
                "wrapup_until": None}

    async def connect_console(self, user: WebUser) -> StubLink:
        link = StubLink(self, user)
        self.links.append(link)
        link.push("hello", user={"id": user.id, "username": user.username,
                                 "display_name": user.display_name, "extension": user.extension},
                  reason_codes=[{"code": "break", "label": "Break"},
                                {"code": "lunch", "label": "Lunch"}],
                  dispositions=[{"code": "resolved", "label": "Resolved"},
                                {"code": "callback", "label": "Callback needed"}],
                  wrapup_required={"disposition": True, "notes": False},
                  server_time=datetime.now(UTC).isoformat())
        link.push("agent_state", **self.state_message(*self.agent_state))
        return link

    def apply_state(self, state: str, reason: str | None = None) -> None:
        self.agent_state = (state, reason)
        for link in self.links:
            link.push("agent_state", **self.state_message(state, reason))

    async def console_message(self, user: WebUser, message: dict[str, Any]) -> dict[str, Any] | None:
        self.received.append(message)
        self.message_seen.set()
        if message["type"] == "search":
            if message["q"] == "refuse":
                raise MessageRefused("forbidden", "not allowed for you")
            if message["q"] == "boom":
                raise RuntimeError("a bug in the service")
            return {"type": "search_results", "q": message["q"], "items": [], "page": 1,
                    "has_more": False}
        return None

    async def wait_for(self, type_: str, timeout: float = 5.0) -> dict[str, Any]:
        async def scan() -> dict[str, Any]:
            while True:
                for m in self.received:
                    if m["type"] == type_:
                        return m
                self.message_seen.clear()
                await self.message_seen.wait()

        return await asyncio.wait_for(scan(), timeout)


def make_app(facade: Any, config: UiConfig | None = None) -> web.Application:
    """The test app factory: agent_ui's routes with FACADE set."""
    app = web.Application()
    app[FACADE] = facade
    routes.setup(app, config)
    return app


async def make_store(db: Database) -> CrmStore:
    store = CrmStore(db, password_hasher=FAST_HASHER)
    await store.create_user("alice", PASSWORD, ["agent"], display_name="Alice Agent", extension="1001")
    return store


AUTH_SETTINGS = AuthSettings(max_failures_per_user=3, max_failures_per_remote=50)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def sqlite_db(tmp_path) -> AsyncIterator[Database]:
    """A migrated SQLite database: for transport tests, where the backend does not matter."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/ui.db")
    await db.upgrade()
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture
async def ws_facade(sqlite_db, clock) -> StubConsoleFacade:
    store = await make_store(sqlite_db)
    return StubConsoleFacade(AuthService(sqlite_db, store, clock, AUTH_SETTINGS))


@pytest.fixture
async def ws_server(ws_facade) -> AsyncIterator[str]:
    async with serve(make_app(ws_facade)) as url:
        yield url


def client(**kw: Any) -> aiohttp.ClientSession:
    """A client that keeps cookies for 127.0.0.1 (aiohttp's jar ignores IP hosts by default)."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), **kw)


CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


async def login(http: aiohttp.ClientSession, url: str, username: str = "alice",
                password: str = PASSWORD) -> aiohttp.ClientResponse:
    page = await http.get(f"{url}/login")
    m = CSRF_RE.search(await page.text())
    assert m, "the login form has a CSRF field"
    return await http.post(f"{url}/login", data={"username": username, "password": password,
                                                 "csrf": m.group(1)}, allow_redirects=False)


async def recv(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> dict[str, Any]:
    """The next server message, checked against its schema."""
    msg = await ws.receive_json(timeout=timeout)
    schemas.validate(msg, direction="server")
    return msg
