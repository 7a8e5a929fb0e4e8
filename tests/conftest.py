"""Shared test plumbing: per-run database schemas and Redis prefixes, Hypothesis profiles."""
from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, settings

from tests.services import RUN_ID, need_postgres, need_redis

settings.register_profile(
    "ci", deadline=None, derandomize=True, max_examples=200,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.register_profile(  # `make fuzz`: long runs (tests/fuzz/server.py scales the I/O fuzzers too)
    "fuzz", deadline=None, max_examples=5000, suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))

_counter = itertools.count()


def unique_name(prefix: str = "cc_t") -> str:
    """A name unique to this run and this call: schema names, key prefixes."""
    return f"{prefix}_{RUN_ID}_{next(_counter)}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> tuple[str, str | None]:
    """(url, schema) for a fresh, empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/cc.db", None
    return need_postgres(), unique_name()


@pytest.fixture
async def database(db_url) -> AsyncIterator[object]:
    """A migrated crm_core Database on SQLite and on PostgreSQL (own schema, dropped afterwards)."""
    from crm_core.db import Database

    url, schema = db_url
    db = Database(url, schema=schema)
    try:
        await db.upgrade()
        yield db
    finally:
        await db.drop_schema()
        await db.close()


@pytest.fixture
async def redis_prefix() -> AsyncIterator[tuple[str, str]]:
    """(redis_url, key_prefix) unique to this test; every key under the prefix is deleted afterwards."""
    import redis.asyncio as aioredis

    url = need_redis()
    prefix = unique_name("cc_t") + ":"
    yield url, prefix
    client = aioredis.from_url(url)
    try:
        async for key in client.scan_iter(match=prefix + "*", count=500):
            await client.delete(key)
    finally:
        await client.aclose()
