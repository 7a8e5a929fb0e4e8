"""The REST API over real HTTP against the running app: tokens (hashed, one role, revocable),
customers, contact points, tickets, interactions, users, teams and queues; admin changes reach
routing at once and are audited with before and after; the audit log cannot be changed."""
from __future__ import annotations

import hashlib
import re
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from callcenter.app import build_store
from callcenter.settings import load_settings
from crm_core.admin import ApiToken
from tests.callcenter.voice_harness import running_center, seed_people

pytestmark = pytest.mark.timeout(120)
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


class Api:
    def __init__(self, http: aiohttp.ClientSession, base: str, token: str) -> None:
        self.http, self.base, self.token = http, base, token

    async def call(self, method: str, path: str, body: Any = None, token: str | None = None
                   ) -> tuple[int, Any]:
        r = await self.http.request(method, self.base + "/api/v1" + path, json=body,
                                    headers={"Authorization": f"Bearer {token or self.token}"})
        text = await r.text()
        return r.status, (await r.json() if r.content_type == "application/json" else text)


async def _setup(database) -> tuple[Any, dict[str, Any]]:
    store = build_store(load_settings(env={}), database)
    people = await seed_people(store)
    await store.create_team("red")
    ada = await store.create_user("ada", "admin-password", roles=["admin"], display_name="Ada")
    ann = await store.create_user("ann", "agent-password", roles=["agent", "supervisor"],
                                  display_name="Ann", team="red")
    _t, secret = await store.create_api_token(ada.id, "bootstrap", "admin")
    return store, {"admin": secret, "ada": ada.id, "ann": ann.id, "vip": people["vip"].id}


async def test_tokens_are_hashed_scoped_and_revocable(database) -> None:
    store, ids = await _setup(database)
    async with running_center(database) as rc, aiohttp.ClientSession() as http:
        api = Api(http, rc.base, ids["admin"])
        status, made = await api.call("POST", "/tokens", {"user_id": ids["ann"], "name": "crm sync",
                                                          "role": "agent"})
        assert status == 201 and made["token"].startswith("cct_") and made["role"] == "agent"
        secret = made["token"]
        # the user is also a supervisor, but the token carries the agent role only
        status, me = await api.call("GET", "/me", token=secret)
        assert status == 200 and me["roles"] == ["agent"] and me["username"] == "ann"
        assert (await api.call("GET", "/users", token=secret))[0] == 403
        # a role the user does not have
        status, err = await api.call("POST", "/tokens", {"user_id": ids["ann"], "name": "x", "role": "admin"})
        assert status == 400 and "role" in err["error"]["message"]
        # only the hash is stored, and the list never shows a secret
        async with store.db.session() as s:
            row = (await s.execute(select(ApiToken).where(ApiToken.id == made["id"]))).scalar_one()
        assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
        status, listed = await api.call("GET", "/tokens")
        assert secret not in str(listed) and "token_hash" not in str(listed)
        # revoked: refused at once; the revocation is audited
        assert (await api.call("DELETE", f"/tokens/{made['id']}"))[0] == 200
        status, text = await api.call("GET", "/me", token=secret)
        assert status == 401 and "ann" not in str(text)
        status, audit = await api.call("GET", "/audit?entity=api_token")
        assert [e["action"] for e in audit["items"]][:2] == ["token.revoke", "token.create"]
        assert audit["items"][0]["actor"] == "ada"
        assert (await api.call("GET", "/me", token="cct_nonsense"))[0] == 401


async def test_admin_changes_reach_routing_at_once_and_are_audited(database) -> None:
    store, ids = await _setup(database)
    async with running_center(database) as rc, aiohttp.ClientSession() as http:
        api = Api(http, rc.base, ids["admin"])
        assert (await api.call("PUT", "/skills/french", {"label": "French"}))[0] == 200
        status, q = await api.call("PUT", "/queues/french", {"label": "French desk",
                                                             "skills": {"french": 3}, "teams": ["red"]})
        assert status == 200, q
        assert q["teams"] == ["red"]
        live = rc.center.engine.config.queues["french"]
        assert dict(live.skills) == {"french": 3}
        assert rc.center.voice.options.queue_skills["french"] == {"french": 3}
        status, u = await api.call("POST", "/users", {
            "username": "felix", "password": "felix-password", "roles": ["agent"], "display_name": "Felix",
            "extension": "1077", "skills": {"french": 5}, "capacities": {"voice": 1, "chat": 2},
            "teams": ["red"]})
        assert status == 201, u
        agent = rc.center.directory.by_user(u["id"])
        assert agent is not None and agent.username == "felix"
        profile = rc.center.engine.store.agent(str(u["id"]))
        assert profile is not None and dict(profile.profile.skills) == {"french": 5}
        # a change: before and after in the audit log
        status, q2 = await api.call("PUT", "/queues/french", {"sl_target_s": 15})
        assert status == 200 and q2["sl_target_s"] == 15
        status, audit = await api.call("GET", "/audit?entity=queue")
        newest = audit["items"][0]
        assert newest["action"] == "queue.update" and newest["actor"] == "ada"
        assert newest["before"]["sl_target_s"] == 20 and newest["after"]["sl_target_s"] == 15
        assert audit["items"][1]["action"] == "queue.create" and audit["items"][1]["before"] is None
        # bad input: a clear error, nothing written
        status, err = await api.call("PUT", "/queues/french", {"sl_target_pct": 300})
        assert status == 400 and "sl_target_pct" in err["error"]["message"]
        # the audit log cannot be changed through the API
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            assert (await api.call(method, "/audit", {}))[0] == 405
        assert (await api.call("GET", "/audit?entity=queue"))[1]["items"][0] == newest


async def test_customers_tickets_interactions_and_scope(database) -> None:
    store, ids = await _setup(database)
    ann = await store.get_user(ids["ann"])
    _t, agent_token = await store.create_api_token(ann.id, "ann agent", "agent")
    async with running_center(database) as rc, aiohttp.ClientSession() as http:
        api = Api(http, rc.base, agent_token)
        status, c = await api.call("POST", "/customers", {"name": "Paula Paz", "phones": ["(202) 555-0188"],
                                                          "emails": ["paula@example.com"]})
        assert status == 201, c
        assert {p["value"] for p in c["contact_points"]} == {"+12025550188", "paula@example.com"}
        status, err = await api.call("POST", "/customers", {"name": "X", "emails": ["not-an-email"]})
        assert status == 400 and err["error"]["code"] == "invalid"
        status, c = await api.call("POST", f"/customers/{c['id']}/contact-points",
                                   {"kind": "phone", "value": "+44 20 7946 0958"})
        assert status == 201 and "+442079460958" in {p["value"] for p in c["contact_points"]}
        status, c = await api.call("PATCH", f"/customers/{c['id']}", {"notes": "prefers email"})
        assert status == 200 and c["notes"] == "prefers email"
        status, found = await api.call("GET", "/customers?q=Paula")
        assert status == 200 and [h["customer_id"] for h in found["items"]] == [c["id"]]
        status, t = await api.call("POST", "/tickets", {"customer_id": c["id"], "type": "complaint",
                                                        "subject": "Wrong bill"})
        assert status == 201 and t["number"].startswith("T-")
        status, t = await api.call("PATCH", f"/tickets/{t['id']}", {"status": "solved", "priority": "high"})
        assert status == 200 and t["status"] == "solved" and t["priority"] == "high"
        # interactions: the agent sees their own only; the admin sees all
        mine = await store.open_interaction("voice", "inbound", c["id"])
        await store.set_state(mine.id, "answered", agent_id=ann.id)
        status, listed = await api.call("GET", "/interactions")
        seen = {i["id"] for i in listed["items"]}
        status, every = await api.call("GET", "/interactions", token=ids["admin"])
        assert len(every["items"]) >= 2 and seen < {i["id"] for i in every["items"]}
        other = next(i["id"] for i in every["items"] if i["id"] not in seen)
        status, _ = await api.call("GET", f"/interactions/{other}")
        assert status == 404  # not even whether it exists
        status, one = await api.call("GET", f"/interactions/{other}", token=ids["admin"])
        assert status == 200 and isinstance(one["timeline"], list)
        status, summary = await api.call("GET", "/reports/summary", token=ids["admin"])
        assert summary["interactions"] == len(every["items"])


async def test_password_reset_and_disable_end_access(database) -> None:
    store, ids = await _setup(database)
    _t, ann_token = await store.create_api_token(ids["ann"], "ann", "agent")
    async with running_center(database) as rc, \
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as web_, \
            aiohttp.ClientSession() as http:
        page = await web_.get(f"{rc.base}/login")
        csrf = CSRF_RE.search(await page.text()).group(1)
        r = await web_.post(f"{rc.base}/login", data={"username": "ann", "password": "agent-password",
                                                      "csrf": csrf}, allow_redirects=False)
        assert r.status == 303
        # the web session may call the API; its writes need the CSRF token
        assert (await web_.get(f"{rc.base}/api/v1/me")).status == 200
        api = Api(http, rc.base, ids["admin"])
        status, _ = await api.call("POST", f"/users/{ids['ann']}/password", {"password": "short"})
        assert status == 400
        status, _ = await api.call("POST", f"/users/{ids['ann']}/password", {"password": "a-new-password-1"})
        assert status == 200
        r = await web_.get(f"{rc.base}/console", allow_redirects=False)
        assert r.status == 302 and r.headers["Location"] == "/login"  # that session ended
        assert (await api.call("GET", "/me", token=ann_token))[0] == 200
        status, u = await api.call("PATCH", f"/users/{ids['ann']}", {"disabled": True})
        assert status == 200 and u["disabled"] is True
        assert (await api.call("GET", "/me", token=ann_token))[0] == 401  # a disabled user's tokens stop
        status, audit = await api.call("GET", "/audit?entity=user")
        assert {"user.password", "user.disable"} <= {e["action"] for e in audit["items"]}


async def test_session_writes_need_the_csrf_token(database) -> None:
    store, ids = await _setup(database)
    async with running_center(database) as rc, \
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as web_:
        page = await web_.get(f"{rc.base}/login")
        csrf = CSRF_RE.search(await page.text()).group(1)
        await web_.post(f"{rc.base}/login", data={"username": "ada", "password": "admin-password",
                                                  "csrf": csrf}, allow_redirects=False)
        session_csrf = CSRF_RE.search(await (await web_.get(f"{rc.base}/console")).text()).group(1)
        r = await web_.post(f"{rc.base}/api/v1/teams", json={"name": "green"})
        assert r.status == 403
        assert "green" not in {t.name for t in await store.list_teams()}
        r = await web_.post(f"{rc.base}/api/v1/teams", json={"name": "green"},
                            headers={"X-CSRF-Token": session_csrf})
        assert r.status == 201
        assert "green" in {t.name for t in await store.list_teams()}


async def test_queue_strategy_and_escalation_policy_go_live(database) -> None:
    store, ids = await _setup(database)
    async with running_center(database) as rc, aiohttp.ClientSession() as http:
        api = Api(http, rc.base, ids["admin"])
        policy = {"strategy": "most-skilled", "max_wait": 600,
                  "escalation": [{"after": 60, "raise_priority": 10}, {"after": 120, "overflow": "general"},
                                 {"after": 300, "alert_supervisor": "billing waits"}]}
        status, q = await api.call("PUT", "/queues/billing", {"policy": policy})
        assert status == 200 and q["policy"] == policy
        live = rc.center.engine.config.queues["billing"]
        assert live.strategy.value == "most-skilled" and live.max_wait == 600
        assert [s.action for s in live.escalation] == ["raise-priority", "overflow", "alert-supervisor"]
        assert dict(live.skills) == {"billing": 3}  # the queue's own skills stay
        for bad, word in (({"strategy": "random"}, "strategy"),
                          ({"escalation": [{"after": 5, "overflow": "nowhere"}]}, "nowhere"),
                          ({"colour": "red"}, "policy keys")):
            status, err = await api.call("PUT", "/queues/billing", {"policy": bad})
            assert status == 400 and word in err["error"]["message"], err
        assert rc.center.engine.config.queues["billing"].strategy.value == "most-skilled"
        status, audit = await api.call("GET", "/audit?entity=queue")
        assert audit["items"][0]["after"]["policy"] == policy and audit["items"][0]["before"]["policy"] == {}
    async with running_center(database) as rc:  # a restart reads the stored policy
        assert rc.center.engine.config.queues["billing"].strategy.value == "most-skilled"


async def test_reason_codes_change_what_the_console_offers(database) -> None:
    from tests.callcenter.test_console_ws import cookie_for, open_console

    store, ids = await _setup(database)
    async with running_center(database) as rc, aiohttp.ClientSession() as http:
        api = Api(http, rc.base, ids["admin"])
        for code, label, active in (("break", "Break", True), ("coaching", "Coaching", True),
                                    ("lunch", "Lunch", False)):
            status, _ = await api.call("PUT", f"/reason-codes/{code}", {"label": label, "active": active})
            assert status == 200
        status, listed = await api.call("GET", "/reason-codes")
        effective = [r["code"] for r in listed["effective"]]
        assert effective[:2] == ["break", "coaching"] and "lunch" not in effective
        assert "no-answer" in effective  # the center's own reasons stay
        ws, c = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        hello = await c.next("hello")
        assert [r["code"] for r in hello["reason_codes"]] == effective
        await c.send("set_state", state="not_ready", reason="lunch", request_id="l")
        assert (await c.next("error", request_id="l"))["code"] == "invalid"
        await c.send("set_state", state="not_ready", reason="coaching", request_id="c")
        assert (await c.next("agent_state", state="not_ready"))["reason"] == "coaching"
        await ws.close()
        status, audit = await api.call("GET", "/audit?entity=reason_code")
        assert {e["entity_id"] for e in audit["items"]} == {"break", "coaching", "lunch"}
