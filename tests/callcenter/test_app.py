"""The app skeleton over real HTTP: /healthz and /metrics."""
import socket

import aiohttp
import pytest

from callcenter.app import init_app
from callcenter.settings import load_settings
from tests.http import serve


def _settings(**env):
    return load_settings(env=env)


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def test_healthz_reports_database_and_redis(database, redis_prefix):
    redis_url, prefix = redis_prefix
    settings = _settings(CC_REDIS_URL=redis_url, CC_REDIS_PREFIX=prefix)
    async with serve(init_app(settings, database=database)) as base, aiohttp.ClientSession() as http:
        async with http.get(f"{base}/healthz") as r:
            assert r.status == 200
            body = await r.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["database"]["backend"] == database.dialect
    assert body["checks"]["redis"]["ok"] is True
    assert body["checks"]["redis"].get("configured", True) is True


async def test_healthz_is_503_when_redis_is_down(database):
    settings = _settings(CC_REDIS_URL=f"redis://127.0.0.1:{_closed_port()}/0")
    async with serve(init_app(settings, database=database)) as base, aiohttp.ClientSession() as http:
        async with http.get(f"{base}/healthz") as r:
            assert r.status == 503
            body = await r.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is False and body["checks"]["redis"]["error"]


async def test_healthz_without_redis_configured(database):
    settings = _settings()
    async with serve(init_app(settings, database=database)) as base, aiohttp.ClientSession() as http:
        async with http.get(f"{base}/healthz") as r:
            assert r.status == 200
            body = await r.json()
    assert body["checks"]["redis"] == {"ok": True, "configured": False}


async def test_metrics_count_requests(database):
    settings = _settings()
    async with serve(init_app(settings, database=database)) as base, aiohttp.ClientSession() as http:
        for _ in range(3):
            async with http.get(f"{base}/healthz") as r:
                assert r.status == 200
        async with http.get(f"{base}/nope") as r:
            assert r.status == 404
        async with http.get(f"{base}/metrics") as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/plain")
            text = await r.text()
    assert 'cc_http_requests_total{method="GET",route="/healthz",status="200"} 3.0' in text
    assert 'status="404"' in text
    assert "cc_http_request_seconds_bucket" in text


async def test_an_unmigrated_database_is_a_clear_error(tmp_path):
    settings = _settings(CC_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/empty.db")
    with pytest.raises(RuntimeError, match="callcenter db upgrade"):
        async with serve(init_app(settings)):
            pass
