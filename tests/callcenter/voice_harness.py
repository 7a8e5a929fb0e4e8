"""A running center with the simulated PBX, for voice tests: real AMI and FastAGI over TCP."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from callcenter.app import build_store, init_app
from callcenter.asterisk.simulator import Simulator
from callcenter.bootstrap import load_seed, seed_catalog
from callcenter.facade import WebUser
from callcenter.keys import CENTER, TELEPHONY
from callcenter.services.center import Center
from callcenter.settings import load_settings
from crm_core.db import Database
from crm_core.store import CrmStore
from tests.http import serve

WEEKDAY_NOON_NY = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)  # the demo flow's hours are open
VIP_PHONE = "+12025550143"
REGULAR_PHONE = "+12025550144"


@dataclass
class Running:
    base: str
    app: web.Application
    center: Center
    sim: Simulator
    store: CrmStore


async def seed_people(store: CrmStore, agents: int = 1) -> dict[str, Any]:
    """The shipped catalog (queues, skills, dispositions), agents agent1..N (extensions 1001..),
    a VIP and a regular customer with history."""
    seed = {k: v for k, v in load_seed(load_settings(env={})).items() if k != "admin"}
    await seed_catalog(store, seed)
    for i in range(1, agents + 1):
        await store.create_user(f"agent{i}", "agent-password", roles=["agent"], display_name=f"Agent {i}",
                                extension=str(1000 + i), skills={"billing": 5, "support": 5})
    vip = await store.create_customer("Victoria Important", phones=[VIP_PHONE], lifetime_value="75000")
    reg = await store.create_customer("Rob Regular", phones=[REGULAR_PHONE])
    old = await store.open_interaction("voice", "inbound", vip.id)
    await store.set_state(old.id, "answered")
    await store.set_state(old.id, "ended")
    await store.set_disposition(old.id, "resolved", "asked about an invoice")
    await store.create_ticket(vip.id, "service_request", "Move the line to the new address")
    return {"vip": vip, "regular": reg}


@asynccontextmanager
async def running_center(database: Database, **env: str) -> AsyncIterator[Running]:
    settings = load_settings(env={"CC_DEMO__ENABLED": "true", "CC_DEMO__CALLS_PER_MINUTE": "0",
                                  "CC_DEMO__TIME_SCALE": "0.02", "CC_VOICE__ACK_TIMEOUT_S": "2",
                                  "CC_CHAT__DEMO_SITE_PORT": "",  # no demo shop page on a fixed port
                                  **env})
    app = init_app(settings, database=database, ivr_clock=lambda: WEEKDAY_NOON_NY)
    async with serve(app) as base:
        center = app[CENTER]
        sim = center.voice.softphone.sim  # type: ignore[union-attr]
        yield Running(base, app, center, sim, build_store(settings, database))
        assert app[TELEPHONY] is not None


class Console:
    """An agent console attached straight to the center (the websocket tests use the real socket)."""

    def __init__(self, center: Center, user: WebUser, link: Any) -> None:
        self.center, self.user, self.link = center, user, link
        self.seen: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, center: Center, store: CrmStore, username: str) -> Console:
        u = await store.get_user(username)
        user = WebUser(u.id, u.username, u.display_name, tuple(u.roles), (), u.extension)
        return cls(center, user, await center.connect_console(user))

    async def next(self, type_: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        async def find() -> dict[str, Any]:
            while True:
                msg = await self.link.queue.get()
                assert msg is not None, "console link closed"
                self.seen.append(msg)
                if msg["type"] == type_ and all(msg.get(k) == v for k, v in match.items()):
                    return msg  # type: ignore[no-any-return]
        return await asyncio.wait_for(find(), timeout)

    async def send(self, type_: str, **fields: Any) -> Any:
        return await self.center.console_message(self.user, {"type": type_, **fields})

    def types(self) -> list[str]:
        return [m["type"] for m in self.seen]
