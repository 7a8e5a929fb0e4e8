"""Reachability of the real services the integration tests use.

Without CC_REQUIRE_SERVICES=1 a missing service skips its tests with a reason; with it (CI) the run fails.
"""
from __future__ import annotations

import os
import socket
import uuid

import pytest

REQUIRE = os.environ.get("CC_REQUIRE_SERVICES") == "1"
PG_URL = os.environ.get("CC_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("CC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CHROMIUM = os.environ.get("CC_TEST_CHROMIUM", "/usr/bin/chromium")
# One id per test run: every schema and Redis key prefix made by this run carries it.
RUN_ID = uuid.uuid4().hex[:10]


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def need(name: str, ok: bool, how: str) -> None:
    """Skip (or, under CC_REQUIRE_SERVICES=1, fail) when a service is missing."""
    if ok:
        return
    msg = f"{name} is not available ({how})"
    if REQUIRE:
        pytest.fail(f"CC_REQUIRE_SERVICES=1 but {msg}", pytrace=False)
    pytest.skip(msg)


def need_postgres() -> str:
    from sqlalchemy.engine import make_url

    u = make_url(PG_URL)
    need("PostgreSQL", _port_open(u.host or "127.0.0.1", u.port or 5432), f"no server at {u.host}:{u.port}")
    return PG_URL


def need_redis() -> str:
    from urllib.parse import urlparse

    u = urlparse(REDIS_URL)
    need("Redis", _port_open(u.hostname or "127.0.0.1", u.port or 6379), f"no server at {REDIS_URL}")
    return REDIS_URL


def need_chromium() -> str:
    need("Chromium", os.path.exists(CHROMIUM), f"{CHROMIUM} is missing; apt-get install -y chromium")
    try:
        import playwright  # noqa: F401
    except ImportError:
        need("Playwright", False, "pip install playwright")
    return CHROMIUM
