"""Routes for the web pages. agent_ui sees only callcenter.facade, never the database."""
from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).with_name("static")


async def index(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


def setup(app: web.Application) -> None:
    app.router.add_get("/", index, name="index")
    app.router.add_static("/static/", STATIC, name="static")
