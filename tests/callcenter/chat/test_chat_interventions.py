"""Supervisors on a live chat over the real sockets (issue 15): observe, whisper to the agent
(never seen by the customer), take over (the agent is released, the customer sees the new name);
another team's supervisor is refused; everything is audited and on the timeline."""
from __future__ import annotations

import pytest

from crm_core.chat import ChatLog
from tests.callcenter.chat.harness import (
    chat_center,
    open_agent,
    ready_agent,
    seed_chat_agents,
    start_chat,
    store_for,
)
from tests.callcenter.test_console_ws import cookie_for

pytestmark = pytest.mark.timeout(90)


async def seed(store) -> None:
    await seed_chat_agents(store, n=2)
    for team in ("red", "blue"):
        await store.create_team(team)
    await store.add_team_member("red", (await store.get_user("agent1")).id)
    await store.add_team_member("blue", (await store.get_user("agent2")).id)
    await store.create_user("sup_red", "agent-password", roles=["supervisor"], display_name="Sam Red",
                            team="red", extension="2001")
    await store.create_user("sup_blue", "agent-password", roles=["supervisor"], display_name="Bo Blue",
                            team="blue", extension="2002")


async def test_observe_whisper_and_take_over_a_chat(database):
    store = store_for(database)
    await seed(store)
    async with chat_center(database) as rc:
        agent, _ = await ready_agent(rc.base, "agent1")
        w, welcome = await start_chat(rc.base)
        iid = welcome["chat_id"]
        offer = await agent.next("chat_offer", interaction_id=iid)
        await agent.send("chat_accept", offer_id=offer["offer_id"])
        await agent.next("chat_started", interaction_id=iid)
        assert (await w.next("agent"))["name"] == "Agent 1"
        await w.send("send", client_id="c1", text="My order is late")
        await w.next("message", client_id="c1")

        blue = await open_agent(rc.base, await cookie_for(rc.base, "sup_blue"))
        for t, extra in (("chat_observe", {}), ("chat_whisper", {"text": "hi"}), ("chat_takeover", {})):
            await blue.send(t, interaction_id=iid, request_id=t, **extra)
            assert (await blue.next("error", request_id=t))["code"] == "forbidden"
        other = await open_agent(rc.base, await cookie_for(rc.base, "agent2"))
        await other.send("chat_takeover", interaction_id=iid, request_id="a")
        assert (await other.next("error", request_id="a"))["code"] == "forbidden"  # an agent's role

        sup = await open_agent(rc.base, await cookie_for(rc.base, "sup_red"))
        await sup.send("chat_observe", interaction_id=iid, request_id="o")
        await sup.next("intervention_done", request_id="o")
        seen = await sup.next("chat_observed", interaction_id=iid)
        assert seen["agent"] == "Agent 1" and [m["text"] for m in seen["messages"]][-1] == "My order is late"
        await agent.send("chat_send", interaction_id=iid, client_id="a1", text="Checking now.")
        got = await sup.next("observed_message", interaction_id=iid)
        assert got["message"]["text"] == "Checking now." and got["message"]["author"] == "Agent 1"

        await sup.send("chat_whisper", interaction_id=iid, text="Offer free shipping", request_id="wh")
        await sup.next("intervention_done", request_id="wh")
        whisper = await agent.next("whisper", interaction_id=iid)
        assert (whisper["by"], whisper["text"]) == ("Sam Red", "Offer free shipping")

        await sup.send("chat_takeover", interaction_id=iid, request_id="t")
        await sup.next("intervention_done", request_id="t")
        started = await sup.next("chat_started", interaction_id=iid)
        assert [m["text"] for m in started["messages"]][-1] == "Sam Red joined the chat."
        released = await agent.next("wrapup_saved", interaction_id=iid)
        assert released["disposition"] == "taken_over"
        assert (await agent.next("supervisor_notice"))["action"] == "chat_takeover"
        assert (await w.next("agent"))["name"] == "Sam Red"
        # the agent is free for new work at once (no wrap-up) and may no longer write
        await agent.send("chat_send", interaction_id=iid, client_id="a2", text="still here?", request_id="x")
        assert (await agent.next("error", request_id="x"))["code"] == "forbidden"
        agent1 = await store.get_user("agent1")
        assert rc.center.directory.status(str(agent1.id))["state"] == "ready"

        await sup.send("chat_send", interaction_id=iid, client_id="s1", text="Shipping is on us.")
        mine = await sup.next("chat_message", interaction_id=iid, client_id="s1")
        reply = await w.next("message", seq=mine["seq"])
        assert (reply["sender"], reply["author"]) == ("agent", "Sam Red")
        await w.send("send", client_id="c2", text="Thanks!")
        await sup.next("chat_message", interaction_id=iid, text="Thanks!")
        # the customer never saw the whisper
        assert not [m for m in w.seen + w.backlog if "shipping" in str(m.get("text", "")).lower()
                    and m.get("text") == "Offer free shipping"]
        await w.send("end")
        await sup.next("chat_ended", interaction_id=iid)
        await sup.send("chat_wrapup", interaction_id=iid, disposition="resolved", notes="took over")
        await sup.next("wrapup_saved", interaction_id=iid)
        for c in (agent, blue, other, sup, w):
            await c.close()
    timeline = await store.timeline(iid)
    sup_actions = [e.data["action"] for e in timeline if e.kind == "supervisor"]
    assert sup_actions == ["chat_observe", "chat_whisper", "chat_takeover"]
    assert "takeover" in [e.kind for e in timeline]
    transcript = [m.body for m in await ChatLog(store.db).since(iid, 0, 100)]
    assert "Offer free shipping" not in transcript
    audit = [a.action for a in await store.list_audit(limit=1000) if a.actor == "sup_red"]
    assert {"supervisor.chat_observe", "supervisor.chat_whisper", "supervisor.chat_takeover"} <= set(audit)
    assert (await store.get_interaction(iid)).state == "wrapup_done"
