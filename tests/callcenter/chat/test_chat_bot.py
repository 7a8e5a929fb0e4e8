"""The IVR flow as a chat bot before the queue (chat.bot_flow): its prompts are stored chat
messages with quick-reply buttons, the customer's answers steer it, and its queue result routes
the chat."""
from __future__ import annotations

import pytest

from tests.callcenter.chat.harness import chat_center, ready_agent, seed_chat_agents, start_chat, store_for

pytestmark = pytest.mark.timeout(90)


async def test_the_demo_flow_runs_as_a_bot_then_routes(database):
    store = store_for(database)
    await seed_chat_agents(store)
    async with chat_center(database, CC_CHAT__BOT_FLOW="demo") as rc:
        agent, _ = await ready_agent(rc.base)
        w, welcome = await start_chat(rc.base)
        iid = welcome["chat_id"]
        first = await w.next("message", sender="bot")
        assert [b["value"] for b in first.get("buttons", [])] == ["1", "2"]  # the language menu
        await w.send("send", client_id="b1", text="English")
        await w.next("message", client_id="b1")
        menu = await w.next("message", sender="bot")
        while not menu.get("buttons"):
            menu = await w.next("message", sender="bot")
        labels = {b["label"].lower(): b["value"] for b in menu["buttons"]}
        choice = labels["agent"]
        await w.send("send", client_id="b2", text=choice)
        await w.next("message", client_id="b2")
        # the bot's answers go on until the flow queues the chat; then an agent is offered it
        offer = await agent.next("chat_offer", interaction_id=iid)
        await agent.send("chat_accept", offer_id=offer["offer_id"])
        started = await agent.next("chat_started", interaction_id=iid)
        senders = [m["sender"] for m in started["messages"]]
        assert senders[0] == "bot" and "customer" in senders  # the agent sees the bot conversation
        await w.close()
        await agent.close()
    kinds = [e.kind for e in await store.timeline(iid)]
    assert kinds.index("ivr") < kinds.index("queue") < kinds.index("offer")
