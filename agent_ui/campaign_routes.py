"""The campaigns page (`GET /campaigns`; docs/campaigns.md): agents join a campaign and work its
records, supervisors watch and control one. Static HTML plus /static/campaigns.js, which speaks
the console protocol on its own /ws/agent socket (campaign_* messages, docs/protocol.md)."""
from __future__ import annotations

from aiohttp import web

from agent_ui import access
from agent_ui.routes import _page


async def campaigns_page(request: web.Request) -> web.StreamResponse:
    user = await access.request_user(request)
    assert user is not None
    return _page("campaigns.html", display_name=user.display_name)


def setup(app: web.Application) -> None:
    app.router.add_get("/campaigns", campaigns_page, name="campaigns")
