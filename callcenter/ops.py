"""Operational endpoints: /healthz (database, Redis) and /metrics (Prometheus)."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from callcenter.keys import DB, REDIS, SETTINGS

REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)
REQUESTS = web.AppKey("metrics_requests", Counter)
LATENCY = web.AppKey("metrics_latency", Histogram)
CHECK_TIMEOUT_S = 2.0


def setup(app: web.Application) -> None:
    registry = CollectorRegistry()
    app[REGISTRY] = registry
    app[REQUESTS] = Counter(
        "cc_http_requests", "HTTP requests served", ["method", "route", "status"], registry=registry
    )
    app[LATENCY] = Histogram(
        "cc_http_request_seconds", "HTTP request latency", ["route"], registry=registry
    )
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/metrics", metrics, name="metrics")


@web.middleware
async def metrics_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    t0 = time.perf_counter()
    status = 500
    try:
        resp = await handler(request)
        status = resp.status
        return resp
    except web.HTTPException as e:
        status = e.status
        raise
    finally:
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        request.app[REQUESTS].labels(request.method, name, str(status)).inc()
        request.app[LATENCY].labels(name).observe(time.perf_counter() - t0)


async def _check(coro: Awaitable[object]) -> dict[str, object]:
    t0 = time.perf_counter()
    try:
        await asyncio.wait_for(coro, CHECK_TIMEOUT_S)
    except asyncio.CancelledError:
        raise
    except Exception as e:  # noqa: BLE001 - report any failure as unhealthy
        return {"ok": False, "error": f"{type(e).__name__}: {e}"[:300]}
    return {"ok": True, "latency_ms": round((time.perf_counter() - t0) * 1000, 2)}


async def healthz(request: web.Request) -> web.Response:
    app = request.app
    checks: dict[str, object] = {"database": await _check(app[DB].ping())}
    checks["database"]["backend"] = app[DB].dialect  # type: ignore[index]
    if app[SETTINGS].redis.url:
        checks["redis"] = await _check(app[REDIS].ping())
    else:
        checks["redis"] = {"ok": True, "configured": False}
    ok = all(c["ok"] for c in checks.values())  # type: ignore[index]
    body = {"status": "ok" if ok else "unavailable", "checks": checks}
    return web.json_response(body, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    data = generate_latest(request.app[REGISTRY])
    return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})
