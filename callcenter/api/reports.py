"""The reports' REST endpoints (issue 16), under /api/v1/reports/…: the same figures as the
report pages, as JSON, or as CSV with `?format=csv`. A supervisor's contact and agent reports
cover their teams' queues and agents; an admin's cover everything. Definitions: docs/reports.md.

Query parameters: `from`, `to` (local dates, inclusive; default yesterday), `tz` (IANA name,
default UTC), `interval` (15m, hour, day, week), `by` (queue, agent, team, channel, tier,
disposition), `totals=1` (one row per key for the whole range).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web

from callcenter.facade import MessageRefused, WebUser
from callcenter.keys import CENTER
from crm_core import reports as R

QUERY = ("from", "to", "tz", "interval", "by", "totals", "format")


def _store(request: web.Request) -> Any:
    return request.app[CENTER].store


def _now(request: web.Request) -> datetime:
    clock = getattr(request.app[CENTER], "utc", None)
    return clock() if callable(clock) else datetime.now(UTC)


def _range(request: web.Request) -> R.Range:
    q = request.query
    tz = q.get("tz") or "UTC"
    try:
        today = _now(request).astimezone(R.Range(date.today(), date.today(), tz).zone()).date()
    except R.ReportError as e:
        raise ValueError(str(e)) from None
    yesterday = today - timedelta(days=1)
    rng = R.Range(
        R.parse_day(q.get("from"), yesterday),
        R.parse_day(q.get("to"), yesterday),
        tz,
        q.get("interval") or "hour",
    )
    rng.check()
    return rng


async def scope_of(request: web.Request, user: WebUser) -> R.Scope | None:
    """None for an admin; a supervisor: their teams' queues and their teams."""
    if "admin" in user.roles:
        return None
    owned = await _store(request).queue_teams()
    queues = frozenset(q for q, teams in owned.items() if set(teams) & set(user.teams))
    return R.Scope(queues=queues, teams=frozenset(user.teams))


def _out(request: web.Request, rep: dict[str, Any]) -> Any:
    if request.query.get("format") == "csv":
        name = f"{rep['report']}-{rep.get('from', '')}-{rep.get('to', '')}".rstrip("-") + ".csv"
        return web.Response(
            text=R.to_csv(rep),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return rep


async def _run(coro: Any) -> dict[str, Any]:
    try:
        return await coro  # type: ignore[no-any-return]
    except R.ReportError as e:
        raise ValueError(str(e)) from None


async def contacts(request: web.Request, user: WebUser) -> Any:
    by = request.query.get("by") or None
    return _out(
        request,
        await _run(
            R.contact_report(
                _store(request).db,
                _range(request),
                by=by,
                scope=await scope_of(request, user),
                totals=request.query.get("totals") in ("1", "true"),
            )
        ),
    )


async def occupancy(request: web.Request, user: WebUser) -> Any:
    return _out(
        request,
        await _run(
            R.agent_report(
                _store(request).db,
                _range(request),
                by=request.query.get("by") or "agent",
                scope=await scope_of(request, user),
            )
        ),
    )


async def not_ready(request: web.Request, user: WebUser) -> Any:
    return _out(
        request,
        await _run(
            R.not_ready_report(_store(request).db, _range(request), scope=await scope_of(request, user))
        ),
    )


async def tiers(request: web.Request, user: WebUser) -> Any:
    return _out(
        request,
        await _run(R.tier_service(_store(request).db, _range(request), scope=await scope_of(request, user))),
    )


async def tickets(request: web.Request, user: WebUser) -> Any:
    return _out(request, await _run(R.ticket_report(_store(request).db, _range(request), _now(request))))


async def customers(request: web.Request, user: WebUser) -> Any:
    return _out(request, await R.customer_distribution(_store(request).db))


async def movement(request: web.Request, user: WebUser) -> Any:
    return _out(request, await _run(R.customer_movement(_store(request).db, _range(request))))


async def at_risk(request: web.Request, user: WebUser) -> Any:
    return _out(request, await R.customers_at_risk(_store(request).db, _now(request)))


async def at_risk_callback(request: web.Request, user: WebUser) -> Any:
    """One click: a callback contact to the customer's first phone, through the callbacks service."""
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise ValueError("no such customer")
    svc = getattr(request.app[CENTER], "callbacks", None)
    if svc is None:
        raise ValueError("callbacks are not enabled")
    try:
        return await svc.msg_schedule(user, {"customer_id": int(raw), "note": "customer at risk (reports)"})
    except MessageRefused as e:
        raise ValueError(str(e)) from None


async def subscription_get(request: web.Request, user: WebUser) -> Any:
    from callcenter.services.report_mail import get_subscription

    return await get_subscription(_store(request).db, user.id)


async def subscription_put(request: web.Request, user: WebUser) -> Any:
    from callcenter.services.report_mail import subscribe

    try:
        body = await request.json()
    except ValueError:
        raise ValueError("the body must be JSON") from None
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return await subscribe(_store(request).db, user.id, body.get("email"), body.get("tz") or "UTC")


async def subscription_delete(request: web.Request, user: WebUser) -> Any:
    from callcenter.services.report_mail import unsubscribe

    await unsubscribe(_store(request).db, user.id)
    return {"subscribed": False}


def endpoints(Endpoint: Any) -> tuple[Any, ...]:  # noqa: N803 - the class from callcenter/api/routes.py
    obj = {"type": "object"}
    return (
        Endpoint(
            "GET",
            "/reports/contacts",
            contacts,
            "Contacts per interval and key: volume, SL, ASA, AHT, "
            "abandonment, transfers, FCR, CSAT (JSON or CSV)",
            "reports",
            query=QUERY,
        ),
        Endpoint(
            "GET",
            "/reports/occupancy",
            occupancy,
            "Agents' ready, busy, wrap-up and not-ready time; occupancy",
            "reports",
            query=QUERY,
        ),
        Endpoint(
            "GET",
            "/reports/not-ready",
            not_ready,
            "Not-ready time by reason and agent",
            "reports",
            query=QUERY,
        ),
        Endpoint(
            "GET",
            "/reports/tiers",
            tiers,
            "How each customer tier is served: wait, SL, abandonment",
            "reports",
            query=QUERY,
        ),
        Endpoint(
            "GET",
            "/reports/tickets",
            tickets,
            "Complaints and service requests: volume, resolution time, SLA breaches, escalations",
            "reports",
            query=QUERY,
        ),
        Endpoint(
            "GET",
            "/reports/customers",
            customers,
            "Customers by tier, loyalty stage and type",
            "reports",
            query=("format",),
        ),
        Endpoint(
            "GET",
            "/reports/customers/movement",
            movement,
            "Customers who moved up or down a tier, or were lost",
            "reports",
            query=QUERY,
        ),
        Endpoint(
            "GET",
            "/reports/customers/at-risk",
            at_risk,
            "Customers at risk: low CSAT, repeated complaints or contacts",
            "reports",
            query=("format",),
        ),
        Endpoint(
            "POST",
            "/reports/customers/at-risk/{id}/callback",
            at_risk_callback,
            "Schedule a callback contact to a customer at risk",
            "reports",
            status=201,
        ),
        Endpoint(
            "GET",
            "/reports/subscription",
            subscription_get,
            "The caller's daily-summary subscription",
            "reports",
        ),
        Endpoint(
            "PUT",
            "/reports/subscription",
            subscription_put,
            "Subscribe to the daily summary by email",
            "reports",
            obj,
        ),
        Endpoint("DELETE", "/reports/subscription", subscription_delete, "Stop the daily summary", "reports"),
    )
