"""Campaigns over the REST API (docs/campaigns.md): list, create (with a segment), import a CSV
list, and the results by disposition, outcome and segment. Supervisors and admins."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from callcenter.facade import WebUser
from callcenter.keys import CENTER
from crm_core.campaigns import CampaignStore

FIELDS = (
    "name",
    "mode",
    "queue",
    "skills",
    "script",
    "dispositions",
    "schedule",
    "max_attempts",
    "retry_s",
    "abandon_cap_pct",
    "subject",
    "body",
    "rate_per_min",
)


def _cs(request: web.Request) -> CampaignStore:
    return CampaignStore(request.app[CENTER].store.db)


def _id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit():
        raise ValueError("the campaign id is a number")
    return int(raw)


async def campaigns_list(request: web.Request, user: WebUser) -> Any:
    return {"items": [c.to_dict() for c in await _cs(request).all()]}


async def campaign_create(request: web.Request, user: WebUser) -> Any:
    body = await request.json()
    if not isinstance(body, dict):
        raise ValueError("a JSON object, please")
    unknown = set(body) - set(FIELDS) - {"segment"}
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}")
    from callcenter.services.dialer_rules import Schedule

    Schedule.from_dict(body.get("schedule"))  # a bad schedule is refused before anything is stored
    cs = _cs(request)
    camp = await cs.create(**{k: body[k] for k in FIELDS if k in body})
    added = await cs.add_segment(camp.id, body["segment"]) if isinstance(body.get("segment"), dict) else 0
    return {**camp.to_dict(), "records_added": added}


async def campaign_import(request: web.Request, user: WebUser) -> Any:
    text = await request.text()
    added, rejected = await _cs(request).import_csv(
        _id(request), text, request.app[CENTER].store.default_region
    )
    return {"added": added, "rejected": rejected}


REPORT_BY = ("disposition", "tier", "loyalty", "type")
STATUSES = ("pending", "active", "done", "failed", "skipped", "excluded")


async def campaign_report(request: web.Request, user: WebUser) -> Any:
    """Every campaign's results as a report (the reports page): `by=disposition` one row per
    campaign and disposition; `by=tier|loyalty|type` one row per campaign and segment value, with
    the records by status and their dispositions. JSON, or CSV with `format=csv`."""
    from crm_core.reports import to_csv

    by = request.query.get("by") or "disposition"
    if by not in REPORT_BY:
        raise ValueError(f"by is one of {', '.join(REPORT_BY)}")
    cs = _cs(request)
    rows: list[dict[str, Any]] = []
    for camp in await cs.all():
        res = await cs.results(camp.id)
        if by == "disposition":
            for dispo, n in sorted(res["by_disposition"].items()):
                rows.append({"campaign": camp.name, "mode": camp.mode, "disposition": dispo, "records": n})
            continue
        for value, cell in sorted(res[f"by_{by}"].items()):
            row = {"campaign": camp.name, "mode": camp.mode, by: value, "records": cell["records"]}
            row.update({st: cell["status"].get(st, 0) for st in STATUSES})
            row["dispositions"] = "; ".join(f"{d} {n}" for d, n in sorted(cell["dispositions"].items()))
            rows.append(row)
    columns = (
        ["campaign", "mode", "disposition", "records"]
        if by == "disposition"
        else ["campaign", "mode", by, "records", *STATUSES, "dispositions"]
    )
    rep = {"report": f"campaigns-by-{by}", "by": by, "columns": columns, "rows": rows}
    if request.query.get("format") == "csv":
        return web.Response(
            text=to_csv(rep),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="campaigns-by-{by}.csv"'},
        )
    return rep


async def campaign_results(request: web.Request, user: WebUser) -> Any:
    cid = _id(request)
    cs = _cs(request)
    camp = await cs.get(cid)
    return {"campaign": camp.to_dict(), **(await cs.results(cid))}


def endpoints(Endpoint: Any) -> tuple[Any, ...]:  # noqa: N803 - the class from callcenter/api/routes.py
    obj = {"type": "object"}
    return (
        Endpoint("GET", "/campaigns", campaigns_list, "Campaigns", "campaigns"),
        Endpoint(
            "POST",
            "/campaigns",
            campaign_create,
            "Create a campaign (and its list from a segment)",
            "campaigns",
            obj,
            status=201,
        ),
        Endpoint(
            "GET",
            "/campaigns/report",
            campaign_report,
            "All campaigns' results by disposition or segment (tier, loyalty, type); CSV: format=csv",
            "campaigns",
            query=("by", "format"),
        ),
        Endpoint(
            "POST",
            "/campaigns/{id}/import",
            campaign_import,
            "Add records from CSV (name, phone, email, timezone)",
            "campaigns",
        ),
        Endpoint(
            "GET",
            "/campaigns/{id}/results",
            campaign_results,
            "Results by disposition, outcome and segment (tier, loyalty, type)",
            "campaigns",
        ),
    )
