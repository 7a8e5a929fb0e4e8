"""The administration page (`GET /admin`, admins only; agent_ui/access.py). The page is static
HTML plus /static/admin.js, which calls /api/v1 with the session cookie and its CSRF token."""
from __future__ import annotations

from aiohttp import web

from agent_ui import access
from agent_ui.routes import _page


async def admin_page(request: web.Request) -> web.StreamResponse:
    user = await access.request_user(request)  # the middleware let only admins through
    assert user is not None
    return _page("admin.html", csrf=request.get(access.CSRF, ""), display_name=user.display_name)


def setup(app: web.Application) -> None:
    app.router.add_get("/admin", admin_page, name="admin")
