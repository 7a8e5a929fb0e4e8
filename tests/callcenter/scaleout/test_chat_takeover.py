"""A web chat moves between two live processes (issue 18): the widget's socket drops and the
balancer sends the reconnect to the other process. That process takes the chat over from the
live owner, which lets it go (the live channel): one owner at a time, the agent's console (on the
first process, reloaded there) goes on with the chat through the new owner, nothing lost or
duplicated."""
from __future__ import annotations

from contextlib import AsyncExitStack, asynccontextmanager

import pytest

from callcenter.app import init_app
from callcenter.keys import CENTER
from callcenter.scaleout.setup import SCALEOUT
from callcenter.settings import load_settings
from tests.callcenter.chat.harness import chat_env, open_agent, open_widget, seed_chat_agents, store_for
from tests.callcenter.scaleout.test_two_processes import _true, until
from tests.callcenter.test_console_ws import cookie_for
from tests.callcenter.voice_harness import WEEKDAY_NOON_NY
from tests.faults.test_chat_failover import consistent_chats
from tests.http import serve

pytestmark = pytest.mark.timeout(90)


@asynccontextmanager
async def process(database, env):
    app = init_app(load_settings(env=env), database=database, ivr_clock=lambda: WEEKDAY_NOON_NY)
    async with serve(app) as base:
        yield app, base


async def test_the_widget_reconnects_to_the_other_process_which_takes_the_chat_over(database, redis_prefix):
    if database.is_sqlite:
        pytest.skip("several processes share PostgreSQL")
    url, prefix = redis_prefix
    await seed_chat_agents(store_for(database))
    env = {"CC_REDIS__URL": url, "CC_REDIS__PREFIX": prefix, "CC_SCALEOUT__ENABLED": "true",
           "CC_SCALEOUT__LEASE_TTL_S": "2", **chat_env()}
    async with AsyncExitStack() as stack:
        a, base_a = await stack.enter_async_context(process(database, env))
        b, base_b = await stack.enter_async_context(process(database, env))
        agent = await open_agent(base_a, await cookie_for(base_a, "agent1"))
        await agent.next("hello")
        await until(lambda: _true(all(x[SCALEOUT].live.subscribed.is_set() for x in (a, b))))
        await agent.send("set_state", state="ready")
        await agent.next("agent_state", state="ready")

        w = await open_widget(base_a)
        await w.next("status")
        await w.send("start", name="Carla Customer", email="carla@example.com")
        welcome = await w.next("welcome")
        iid, token = welcome["chat_id"], welcome["token"]
        offer = await agent.next("chat_offer", interaction_id=iid)
        await agent.send("chat_accept", offer_id=offer["offer_id"])
        await agent.next("chat_started", interaction_id=iid)
        await w.send("send", client_id="c0", text="first")
        last = (await w.next("message", client_id="c0"))["seq"]
        await agent.next("chat_message", interaction_id=iid, client_id="c0")

        await w.close()  # the socket drops; the reconnect reaches B
        w = await open_widget(base_b)
        await w.next("status")
        await w.send("resume", chat_id=iid, token=token, last_seq=last)
        back = await w.next("welcome")
        assert back["resumed"] is True and back["state"] == "active"
        await until(lambda: _true(iid not in a[CENTER].chat.chats))  # A let it go
        assert iid in b[CENTER].chat.chats
        # the agent's console reloads, on A again: the chat's new owner sends it the chat
        cookie = await cookie_for(base_a, "agent1")
        await agent.close()
        agent = await open_agent(base_a, cookie)
        await agent.next("hello")
        started = await agent.next("chat_started", interaction_id=iid)
        assert [m["text"] for m in started["messages"]] == ["first"]
        # the console on A: its messages go to the chat's new owner
        await agent.send("chat_send", interaction_id=iid, client_id="a0", text="second")
        await agent.next("chat_message", interaction_id=iid, client_id="a0")
        assert (await w.next("message", client_id="a0"))["text"] == "second"
        await w.send("send", client_id="c1", text="third")
        await w.next("message", client_id="c1")
        await agent.next("chat_message", interaction_id=iid, client_id="c1")
        await agent.send("chat_end", interaction_id=iid)
        await w.next("ended")
        await agent.send("chat_wrapup", interaction_id=iid, disposition="resolved", notes="moved")
        await agent.next("wrapup_saved", interaction_id=iid)
        await consistent_chats(database, {iid: ["first", "second", "third"]})
        for x in (w, agent):
            await x.close()
