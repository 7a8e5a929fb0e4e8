"""Reconnects: the customer and the agent resume from the last message they have, with nothing
lost and nothing duplicated; a resend of an unacknowledged message is not stored twice."""
from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from crm_core.chat import ChatMessageRow
from tests.callcenter.chat.harness import (
    chat_center,
    open_agent,
    open_widget,
    ready_agent,
    seed_chat_agents,
    start_chat,
    store_for,
)

pytestmark = pytest.mark.timeout(90)


async def test_both_sides_reconnect_mid_conversation(database):
    store = store_for(database)
    await seed_chat_agents(store)
    async with chat_center(database) as rc:
        agent, cookie = await ready_agent(rc.base)
        w, welcome = await start_chat(rc.base)
        iid, token = welcome["chat_id"], welcome["token"]
        offer = await agent.next("chat_offer", interaction_id=iid)
        await agent.send("chat_accept", offer_id=offer["offer_id"])
        await agent.next("chat_started", interaction_id=iid)
        await w.next("agent")
        last = 0
        for n in range(3):
            await w.send("send", client_id=f"c{n}", text=f"customer {n}")
            last = (await w.next("message", client_id=f"c{n}"))["seq"]
        # the customer's page goes away; the agent keeps writing
        await w.close()
        for n in range(3):
            await agent.send("chat_send", interaction_id=iid, client_id=f"a{n}", text=f"agent {n}")
            await agent.next("chat_message", interaction_id=iid, client_id=f"a{n}")
        # the agent's console reloads too, and gets the whole transcript once
        await agent.close()
        agent = await open_agent(rc.base, cookie)
        await agent.next("hello")
        started = await agent.next("chat_started", interaction_id=iid)
        assert [m["text"] for m in started["messages"]] == [
            "customer 0", "customer 1", "customer 2", "agent 0", "agent 1", "agent 2"]
        # the customer comes back with the last message it had, and resends one it never saw
        # acknowledged (same client id)
        w = await open_widget(rc.base)
        await w.next("status")
        await w.send("resume", chat_id=iid, token=token, last_seq=last)
        back = await w.next("welcome")
        assert back["resumed"] is True and back["last_seq"] == last + 3
        missed = [await w.next("message") for _ in range(3)]
        assert [m["text"] for m in missed] == ["agent 0", "agent 1", "agent 2"]
        assert [m["seq"] for m in missed] == [last + 1, last + 2, last + 3]
        assert (await w.next("agent"))["name"] == "Agent 1"
        await w.send("send", client_id="c2", text="customer 2")  # a resend
        again = await w.next("message", client_id="c2")
        assert again["seq"] == last
        await w.send("send", client_id="c3", text="customer 3")
        new = await w.next("message", client_id="c3")
        assert new["seq"] == last + 4
        fresh = await agent.next("chat_message", interaction_id=iid, client_id="c3")
        assert fresh["seq"] == new["seq"]
        assert not [m for m in w.drop("message") if m["seq"] <= last + 3]  # nothing twice
        # a wrong token resumes nothing
        w2 = await open_widget(rc.base)
        await w2.next("status")
        await w2.send("resume", chat_id=iid, token="0" * 64, last_seq=0)
        assert (await w2.next("error"))["code"] == "not_found"
        for c in (w, w2, agent):
            await c.close()
    async with database.session() as s:
        n, distinct = (await s.execute(select(func.count(), func.count(func.distinct(ChatMessageRow.body)))
                                       .where(ChatMessageRow.interaction_id == iid))).one()
    assert n == distinct == 7


async def test_a_customer_who_never_comes_back_has_left(database):
    store = store_for(database)
    await seed_chat_agents(store)
    async with chat_center(database, CC_CHAT__RESUME_S="0.3") as rc:
        w, welcome = await start_chat(rc.base)
        await w.next("queue")
        await w.close()
        iid = welcome["chat_id"]
        for _ in range(100):
            if (await store.get_interaction(iid)).state == "abandoned":
                break
            await asyncio.sleep(0.05)
    i = await store.get_interaction(iid)
    assert i.state == "abandoned"
    assert "end" in [e.kind for e in await store.timeline(iid)]
