"""kill -9 of the process that holds web chats (issue 18). The customer's widget websocket and the
chat's state live on the process that took the chat; the agent's console is on another process.
The holder is killed with SIGKILL mid-conversation, with one message in flight and a second chat
still waiting in the queue. Each widget reconnects to the surviving process (what a balancer
does) and resumes its chat with its token: nothing lost, nothing duplicated (the message in
flight is resent with its client id); the agent's console keeps the chat and sees the new
messages; the queued chat stays queued and is offered by the survivor.

Consistency: every chat has exactly one interaction, final, with its whole transcript in order."""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import select

from callcenter.app import build_store
from callcenter.settings import load_settings
from crm_core.chat import ChatMessageRow
from crm_core.db import Database
from crm_core.models import Interaction
from tests.callcenter.chat.harness import chat_env, open_agent, open_widget, seed_chat_agents
from tests.callcenter.test_console_ws import cookie_for
from tests.conftest import unique_name
from tests.faults.cluster import Worker
from tests.faults.test_faults import servers  # noqa: F401 - the module's servers fixture

pytestmark = pytest.mark.timeout(90)


@asynccontextmanager
async def chat_cluster(servers) -> AsyncIterator[dict[str, Any]]:  # noqa: F811
    """Two `callcenter run` workers (scale-out, no PBX) on the fixture's Redis and PostgreSQL."""
    redis_server, pg, tmp = servers
    schema = unique_name("cc_fc")
    db = Database(pg.url, schema=schema)
    await db.upgrade()
    store = build_store(load_settings(env={}), db)
    await seed_chat_agents(store, n=1, chat=1)  # one chat at a time: the second one waits
    prefix = unique_name("cc_fc") + ":"
    env = {"CC_DATABASE_URL": pg.url, "CC_DATABASE_SCHEMA": schema, "CC_REDIS_URL": redis_server.url,
           "CC_REDIS_PREFIX": prefix, "CC_SCALEOUT__LEASE_TTL_S": "1.5", "CC_SCALEOUT__DEAD_AFTER_S": "3",
           "CC_LOG_LEVEL": "INFO", "CC_DEMO__ENABLED": "false", "CC_AMI__ENABLED": "false",
           **chat_env()}
    workers = [Worker(env, ["--no-demo"], tmp / f"{prefix[:-1]}-w{i}.log") for i in range(2)]
    try:
        for w in workers:
            await asyncio.to_thread(w.wait_ready)
        yield {"workers": workers, "db": db, "store": store}
    finally:
        for w in workers:
            await asyncio.to_thread(w.stop)
        await db.drop_schema()
        await db.close()


async def test_kill9_of_the_chat_holder_widgets_resume_elsewhere(servers):  # noqa: F811
    async with chat_cluster(servers) as c:
        holder, survivor = c["workers"]
        cookie = await cookie_for(survivor.base, "agent1")
        agent = await open_agent(survivor.base, cookie)  # the agent's console is on the survivor
        await agent.next("hello")
        await agent.send("set_state", state="ready")
        await agent.next("agent_state", state="ready")
        await asyncio.sleep(0.5)  # the holder has heard where the console is (live channel)

        # chat 1 on the holder: offered to the agent on the other process, accepted there
        w1 = await open_widget(holder.base)
        await w1.next("status")
        await w1.send("start", name="Carla Customer", email="carla@example.com")
        welcome = await w1.next("welcome")
        iid, token = welcome["chat_id"], welcome["token"]
        offer = await agent.next("chat_offer", timeout=20, interaction_id=iid)
        await agent.send("chat_accept", offer_id=offer["offer_id"])
        await agent.next("chat_started", timeout=20, interaction_id=iid)
        await w1.next("agent", timeout=20)
        last = 0
        for n in range(2):
            await w1.send("send", client_id=f"c{n}", text=f"customer {n}")
            last = (await w1.next("message", client_id=f"c{n}"))["seq"]
            await agent.next("chat_message", timeout=20, interaction_id=iid, client_id=f"c{n}")
        await agent.send("chat_send", interaction_id=iid, client_id="a0", text="agent 0")
        last = (await w1.next("message", client_id="a0"))["seq"]

        # chat 2 on the holder waits in the queue (the agent takes one chat at a time)
        w2 = await open_widget(holder.base)
        await w2.next("status")
        await w2.send("start", name="Quentin Queued", email="quentin@example.com")
        welcome2 = await w2.next("welcome")
        iid2, token2 = welcome2["chat_id"], welcome2["token"]
        await w2.next("queue", timeout=20)

        # a message in flight, then the holder dies
        await w1.send("send", client_id="c2", text="customer 2")
        holder.kill9()

        # each widget reconnects to the survivor and resumes; the unacknowledged one is resent
        w1 = await open_widget(survivor.base)
        await w1.next("status")
        await w1.send("resume", chat_id=iid, token=token, last_seq=last)
        back = await w1.next("welcome", timeout=20)
        assert back["resumed"] is True and back["chat_id"] == iid
        await w1.send("send", client_id="c2", text="customer 2")
        await w1.next("message", client_id="c2", timeout=20)
        await w1.send("send", client_id="c3", text="customer 3")
        await w1.next("message", client_id="c3", timeout=20)
        # the agent's console kept the chat and sees the new messages
        await agent.next("chat_message", timeout=20, interaction_id=iid, client_id="c3")
        await agent.send("chat_send", interaction_id=iid, client_id="a1", text="agent 1")
        await w1.next("message", client_id="a1", timeout=20)

        w2 = await open_widget(survivor.base)
        await w2.next("status")
        await w2.send("resume", chat_id=iid2, token=token2, last_seq=0)
        back2 = await w2.next("welcome", timeout=20)
        assert back2["resumed"] is True and back2["state"] in ("queued", "offered")

        # the agent ends chat 1; the queued chat is offered by the survivor
        await agent.send("chat_end", interaction_id=iid)
        await w1.next("ended", timeout=20)
        await agent.send("chat_wrapup", interaction_id=iid, disposition="resolved", notes="failover")
        offer2 = await agent.next("chat_offer", timeout=30, interaction_id=iid2)
        await agent.send("chat_accept", offer_id=offer2["offer_id"])
        await w2.next("agent", timeout=20)
        await w2.send("send", client_id="q0", text="still here")
        await agent.next("chat_message", timeout=20, interaction_id=iid2, client_id="q0")
        await w2.send("end")
        await w2.next("ended", timeout=20)
        await agent.send("chat_wrapup", interaction_id=iid2, disposition="resolved", notes="failover")
        await agent.next("wrapup_saved", timeout=20, interaction_id=iid2)

        await consistent_chats(c["db"], {
            iid: ["customer 0", "customer 1", "agent 0", "customer 2", "customer 3", "agent 1"],
            iid2: ["still here"]})
        kinds = [e.kind for e in await c["store"].timeline(iid)]
        assert "taken_over" in kinds, kinds
        for w in (w1, w2, agent):
            await w.close()


async def test_kill9_a_queued_chat_whose_widget_is_away_is_offered_by_the_survivor(servers):  # noqa: F811
    """The widget does not come back at once: the survivor takes the dead process's chat over when
    its heartbeat is gone, and the chat, still queued with its place, is offered to the agent."""
    async with chat_cluster(servers) as c:
        holder, survivor = c["workers"]
        agent = await open_agent(survivor.base, await cookie_for(survivor.base, "agent1"))
        await agent.next("hello")  # signed in, not ready yet: the chat waits
        w = await open_widget(holder.base)
        await w.next("status")
        await w.send("start", name="Carla Customer", email="carla@example.com")
        welcome = await w.next("welcome")
        iid, token = welcome["chat_id"], welcome["token"]
        await w.send("send", client_id="c0", text="anyone there?")
        await w.next("message", client_id="c0")
        holder.kill9()
        await agent.send("set_state", state="ready")
        offer = await agent.next("chat_offer", timeout=30, interaction_id=iid)
        await agent.send("chat_accept", offer_id=offer["offer_id"])
        started = await agent.next("chat_started", timeout=20, interaction_id=iid)
        assert [m["text"] for m in started["messages"]] == ["anyone there?"]
        await agent.send("chat_send", interaction_id=iid, client_id="a0", text="hello Carla")
        await agent.next("chat_message", timeout=20, interaction_id=iid, client_id="a0")
        # the customer's page comes back: the agent's answer is waiting
        w = await open_widget(survivor.base)
        await w.next("status")
        await w.send("resume", chat_id=iid, token=token, last_seq=1)
        back = await w.next("welcome", timeout=20)
        assert back["resumed"] is True and back["state"] == "active"
        assert (await w.next("message", timeout=20))["text"] == "hello Carla"
        await w.send("end")
        await w.next("ended", timeout=20)
        await agent.send("chat_wrapup", interaction_id=iid, disposition="resolved", notes="failover")
        await agent.next("wrapup_saved", timeout=20, interaction_id=iid)
        await consistent_chats(c["db"], {iid: ["anyone there?", "hello Carla"]})
        assert survivor.saw("taken over")
        for x in (w, agent):
            await x.close()


async def consistent_chats(db: Database, said: dict[int, list[str]]) -> None:
    """Every chat: exactly one interaction, wrapped up; its transcript numbered 1..n without a gap,
    each message once, with everything each side said, in order."""
    async with db.session() as s:
        chats = (await s.execute(select(Interaction).where(Interaction.channel == "chat"))).scalars().all()
        rows = (await s.execute(select(ChatMessageRow).order_by(ChatMessageRow.interaction_id,
                                                                ChatMessageRow.seq))).scalars().all()
    assert sorted(i.id for i in chats) == sorted(said), [(i.id, i.state) for i in chats]
    assert all(i.state == "wrapup_done" for i in chats), [(i.id, i.state) for i in chats]
    for iid, texts in said.items():
        mine = [r for r in rows if r.interaction_id == iid]
        report = json.dumps([(r.seq, r.sender, r.body, r.client_id) for r in mine])
        assert [r.seq for r in mine] == list(range(1, len(mine) + 1)), report
        ids = [r.client_id for r in mine if r.client_id]
        assert len(ids) == len(set(ids)), report
        spoken = [r.body for r in mine if r.sender in ("customer", "agent")]
        assert spoken == texts, report

