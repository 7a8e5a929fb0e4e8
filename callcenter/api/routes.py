"""The REST API under /api/v1 (JSON). Who may call what is declared in agent_ui/access.py; the
handlers narrow further to the caller's scope (a supervisor's teams, an agent's own contacts).

Callers authenticate with `Authorization: Bearer <token>` (an API token, see `POST /api/v1/tokens`)
or with the web session cookie plus `X-CSRF-Token` on writes (the admin pages). Errors are
`{"error": {"code", "message"}}` and never say more than the caller may know.
"""
from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from agent_ui import access
from callcenter.api import live, ratelimit, sync
from callcenter.api.campaigns import endpoints as campaign_endpoints
from callcenter.api.hours import endpoints as hours_endpoints
from callcenter.api.reports import endpoints as report_endpoints
from callcenter.facade import WebUser
from callcenter.keys import CENTER, SETTINGS
from crm_core.catalog import list_queues, list_skills
from crm_core.errors import Conflict, CrmError, NotFound
from crm_core.models import Customer, Interaction, User
from crm_core.users import user_snapshot

log = logging.getLogger(__name__)
PREFIX = "/api/v1"
MAX_BODY = 1024 * 1024
Handler = Callable[[web.Request, WebUser], Awaitable[Any]]
RATE_LIMITER = web.AppKey("api_rate_limiter", object)  # per token / address


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # under PREFIX
    handler: Handler
    summary: str
    tag: str
    body: dict[str, Any] | None = None  # JSON Schema of the request body
    query: tuple[str, ...] = ()
    status: int = 200
    extra: dict[str, Any] = field(default_factory=dict)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def _jsonable(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return v


def _store(request: web.Request) -> Any:
    return request.app[CENTER].store


def _actor(user: WebUser) -> str:
    return user.username


def _int(raw: str, what: str = "id") -> int:
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(404, "not_found", f"no such {what}")
    return int(raw)


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, "too_large", "the body is too large")
    try:
        data = json.loads(await request.text())
    except ValueError:
        raise ApiError(400, "bad_request", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    return data


def _forbidden() -> ApiError:
    return ApiError(403, "forbidden", "forbidden")


def _supervises(user: WebUser) -> bool:
    return "admin" not in user.roles


# --------------------------------------------------------------------------- views
def customer_json(c: Customer, points: list[Any]) -> dict[str, Any]:
    return {"id": c.id, "name": c.name, "type": c.type, "tier": c.tier, "loyalty": c.loyalty,
            "tags": list(c.tags or []), "lifetime_value": c.lifetime_value, "language": c.language,
            "notes": c.notes, "contact_count": c.contact_count, "created_at": c.created_at,
            "contact_points": [{"id": p.id, "kind": p.kind, "value": p.value, "label": p.label}
                               for p in points]}


def interaction_json(i: Interaction) -> dict[str, Any]:
    return {k: getattr(i, k) for k in (
        "id", "customer_id", "channel", "direction", "state", "queue", "agent_id", "created_at",
        "queued_at", "answered_at", "ended_at", "disposition_code", "notes", "csat_score")}


def ticket_json(t: Any) -> dict[str, Any]:
    return {k: getattr(t, k) for k in (
        "id", "number", "customer_id", "type", "status", "priority", "subject", "description",
        "sla_due_at", "assignee_id", "created_at", "updated_at", "solved_at", "closed_at")}


def user_json(u: User) -> dict[str, Any]:
    return user_snapshot(u, u.skill_map, [t.name for t in u.teams])


# --------------------------------------------------------------------------- scope helpers
async def _user_ids_of_teams(request: web.Request, teams: tuple[str, ...]) -> set[int]:
    ids: set[int] = set()
    for t in teams:
        ids |= {u.id for u in await _store(request).list_users(team=t)}
    return ids


async def _queues_of(request: web.Request, user: WebUser) -> set[str] | None:
    """None: every queue (admin). Otherwise the queues the supervisor's teams own."""
    if not _supervises(user):
        return None
    owned = await _store(request).queue_teams()
    return {q for q, teams in owned.items() if set(teams) & set(user.teams)}


async def _may_see_interaction(request: web.Request, user: WebUser, i: Interaction) -> bool:
    if "admin" in user.roles:
        return True
    if i.agent_id == user.id:
        return True
    if "supervisor" in user.roles:
        queues = await _queues_of(request, user) or set()
        return (i.queue in queues) or (i.agent_id in await _user_ids_of_teams(request, user.teams))
    return False


# --------------------------------------------------------------------------- handlers
async def me(_request: web.Request, user: WebUser) -> Any:
    return {"id": user.id, "username": user.username, "display_name": user.display_name,
            "roles": list(user.roles), "teams": list(user.teams)}


async def customers_search(request: web.Request, user: WebUser) -> Any:
    q = request.query.get("q", "")
    if not q.strip():
        raise ApiError(400, "bad_request", "give a search text q (name, phone or email)")
    raw = request.query.get("page", "1")
    number = min(int(raw), 1000) if raw.isdigit() and len(raw) < 6 else 1
    page = await _store(request).search(q[:200], page=max(1, number))
    return page.to_dict() if hasattr(page, "to_dict") else page


async def customer_create(request: web.Request, user: WebUser) -> Any:
    b = await _body(request)
    c = await _store(request).create_customer(
        b.get("name"), type=b.get("type", "customer"), tags=b.get("tags") or (),
        lifetime_value=b.get("lifetime_value", "0"), language=b.get("language"), notes=b.get("notes"),
        phones=b.get("phones") or (), emails=b.get("emails") or (),
        tier_override=b.get("tier"), actor=_actor(user))
    return await _customer(request, c.id)


async def _customer(request: web.Request, cid: int) -> dict[str, Any]:
    store = _store(request)
    c = await store.get_customer(cid)
    points = (await store.contact_points_of([cid])).get(cid, [])
    return customer_json(c, points)


async def customers_import(request: web.Request, user: WebUser) -> Any:
    """A CSV file as the body (text/csv); ?mode=valid_rows (default) or all_or_nothing."""
    from crm_core.import_csv import MAX_BYTES, import_customers

    if request.content_length is not None and request.content_length > MAX_BYTES:
        raise ApiError(413, "too_large", "the file is too large")
    try:
        text = (await request.read()).decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "bad_request", "the file must be UTF-8 text") from None
    mode = request.query.get("mode", "valid_rows")
    report = await import_customers(_store(request), text, mode=mode, actor=_actor(user))  # type: ignore[arg-type]
    return report.to_dict()


async def customer_erase(request: web.Request, user: WebUser) -> Any:
    """Erase a customer's personal data (crm_core/erasure.py); the statistics stay."""
    from crm_core.erasure import erase_customer

    center = request.app[CENTER]
    email = getattr(center, "email", None)
    files = {"recordings": center.voice.options.recordings_dir,
             "attachments": getattr(getattr(email, "options", None), "attachments_dir", None)}
    report = await erase_customer(_store(request), _int(request.match_info["id"], "customer"),
                                  actor=_actor(user), files=files)
    return report.to_dict()


async def customer_get(request: web.Request, user: WebUser) -> Any:
    return await _customer(request, _int(request.match_info["id"], "customer"))


async def customer_patch(request: web.Request, user: WebUser) -> Any:
    cid = _int(request.match_info["id"], "customer")
    b = await _body(request)
    allowed = {"name", "type", "tags", "lifetime_value", "language", "notes"}
    unknown = set(b) - allowed
    if unknown:
        raise ApiError(400, "bad_request", f"unknown fields: {', '.join(sorted(unknown))}")
    await _store(request).update_customer(cid, **b, actor=_actor(user))
    return await _customer(request, cid)


async def contact_point_add(request: web.Request, user: WebUser) -> Any:
    cid = _int(request.match_info["id"], "customer")
    b = await _body(request)
    await _store(request).add_contact_point(cid, str(b.get("kind", "")), str(b.get("value", "")),
                                            label=b.get("label"))
    return await _customer(request, cid)


async def contact_point_delete(request: web.Request, user: WebUser) -> Any:
    cid = _int(request.match_info["id"], "customer")
    cp = _int(request.match_info["cp_id"], "contact point")
    points = (await _store(request).contact_points_of([cid])).get(cid, [])
    if cp not in {p.id for p in points}:
        raise ApiError(404, "not_found", "no such contact point")
    await _store(request).remove_contact_point(cp, actor=_actor(user))
    return await _customer(request, cid)


async def interactions_list(request: web.Request, user: WebUser) -> Any:
    raw = request.query.get("customer_id", "")
    limit = min(int(request.query["limit"]) if request.query.get("limit", "").isdigit() else 50, 500)
    stmt = select(Interaction)
    if raw:
        stmt = stmt.where(Interaction.customer_id == _int(raw, "customer"))
    if "admin" not in user.roles:
        if "supervisor" in user.roles:
            queues = await _queues_of(request, user) or set()
            agents = await _user_ids_of_teams(request, user.teams) | {user.id}
            stmt = stmt.where(Interaction.queue.in_(queues) | Interaction.agent_id.in_(agents))
        else:
            stmt = stmt.where(Interaction.agent_id == user.id)
    async with _store(request).db.session() as s:
        rows = list((await s.execute(stmt.order_by(Interaction.id.desc()).limit(limit))).scalars())
    return {"items": [interaction_json(i) for i in rows]}


async def interaction_get(request: web.Request, user: WebUser) -> Any:
    i = await _store(request).get_interaction(_int(request.match_info["id"], "interaction"))
    if not await _may_see_interaction(request, user, i):
        raise ApiError(404, "not_found", "no such interaction")  # not even whether it exists
    out = interaction_json(i)
    out["timeline"] = [{"at": e.at, "kind": e.kind, "ok": e.ok, "data": e.data}
                       for e in await _store(request).timeline(i.id)]
    return out


async def tickets_list(request: web.Request, user: WebUser) -> Any:
    cid = _int(request.query.get("customer_id", ""), "customer")
    return {"items": [ticket_json(t) for t in await _store(request).list_tickets(cid)]}


async def ticket_create(request: web.Request, user: WebUser) -> Any:
    b = await _body(request)
    if not isinstance(b.get("customer_id"), int):
        raise ApiError(400, "bad_request", "customer_id must be a number")
    t = await _store(request).create_ticket(
        b["customer_id"], str(b.get("type", "service_request")), b.get("subject"),
        description=b.get("description"), priority=b.get("priority", "normal"))
    return ticket_json(t)


async def ticket_get(request: web.Request, user: WebUser) -> Any:
    return ticket_json(await _store(request).get_ticket(_int(request.match_info["id"], "ticket")))


async def ticket_patch(request: web.Request, user: WebUser) -> Any:
    tid = _int(request.match_info["id"], "ticket")
    b = await _body(request)
    store = _store(request)
    status = b.pop("status", None)
    unknown = set(b) - {"priority", "assignee_id", "escalation_queue", "subject", "description"}
    if unknown:
        raise ApiError(400, "bad_request", f"unknown fields: {', '.join(sorted(unknown))}")
    if b:
        await store.update_ticket(tid, **b)
    if status is not None:
        await store.update_ticket_status(tid, str(status))
    return ticket_json(await store.get_ticket(tid))


async def users_list(request: web.Request, user: WebUser) -> Any:
    users = await _store(request).list_users()
    if _supervises(user):
        users = [u for u in users if {t.name for t in u.teams} & set(user.teams)]
    return {"items": [user_json(u) for u in users]}


async def user_get(request: web.Request, user: WebUser) -> Any:
    u = await _store(request).get_user(_int(request.match_info["id"], "user"))
    if _supervises(user) and not {t.name for t in u.teams} & set(user.teams):
        raise _forbidden()
    return user_json(u)


USER_FIELDS = {"display_name", "roles", "extension", "device", "skills", "capacities", "teams"}


async def user_create(request: web.Request, user: WebUser) -> Any:
    b = await _body(request)
    u = await _store(request).create_user(
        b.get("username"), b.get("password"), roles=b.get("roles") or ["agent"],
        display_name=b.get("display_name"), team=b.get("teams"), extension=b.get("extension"),
        device=b.get("device"), skills=b.get("skills"), capacities=b.get("capacities"),
        actor=_actor(user))
    await live.reload_agent(request.app[CENTER], u.id)
    await sync.announce(request.app, "agent", user_id=u.id)
    return user_json(await _store(request).get_user(u.id))


async def user_patch(request: web.Request, user: WebUser) -> Any:
    uid = _int(request.match_info["id"], "user")
    b = await _body(request)
    store = _store(request)
    disabled = b.pop("disabled", None)
    unknown = set(b) - USER_FIELDS
    if unknown:
        raise ApiError(400, "bad_request", f"unknown fields: {', '.join(sorted(unknown))}")
    if b:
        await store.update_user(uid, **b, actor=_actor(user))
    if disabled is not None:
        await store.set_user_disabled(uid, bool(disabled), actor=_actor(user))
        if disabled:
            await request.app[CENTER].auth.logout_user(uid)
    await live.reload_agent(request.app[CENTER], uid)
    await sync.announce(request.app, "agent", user_id=uid)
    return user_json(await store.get_user(uid))


async def user_password(request: web.Request, user: WebUser) -> Any:
    uid = _int(request.match_info["id"], "user")
    b = await _body(request)
    await _store(request).set_password(uid, b.get("password"), actor=_actor(user))
    await request.app[CENTER].auth.logout_user(uid)  # every session of that user ends
    return {"ok": True}


async def teams_list(request: web.Request, user: WebUser) -> Any:
    teams = await _store(request).list_teams()
    if _supervises(user):
        teams = [t for t in teams if t.name in user.teams]
    return {"items": [{"id": t.id, "name": t.name, "label": t.label} for t in teams]}


async def team_create(request: web.Request, user: WebUser) -> Any:
    b = await _body(request)
    t = await _store(request).create_team(b.get("name"), b.get("label"), actor=_actor(user))
    return {"id": t.id, "name": t.name, "label": t.label}


async def team_member_put(request: web.Request, user: WebUser) -> Any:
    uid = _int(request.match_info["user_id"], "user")
    await _store(request).add_team_member(request.match_info["name"], uid, actor=_actor(user))
    await live.reload_agent(request.app[CENTER], uid)
    await sync.announce(request.app, "agent", user_id=uid)
    return {"ok": True}


async def team_member_delete(request: web.Request, user: WebUser) -> Any:
    uid = _int(request.match_info["user_id"], "user")
    await _store(request).remove_team_member(request.match_info["name"], uid, actor=_actor(user))
    await live.reload_agent(request.app[CENTER], uid)
    await sync.announce(request.app, "agent", user_id=uid)
    return {"ok": True}


async def queues_list(request: web.Request, user: WebUser) -> Any:
    from crm_core.admin import queue_json

    owned = await _store(request).queue_teams()
    policies = await _store(request).queue_policies()
    scope = await _queues_of(request, user)
    return {"items": [queue_json(q, owned.get(q.name, []), policies.get(q.name))
                      for q in await list_queues(_store(request).db) if scope is None or q.name in scope]}


async def queue_get(request: web.Request, user: WebUser) -> Any:
    name = request.match_info["name"]
    items = (await queues_list(request, user))["items"]
    for q in items:
        if q["name"] == name:
            return q
    if _supervises(user) and name in {q.name for q in await list_queues(_store(request).db)}:
        raise _forbidden()
    raise ApiError(404, "not_found", "no such queue")


async def queue_put(request: web.Request, user: WebUser) -> Any:
    b = await _body(request)
    unknown = set(b) - {"label", "skills", "sl_target_s", "sl_target_pct", "active", "record", "teams",
                        "policy"}
    if unknown:
        raise ApiError(400, "bad_request", f"unknown fields: {', '.join(sorted(unknown))}")
    if b.get("policy") is not None:
        await _check_policy(request, request.match_info["name"], b)
    out = await _store(request).upsert_queue(request.match_info["name"], **b, actor=_actor(user))
    await live.reload_queues(request.app[CENTER])
    await sync.announce(request.app, "queues")
    return out


POLICY_KEYS = {"strategy", "max_wait", "on_timeout", "priority", "sticky_s", "escalation"}


async def _check_policy(request: web.Request, name: str, b: dict[str, Any]) -> None:
    """A queue's routing policy must parse as routing/config.py does, and overflow to a real queue."""
    from routing.config import parse_queue
    from routing.errors import ConfigError

    policy = b["policy"]
    if not isinstance(policy, dict) or set(policy) - POLICY_KEYS:
        raise ApiError(400, "invalid", f"policy keys are {', '.join(sorted(POLICY_KEYS))}")
    try:
        parsed = parse_queue({"name": name, "skills": b.get("skills") or {}, **policy})
    except ConfigError as e:
        raise ApiError(400, "invalid", str(e)) from None
    known = {q.name for q in await list_queues(_store(request).db)} | {name}
    for step in parsed.escalation:
        target = getattr(step, "queue", None)
        if target is not None and target not in known:
            raise ApiError(400, "invalid", f"escalation overflows to an unknown queue {target!r}")


async def skills_list(request: web.Request, user: WebUser) -> Any:
    return {"items": [{"name": s.name, "label": s.label, "active": s.active}
                      for s in await list_skills(_store(request).db)]}


async def skill_put(request: web.Request, user: WebUser) -> Any:
    b = await _body(request)
    s = await _store(request).upsert_skill(request.match_info["name"], b.get("label"),
                                           active=b.get("active"), actor=_actor(user))
    return {"name": s.name, "label": s.label, "active": s.active}


async def dispositions_list(request: web.Request, user: WebUser) -> Any:
    return {"items": [{"code": d.code, "label": d.label, "active": d.active, "position": d.position}
                      for d in await _store(request).list_disposition_codes()]}


async def disposition_put(request: web.Request, user: WebUser) -> Any:
    b = await _body(request)
    d = await _store(request).upsert_disposition_code(
        request.match_info["code"], b.get("label"), active=b.get("active", True),
        position=b.get("position"), actor=_actor(user))
    return {"code": d.code, "label": d.label, "active": d.active, "position": d.position}


async def reasons_list(request: web.Request, user: WebUser) -> Any:
    stored = await _store(request).list_reason_codes()
    return {"items": [{"code": r.code, "label": r.label, "active": r.active, "position": r.position}
                      for r in stored],
            "effective": [{"code": c, "label": lbl} for c, lbl in request.app[CENTER].console.reason_codes]}


async def reason_put(request: web.Request, user: WebUser) -> Any:
    b = await _body(request)
    r = await _store(request).upsert_reason_code(request.match_info["code"], b.get("label"),
                                                 active=b.get("active", True), position=b.get("position"),
                                                 actor=_actor(user))
    await live.reload_reason_codes(request.app[CENTER])
    await sync.announce(request.app, "reason_codes")
    return {"code": r.code, "label": r.label, "active": r.active, "position": r.position}


async def report_summary(request: web.Request, user: WebUser) -> Any:
    """Interaction counts by channel, state and queue; average handle time; CSAT. Kept after an
    erasure (statistics hold no personal data)."""
    scope = await _queues_of(request, user)
    stmt = select(Interaction.channel, Interaction.state, Interaction.queue, func.count(),
                  func.count(Interaction.answered_at), func.avg(Interaction.csat_score)).group_by(
        Interaction.channel, Interaction.state, Interaction.queue)
    if scope is not None:
        stmt = stmt.where(Interaction.queue.in_(scope))
    async with _store(request).db.session() as s:
        rows = (await s.execute(stmt)).all()
    total, answered, by_channel, by_queue, by_state = 0, 0, {}, {}, {}
    for channel, state, queue, n, ans, _csat in rows:
        total += n
        answered += ans
        by_channel[channel] = by_channel.get(channel, 0) + n
        by_state[state] = by_state.get(state, 0) + n
        by_queue[queue or ""] = by_queue.get(queue or "", 0) + n
    return {"interactions": total, "answered": answered, "by_channel": by_channel,
            "by_state": by_state, "by_queue": by_queue}


async def audit_list(request: web.Request, user: WebUser) -> Any:
    limit = min(int(request.query["limit"]) if request.query.get("limit", "").isdigit() else 100, 1000)
    entries = await _store(request).list_audit(entity=request.query.get("entity") or None,
                                               action=request.query.get("action") or None, limit=limit)
    return {"items": [{"id": e.id, "at": e.at, "actor": e.actor, "action": e.action, "entity": e.entity,
                       "entity_id": e.entity_id, "before": e.before, "after": e.after} for e in entries]}


async def tokens_list(request: web.Request, user: WebUser) -> Any:
    from crm_core.admin import token_json

    return {"items": [token_json(t) for t in await _store(request).list_api_tokens()]}


async def token_create(request: web.Request, user: WebUser) -> Any:
    from crm_core.admin import token_json

    b = await _body(request)
    uid = b.get("user_id", user.id)
    if not isinstance(uid, int):
        raise ApiError(400, "bad_request", "user_id must be a number")
    t, secret = await _store(request).create_api_token(uid, b.get("name"), str(b.get("role", "")),
                                                       actor=_actor(user))
    return {**token_json(t), "token": secret}


async def token_delete(request: web.Request, user: WebUser) -> Any:
    from crm_core.admin import token_json

    return token_json(await _store(request).revoke_api_token(_int(request.match_info["id"], "token"),
                                                             actor=_actor(user)))


def _flow_json(v: Any, text: bool = False) -> dict[str, Any]:
    out = {"name": v.name, "version": v.version, "active": v.active, "created_at": v.created_at,
           "created_by": v.created_by}
    if text:
        out["text"] = v.text
    return out


def _issues(issues: list[Any]) -> list[dict[str, Any]]:
    return [{"line": i.line, "severity": i.severity, "code": i.code, "node": i.node, "message": i.message}
            for i in issues]


async def flows_list(request: web.Request, user: WebUser) -> Any:
    return {"items": [_flow_json(v) for v in await _store(request).flow_versions()],
            "live": request.app[SETTINGS].voice.ivr_flow}


async def flow_upload(request: web.Request, user: WebUser) -> Any:
    """A YAML flow as the body: checked by the flow checker; stored as a new version if clean."""
    name = request.match_info["name"]
    raw = await request.read()
    if len(raw) > MAX_BODY:
        raise ApiError(413, "too_large", "the flow is too large")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "bad_request", "the flow must be UTF-8 text") from None
    flow, issues = live.check_flow(request.app[CENTER], text, name)
    if flow is None:
        raise ApiError(400, "invalid_flow", "the flow checker found errors", issues=_issues(issues))
    v = await _store(request).add_flow_version(name, text, actor=_actor(user))
    return {**_flow_json(v), "warnings": _issues(issues)}


async def flow_get(request: web.Request, user: WebUser) -> Any:
    v = await _store(request).flow_version(request.match_info["name"],
                                           _int(request.match_info["version"], "version"))
    if v is None:
        raise ApiError(404, "not_found", "no such flow version")
    return _flow_json(v, text=True)


async def flow_activate(request: web.Request, user: WebUser) -> Any:
    """Make a version active (or roll back to an earlier one); the live flow changes at once."""
    name = request.match_info["name"]
    version = _int(request.match_info["version"], "version")
    store = _store(request)
    v = await store.flow_version(name, version)
    if v is None:
        raise ApiError(404, "not_found", "no such flow version")
    flow, issues = live.check_flow(request.app[CENTER], v.text, name)
    if flow is None:
        raise ApiError(400, "invalid_flow", "the flow checker found errors", issues=_issues(issues))
    v = await store.activate_flow_version(name, version, actor=_actor(user))
    is_live = name == request.app[SETTINGS].voice.ivr_flow and await live.apply_active_flow(
        request.app[CENTER], name)
    await sync.announce(request.app, "flow", name=name)
    return {**_flow_json(v), "live": is_live}


async def openapi(request: web.Request) -> web.Response:
    from callcenter.api.openapi import document

    return web.json_response(document(ENDPOINTS), headers={"Cache-Control": "no-cache"})


# --------------------------------------------------------------------------- the table
_OBJ = {"type": "object"}
ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/me", me, "The caller: user, roles and teams", "session"),
    Endpoint("GET", "/customers", customers_search, "Search customers by name, phone or email",
             "customers", query=("q", "page")),
    Endpoint("POST", "/customers", customer_create, "Create a customer", "customers", _OBJ, status=201),
    Endpoint("POST", "/customers/import", customers_import,
             "Import customers from CSV (a report of rejected rows; valid_rows or all_or_nothing)",
             "customers", {"type": "string", "contentMediaType": "text/csv"}, query=("mode",)),
    Endpoint("GET", "/customers/{id}", customer_get, "A customer with its contact points", "customers"),
    Endpoint("PATCH", "/customers/{id}", customer_patch, "Change a customer's fields", "customers", _OBJ),
    Endpoint("POST", "/customers/{id}/erase", customer_erase,
             "Erase the customer's personal data (statistics stay; audited)", "customers"),
    Endpoint("POST", "/customers/{id}/contact-points", contact_point_add, "Add a phone, email or chat id",
             "customers", _OBJ, status=201),
    Endpoint("DELETE", "/customers/{id}/contact-points/{cp_id}", contact_point_delete,
             "Remove a contact point", "customers"),
    Endpoint("GET", "/interactions", interactions_list, "Interactions in the caller's scope",
             "interactions", query=("customer_id", "limit")),
    Endpoint("GET", "/interactions/{id}", interaction_get, "An interaction and its timeline", "interactions"),
    Endpoint("GET", "/tickets", tickets_list, "A customer's tickets", "tickets", query=("customer_id",)),
    Endpoint("POST", "/tickets", ticket_create, "Open a ticket", "tickets", _OBJ, status=201),
    Endpoint("GET", "/tickets/{id}", ticket_get, "A ticket", "tickets"),
    Endpoint("PATCH", "/tickets/{id}", ticket_patch, "Change a ticket (status, priority, ...)", "tickets",
             _OBJ),
    Endpoint("GET", "/users", users_list, "Users (a supervisor: their teams')", "users"),
    Endpoint("POST", "/users", user_create, "Create a user", "users", _OBJ, status=201),
    Endpoint("GET", "/users/{id}", user_get, "A user", "users"),
    Endpoint("PATCH", "/users/{id}", user_patch, "Change or disable a user", "users", _OBJ),
    Endpoint("POST", "/users/{id}/password", user_password, "Reset a user's password", "users", _OBJ),
    Endpoint("GET", "/teams", teams_list, "Teams", "teams"),
    Endpoint("POST", "/teams", team_create, "Create a team", "teams", _OBJ, status=201),
    Endpoint("PUT", "/teams/{name}/members/{user_id}", team_member_put, "Add a member", "teams"),
    Endpoint("DELETE", "/teams/{name}/members/{user_id}", team_member_delete, "Remove a member", "teams"),
    Endpoint("GET", "/queues", queues_list, "Queues (a supervisor: their teams')", "queues"),
    Endpoint("GET", "/queues/{name}", queue_get, "A queue", "queues"),
    Endpoint("PUT", "/queues/{name}", queue_put, "Create or change a queue (routing uses it at once)",
             "queues", _OBJ),
    Endpoint("GET", "/skills", skills_list, "Skills", "queues"),
    Endpoint("PUT", "/skills/{name}", skill_put, "Create or change a skill", "queues", _OBJ),
    Endpoint("GET", "/dispositions", dispositions_list, "Disposition codes", "queues"),
    Endpoint("PUT", "/dispositions/{code}", disposition_put, "Create or change a disposition code",
             "queues", _OBJ),
    Endpoint("GET", "/reason-codes", reasons_list, "Not-ready reason codes (stored and in effect)", "queues"),
    Endpoint("PUT", "/reason-codes/{code}", reason_put, "Create or change a not-ready reason code", "queues",
             _OBJ),
    Endpoint("GET", "/ivr/flows", flows_list, "IVR flow versions (without their text)", "ivr"),
    Endpoint("POST", "/ivr/flows/{name}", flow_upload,
             "Upload a flow (YAML): checked, stored as the next version (not active yet)", "ivr",
             {"type": "string", "contentMediaType": "application/yaml"}, status=201),
    Endpoint("GET", "/ivr/flows/{name}/versions/{version}", flow_get, "One version with its text", "ivr"),
    Endpoint("POST", "/ivr/flows/{name}/versions/{version}/activate", flow_activate,
             "Activate a version, or roll back to an earlier one (live at once)", "ivr"),
    Endpoint("GET", "/reports/summary", report_summary, "Interaction totals", "reports"),
    Endpoint("GET", "/audit", audit_list, "The audit log (read only)", "admin",
             query=("entity", "action", "limit")),
    Endpoint("GET", "/tokens", tokens_list, "API tokens (never their secrets)", "admin"),
    Endpoint("POST", "/tokens", token_create, "Create an API token (its secret is shown once)", "admin",
             _OBJ, status=201),
    Endpoint("DELETE", "/tokens/{id}", token_delete, "Revoke an API token", "admin"),
)
ENDPOINTS += report_endpoints(Endpoint)  # /reports/… (callcenter/api/reports.py, docs/reports.md)
ENDPOINTS += campaign_endpoints(Endpoint)  # /campaigns… (callcenter/api/campaigns.py, docs/campaigns.md)
ENDPOINTS += hours_endpoints(Endpoint)  # /hours/… business hours and holidays (callcenter/api/hours.py)


def _wrap(ep: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        user = await access.request_user(request)  # the access middleware already checked the role
        if user is None:
            return _err(401, "unauthorized", "sign in first")
        if request.method != "GET" and request.get(access.VIA) == "session":
            csrf, given = request.get(access.CSRF, ""), request.headers.get("X-CSRF-Token", "")
            if not csrf or not hmac.compare_digest(csrf.encode(), given.encode()):
                return _err(403, "forbidden", "missing or wrong CSRF token")
        try:
            result = await ep.handler(request, user)
        except ApiError as e:
            return _err(e.status, e.code, e.message, **e.extra)
        except NotFound as e:
            return _err(404, "not_found", str(e))
        except Conflict as e:
            return _err(409, "conflict", str(e))
        except CrmError as e:
            return _err(400, "invalid", str(e))
        except ValueError as e:
            return _err(400, "bad_request", str(e)[:300])
        except TypeError:
            log.info("API %s %s: a field has the wrong type", request.method, request.path, exc_info=True)
            return _err(400, "bad_request", "a field is missing or has the wrong type")
        if isinstance(result, web.StreamResponse):  # e.g. a report as CSV (callcenter/api/reports.py)
            return result
        return web.json_response(_jsonable(result), status=ep.status)

    return handle


def _err(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, **_jsonable(extra)}},
                             status=status)


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """429 + Retry-After once a caller (API token, else address) is over the limit; before the
    access check, so that guessing tokens is slowed down too (callcenter/api/ratelimit.py)."""
    limiter: Any = request.app.get(RATE_LIMITER)
    if limiter is not None and request.path.startswith(PREFIX + "/"):
        key = ratelimit.caller_key(request.headers.get("Authorization", ""), request.remote)
        take_async = getattr(limiter, "take_async", None)  # center-wide, in Redis (scale-out)
        wait = await take_async(key) if take_async is not None else limiter.take(key)
        if wait > 0:
            resp = _err(429, "rate_limited", "too many requests; retry later")
            resp.headers["Retry-After"] = ratelimit.retry_after(wait)
            return resp
    result: web.StreamResponse = await handler(request)
    return result


def setup(app: web.Application) -> None:
    """Mount /api/v1 on `app`, and teach the access middleware to read API tokens."""
    app[access.BEARER] = _bearer(app)
    web_conf = app[SETTINGS].web if SETTINGS in app else None
    local = ratelimit.RateLimiter(getattr(web_conf, "api_rate_per_minute", 1200),
                                  getattr(web_conf, "api_burst", 300))
    limiter: ratelimit.RateLimiter | ratelimit.SharedRateLimiter = local
    s = app[SETTINGS] if SETTINGS in app else None
    if s is not None and s.scaleout.enabled and s.redis.url:  # several processes: count in Redis
        from callcenter.keys import REDIS

        limiter = ratelimit.SharedRateLimiter(local, s.redis.prefix, lambda: app.get(REDIS))
    app[RATE_LIMITER] = limiter
    sync.setup(app)  # other processes reload what an admin changed (with Redis)
    app.router.add_get(PREFIX + "/openapi.json", openapi, name="api_openapi")
    for ep in ENDPOINTS:
        app.router.add_route(ep.method, PREFIX + ep.path, _wrap(ep))


def _bearer(app: web.Application) -> access.Bearer:
    async def resolve(secret: str) -> WebUser | None:
        found = await app[CENTER].store.resolve_api_token(secret)
        if found is None:
            return None
        token, u = found
        # the token carries one role only, whatever else its user may do
        return WebUser(id=u.id, username=u.username, display_name=u.display_name, roles=(token.role,),
                       teams=tuple(t.name for t in u.teams), extension=u.extension)

    return resolve


__all__ = ["ENDPOINTS", "PREFIX", "Endpoint", "setup"]
