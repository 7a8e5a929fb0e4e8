"""The `callcenter` command line, run as a real subprocess."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import aiohttp
import pytest

from crm_core.db import Database
from tests.conftest import unique_name
from tests.services import need_postgres


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callcenter.cli", *args], input=stdin, capture_output=True, text=True,
        env={**os.environ, **env}, timeout=120,
    )


@pytest.fixture(params=["sqlite", "postgres"])
def cli_db(request, tmp_path):
    """Environment pointing the CLI at a fresh database; yields (env, url, schema)."""
    if request.param == "sqlite":
        url, schema = f"sqlite+aiosqlite:///{tmp_path}/cc.db", None
        env = {"CC_DATABASE_URL": url}
    else:
        url, schema = need_postgres(), unique_name()
        env = {"CC_DATABASE_URL": url, "CC_DATABASE_SCHEMA": schema}
    yield env, url, schema
    if schema:
        asyncio.run(_drop(url, schema))


async def _drop(url: str, schema: str) -> None:
    db = Database(url, schema=schema)
    await db.drop_schema()
    await db.close()


def test_db_upgrade_seeds_once_and_users_add(cli_db):
    env, url, schema = cli_db
    env = {**env, "CC_ADMIN_PASSWORD": "first-admin-pw"}
    first = cli(env, "db", "upgrade")
    assert first.returncode == 0, first.stderr
    assert "seeded: skills, queues, teams, dispositions, admin" in first.stdout
    again = cli(env, "db", "upgrade")
    assert again.returncode == 0 and "nothing to seed" in again.stdout

    ok = cli(env, "users", "add", "alice", "--role", "agent", "--team", "frontline", "--skill", "billing=7",
             "--extension", "PJSIP/1001", "--password-stdin", stdin="correct horse\n")
    assert ok.returncode == 0, ok.stderr
    assert "user 'alice' created" in ok.stdout
    dup = cli(env, "users", "add", "alice", "--role", "agent", "--password-stdin", stdin="x-password\n")
    assert dup.returncode == 1 and "alice" in dup.stderr and "Traceback" not in dup.stderr
    bad = cli(env, "users", "add", "bob", "--role", "agent", "--skill", "billing=high", "--password-stdin",
              stdin="pw-pw-pw-pw\n")
    assert bad.returncode == 1 and "NAME=LEVEL" in bad.stderr

    async def check() -> None:
        from crm_core.store import CrmStore

        store = CrmStore(Database(url, schema=schema))
        try:
            alice = await store.authenticate("alice", "correct horse")
            assert alice is not None and alice.extension == "PJSIP/1001"
            assert await store.authenticate("alice", "wrong") is None
            assert await store.authenticate("admin", "first-admin-pw") is not None
            assert await store.authenticate("bob", "pw-pw-pw-pw") is None
        finally:
            await store.db.close()

    asyncio.run(check())


def test_demo_seed_generates_findable_customers(cli_db):
    env, url, schema = cli_db
    assert cli(env, "db", "upgrade").returncode == 0
    r = cli(env, "demo", "seed", "--customers", "300", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "seeded 300 customers" in r.stdout

    async def check() -> None:
        import phonenumbers as pn
        from sqlalchemy import text

        from crm_core.store import CrmStore

        store = CrmStore(Database(url, schema=schema))
        try:
            async with store.db.engine.connect() as conn:
                n = (await conn.execute(text("SELECT count(*) FROM customers"))).scalar_one()
                q = text("SELECT tier, count(*) FROM customers GROUP BY tier")
                tiers = dict((await conn.execute(q)).all())
                phones = (await conn.execute(text(
                    "SELECT customer_id, value FROM contact_points WHERE kind = 'phone' ORDER BY id LIMIT 40"
                ))).all()
                n_int = (await conn.execute(text("SELECT count(*) FROM interactions"))).scalar_one()
            assert n == 300
            assert tiers.get("regular", 0) > tiers.get("key", 0) > 0
            assert 300 * 5 < n_int < 300 * 15
            for cid, e164 in phones:
                num = pn.parse(e164)
                assert pn.is_valid_number(num), e164
                typed = pn.format_number(num, pn.PhoneNumberFormat.INTERNATIONAL)
                found = await store.identify(phone=typed)
                assert found is not None and found.id == cid
            card = await store.customer_card(phones[0][0])
            assert card.to_dict()["customer"]["id"] == phones[0][0]
        finally:
            await store.db.close()

    asyncio.run(check())


def test_bad_settings_exit_with_a_clear_message():
    r = cli({"CC_HTTP_PORT": "eighty"}, "db", "upgrade")
    assert r.returncode == 2
    assert "CC_HTTP_PORT" in r.stderr and "Traceback" not in r.stderr


async def test_run_serves_until_sigterm(tmp_path):
    env = {**os.environ, "CC_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cc.db"}
    assert cli(env, "db", "upgrade").returncode == 0
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callcenter.cli", "run", "--port", "0", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert "serving on http://127.0.0.1:" in line, line
        base = line.split("serving on ")[1].split()[0].rstrip("/")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as r:
                assert r.status == 200
                assert (await r.json())["status"] == "ok"
            async with http.get(f"{base}/") as r:
                assert r.status == 200 and "Contact center" in await r.text()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
