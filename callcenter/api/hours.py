"""Business hours and holidays through the API (issue 14; crm_core/hours.py, docs/api.md):
`GET /hours`, `PUT /hours/{name}`, `DELETE /hours/{name}`. The values are checked by the IVR flow
checker (the same rules as a flow's `business_hours` node) before they are stored, and they are
live at once: the running IVR flow's nodes that name the set (`schedule: NAME`) use them for the
next call, in this process and (with Redis) in the others."""
from __future__ import annotations

import logging
import re
from typing import Any

import yaml
from aiohttp import web

from callcenter.facade import WebUser
from callcenter.keys import CENTER
from crm_core.hours import HoursStore, hours_json

log = logging.getLogger(__name__)
NAME = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")
FIELDS = {"timezone", "weekly", "holidays"}
HOURS_BODY = {
    "type": "object", "required": ["timezone", "weekly"], "additionalProperties": False,
    "properties": {
        "timezone": {"type": "string", "description": "IANA name, e.g. America/New_York"},
        "weekly": {"type": "object", "description": 'e.g. {"mon-fri": "09:00-18:00", "sun": "closed"}'},
        "holidays": {"type": "object",
                     "description": '{"country": "US", "subdiv": "CA", "dates": ["2026-12-24"]}'},
    },
}


def check_hours(timezone: Any, weekly: Any, holidays: Any) -> tuple[Any, list[dict[str, Any]]]:
    """(timezone, WeeklySchedule, HolidaySpec) or None, and the checker's issues."""
    from ivr.loader import check_text

    node: dict[str, Any] = {"type": "business_hours", "timezone": timezone, "weekly": weekly,
                            "on_open": "end", "on_closed": "end"}
    if holidays:
        node["holidays"] = holidays
    doc = {"flow": "hours_check", "languages": ["en"], "default_queue": "general",
           "entries": {"main": "hours"}, "nodes": {"hours": node, "end": {"type": "hangup"}}}
    try:
        text = yaml.safe_dump(doc, allow_unicode=True)
    except yaml.YAMLError:
        return None, [{"code": "bad-value", "message": "the values must be plain JSON"}]
    flow, issues = check_text(text, "hours")
    found = [{"code": i.code, "message": i.message} for i in issues if i.severity == "error"]
    if flow is None:
        return None, found or [{"code": "invalid", "message": "the hours are not valid"}]
    n = flow.nodes["hours"]
    return (n.timezone, n.weekly, n.holidays), []


async def reload_hours(center: Any) -> None:
    """Hand every stored set to the live IVR flow engine (replacing the mapping it reads)."""
    try:
        stored = await HoursStore(center.store.db).list_hours()
    except Exception:  # noqa: BLE001 - an old schema: the flows' own hours stay
        log.warning("could not read business hours (run `callcenter db upgrade`)", exc_info=True)
        return
    schedules = {}
    for h in stored:
        spec, issues = check_hours(h.timezone, h.weekly, h.holidays)
        if spec is None:
            log.error("stored business hours %r no longer pass the checker: %s", h.name, issues)
            continue
        schedules[h.name] = spec
    center.voice.flow.schedules = schedules


def _name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not NAME.match(name):
        raise ValueError("name must be 1..64 of a-z 0-9 _ (starting with a letter or _)")
    return name


async def hours_list(request: web.Request, user: WebUser) -> Any:
    items = [hours_json(h) for h in await HoursStore(request.app[CENTER].store.db).list_hours()]
    return {"items": items, "live": sorted(request.app[CENTER].voice.flow.schedules)}


async def hours_put(request: web.Request, user: WebUser) -> Any:
    from callcenter.api import sync
    from callcenter.api.routes import ApiError, _body

    name = _name(request)
    b = await _body(request)
    unknown = set(b) - FIELDS
    if unknown:
        raise ApiError(400, "bad_request", f"unknown fields: {', '.join(sorted(unknown))}")
    spec, issues = check_hours(b.get("timezone"), b.get("weekly"), b.get("holidays") or {})
    if spec is None:
        raise ApiError(400, "invalid", "; ".join(i["message"] for i in issues)[:500], issues=issues)
    center = request.app[CENTER]
    h = await HoursStore(center.store.db).put_hours(name, b["timezone"], b["weekly"], b.get("holidays") or {},
                                                   actor=user.username)
    await reload_hours(center)
    await sync.announce(request.app, "hours")
    return hours_json(h)


async def hours_delete(request: web.Request, user: WebUser) -> Any:
    from callcenter.api import sync

    center = request.app[CENTER]
    await HoursStore(center.store.db).delete_hours(_name(request), actor=user.username)
    await reload_hours(center)
    await sync.announce(request.app, "hours")
    return {"ok": True}


def endpoints(Endpoint: Any) -> tuple[Any, ...]:  # noqa: N803 - the class from callcenter/api/routes.py
    return (
        Endpoint("GET", "/hours", hours_list, "Business hours and holidays (and which are live)", "queues"),
        Endpoint("PUT", "/hours/{name}", hours_put, "Create or replace business hours and holidays "
                 "(checked like a flow's business_hours node; live at once)", "queues", HOURS_BODY),
        Endpoint("DELETE", "/hours/{name}", hours_delete, "Remove business hours (flows fall back to "
                 "their own)", "queues"),
    )


__all__ = ["check_hours", "endpoints", "reload_hours"]
