"""Admin changes reach every process: two app processes' worth of centers on one database and one
Redis; a change made through one is applied by the other without a restart."""
from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from callcenter.api.sync import APPLIED
from callcenter.app import build_store
from callcenter.settings import load_settings
from tests.callcenter.voice_harness import running_center, seed_people

pytestmark = pytest.mark.timeout(120)
DEMO = (Path(__file__).resolve().parents[3] / "config" / "ivr" / "demo.yaml").read_text(encoding="utf-8")


async def test_a_change_in_one_process_is_applied_in_the_other(database, redis_prefix) -> None:
    url, prefix = redis_prefix
    store = build_store(load_settings(env={}), database)
    await seed_people(store)
    ada = await store.create_user("ada", "admin-password", roles=["admin"], display_name="Ada")
    _t, token = await store.create_api_token(ada.id, "sync", "admin")
    env = {"CC_REDIS__URL": url, "CC_REDIS__PREFIX": prefix}
    h = {"Authorization": f"Bearer {token}"}
    async with running_center(database, **env) as a, running_center(database, **env) as b, \
            aiohttp.ClientSession() as http:
        applied = b.app[APPLIED]

        async def next_change(kind: str) -> dict:
            msg = await asyncio.wait_for(applied.get(), 10)
            assert msg["kind"] == kind
            return msg

        assert "french" not in b.center.engine.config.queues
        r = await http.put(f"{a.base}/api/v1/queues/french", json={"skills": {"french": 3}}, headers=h)
        assert r.status == 200
        await next_change("queues")
        assert dict(b.center.engine.config.queues["french"].skills) == {"french": 3}

        r = await http.post(f"{a.base}/api/v1/users", headers=h, json={
            "username": "felix", "password": "felix-password", "roles": ["agent"], "skills": {"french": 5}})
        assert r.status == 201
        felix = (await r.json())["id"]
        await next_change("agent")
        assert b.center.directory.by_user(felix) is not None

        yaml_h = {**h, "Content-Type": "application/yaml"}
        r = await http.post(f"{a.base}/api/v1/ivr/flows/demo", headers=yaml_h,
                            data=DEMO.replace("default_queue: general", "default_queue: billing", 1).encode())
        assert r.status == 201
        r = await http.post(f"{a.base}/api/v1/ivr/flows/demo/versions/1/activate", headers=h)
        assert r.status == 200
        await next_change("flow")
        assert b.center.voice.flow.flow.default_queue == "billing"
        assert applied.empty() and a.app[APPLIED].empty()  # nobody applies their own change twice
