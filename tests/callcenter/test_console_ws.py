"""The agent console over a real websocket (the `websockets` library as an independent client)
against the running app with the simulated PBX. Every frame either way is checked against its
JSON Schema."""
from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import aiohttp
import pytest
import websockets

from agent_ui import schemas
from callcenter.app import build_store
from callcenter.settings import load_settings
from tests.callcenter.voice_harness import REGULAR_PHONE, VIP_PHONE, running_center, seed_people

pytestmark = pytest.mark.timeout(90)
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


class WsConsole:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def send(self, type_: str, **fields: Any) -> None:
        msg = {"type": type_, **fields}
        schemas.validate(msg, direction="client")
        await self.ws.send(json.dumps(msg))

    async def next(self, type_: str, timeout: float = 15.0, **match: Any) -> dict[str, Any]:
        async def find() -> dict[str, Any]:
            while True:
                msg = json.loads(await self.ws.recv())
                schemas.validate(msg, direction="server")
                self.seen.append(msg)
                if msg["type"] == type_ and all(msg.get(k) == v for k, v in match.items()):
                    return msg
        return await asyncio.wait_for(find(), timeout)


async def cookie_for(base: str, username: str) -> str:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        page = await http.get(f"{base}/login")
        csrf = CSRF_RE.search(await page.text())
        assert csrf
        r = await http.post(f"{base}/login", data={"username": username, "password": "agent-password",
                                                   "csrf": csrf.group(1)}, allow_redirects=False)
        assert r.status == 303, await r.text()
        return "; ".join(f"{c.key}={c.value}" for c in http.cookie_jar)


async def open_console(base: str, cookie: str) -> tuple[Any, WsConsole]:
    ws = await websockets.connect(base.replace("http", "ws") + "/ws/agent",
                                  additional_headers={"Cookie": cookie, "Origin": base})
    return ws, WsConsole(ws)


def _store(database):
    return build_store(load_settings(env={}), database)


async def test_pop_waits_for_ack_then_rings_and_reconnect_resumes(database):
    store = _store(database)
    await seed_people(store)
    async with running_center(database, CC_VOICE__ACK_TIMEOUT_S="20") as rc:
        cookie = await cookie_for(rc.base, "agent1")
        ws, c = await open_console(rc.base, cookie)
        await c.next("hello")
        await c.next("agent_state", state="offline")
        await c.send("set_state", state="ready", request_id="r1")
        await c.next("agent_state", state="ready")
        events = rc.sim.subscribe()
        rc.sim.call(VIP_PHONE, digits=["1"])
        offer = await c.next("offer")
        assert offer["pop"]["card"]["customer"]["tier"] == "vip"

        # The console drops before acknowledging; it comes back within the grace and resumes.
        await ws.close()
        ws, c = await open_console(rc.base, cookie)
        await c.next("hello")
        await c.next("agent_state", state="ready")
        again = await c.next("offer")
        assert again["offer_id"] == offer["offer_id"] and again["pop"] == offer["pop"]
        # No ring yet: the AGI is waiting for the acknowledgement (timeout here is 20 s).
        await asyncio.sleep(0)
        assert all(e.name != "DialBegin" for e in _drain(events))
        await c.send("ack_offer", offer_id=offer["offer_id"])
        await c.next("contact_state", state="ringing")
        dial = [e for e in _drain(events) if e.name == "DialBegin"]
        assert dial and dial[0].get("DestChannel", "").startswith("PJSIP/1001")

        # A second tab resumes mid-call: state and the contact.
        await c.send("answer", interaction_id=offer["interaction_id"])
        await c.next("contact_state", state="talking")
        ws2, c2 = await open_console(rc.base, cookie)
        await c2.next("hello")
        await c2.next("agent_state", state="busy")
        assert (await c2.next("contact_state"))["state"] == "talking"
        await ws2.close()
        await ws.close()
    kinds = [e.kind for e in await store.timeline(offer["interaction_id"])]
    assert kinds.index("pop_ack") < kinds.index("dial") < kinds.index("ring")


async def test_console_gone_requeues_offer_and_agent_not_ready(database):
    store = _store(database)
    await seed_people(store, agents=2)
    async with running_center(database, CC_VOICE__ACK_TIMEOUT_S="20",
                              CC_VOICE__RECONNECT_GRACE_S="0.2") as rc:
        ws1, a1 = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        await a1.send("set_state", state="ready")
        await a1.next("agent_state", state="ready")
        rc.sim.call(REGULAR_PHONE, digits=["1", "0"])
        offer = await a1.next("offer")
        await ws1.close()  # agent1's browser is gone for good
        ws2, a2 = await open_console(rc.base, await cookie_for(rc.base, "agent2"))
        await a2.send("set_state", state="ready")
        second = await a2.next("offer")
        assert second["interaction_id"] == offer["interaction_id"]
        await ws2.close()
    rec = rc.center.engine.store.agent(str((await store.get_user("agent1")).id))
    assert rec is not None and rec.presence.value == "not-ready"
    kinds = [e.kind for e in await store.timeline(offer["interaction_id"])]
    assert "requeue" in kinds


async def test_rona_over_the_socket(database):
    store = _store(database)
    await seed_people(store)
    async with running_center(database) as rc:
        rc.sim.agent("1001", never_answer=True)
        ws, c = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        await c.send("set_state", state="ready")
        await c.next("agent_state", state="ready")
        rc.sim.call(REGULAR_PHONE, digits=["1", "0"])
        offer = await c.next("offer")
        await c.send("ack_offer", offer_id=offer["offer_id"])
        await c.next("contact_state", state="ringing")
        withdrawn = await c.next("offer_withdrawn", timeout=30)
        assert withdrawn["reason"] == "no_answer" and withdrawn["offer_id"] == offer["offer_id"]
        await c.next("agent_state", state="not_ready")
        await ws.close()


async def test_unknown_caller_create_customer_over_the_socket(database):
    store = _store(database)
    await seed_people(store)
    async with running_center(database) as rc:
        ws, c = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        await c.send("set_state", state="ready")
        rc.sim.call("+12025550777", digits=["1", "0"])
        offer = await c.next("offer")
        assert offer["pop"]["known"] is False
        await c.send("create_customer", name="Nina New", email="nina@example.com",
                     interaction_id=offer["interaction_id"])
        created = await c.next("customer")
        assert created["card"]["customer"]["name"] == "Nina New"
        await c.send("create_customer", name="Bad Phone", phone="12")  # a clear error; the socket stays
        err = await c.next("error")
        assert err["code"] == "invalid" and "phone" in err["message"].lower()
        await c.ws.send(json.dumps({"type": "create_customer", "name": ""}))  # breaks the schema
        err = await c.next("error")
        assert err["code"] == "bad_message"
        await ws.close()
    nina = await store.identify(phone="202-555-0777")
    assert nina is not None and nina.name == "Nina New"


async def test_abandon_withdraws_the_offer(database):
    store = _store(database)
    await seed_people(store)
    async with running_center(database, CC_VOICE__ACK_TIMEOUT_S="20") as rc:
        ws, c = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        await c.send("set_state", state="ready")
        call = rc.sim.call(REGULAR_PHONE, digits=["1", "0"])
        offer = await c.next("offer")
        call.hangup()  # the caller gives up while the pop is on screen
        gone = await c.next("offer_withdrawn")
        assert gone["reason"] == "caller_abandoned"
        await c.next("agent_state", state="ready")
        await ws.close()
    i = await store.get_interaction(offer["interaction_id"])
    assert i.state == "abandoned"


def _drain(q: asyncio.Queue) -> list:
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out
