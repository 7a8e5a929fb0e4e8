"""The /ws/agent transport over real HTTP: session, origin, schemas, errors, limits, forwarding.

The console side is StubConsoleFacade (see conftest): these tests cover the web transport only;
the console behaviour end to end needs the real ConsoleService.
"""
from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from agent_ui.routes import UiConfig
from tests.agent_ui.conftest import client, login, make_app, recv
from tests.http import serve


async def open_console(http: aiohttp.ClientSession, url: str, **kw):
    r = await login(http, url)
    assert r.status == 303
    return await http.ws_connect(f"{url}/ws/agent", headers={"Origin": url}, **kw)


async def resume(ws) -> tuple[dict, dict]:
    hello = await recv(ws)
    state = await recv(ws)
    assert hello["type"] == "hello" and state["type"] == "agent_state"
    return hello, state


async def test_upgrade_refused_without_session(ws_server):
    async with client() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await http.ws_connect(f"{ws_server}/ws/agent", headers={"Origin": ws_server})
        assert e.value.status == 401
        http.cookie_jar.update_cookies({"cc_session": "forged"})
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await http.ws_connect(f"{ws_server}/ws/agent", headers={"Origin": ws_server})
        assert e.value.status == 401


@pytest.mark.parametrize("origin", [None, "http://evil.example", "null"])
async def test_upgrade_refused_from_another_origin(ws_server, ws_facade, origin):
    async with client() as http:
        await login(http, ws_server)
        headers = {"Origin": origin} if origin else {}
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await http.ws_connect(f"{ws_server}/ws/agent", headers=headers)
        assert e.value.status == 403
    assert ws_facade.links == []


async def test_resume_then_reply_with_version_and_request_id(ws_server, ws_facade):
    async with client() as http, await open_console(http, ws_server) as ws:
        hello, state = await resume(ws)
        assert hello["user"]["username"] == "alice" and hello["v"] == 1
        assert state["state"] == "offline"
        await ws.send_json({"type": "search", "q": "smith", "request_id": "r1"})
        reply = await recv(ws)
        assert reply == {"type": "search_results", "q": "smith", "items": [], "page": 1,
                         "has_more": False, "v": 1, "request_id": "r1"}


@pytest.mark.parametrize("frame, code", [
    ("{not json", "bad_message"),
    ("[1, 2]", "bad_message"),
    ('{"no": "type"}', "bad_message"),
    ('{"type": "launch_rockets"}', "unknown_type"),
    ('{"type": "hello", "v": 1}', "unknown_type"),  # a server message sent by a console
    ('{"type": "set_state", "state": "ready", "extra": 1}', "bad_message"),
    ('{"type": "set_state", "state": "not_ready"}', "bad_message"),
    ('{"type": "answer", "interaction_id": "12"}', "bad_message"),
    ('{"type": "search", "q": NaN}', "bad_message"),
    ("[" * 100_00 + "]" * 100_00, "bad_message"),
])
async def test_bad_frames_get_an_error_and_the_socket_stays_open(ws_server, ws_facade, frame, code):
    async with client() as http, await open_console(http, ws_server) as ws:
        await resume(ws)
        await ws.send_str(frame)
        err = await recv(ws)
        assert err["type"] == "error" and err["code"] == code, err
        await ws.send_json({"type": "search", "q": "still here"})
        assert (await recv(ws))["type"] == "search_results"
    assert [m["type"] for m in ws_facade.received] == ["search"]


async def test_schema_error_names_the_field_and_echoes_request_id(ws_server):
    async with client() as http, await open_console(http, ws_server) as ws:
        await resume(ws)
        await ws.send_json({"type": "submit_wrapup", "interaction_id": 5, "disposition": "ok",
                            "notes": "x", "ticket": {"type": "complaint"}, "request_id": "w1"})
        err = await recv(ws)
        assert err["code"] == "bad_message" and err["request_id"] == "w1"
        assert "/ticket" in err["message"]


async def test_binary_frame_is_refused(ws_server):
    async with client() as http, await open_console(http, ws_server) as ws:
        await resume(ws)
        await ws.send_bytes(b'{"type": "search", "q": "x"}')
        assert (await recv(ws))["code"] == "bad_message"


async def test_refusal_and_server_bug_become_errors(ws_server):
    async with client() as http, await open_console(http, ws_server) as ws:
        await resume(ws)
        await ws.send_json({"type": "search", "q": "refuse", "request_id": "a"})
        err = await recv(ws)
        assert (err["code"], err["message"], err["request_id"]) == ("forbidden", "not allowed for you", "a")
        await ws.send_json({"type": "search", "q": "boom", "request_id": "b"})
        err = await recv(ws)
        assert err["code"] == "internal" and "bug" not in err["message"]
        await ws.send_json({"type": "search", "q": "after"})
        assert (await recv(ws))["type"] == "search_results"


async def test_oversized_frame_closes_with_1009(ws_server, ws_facade):
    async with client() as http, await open_console(http, ws_server) as ws:
        await resume(ws)
        await ws.send_str(json.dumps({"type": "search", "q": "x" * 100_000}))
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 1009
    await asyncio.wait_for(ws_facade.links[0].closed.wait(), 5)


async def test_link_messages_are_forwarded_and_link_closed_when_client_leaves(ws_server, ws_facade):
    async with client() as http:
        ws = await open_console(http, ws_server)
        await resume(ws)
        link = ws_facade.links[0]
        link.push("contact_state", interaction_id=7, state="ringing", at="2026-11-26T09:00:01+00:00")
        assert (await recv(ws))["state"] == "ringing"
        await ws.close()
        await asyncio.wait_for(link.closed.wait(), 5)


async def test_link_end_asks_the_console_to_reconnect(ws_server, ws_facade):
    async with client() as http, await open_console(http, ws_server) as ws:
        await resume(ws)
        ws_facade.links[0].end()
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 4000
    await asyncio.wait_for(ws_facade.links[0].closed.wait(), 5)


async def test_logout_closes_open_consoles_with_4401(ws_server, ws_facade):
    async with client() as http, await open_console(http, ws_server) as ws:
        await resume(ws)
        page = await (await http.get(f"{ws_server}/console")).text()
        csrf = page.split('name="csrf" value="')[1].split('"')[0]
        r = await http.post(f"{ws_server}/logout", data={"csrf": csrf}, allow_redirects=False)
        assert r.status == 303
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 4401
    await asyncio.wait_for(ws_facade.links[0].closed.wait(), 5)


async def test_session_expiry_is_noticed_on_an_idle_socket(ws_facade, clock):
    app = make_app(ws_facade, UiConfig(session_recheck_s=0.05))
    async with serve(app) as url, client() as http, await open_console(http, url) as ws:
        await resume(ws)
        clock.advance(hours=13)  # past the absolute session lifetime; the console sends nothing
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 4401
    await asyncio.wait_for(ws_facade.links[0].closed.wait(), 5)


async def test_logout_in_another_process_closes_the_socket(ws_facade):
    app = make_app(ws_facade, UiConfig(session_recheck_s=0.05))
    async with serve(app) as url, client() as http, await open_console(http, url) as ws:
        await resume(ws)
        token = next(c.value for c in http.cookie_jar if c.key == "cc_session")
        await ws_facade.auth.logout(token)  # as another server process would, through the DB
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 4401
