"""Wallboard test helpers: teams, agents and supervisors; a wallboard websocket client."""
from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets

from agent_ui import schemas
from tests.callcenter.voice_harness import seed_people


async def seed_board(store: Any) -> dict[str, Any]:
    """Team red: agent ann (billing), supervisors sue and sky. Team blue: agent bob (support),
    supervisor sam. Admin ada. Every password is agent-password."""
    people = await seed_people(store, agents=0)
    for team in ("red", "blue"):
        await store.create_team(team)
    await store.create_user("ann", "agent-password", roles=["agent"], display_name="Ann", team="red",
                            extension="1001", skills={"billing": 5})
    await store.create_user("bob", "agent-password", roles=["agent"], display_name="Bob", team="blue",
                            extension="1002", skills={"support": 5})
    for name, team in (("sue", "red"), ("sky", "red"), ("sam", "blue")):
        await store.create_user(name, "agent-password", roles=["supervisor"], display_name=name.title(),
                                team=team)
    await store.create_user("ada", "agent-password", roles=["admin"], display_name="Ada")
    return people


class Board:
    """A wallboard websocket client that checks every frame against its schema."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.raw: list[str] = []

    @classmethod
    async def open(cls, base: str, cookie: str) -> Board:
        ws = await websockets.connect(base.replace("http", "ws") + "/ws/wallboard",
                                      additional_headers={"Cookie": cookie, "Origin": base})
        return cls(ws)

    async def next(self, pred: Any = None, timeout: float = 15.0, type_: str = "wallboard") -> dict[str, Any]:
        async def find() -> dict[str, Any]:
            while True:
                raw = await self.ws.recv()
                msg = json.loads(raw)
                schemas.validate(msg, direction="server")
                if msg["type"] == "wallboard":
                    self.raw.append(raw)
                if msg["type"] == type_ and (pred is None or pred(msg)):
                    return msg
        return await asyncio.wait_for(find(), timeout)

    async def send(self, type_: str, **fields: Any) -> None:
        msg = {"type": type_, **fields}
        schemas.validate(msg, direction="client")
        await self.ws.send(json.dumps(msg))

    async def close(self) -> None:
        await self.ws.close()


def agent(frame: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((a for a in frame["agents"] if a["name"] == name), None)


def queue(frame: dict[str, Any], name: str, channel: str = "voice") -> dict[str, Any] | None:
    return next((q for q in frame["queues"] if q["queue"] == name and q["channel"] == channel), None)
