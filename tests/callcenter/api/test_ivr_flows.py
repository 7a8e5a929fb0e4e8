"""IVR flows through the API: an upload is checked by the flow checker (errors with lines, nothing
stored), stored as versions, activated live without a restart, rolled back; all audited; and the
active version is what a restarted center runs."""
from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from callcenter.app import build_store
from callcenter.settings import load_settings
from tests.callcenter.voice_harness import running_center, seed_people

pytestmark = pytest.mark.timeout(120)
DEMO = (Path(__file__).resolve().parents[3] / "config" / "ivr" / "demo.yaml").read_text(encoding="utf-8")


async def test_upload_check_activate_and_roll_back(database) -> None:
    store = build_store(load_settings(env={}), database)
    await seed_people(store)
    ada = await store.create_user("ada", "admin-password", roles=["admin"], display_name="Ada")
    _t, token = await store.create_api_token(ada.id, "ivr", "admin")
    h = {"Authorization": f"Bearer {token}", "Content-Type": "application/yaml"}
    v1_text = DEMO
    v2_text = DEMO.replace("default_queue: general", "default_queue: billing", 1)
    assert v2_text != v1_text
    async with running_center(database) as rc, aiohttp.ClientSession() as http:
        url = f"{rc.base}/api/v1/ivr/flows/demo"
        assert rc.center.voice.flow.flow.default_queue == "general"
        broken = DEMO.replace("next: vip_queue", "next: no_such_node", 1)
        r = await http.post(url, data=broken.encode(), headers=h)
        body = await r.json()
        assert r.status == 400 and body["error"]["code"] == "invalid_flow"
        assert any("no_such_node" in i["message"] and i["line"] > 0 for i in body["error"]["issues"])
        assert await store.flow_versions("demo") == []  # nothing stored
        for text, version in ((v1_text, 1), (v2_text, 2)):
            r = await http.post(url, data=text.encode(), headers=h)
            assert r.status == 201, await r.text()
            assert (await r.json())["version"] == version
        assert rc.center.voice.flow.flow.default_queue == "general"  # uploaded, not active yet
        r = await http.post(f"{url}/versions/2/activate", headers=h)
        assert r.status == 200 and (await r.json())["live"] is True
        assert rc.center.voice.flow.flow.default_queue == "billing"  # live, no restart
        r = await http.post(f"{url}/versions/1/activate", headers=h)  # roll back
        assert r.status == 200
        assert rc.center.voice.flow.flow.default_queue == "general"
        r = await http.get(f"{url}/versions/2", headers=h)
        assert (await r.json())["text"] == v2_text
        listed = await (await http.get(f"{rc.base}/api/v1/ivr/flows", headers=h)).json()
        assert [(v["version"], v["active"]) for v in listed["items"]] == [(1, True), (2, False)]
        assert (await http.post(f"{url}/versions/9/activate", headers=h)).status == 404
        await http.post(f"{url}/versions/2/activate", headers=h)
    audit = await store.list_audit(entity="ivr_flow")
    assert [(e.action, e.before, e.after) for e in audit if e.action == "ivr.activate"] == [
        ("ivr.activate", {"version": 1}, {"version": 2}),
        ("ivr.activate", {"version": 2}, {"version": 1}),
        ("ivr.activate", {"version": None}, {"version": 2})]
    async with running_center(database) as rc:  # a restart runs the active version
        assert rc.center.voice.flow.flow.default_queue == "billing"
