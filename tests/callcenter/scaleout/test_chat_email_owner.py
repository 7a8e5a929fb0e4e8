"""Scale-out: a chat and a mail belong to the process that took them (the widget's socket, the
SMTP session); the agent's console may be on another process. The console's chat and email
actions (chat_accept, chat_send, chat_wrapup, email_accept, email_done...) go to the owner.

Before, only call actions were forwarded: the other process answered `not_found`, the owner
withdrew the offer when it timed out, set the agent not-ready and offered the contact again (the
load benchmark counted these chats and mails as lost or duplicated)."""
from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack, asynccontextmanager

import pytest

from callcenter.app import build_store, init_app
from callcenter.channels.email.setup import EMAIL
from callcenter.keys import CENTER
from callcenter.scaleout.setup import SCALEOUT
from callcenter.settings import load_settings
from tests.callcenter.chat.harness import ORIGIN, SITE, start_chat
from tests.callcenter.email.harness import mail
from tests.callcenter.voice_harness import WEEKDAY_NOON_NY, Console, seed_people
from tests.http import serve

pytestmark = pytest.mark.timeout(90)


async def until(predicate, timeout: float = 20.0) -> None:
    async def poll() -> None:
        while not await predicate():
            await asyncio.sleep(0.05)
    await asyncio.wait_for(poll(), timeout)


@asynccontextmanager
async def process(database, env):
    app = init_app(load_settings(env=env), database=database, ivr_clock=lambda: WEEKDAY_NOON_NY)
    async with serve(app) as base:
        yield app, base


async def test_chat_and_mail_on_one_process_agent_on_the_other(database, redis_prefix, tmp_path):
    if database.is_sqlite:
        pytest.skip("several processes share PostgreSQL")
    url, prefix = redis_prefix
    store = build_store(load_settings(env={}), database)
    await seed_people(store, agents=0)
    await store.create_user("agent1", "agent-password", roles=["agent"], display_name="Agent 1",
                            extension="1001", skills={"billing": 5, "support": 5, "email": 5},
                            capacities={"voice": 1, "chat": 2, "email": 2})
    env = {"CC_REDIS__URL": url, "CC_REDIS__PREFIX": prefix, "CC_SCALEOUT__ENABLED": "true",
           "CC_CHAT__SITES": json.dumps([{"id": SITE, "origins": [ORIGIN], "secret": "s"}]),
           "CC_CHAT__DEMO_SITE_PORT": "", "CC_EMAIL__ENABLED": "true", "CC_EMAIL__SMTP_PORT": "0",
           "CC_EMAIL__SMARTHOST_PORT": "1", "CC_EMAIL__ATTACHMENTS_DIR": str(tmp_path / "mail")}
    async with AsyncExitStack() as stack:
        a, base_a = await stack.enter_async_context(process(database, env))
        b, _base_b = await stack.enter_async_context(process(database, env))
        console = await Console.open(b[CENTER], store, "agent1")  # the console is on B
        await until(lambda: _true(a[SCALEOUT].connected(console.user.id)))
        await console.send("set_state", state="ready")

        # a chat whose widget is on A
        w, welcome = await start_chat(base_a)
        iid = welcome["chat_id"]
        assert iid in a[CENTER].chat.chats and iid not in b[CENTER].chat.chats
        offer = await console.next("chat_offer", timeout=20, interaction_id=iid)
        await console.send("chat_accept", offer_id=offer["offer_id"])  # B forwards it to A
        await w.next("agent")
        await console.next("chat_started", interaction_id=iid)
        await console.send("chat_send", interaction_id=iid, client_id="a1", text="Hello from B")
        assert (await w.next("message", sender="agent"))["text"] == "Hello from B"
        await console.send("chat_end", interaction_id=iid)
        await console.send("chat_wrapup", interaction_id=iid, disposition="resolved", notes="ok")

        # a mail taken by A's SMTP side
        await a[EMAIL].deliver(mail().as_bytes(), "ann@example.org", ["support@example.com"])
        e_offer = await console.next("offer", timeout=20, channel="email")
        eid = e_offer["interaction_id"]
        assert eid in a[EMAIL].contacts and eid not in b[EMAIL].contacts
        await console.send("email_accept", offer_id=e_offer["offer_id"])
        await console.next("email", interaction_id=eid)
        await console.send("email_done", interaction_id=eid)
        await console.next("wrapup", interaction_id=eid)
        await console.send("submit_wrapup", interaction_id=eid, disposition="resolved", notes="ok")

        async def both_done() -> bool:
            states = [(await store.get_interaction(i)).state for i in (iid, eid)]
            return states == ["wrapup_done", "wrapup_done"]
        await until(both_done)
        await w.close()
    assert "not_ready" not in [m.get("state") for m in console.seen if m["type"] == "agent_state"]
    assert "chat_withdrawn" not in console.types() and "offer_withdrawn" not in console.types()
    for i in (iid, eid):  # offered once, never requeued
        kinds = [e.kind for e in await store.timeline(i)]
        assert kinds.count("offer") == 1 and "requeue" not in kinds and "decline" not in kinds, kinds


async def _true(v: bool) -> bool:
    return v
