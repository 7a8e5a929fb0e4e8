"""Business hours and holidays through the API: checked like a flow's business_hours node (clear
errors, nothing stored), stored and audited, and live at once for the running IVR flow's nodes that
name them (`schedule: main`); deleting them brings back the flow's own hours."""
from __future__ import annotations

from datetime import date

import aiohttp
import pytest

from callcenter.app import build_store
from callcenter.settings import load_settings
from ivr import Finished
from tests.callcenter.voice_harness import WEEKDAY_NOON_NY, running_center

pytestmark = pytest.mark.timeout(120)
FLOW = """\
flow: demo
languages: [en]
default_queue: general
entries: {main: hours}
nodes:
  hours:
    type: business_hours
    schedule: main
    timezone: America/New_York
    weekly: {mon-sun: 24h}
    on_open: open
    on_closed: closed
  open: {type: queue, queue: general}
  closed: {type: hangup}
"""


def _status(rc) -> str:
    state, step = rc.center.voice.flow.start({"caller_id": "+14155550100"}, WEEKDAY_NOON_NY)
    assert isinstance(step, Finished)
    return str(state.variables["hours.status"])


async def test_hours_are_checked_stored_audited_and_live(database) -> None:
    store = build_store(load_settings(env={}), database)
    ada = await store.create_user("ada", "admin-password", roles=["admin"], display_name="Ada")
    _t, token = await store.create_api_token(ada.id, "t", "admin")
    h = {"Authorization": f"Bearer {token}"}
    async with running_center(database) as rc, aiohttp.ClientSession(headers=h) as http:
        api = rc.base + "/api/v1"
        r = await http.post(f"{api}/ivr/flows/demo", data=FLOW.encode(),
                            headers={"Content-Type": "application/yaml"})
        assert r.status == 201, await r.text()
        r = await http.post(f"{api}/ivr/flows/demo/versions/{(await r.json())['version']}/activate")
        assert r.status == 200 and (await r.json())["live"]
        assert _status(rc) == "open"  # the flow's own hours: open all week

        for body, words in (
            ({"timezone": "Mars/Olympus", "weekly": {"mon": "09:00-17:00"}}, "time zone"),
            ({"timezone": "UTC", "weekly": {"mon": "25:00-26:00"}}, "25:00"),
            ({"timezone": "UTC", "weekly": {"mon": "09:00-17:00"}, "holidays": {"dates": ["not-a-date"]}},
             "date"),
            ({"timezone": "UTC", "weekly": "always"}, "weekly"),
            ({"timezone": "UTC", "weekly": {}, "colour": "blue"}, "unknown fields"),
        ):
            r = await http.put(f"{api}/hours/main", json=body)
            err = (await r.json())["error"]
            assert r.status == 400 and words in err["message"], (body, err)
        bad_name = await (await http.put(f"{api}/hours/Bad-Name", json={})).json()
        assert bad_name["error"]["code"] == "bad_request"
        assert (await (await http.get(f"{api}/hours")).json())["items"] == []  # nothing stored

        closed = {"timezone": "America/New_York", "weekly": {"mon-fri": "13:00-17:00", "sat": "closed",
                                                              "sun": "closed"}}
        r = await http.put(f"{api}/hours/main", json=closed)
        assert r.status == 200, await r.text()
        assert _status(rc) == "closed"  # noon on a weekday: before the stored opening time, at once
        holiday = {**closed, "weekly": {"mon-sun": "24h"},
                   "holidays": {"dates": [WEEKDAY_NOON_NY.date().isoformat(), "2026-12-25"]}}
        assert (await http.put(f"{api}/hours/main", json=holiday)).status == 200
        assert _status(rc) == "holiday"
        got = await (await http.get(f"{api}/hours")).json()
        assert got["live"] == ["main"] and got["items"][0]["holidays"]["dates"][1] == "2026-12-25"
        assert date.fromisoformat(got["items"][0]["holidays"]["dates"][0]) == WEEKDAY_NOON_NY.date()

        audit = (await (await http.get(f"{api}/audit?entity=business_hours")).json())["items"]
        puts = [a for a in audit if a["action"] == "hours.put"]
        assert len(puts) == 2 and any(a["before"] and a["before"]["weekly"]["sat"] == "closed" for a in puts)

        assert (await http.delete(f"{api}/hours/main")).status == 200
        assert _status(rc) == "open"  # the flow's own hours again
        assert (await http.delete(f"{api}/hours/main")).status == 404


async def test_hours_and_a_signed_in_agents_profile_reach_the_other_process(database, redis_prefix) -> None:
    import asyncio

    from callcenter.api.sync import APPLIED
    from routing import Presence
    from tests.callcenter.voice_harness import Console

    url, prefix = redis_prefix
    store = build_store(load_settings(env={}), database)
    ada = await store.create_user("ada", "admin-password", roles=["admin"], display_name="Ada")
    ann = await store.create_user("ann", "agent-password", roles=["agent"], display_name="Ann",
                                  skills={"general": 3})
    _t, token = await store.create_api_token(ada.id, "t", "admin")
    env = {"CC_REDIS__URL": url, "CC_REDIS__PREFIX": prefix}
    async with running_center(database, **env) as a, running_center(database, **env) as b, \
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        applied = b.app[APPLIED]
        r = await http.put(f"{a.base}/api/v1/hours/main",
                           json={"timezone": "UTC", "weekly": {"mon-sun": "24h"}})
        assert r.status == 200
        assert (await asyncio.wait_for(applied.get(), 10))["kind"] == "hours"
        assert "main" in b.center.voice.flow.schedules
        # ann is signed in on b; the admin changes her skills through a
        console = await Console.open(b.center, b.store, "ann")
        await console.send("set_state", state="ready")
        r = await http.patch(f"{a.base}/api/v1/users/{ann.id}", json={"skills": {"general": 3, "vip": 5}})
        assert r.status == 200
        assert (await asyncio.wait_for(applied.get(), 10))["kind"] == "agent"
        rec = b.center.engine.store.agent(str(ann.id))
        assert rec.presence is Presence.READY and rec.profile.skills == {"general": 3, "vip": 5}
