"""Who may call what: every HTTP route and every console websocket message type, in one table.

A rule names the roles that may use an entry (any one of them is enough) and its scope:

- `public`: no sign-in (login form, static files, widget, carrier webhooks with their own signature);
- `self`:   the user's own contacts and the customers they serve (the handler checks ownership);
- `team`:   a supervisor sees and acts on their teams' queues, agents and contacts; an admin on all;
- `all`:    everything (admin).

Enforcement: `middleware` (every HTTP request; undeclared routes are refused with 403) and
`check_message` (the console dispatcher in agent_ui/routes.py, before the message is read further).
tests/agent_ui/test_role_matrix.py walks the app's real routes and every client message schema and
fails when one is missing here. Adding a route or a message type? Add its line below.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from callcenter.facade import WebUser

log = logging.getLogger(__name__)

Scope = Literal["public", "self", "team", "all"]
ROLES = ("agent", "supervisor", "admin")


@dataclass(frozen=True)
class Rule:
    roles: frozenset[str]
    scope: Scope
    # anonymous callers of a page go to /login; everything else answers 401
    page: bool = False

    def allows(self, user: WebUser | None) -> bool:
        if self.scope == "public":
            return True
        return user is not None and bool(self.roles & set(user.roles))


def rule(*roles: str, scope: Scope, page: bool = False) -> Rule:
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")
    return Rule(frozenset(roles), scope, page)


PUBLIC = Rule(frozenset(), "public")
ANYONE = rule(*ROLES, scope="self")  # any signed-in user, on their own things
WORK = rule("agent", "supervisor", scope="self")  # handling contacts and serving customers
SUPERVISE = rule("supervisor", "admin", scope="team")
ADMIN = rule("admin", scope="all")
READ = rule("agent", "supervisor", "admin", scope="team")  # agents: what they serve (handler filters)

# (method, route as registered) -> rule. HEAD follows GET.
HTTP: dict[tuple[str, str], Rule] = {
    ("GET", "/"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,  # rate-limited by the auth service
    ("POST", "/logout"): PUBLIC,  # the handler checks the session and its CSRF token
    ("GET", "/console"): Rule(ANYONE.roles, "self", page=True),
    ("GET", "/ws/agent"): ANYONE,  # each message is checked below
    ("GET", "/recordings/{interaction_id}"): READ,  # the handling agent or a supervisor
    ("GET", "/email/attachments/{attachment_id}"): READ,
    ("GET", "/static"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,  # scraped by Prometheus; bind it privately in production
    # web chat widget (visitors, no account)
    ("GET", "/ws/chat"): PUBLIC,
    ("GET", "/widget/status"): PUBLIC,
    ("OPTIONS", "/widget/status"): PUBLIC,
    ("GET", "/widget/widget.js"): PUBLIC,
    # Twilio webhooks: every request is checked against X-Twilio-Signature
    ("POST", "/twilio/voice"): PUBLIC,
    ("POST", "/twilio/gather"): PUBLIC,
    ("POST", "/twilio/wait"): PUBLIC,
    ("POST", "/twilio/dequeued"): PUBLIC,
    ("POST", "/twilio/connect"): PUBLIC,
    ("POST", "/twilio/dial"): PUBLIC,
    ("POST", "/twilio/status"): PUBLIC,
    ("POST", "/twilio/offer"): PUBLIC,
    ("GET", "/admin"): Rule(ADMIN.roles, "all", page=True),  # agent_ui/admin_routes.py
    ("GET", "/wallboard"): Rule(SUPERVISE.roles, "team", page=True),  # agent_ui/wallboard_routes.py
    ("GET", "/ws/wallboard"): SUPERVISE,  # pushes `wallboard` frames scoped to the user's teams
    # REST API (callcenter/api/, docs/api.md): bearer token or a session with X-CSRF-Token
    ("GET", "/api/v1/openapi.json"): PUBLIC,
    ("GET", "/api/v1/me"): ANYONE,
    ("GET", "/api/v1/customers"): READ,
    ("POST", "/api/v1/customers"): rule("agent", "supervisor", "admin", scope="team"),
    ("POST", "/api/v1/customers/import"): ADMIN,
    ("GET", "/api/v1/customers/{id}"): READ,
    ("PATCH", "/api/v1/customers/{id}"): rule("agent", "supervisor", "admin", scope="team"),
    ("POST", "/api/v1/customers/{id}/erase"): ADMIN,
    ("POST", "/api/v1/customers/{id}/contact-points"): rule("agent", "supervisor", "admin", scope="team"),
    ("DELETE", "/api/v1/customers/{id}/contact-points/{cp_id}"): SUPERVISE,
    ("GET", "/api/v1/interactions"): READ,
    ("GET", "/api/v1/interactions/{id}"): READ,
    ("GET", "/api/v1/tickets"): READ,
    ("POST", "/api/v1/tickets"): rule("agent", "supervisor", "admin", scope="team"),
    ("GET", "/api/v1/tickets/{id}"): READ,
    ("PATCH", "/api/v1/tickets/{id}"): rule("agent", "supervisor", "admin", scope="team"),
    ("GET", "/api/v1/users"): SUPERVISE,
    ("POST", "/api/v1/users"): ADMIN,
    ("GET", "/api/v1/users/{id}"): SUPERVISE,
    ("PATCH", "/api/v1/users/{id}"): ADMIN,
    ("POST", "/api/v1/users/{id}/password"): ADMIN,
    ("GET", "/api/v1/teams"): SUPERVISE,
    ("POST", "/api/v1/teams"): ADMIN,
    ("PUT", "/api/v1/teams/{name}/members/{user_id}"): ADMIN,
    ("DELETE", "/api/v1/teams/{name}/members/{user_id}"): ADMIN,
    ("GET", "/api/v1/queues"): SUPERVISE,
    ("PUT", "/api/v1/queues/{name}"): ADMIN,
    ("GET", "/api/v1/queues/{name}"): SUPERVISE,
    ("GET", "/api/v1/skills"): SUPERVISE,
    ("PUT", "/api/v1/skills/{name}"): ADMIN,
    ("GET", "/api/v1/dispositions"): ANYONE,
    ("PUT", "/api/v1/dispositions/{code}"): ADMIN,
    ("GET", "/api/v1/reason-codes"): ANYONE,
    ("GET", "/api/v1/hours"): SUPERVISE,  # business hours and holidays (callcenter/api/hours.py)
    ("PUT", "/api/v1/hours/{name}"): ADMIN,
    ("DELETE", "/api/v1/hours/{name}"): ADMIN,
    ("PUT", "/api/v1/reason-codes/{code}"): ADMIN,
    ("GET", "/api/v1/ivr/flows"): ADMIN,
    ("POST", "/api/v1/ivr/flows/{name}"): ADMIN,
    ("GET", "/api/v1/ivr/flows/{name}/versions/{version}"): ADMIN,
    ("POST", "/api/v1/ivr/flows/{name}/versions/{version}/activate"): ADMIN,
    ("GET", "/api/v1/reports/summary"): SUPERVISE,
    # reports (issue 16; callcenter/api/reports.py, agent_ui/reports_routes.py, docs/reports.md)
    ("GET", "/reports"): Rule(SUPERVISE.roles, "team", page=True),
    ("GET", "/campaigns"): Rule(ANYONE.roles, "self", page=True),  # agents work, supervisors watch
    ("GET", "/campaigns/unsubscribe/{token}"): PUBLIC,  # a campaign email's own link (the token)
    ("POST", "/campaigns/unsubscribe/{token}"): PUBLIC,  # one-click (RFC 8058)
    ("GET", "/api/v1/campaigns"): SUPERVISE,
    ("POST", "/api/v1/campaigns"): SUPERVISE,
    ("POST", "/api/v1/campaigns/{id}/import"): SUPERVISE,
    ("GET", "/api/v1/campaigns/{id}/results"): SUPERVISE,
    ("GET", "/api/v1/campaigns/report"): SUPERVISE,  # results by disposition / segment (reports page)
    ("GET", "/api/v1/reports/contacts"): SUPERVISE,
    ("GET", "/api/v1/reports/occupancy"): SUPERVISE,
    ("GET", "/api/v1/reports/not-ready"): SUPERVISE,
    ("GET", "/api/v1/reports/tiers"): SUPERVISE,
    ("GET", "/api/v1/reports/tickets"): SUPERVISE,
    ("GET", "/api/v1/reports/customers"): SUPERVISE,
    ("GET", "/api/v1/reports/customers/movement"): SUPERVISE,
    ("GET", "/api/v1/reports/customers/at-risk"): SUPERVISE,
    ("POST", "/api/v1/reports/customers/at-risk/{id}/callback"): rule("supervisor", "admin", scope="self"),
    ("GET", "/api/v1/reports/subscription"): SUPERVISE,
    ("PUT", "/api/v1/reports/subscription"): SUPERVISE,
    ("DELETE", "/api/v1/reports/subscription"): SUPERVISE,
    ("GET", "/api/v1/audit"): ADMIN,
    ("GET", "/api/v1/tokens"): ADMIN,
    ("POST", "/api/v1/tokens"): ADMIN,
    ("DELETE", "/api/v1/tokens/{id}"): ADMIN,
}

# console websocket message type (client -> server) -> rule
WS: dict[str, Rule] = {
    "set_state": WORK, "ack_offer": WORK, "decline_offer": WORK, "answer": WORK, "hangup": WORK,
    "submit_wrapup": WORK, "hold": WORK, "retrieve": WORK, "transfer": WORK, "recording": WORK,
    "consult": WORK, "consult_complete": WORK, "consult_cancel": WORK, "consult_conference": WORK,
    "conference_leave": WORK, "dial": WORK, "escalate": WORK,
    "search": WORK, "create_customer": WORK, "link_number": WORK, "update_customer": WORK,
    "accept_callback": WORK,
    "schedule_callback": rule("agent", "supervisor", "admin", scope="self"),
    "ack_alert": SUPERVISE,
    "wallboard_callback": SUPERVISE,  # call back an abandoned contact of the user's teams
    "chat_accept": WORK, "chat_decline": WORK, "chat_send": WORK, "chat_typing": WORK,
    "chat_seen": WORK, "chat_end": WORK, "chat_transfer": WORK, "chat_escalate": WORK,
    "chat_wrapup": WORK,
    "email_accept": WORK, "email_reply": WORK, "email_done": WORK,
    # supervisors' interventions (callcenter/services/interventions.py checks the team scope)
    "spy": SUPERVISE, "spy_stop": SUPERVISE, "chat_observe": SUPERVISE, "chat_whisper": SUPERVISE,
    "chat_takeover": SUPERVISE, "force_state": SUPERVISE, "force_logout": SUPERVISE,
    "contact_move": SUPERVISE, "contact_priority": SUPERVISE,
    # outbound campaigns (callcenter/services/campaigns.py, docs/campaigns.md)
    "campaign_join": WORK, "campaign_leave": WORK, "campaign_dial": WORK, "campaign_skip": WORK,
    "campaign_disposition": WORK, "campaign_control": SUPERVISE, "campaign_watch": SUPERVISE,
}

FORBIDDEN_TEXT = "not allowed for your role"

# --------------------------------------------------------------------------- enforcement
USER_KEY = web.RequestKey("access_user", WebUser | None)  # the caller the middleware found
VIA = web.RequestKey("access_via", str)  # "token" or "session"
CSRF = web.RequestKey("access_csrf", str)  # the session's CSRF token
Bearer = Callable[[str], Awaitable[WebUser | None]]
BEARER = web.AppKey("access_bearer", Bearer)  # set by callcenter/api: API token -> user


def http_rule(request: web.Request) -> Rule | None:
    """The rule of the route `request` matched, or None when the route is not declared."""
    info = request.match_info
    route = info.route
    if route.resource is None:  # 404 / 405: nothing to protect
        return PUBLIC
    method = "GET" if request.method == "HEAD" else request.method
    return HTTP.get((method, route.resource.canonical))


async def request_user(request: web.Request) -> WebUser | None:
    """The caller: a bearer API token (only under /api/), else the web session cookie."""
    if USER_KEY in request:
        user: WebUser | None = request[USER_KEY]
        return user
    from agent_ui.routes import FACADE, SESSION_COOKIE

    user = None
    auth = request.headers.get("Authorization", "")
    if request.path.startswith("/api/") and auth[:7].lower() == "bearer ":
        resolve = request.app.get(BEARER)
        user = await resolve(auth[7:].strip()) if resolve is not None else None
        request[VIA] = "token"
    else:
        token = request.cookies.get(SESSION_COOKIE)
        session = await request.app[FACADE].session(token) if token else None
        if session is not None:
            user = session.user
            request[VIA] = "session"
            request[CSRF] = session.csrf
    request[USER_KEY] = user
    return user


@web.middleware
async def middleware(request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    found = http_rule(request)
    if found is None:
        log.error("refused %s %s: the route is not declared in agent_ui/access.py",
                  request.method, request.path)
        return _refuse(request, 403, "forbidden", "forbidden")
    if found.scope == "public":
        try:
            return await handler(request)
        except OSError:  # a static file name the file system refuses (too long: ENAMETOOLONG)
            if request.path.startswith("/static/"):
                raise web.HTTPNotFound() from None
            raise
    user = await request_user(request)
    if user is None:
        if found.page:
            raise web.HTTPFound("/login", headers={"Cache-Control": "no-store"})
        return _refuse(request, 401, "unauthorized", "sign in first", {"WWW-Authenticate": "Bearer"})
    if not found.allows(user):
        return _refuse(request, 403, "forbidden", "forbidden")
    return await handler(request)


def _refuse(request: web.Request, status: int, code: str, text: str,
            headers: dict[str, str] | None = None) -> web.Response:
    """The refusal: plain text, or under /api/ the API's documented error object (docs/api.md)."""
    if request.path.startswith("/api/"):
        return web.json_response({"error": {"code": code, "message": text}}, status=status, headers=headers)
    return web.Response(status=status, text=text, headers=headers)


def check_message(user: WebUser, type_: Any) -> str | None:
    """None when `user` may send a console message of `type_`; else the refusal's text."""
    found = WS.get(type_) if isinstance(type_, str) else None
    if found is None or not found.allows(user):
        return FORBIDDEN_TEXT
    return None


def user_teams(user: WebUser) -> frozenset[str]:
    return frozenset(user.teams)


def is_admin(user: WebUser) -> bool:
    return "admin" in user.roles


__all__ = ["ADMIN", "HTTP", "PUBLIC", "Rule", "WS", "check_message", "middleware", "request_user"]
