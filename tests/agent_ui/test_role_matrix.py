"""The role matrix: every route of the real app and every console message type is declared in
agent_ui/access.py, and walking each one with an agent, a supervisor, an admin, an anonymous
caller and a supervisor of another team gives exactly the declared outcome (real HTTP and a real
websocket against the running app)."""
from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
import pytest
import websockets

from agent_ui import access, schemas
from callcenter.app import build_store, init_app
from callcenter.settings import load_settings
from tests.callcenter.voice_harness import running_center, seed_people

pytestmark = pytest.mark.timeout(180)
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')
PASSWORD = "agent-password"
PEOPLE = {"agent": ("ann", ["agent"], "red"), "supervisor": ("sue", ["supervisor"], "red"),
          "admin": ("ada", ["admin"], None), "other_team": ("bob", ["supervisor"], "blue")}


def _everything_app() -> Any:
    """The app with every optional part mounted (chat, email, Twilio): its routes, not running."""
    settings = load_settings(env={
        "CC_CHAT__ENABLED": "true", "CC_EMAIL__ENABLED": "true", "CC_TWILIO__ENABLED": "true",
        "CC_TWILIO__ACCOUNT_SID": "AC" + "0" * 32, "CC_TWILIO__AUTH_TOKEN": "x" * 32,
        "CC_TWILIO__PUBLIC_BASE_URL": "https://cc.example.com"})
    return init_app(settings)


def _routes(app: Any) -> set[tuple[str, str]]:
    out = set()
    for r in app.router.routes():
        if r.method == "HEAD":
            continue
        out.add((r.method, r.resource.canonical))
    return out


def test_every_route_and_message_type_is_declared() -> None:
    routes = _routes(_everything_app())
    undeclared = sorted(routes - set(access.HTTP))
    assert not undeclared, f"declare these in agent_ui/access.py: {undeclared}"
    stale = sorted(set(access.HTTP) - routes)
    assert not stale, f"declared but not routes of the app: {stale}"
    client = schemas.message_types("client")
    assert client - set(access.WS) == set(), "declare these message types in agent_ui/access.py"
    assert set(access.WS) - client == set(), "declared message types without a schema"


async def _seed(store: Any) -> dict[str, Any]:
    people = await seed_people(store)
    await store.create_team("red")
    await store.create_team("blue")
    ids: dict[str, Any] = {}
    for who, (name, roles, team) in PEOPLE.items():
        u = await store.create_user(name, PASSWORD, roles=roles, display_name=name.title(), team=team)
        ids[who] = u.id
        _t, secret = await store.create_api_token(u.id, f"{name} token", roles[0])
        ids[who + "_token"] = secret
    spare = await store.create_user("spare", PASSWORD, roles=["agent"], display_name="Spare", team="red")
    ids["spare"] = spare.id
    await store.upsert_queue("billing", teams=["red"])
    await store.upsert_queue("support", teams=["blue"])
    ids["customer"] = people["vip"].id
    ticket = (await store.list_tickets(people["vip"].id))[0]
    ids["ticket"] = ticket.id
    return ids


def _path(canonical: str, ids: dict[str, Any]) -> str:
    if canonical == "/static":
        return "/static/console.js"
    if canonical == "/api/v1/teams/{name}/members/{user_id}":
        return f"/api/v1/teams/red/members/{ids['spare']}"
    values = {"id": ids["customer"], "cp_id": 999999, "name": "billing", "code": "resolved",
              "interaction_id": 999999, "attachment_id": 999999, "user_id": ids["spare"],
              "version": 999}
    if canonical.startswith("/api/v1/users/"):
        values["id"] = ids["agent"]
    if canonical.startswith("/api/v1/tickets/"):
        values["id"] = ids["ticket"]
    if canonical.startswith("/api/v1/teams/"):
        values["name"] = "red"
    if canonical.startswith("/api/v1/tokens/") or canonical.startswith("/api/v1/interactions/"):
        values["id"] = 999999
    # a parameter added by a later route: a value that matches nothing (the role check comes first)
    return re.sub(r"{([^}]+)}", lambda m: str(values.get(
        m.group(1), 999999 if m.group(1).endswith("id") or m.group(1) == "version" else "nosuch")), canonical)


def _refusal(canonical: str, text: str) -> str:
    """The refusal's text: plain, or under /api/ the API's error object, with nothing else in it."""
    if not canonical.startswith("/api/"):
        return text
    body = json.loads(text)
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] in ("unauthorized", "forbidden")
    return str(body["error"]["message"])


async def _login(base: str, username: str) -> aiohttp.ClientSession:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    page = await http.get(f"{base}/login")
    csrf = CSRF_RE.search(await page.text())
    assert csrf
    r = await http.post(f"{base}/login", data={"username": username, "password": PASSWORD,
                                               "csrf": csrf.group(1)}, allow_redirects=False)
    assert r.status == 303, await r.text()
    return http


async def test_role_matrix_http_and_websocket(database) -> None:
    store = build_store(load_settings(env={}), database)
    ids = await _seed(store)
    async with running_center(database) as rc:
        base = rc.base
        routes = _routes(rc.app)
        guarded = sorted((m, p) for (m, p) in routes if access.HTTP[(m, p)].scope != "public")
        assert len(guarded) > 30
        sessions = {who: await _login(base, PEOPLE[who][0]) for who in PEOPLE}
        anon = aiohttp.ClientSession()
        try:
            for method, canonical in guarded:
                rule = access.HTTP[(method, canonical)]
                url = base + _path(canonical, ids)
                body = None if method in ("GET", "DELETE") else {}
                r = await anon.request(method, url, json=body, allow_redirects=False,
                                       headers={"Origin": base})
                if rule.page:
                    assert r.status == 302 and r.headers["Location"] == "/login", (method, canonical)
                else:
                    assert r.status == 401, (method, canonical, r.status)
                    assert _refusal(canonical, await r.text()) == "sign in first"
                for who in PEOPLE:
                    role = PEOPLE[who][1][0]
                    api = canonical.startswith("/api/")
                    headers = {"Origin": base}
                    if api:
                        headers["Authorization"] = f"Bearer {ids[who + '_token']}"
                    client = anon if api else sessions[who]
                    r = await client.request(method, url, json=body, headers=headers, allow_redirects=False)
                    text = await r.text()
                    if role not in rule.roles:
                        assert r.status == 403, (who, method, canonical, r.status, text)
                        assert _refusal(canonical, text) == "forbidden"  # nothing else: no data, no hint
                    elif who == "other_team" and canonical in ("/api/v1/users/{id}", "/api/v1/queues/{name}"):
                        assert r.status == 403, (who, method, canonical, r.status, text)  # red's, not blue's
                        assert "ann" not in text and "billing" not in text
                    else:
                        assert r.status not in (401, 403), (who, method, canonical, r.status, text)
            # a supervisor lists only their teams' users and queues; another team's sees none of them
            for who, users, queues in (("supervisor", {"ann", "sue", "spare"}, {"billing"}),
                                       ("other_team", {"bob"}, {"support"})):
                h = {"Authorization": f"Bearer {ids[who + '_token']}"}
                got = await (await anon.get(f"{base}/api/v1/users", headers=h)).json()
                assert {u["username"] for u in got["items"]} == users
                got = await (await anon.get(f"{base}/api/v1/queues", headers=h)).json()
                assert {q["name"] for q in got["items"]} == queues
            await _walk_websocket(base, sessions)
        finally:
            await anon.close()
            for s in sessions.values():
                await s.close()


async def _walk_websocket(base: str, sessions: dict[str, aiohttp.ClientSession]) -> None:
    types = sorted(schemas.message_types("client"))
    for who, http in sessions.items():
        role = PEOPLE[who][1][0]
        cookie = "; ".join(f"{c.key}={c.value}" for c in http.cookie_jar)
        async with websockets.connect(base.replace("http", "ws") + "/ws/agent",
                                      additional_headers={"Cookie": cookie, "Origin": base}) as ws:
            for n, type_ in enumerate(types):
                rid, sentinel = f"m{n}", f"s{n}"
                await ws.send(json.dumps({"type": type_, "request_id": rid}))
                await ws.send(json.dumps({"type": "no_such_type", "request_id": sentinel}))
                replies = []
                while True:
                    msg = json.loads(await ws.recv())
                    schemas.validate(msg, direction="server")
                    if msg.get("request_id") == sentinel:
                        break
                    if msg.get("request_id") == rid:
                        replies.append(msg)
                codes = [m.get("code") for m in replies if m["type"] == "error"]
                if role in access.WS[type_].roles:
                    assert "forbidden" not in codes, (who, type_, replies)
                else:
                    assert codes == ["forbidden"], (who, type_, replies)
                    assert replies[0]["message"] == access.FORBIDDEN_TEXT
