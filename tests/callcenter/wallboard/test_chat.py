"""Chats reach the wallboard through the same routing events as calls: a chat waits in its queue
(channel `chat`), is accepted (the agent is busy with the customer), and ends (handled)."""
from __future__ import annotations

import pytest

from tests.callcenter.chat.harness import chat_center, ready_agent, seed_chat_agents, start_chat, store_for
from tests.callcenter.test_console_ws import cookie_for
from tests.callcenter.wallboard.harness import Board, agent, queue

pytestmark = pytest.mark.timeout(90)


async def test_a_chat_on_the_wallboard(database):
    store = store_for(database)
    await seed_chat_agents(store)
    await store.create_customer("Carla Customer", emails=["carla@example.com"], lifetime_value="60000")
    await store.create_user("ada", "agent-password", roles=["admin"], display_name="Ada")
    async with chat_center(database) as rc:
        ada = await Board.open(rc.base, await cookie_for(rc.base, "ada"))
        await ada.next()
        w, welcome = await start_chat(rc.base)
        iid = welcome["chat_id"]
        waiting = await ada.next(lambda f: (queue(f, "general", "chat") or {}).get("waiting") == 1)
        row = queue(waiting, "general", "chat")["contacts"][0]
        assert row["interaction_id"] == iid and row["channel"] == "chat"
        await ada.next(lambda f: queue(f, "general", "chat")["contacts"][0]["customer"] == "Carla Customer")

        console, _cookie = await ready_agent(rc.base)
        offer = await console.next("chat_offer", interaction_id=iid)
        await console.send("chat_accept", offer_id=offer["offer_id"])
        await console.next("chat_started", interaction_id=iid)
        busy = await ada.next(lambda f: agent(f, "Agent 1")["state"] == "busy")
        assert agent(busy, "Agent 1")["contacts"][0]["interaction_id"] == iid
        assert agent(busy, "Agent 1")["contacts"][0]["channel"] == "chat"
        chats = queue(busy, "general", "chat")
        assert chats["waiting"] == 0 and chats["answered"] == 1

        await console.send("chat_end", interaction_id=iid)
        done = await ada.next(lambda f: queue(f, "general", "chat")["handled"] == 1)
        assert agent(done, "Agent 1")["handled"] == 1 and agent(done, "Agent 1")["contacts"] == []
        await w.close()
        await console.close()
        await ada.close()
