"""After the chat, the transcript by email: through the email channel's smarthost (an aiosmtpd
sink here), once, and only to the chat's own address."""
from __future__ import annotations

import pytest

from tests.callcenter.chat.harness import chat_center, ready_agent, seed_chat_agents, start_chat, store_for
from tests.callcenter.email.harness import sink_server

pytestmark = pytest.mark.timeout(90)


async def _ended_chat(rc):
    agent, _ = await ready_agent(rc.base)
    w, welcome = await start_chat(rc.base)
    iid = welcome["chat_id"]
    offer = await agent.next("chat_offer", interaction_id=iid)
    await agent.send("chat_accept", offer_id=offer["offer_id"])
    await w.next("agent")
    await w.send("transcript")
    assert (await w.next("error"))["code"] == "conflict"  # not before the end
    await w.send("send", client_id="c1", text="Is <b>this</b> kept?")
    await w.next("message", client_id="c1")
    await agent.send("chat_send", interaction_id=iid, client_id="a1", text="Yes, as you wrote it.")
    await w.next("message", client_id="a1")
    await w.send("end")
    await w.next("ended")
    return agent, w, iid


async def test_the_transcript_goes_to_the_chats_own_address_once(database, tmp_path):
    store = store_for(database)
    await seed_chat_agents(store)
    async with sink_server() as sink, chat_center(
            database, CC_EMAIL__ENABLED="true", CC_EMAIL__SMTP_PORT="0",
            CC_EMAIL__SMARTHOST_PORT=str(sink.port), CC_EMAIL__ADDRESS="support@example.com",
            CC_EMAIL__ATTACHMENTS_DIR=str(tmp_path)) as rc:
        agent, w, iid = await _ended_chat(rc)
        await w.send("transcript")
        assert (await w.next("transcript_sent"))["to"] == "carla@example.com"
        mail_from, rcpt, msg = await sink.next()
        assert rcpt == ["carla@example.com"] and msg["Subject"] == "Your chat transcript"
        body = msg.get_content()
        assert "You: Is <b>this</b> kept?" in body and "Agent 1: Yes, as you wrote it." in body
        await w.send("transcript")
        assert (await w.next("error"))["code"] == "conflict"
        await w.close()
        await agent.close()
    assert "transcript" in [e.kind for e in await store.timeline(iid)]


async def test_without_the_email_channel_it_says_so(database):
    store = store_for(database)
    await seed_chat_agents(store)
    async with chat_center(database) as rc:
        agent, w, _ = await _ended_chat(rc)
        await w.send("transcript")
        assert (await w.next("error"))["code"] == "unavailable"
        await w.close()
        await agent.close()
