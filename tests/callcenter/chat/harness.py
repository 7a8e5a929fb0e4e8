"""A running center with web chat: widget clients (the `websockets` library, another Origin)
and agent consoles over real sockets; every frame either way is schema-checked."""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import websockets

from agent_ui import schemas
from agent_ui.chat_routes import validate_widget
from callcenter.app import build_store
from callcenter.settings import load_settings
from crm_core.store import CrmStore
from tests.callcenter.test_console_ws import cookie_for
from tests.callcenter.voice_harness import Running, running_center, seed_people

SITE = "shop"
ORIGIN = "http://shop.example.test:8443"
SECRET = "shop-secret-for-tests"


def chat_env(**extra: str) -> dict[str, str]:
    sites = [{"id": SITE, "origins": [ORIGIN], "secret": SECRET}]
    return {"CC_CHAT__SITES": json.dumps(sites), "CC_CHAT__DEMO_SITE_PORT": "", **extra}


def store_for(database: Any) -> CrmStore:
    return build_store(load_settings(env={}), database)


async def seed_chat_agents(store: CrmStore, n: int = 1, chat: int = 3) -> None:
    await seed_people(store, agents=0)
    for i in range(1, n + 1):
        await store.create_user(f"agent{i}", "agent-password", roles=["agent"], display_name=f"Agent {i}",
                                extension=str(1000 + i), skills={"billing": 5, "support": 5},
                                capacities={"voice": 1, "chat": chat, "email": 0})


@asynccontextmanager
async def chat_center(database: Any, **env: str) -> AsyncIterator[Running]:
    async with running_center(database, **chat_env(**env)) as rc:
        yield rc


class Client:
    """A schema-checked JSON websocket client: `validate(msg, direction)` checks each frame."""

    def __init__(self, ws: Any, validate: Any) -> None:
        self.ws, self.validate = ws, validate
        self.seen: list[dict[str, Any]] = []
        self.backlog: list[dict[str, Any]] = []

    async def send(self, type_: str, **fields: Any) -> None:
        msg = {"type": type_, **fields}
        self.validate(msg, "client")
        await self.ws.send(json.dumps(msg))

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def next(self, type_: str, timeout: float = 15.0, **match: Any) -> dict[str, Any]:
        for i, msg in enumerate(self.backlog):
            if msg["type"] == type_ and all(msg.get(k) == v for k, v in match.items()):
                return self.backlog.pop(i)

        async def find() -> dict[str, Any]:
            while True:
                msg = json.loads(await self.ws.recv())
                self.validate(msg, "server")
                self.seen.append(msg)
                if msg["type"] == type_ and all(msg.get(k) == v for k, v in match.items()):
                    return msg
                self.backlog.append(msg)
        return await asyncio.wait_for(find(), timeout)

    def drop(self, type_: str) -> list[dict[str, Any]]:
        """Messages of that type already received but not yet asked for."""
        out = [m for m in self.backlog if m["type"] == type_]
        self.backlog = [m for m in self.backlog if m["type"] != type_]
        return out

    async def close(self) -> None:
        await self.ws.close()


def _console_validate(msg: dict[str, Any], direction: str) -> None:
    schemas.validate(msg, direction=direction)  # type: ignore[arg-type]


def _widget_validate(msg: dict[str, Any], direction: str) -> None:
    validate_widget(msg, direction)


async def open_widget(base: str, origin: str = ORIGIN, site: str = SITE) -> Client:
    ws = await websockets.connect(base.replace("http", "ws") + f"/ws/chat?site={site}",
                                  additional_headers={"Origin": origin}, max_size=2**22)
    return Client(ws, _widget_validate)


async def open_agent(base: str, cookie: str) -> Client:
    ws = await websockets.connect(base.replace("http", "ws") + "/ws/agent",
                                  additional_headers={"Cookie": cookie, "Origin": base}, max_size=2**24)
    return Client(ws, _console_validate)


async def ready_agent(base: str, username: str = "agent1") -> tuple[Client, str]:
    cookie = await cookie_for(base, username)
    c = await open_agent(base, cookie)
    await c.next("hello")
    await c.send("set_state", state="ready")
    await c.next("agent_state", state="ready")
    return c, cookie


async def start_chat(base: str, name: str = "Carla Customer", email: str = "carla@example.com",
                     **fields: Any) -> tuple[Client, dict[str, Any]]:
    w = await open_widget(base)
    await w.next("status")
    await w.send("start", name=name, email=email, **fields)
    return w, await w.next("welcome")
