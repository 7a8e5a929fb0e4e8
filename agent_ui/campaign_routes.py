"""The campaigns page (`GET /campaigns`; docs/campaigns.md): agents join a campaign and work its
records, supervisors watch and control one. Static HTML plus /static/campaigns.js, which speaks
the console protocol on its own /ws/agent socket (campaign_* messages, docs/protocol.md)."""

from __future__ import annotations

import html

from aiohttp import web

from agent_ui import access
from agent_ui.routes import _page


async def campaigns_page(request: web.Request) -> web.StreamResponse:
    user = await access.request_user(request)
    assert user is not None
    return _page("campaigns.html", display_name=user.display_name)


async def unsubscribe(request: web.Request) -> web.StreamResponse:
    """The per-recipient link of a campaign email (GET from the mail, POST one-click, RFC 8058):
    the address is on the do-not-mail list from this moment."""
    from agent_ui.routes import FACADE

    campaigns = getattr(request.app[FACADE], "campaigns", None)
    token = request.match_info["token"]
    address = None
    if campaigns is not None and campaigns.email is not None and 16 <= len(token) <= 64:
        address = await campaigns.email.unsubscribe(token)
    if address is None:
        return web.Response(status=404, text="This unsubscribe link is not valid.", content_type="text/plain")
    body = (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>Unsubscribed</title>"
        f"<p data-testid=unsubscribed>{html.escape(address)} will get no more campaign emails from us.</p>"
    )
    return web.Response(text=body, content_type="text/html", headers={"Cache-Control": "no-store"})


def setup(app: web.Application) -> None:
    app.router.add_get("/campaigns", campaigns_page, name="campaigns")
    app.router.add_get("/campaigns/unsubscribe/{token}", unsubscribe)
    app.router.add_post("/campaigns/unsubscribe/{token}", unsubscribe)
