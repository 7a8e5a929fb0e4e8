"""Web chat over real websockets: a widget on another origin and an agent console, against the
running app. Every frame either way is checked against its JSON Schema."""
from __future__ import annotations

import aiohttp
import pytest
import websockets
from sqlalchemy import select

from callcenter.keys import CENTER
from crm_core.chat import ChatMessageRow
from tests.callcenter.chat.harness import (
    ORIGIN,
    chat_center,
    open_widget,
    ready_agent,
    seed_chat_agents,
    start_chat,
    store_for,
)

pytestmark = pytest.mark.timeout(90)


async def test_an_origin_not_on_the_list_is_refused(database):
    store = store_for(database)
    await seed_chat_agents(store)
    async with chat_center(database) as rc:
        for origin in ("http://evil.example.test", "null", ORIGIN + ".evil.test"):
            with pytest.raises(websockets.InvalidStatus) as e:
                await open_widget(rc.base, origin=origin)
            assert e.value.response.status_code == 403
        with pytest.raises(websockets.InvalidStatus):  # an allowed origin, but another site
            await open_widget(rc.base, site="other")
        async with aiohttp.ClientSession() as http:
            ok = await http.get(f"{rc.base}/widget/status?site=shop", headers={"Origin": ORIGIN})
            assert ok.status == 200 and ok.headers["Access-Control-Allow-Origin"] == ORIGIN
            assert (await ok.json())["agents_available"] is False
            bad = await http.get(f"{rc.base}/widget/status?site=shop",
                                 headers={"Origin": "http://evil.example.test"})
            assert bad.status == 403 and "Access-Control-Allow-Origin" not in bad.headers
            none = await http.get(f"{rc.base}/widget/status?site=shop")
            assert none.status == 403
        w = await open_widget(rc.base)  # the allowed origin gets in
        assert (await w.next("status"))["agents_available"] is False
        await w.close()


async def test_a_chat_from_start_to_wrap_up(database):
    store = store_for(database)
    await seed_chat_agents(store)
    known = await store.create_customer("Carla Customer", emails=["carla@example.com"],
                                        lifetime_value="60000")
    async with chat_center(database) as rc:
        agent, _cookie = await ready_agent(rc.base)
        w, welcome = await start_chat(rc.base)
        iid = welcome["chat_id"]
        offer = await agent.next("chat_offer", interaction_id=iid)
        assert offer["pop"]["card"]["customer"]["id"] == known.id and offer["verified"] is False
        await agent.send("chat_accept", offer_id=offer["offer_id"])
        started = await agent.next("chat_started", interaction_id=iid)
        assert started["card"]["customer"]["tier"] == "vip" and started["state"] == "active"
        assert (await w.next("agent"))["name"] == "Agent 1"

        await w.send("typing", on=True)
        assert (await agent.next("chat_peer_typing", interaction_id=iid))["on"] is True
        await w.send("send", client_id="c1", text="Hello, my <b>bill</b> is wrong")
        ack = await w.next("message", client_id="c1")
        assert ack["sender"] == "customer" and ack["seq"] >= 1
        got = await agent.next("chat_message", interaction_id=iid, seq=ack["seq"])
        assert got["text"] == "Hello, my <b>bill</b> is wrong" and "<b>" not in got["html"]
        await agent.send("chat_seen", interaction_id=iid, seq=got["seq"], status="delivered")
        assert (await w.next("receipt", status="delivered"))["seq"] == got["seq"]
        await agent.send("chat_seen", interaction_id=iid, seq=got["seq"], status="read")
        assert (await w.next("receipt", status="read"))["seq"] == got["seq"]

        await agent.send("chat_typing", interaction_id=iid, on=True)
        assert (await w.next("agent_typing"))["on"] is True
        await agent.send("chat_send", interaction_id=iid, client_id="a1", text="Let me check.")
        mine = await agent.next("chat_message", interaction_id=iid, client_id="a1")
        reply = await w.next("message", seq=mine["seq"])
        assert reply["sender"] == "agent" and reply["author"] == "Agent 1"
        await w.send("seen", seq=reply["seq"], status="read")
        receipt = await agent.next("chat_receipt", interaction_id=iid, status="read")
        assert receipt["seq"] == reply["seq"]

        await w.send("end")
        assert (await w.next("ended"))["by"] == "customer"
        assert (await agent.next("chat_ended", interaction_id=iid))["by"] == "customer"
        await agent.send("chat_wrapup", interaction_id=iid, disposition="resolved", notes="bill fixed",
                         ticket={"type": "complaint", "subject": "Wrong bill"})
        saved = await agent.next("wrapup_saved", interaction_id=iid)
        assert saved["ticket"]["type"] == "complaint"
        await w.send("survey", score=5, comment="quick")
        assert (await w.next("survey_saved"))["score"] == 5
        await w.close()
        await agent.close()

    i = await store.get_interaction(iid)
    assert (i.channel, i.state, i.customer_id) == ("chat", "wrapup_done", known.id)
    assert i.disposition_code == "resolved" and i.csat_score == 5
    assert i.transcript_ref == f"chat_messages:{iid}"
    kinds = [e.kind for e in await store.timeline(iid)]
    for k in ("arrive", "queue", "offer", "answer", "end", "wrapup", "csat"):
        assert k in kinds, k
    async with database.session() as s:
        rows = (await s.execute(select(ChatMessageRow).where(ChatMessageRow.interaction_id == iid)
                                .order_by(ChatMessageRow.seq))).scalars().all()
    assert [r.sender for r in rows] == ["customer", "agent", "system"]
    assert [r.seq for r in rows] == [1, 2, 3]
    assert rows[0].body == "Hello, my <b>bill</b> is wrong"


async def test_a_new_customer_is_created_from_the_form(database):
    store = store_for(database)
    await seed_chat_agents(store)
    async with chat_center(database) as rc:
        agent, _ = await ready_agent(rc.base)
        w, welcome = await start_chat(rc.base, name="Nina New", email="Nina@Example.com",
                                      phone="+12025550199")
        offer = await agent.next("chat_offer", interaction_id=welcome["chat_id"])
        card = offer["pop"]["card"]
        assert card["customer"]["name"] == "Nina New"
        assert {p["value"] for p in card["contact_points"]} == {"nina@example.com", "+12025550199"}
        # the same customer on the phone: one record across channels
        assert (await store.identify(phone="+12025550199")).id == card["customer"]["id"]
        await w.close()
        await agent.close()


async def test_several_chats_per_agent_up_to_capacity(database):
    store = store_for(database)
    await seed_chat_agents(store, chat=2)
    async with chat_center(database) as rc:
        agent, _ = await ready_agent(rc.base)
        widgets = []
        for n in range(3):
            w, welcome = await start_chat(rc.base, name=f"Cust {n}", email=f"c{n}@example.com")
            widgets.append((w, welcome["chat_id"]))
        for w, iid in widgets[:2]:
            offer = await agent.next("chat_offer", interaction_id=iid)
            await agent.send("chat_accept", offer_id=offer["offer_id"])
            await w.next("agent")
        third, third_id = widgets[2]
        q = await third.next("queue", position=1)
        assert q["estimated_wait_s"] is not None and q["agents_available"] is True
        assert rc.app[CENTER].engine.store.agent(str((await store.get_user("agent1")).id)).load.get(
            __import__("routing").Channel.CHAT) == 2
        # one chat ends: the third is offered to the same agent
        first, first_id = widgets[0]
        await agent.send("chat_end", interaction_id=first_id)
        await agent.next("chat_ended", interaction_id=first_id)
        assert (await first.next("ended"))["by"] == "agent"
        offer = await agent.next("chat_offer", interaction_id=third_id)
        assert offer["customer_name"] == "Cust 2"
        for w, _ in widgets:
            await w.close()
        await agent.close()


async def test_decline_and_transfer_to_another_agent(database):
    store = store_for(database)
    await seed_chat_agents(store, n=2)
    async with chat_center(database) as rc:
        a1, _ = await ready_agent(rc.base, "agent1")
        w, welcome = await start_chat(rc.base)
        iid = welcome["chat_id"]
        first = await a1.next("chat_offer", interaction_id=iid)
        a2, _ = await ready_agent(rc.base, "agent2")
        await a1.send("chat_decline", offer_id=first["offer_id"])
        assert (await a1.next("chat_withdrawn", interaction_id=iid))["reason"] == "declined"
        offer = await a2.next("chat_offer", interaction_id=iid)
        await a2.send("chat_accept", offer_id=offer["offer_id"])
        await a2.next("chat_started", interaction_id=iid)
        await a1.send("set_state", state="ready")  # a decline may have made agent1 not ready
        await a1.next("agent_state", state="ready")
        await w.send("send", client_id="c1", text="Can someone else help?")
        await a2.next("chat_message", interaction_id=iid, client_id="c1")
        await a2.send("chat_transfer", interaction_id=iid, target_type="agent", target="agent1",
                      notes="needs agent1")
        saved = await a2.next("wrapup_saved", interaction_id=iid)
        assert saved["disposition"] == "transferred"
        again = await a1.next("chat_offer", interaction_id=iid)
        await a1.send("chat_accept", offer_id=again["offer_id"])
        started = await a1.next("chat_started", interaction_id=iid)
        assert [m["sender"] for m in started["messages"]] == ["customer", "system"]
        assert (await w.next("agent", name="Agent 1"))["name"] == "Agent 1"
        await a1.send("chat_send", interaction_id=iid, client_id="a1", text="I am here.")
        await w.next("message", client_id="a1")
        # another agent's chat is not theirs to write in
        await a2.send("chat_send", interaction_id=iid, client_id="x", text="hello?")
        assert (await a2.next("error"))["code"] == "forbidden"
        await a1.send("chat_transfer", interaction_id=iid, target_type="queue", target="nope")
        assert (await a1.next("error"))["code"] == "not_found"
        for c in (w, a1, a2):
            await c.close()
    kinds = [e.kind for e in await store.timeline(iid)]
    assert kinds.count("offer") == 3 and "transfer" in kinds and "requeue" in kinds


async def test_escalate_a_chat_to_a_specialist_queue(database):
    store = store_for(database)
    await seed_chat_agents(store, n=2)
    carla = await store.create_customer("Carla Customer", emails=["carla@example.com"])
    ticket = await store.create_ticket(carla.id, "complaint", "Double charge")
    async with chat_center(database) as rc:
        a1, _ = await ready_agent(rc.base, "agent1")
        w, welcome = await start_chat(rc.base)
        iid = welcome["chat_id"]
        offer = await a1.next("chat_offer", interaction_id=iid)
        await a1.send("chat_accept", offer_id=offer["offer_id"])
        await a1.next("chat_started", interaction_id=iid)
        await a1.send("chat_escalate", interaction_id=iid, queue="billing", reason="   ")
        assert (await a1.next("error"))["code"] == "invalid"
        await a1.send("chat_escalate", interaction_id=iid, supervisor="agent2", reason="angry")
        assert (await a1.next("error"))["code"] == "invalid"  # agent2 is no supervisor
        await a1.send("set_state", state="not_ready", reason="break")  # or it may come back to agent1
        await a1.next("agent_state", state="not_ready")
        await a1.send("chat_escalate", interaction_id=iid, queue="billing", reason="Refund over limit")
        assert (await a1.next("wrapup_saved", interaction_id=iid))["disposition"] == "transferred"
        a2, _ = await ready_agent(rc.base, "agent2")
        again = await a2.next("chat_offer", interaction_id=iid)
        assert again["queue"] == "billing"
        for c in (w, a1, a2):
            await c.close()
    assert (await store.get_ticket(ticket.number)).escalation_queue == "billing"
    escalate = [e for e in await store.timeline(iid) if e.kind == "escalate"]
    assert escalate and escalate[0].data["ticket"] == ticket.number


async def test_outside_business_hours_the_widget_takes_a_message(database):
    store = store_for(database)
    await seed_chat_agents(store)
    hours = '{"timezone": "America/New_York", "weekly": {"sat-sun": "10:00-12:00"}}'
    async with chat_center(database, CC_CHAT__HOURS=hours) as rc:  # the test clock: a Wednesday
        agent, _ = await ready_agent(rc.base)
        w = await open_widget(rc.base)
        status = await w.next("status")
        assert status["open"] is False and status["agents_available"] is False
        await w.send("start", name="Late Larry", email="larry@example.com")
        assert (await w.next("error"))["code"] == "closed"
        await w.send("leave_message", name="Late Larry", email="larry@example.com", text="Call me")
        assert (await w.next("left_message"))["ticket"].startswith("T-")
        await w.close()
        await agent.close()
