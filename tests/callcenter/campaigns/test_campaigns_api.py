"""Campaigns over the REST API: create one with its segment, import a CSV list, the results by
disposition, outcome and segment; an agent's token is refused."""

from __future__ import annotations

import aiohttp
import pytest

from callcenter.app import build_store
from callcenter.settings import load_settings
from crm_core.campaigns import CampaignStore
from tests.callcenter.voice_harness import running_center, seed_people

pytestmark = pytest.mark.timeout(120)


async def test_create_import_and_results(database) -> None:
    store = build_store(load_settings(env={}), database)
    people = await seed_people(store)
    sup = await store.create_user("sue", "agent-password", roles=["supervisor"], display_name="Sue")
    _t, token = await store.create_api_token(sup.id, "t", "supervisor")
    agent = await store.get_user("agent1")
    _t2, agent_token = await store.create_api_token(agent.id, "a", "agent")
    async with (
        running_center(database) as rc,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http,
    ):
        api = rc.base + "/api/v1"
        r = await http.post(
            f"{api}/campaigns",
            json={
                "name": "care",
                "mode": "progressive",
                "script": "Hi",
                "dispositions": ["sale", "no_sale"],
                "schedule": {"hours": ["09:00", "20:00"]},
                "segment": {"tier": ["vip", "regular"]},
            },
        )
        assert r.status == 201, await r.text()
        camp = await r.json()
        assert camp["records_added"] == 2 and camp["status"] == "draft"
        r = await http.post(
            f"{api}/campaigns",
            json={"name": "bad", "mode": "progressive", "schedule": {"hours": ["20:00", "09:00"]}},
        )
        assert r.status == 400
        r = await http.post(
            f"{api}/campaigns/{camp['id']}/import",
            data=b"name,phone\nPat,+12025550177\nX,12\n",
            headers={"Content-Type": "text/csv"},
        )
        body = await r.json()
        assert r.status == 200 and body["added"] == 1 and body["rejected"][0]["line"] == 3
        cs = CampaignStore(database)
        recs = {r.name: r for r in await cs.records(camp["id"])}
        vip = recs["Victoria Important"]
        await cs.log_attempt(camp["id"], vip.id, "answered")
        await cs.settle(vip.id, status="done", disposition="sale", attempts=1)
        r = await http.get(f"{api}/campaigns/{camp['id']}/results")
        res = await r.json()
        assert (
            r.status == 200 and res["by_disposition"] == {"sale": 1} and res["by_outcome"] == {"answered": 1}
        )
        assert res["by_tier"]["vip"]["dispositions"] == {"sale": 1}
        assert res["by_tier"]["regular"]["status"] == {"pending": 1}
        assert res["by_tier"]["none"]["records"] == 1  # the CSV row with no customer
        r = await http.get(f"{api}/campaigns")
        assert [c["name"] for c in (await r.json())["items"]] == ["care"]
        r = await http.get(f"{api}/campaigns", headers={"Authorization": f"Bearer {agent_token}"})
        assert r.status == 403
    assert people
