"""The reports page (`GET /reports`, supervisors and admins; agent_ui/access.py). Static HTML
plus /static/reports.js, which reads /api/v1/reports/… (scoped to the user's teams by the API)
and draws each report as a chart (Chart.js, served from /static/vendor/) above its table."""

from __future__ import annotations

from aiohttp import web

from agent_ui import access
from agent_ui.routes import _page


async def reports_page(request: web.Request) -> web.StreamResponse:
    user = await access.request_user(request)  # the middleware let only supervisors and admins through
    assert user is not None
    return _page(
        "reports.html",
        csrf=request.get(access.CSRF, ""),
        display_name=user.display_name,
        teams=", ".join(user.teams) or "all teams",
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/reports", reports_page, name="reports")
