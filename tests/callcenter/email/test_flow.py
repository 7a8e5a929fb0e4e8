"""An email end to end, through real interfaces: smtplib -> the aiosmtpd listener over TCP ->
stored, threaded, acknowledged (aiosmtpd sink as the smarthost) -> routed -> the agent's console
over a real websocket -> reply through the smarthost with threading headers -> the customer's
answer joins the same conversation and ticket. On SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
import smtplib
from email import policy

import aiohttp
import pytest

from crm_core import email as mail
from tests.callcenter.email.harness import SUPPORT, email_center
from tests.callcenter.email.harness import mail as make_mail
from tests.callcenter.test_console_ws import cookie_for, open_console

pytestmark = pytest.mark.timeout(90)


async def ready_console(base: str, username: str = "agent1"):
    cookie = await cookie_for(base, username)
    ws, c = await open_console(base, cookie)
    await c.next("hello")
    await c.next("agent_state")
    await c.send("set_state", state="ready")
    await c.next("agent_state", state="ready")
    return ws, c, cookie


async def test_email_answered_from_the_console_threads_back(database, tmp_path):
    async with email_center(database, tmp_path) as ec:
        ws, c, _cookie = await ready_console(ec.base)

        first = make_mail()
        assert await asyncio.to_thread(ec.send, first) == {}
        offer = await c.next("offer")
        assert offer["channel"] == "email" and offer["caller"] == "ann@example.org"
        tl = [(e.kind, e.ok, e.data) for e in await ec.store.timeline(offer["interaction_id"])]
        assert offer["pop"]["known"], "\n".join(map(str, tl))
        assert offer["pop"]["card"]["customer"]["name"] == "Ann Customer"
        iid = offer["interaction_id"]

        # The automatic acknowledgement: ticket number, threading, RFC 3834 markings, null sender.
        env_from, rcpts, ack = await ec.sink.next()
        assert rcpts == ["ann@example.org"] and env_from in ("", "<>")
        ticket = (await ec.store.list_tickets(customer_id=offer["pop"]["card"]["customer"]["id"]))[0]
        assert ticket.number in ack.get_content() and f"[{ticket.number}]" in ack["Subject"]
        assert ack["In-Reply-To"] == first["Message-ID"] and ack["Auto-Submitted"] == "auto-replied"

        await ec.email.settle()  # the acknowledgement is stored once the smarthost took it
        await c.send("ack_offer", offer_id=offer["offer_id"])
        await c.send("email_accept", offer_id=offer["offer_id"])
        await c.next("contact_state", state="talking")
        view = await c.next("email", interaction_id=iid)
        assert view["ticket"] == ticket.number
        assert [m["direction"] for m in view["messages"]] == ["inbound", "outbound"]  # + the ack
        assert view["messages"][0]["text"].strip() == "Hello, my invoice is wrong."

        await c.send("email_reply", interaction_id=iid, body="We fixed your invoice.")
        sent = await c.next("email_sent", interaction_id=iid)
        _f, rcpts, reply = await ec.sink.next()
        assert rcpts == ["ann@example.org"] and reply["From"].addresses[0].addr_spec == SUPPORT
        assert reply["In-Reply-To"] == first["Message-ID"]
        assert reply["References"].split() == [first["Message-ID"]]
        assert f"[{ticket.number}]" in reply["Subject"] and reply["Message-ID"] == sent["message_id"]
        assert reply.get_content().strip() == "We fixed your invoice."
        assert reply["Auto-Submitted"] is None

        await c.send("email_done", interaction_id=iid)
        await c.next("contact_state", state="ended")
        await c.next("wrapup", interaction_id=iid)
        await c.send("submit_wrapup", interaction_id=iid, disposition="resolved", notes="invoice fixed")
        saved = await c.next("wrapup_saved", interaction_id=iid)
        assert saved["disposition"] == "resolved"

        # The customer answers the agent's reply: same conversation, same ticket, no new ack.
        answer = make_mail("Re: " + reply["Subject"], "Thanks!", In_Reply_To=reply["Message-ID"],
                           References=f"{first['Message-ID']} {reply['Message-ID']}")
        await asyncio.to_thread(ec.send, answer)
        offer2 = await c.next("offer")
        await c.send("email_accept", offer_id=offer2["offer_id"])
        view2 = await c.next("email", interaction_id=offer2["interaction_id"])
        assert view2["ticket"] == ticket.number
        assert [m["direction"] for m in view2["messages"]] == ["inbound", "outbound", "outbound", "inbound"]
        assert ec.sink.messages.empty()  # a reply in a known conversation is not acknowledged again
        await ws.close()

    interaction = await ec.store.get_interaction(iid)
    assert interaction.channel == "email" and interaction.state == "wrapup_done"
    assert interaction.disposition_code == "resolved"
    kinds = [e.kind for e in await ec.store.timeline(iid)]
    for k in ("opened", "received", "parsed", "identify", "thread", "queue", "offer", "pop_ack",
              "accept", "reply", "done", "wrapup"):
        assert k in kinds, k
    assert kinds.index("received") < kinds.index("parsed") < kinds.index("offer") < kinds.index("reply")
    joined = [e.data for e in await ec.store.timeline(offer2["interaction_id"]) if e.kind == "thread"]
    assert joined[0]["how"] == "references" and joined[0]["ticket"] == ticket.number
    stored = await mail.emails_of(ec.store.db, iid)
    assert stored[0].raw == first.as_bytes(policy=policy.SMTP)  # kept whole


async def test_listener_refuses_unknown_recipients_and_oversized_mail(database, tmp_path):
    async with email_center(database, tmp_path, CC_EMAIL__MAX_MESSAGE_BYTES="20000") as ec:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
            await asyncio.to_thread(ec.send, make_mail(), to=("someone@elsewhere.example",))
        assert e.value.recipients["someone@elsewhere.example"][0] == 550
        # one refused, one accepted (a whole accepted domain)
        refused = await asyncio.to_thread(ec.send, make_mail(),
                                          to=("x@elsewhere.example", "billing@help.example.com"))
        assert refused["x@elsewhere.example"][0] == 550
        big = make_mail(body="x" * 30000)
        with pytest.raises((smtplib.SMTPDataError, smtplib.SMTPSenderRefused,
                            smtplib.SMTPServerDisconnected)) as e2:
            await asyncio.to_thread(ec.send, big)
        if isinstance(e2.value, smtplib.SMTPResponseException):
            assert e2.value.smtp_code == 552
        await ec.email.wait_processed(1)
    async with database.session() as s:
        from sqlalchemy import func, select
        n = await s.scalar(select(func.count()).select_from(mail.EmailMessage)
                           .where(mail.EmailMessage.direction == "inbound"))
    assert n == 1


async def test_smarthost_refusal_keeps_the_reply_and_says_why(database, tmp_path):
    async with email_center(database, tmp_path, CC_EMAIL__ACKNOWLEDGE="false") as ec:
        ws, c, _ = await ready_console(ec.base)
        await asyncio.to_thread(ec.send, make_mail())
        offer = await c.next("offer")
        iid = offer["interaction_id"]
        await c.send("email_accept", offer_id=offer["offer_id"])
        await c.next("email")
        ec.sink.refuse = True
        await c.send("email_reply", interaction_id=iid, body="Hello there", request_id="r7")
        err = await c.next("error", request_id="r7")
        assert err["code"] == "invalid" and "554" in err["message"]
        ec.sink.refuse = False
        await c.send("email_reply", interaction_id=iid, body="Hello there")
        await c.next("email_sent")
        # another agent's console cannot answer it
        await ws.close()
    events = [e for e in await ec.store.timeline(iid) if e.kind == "reply"]
    assert [e.ok for e in events] == [False, True]
    statuses = [m.status for m in await mail.emails_of(ec.store.db, iid) if m.direction == "outbound"]
    assert statuses == ["send_failed", "sent"]


async def test_attachments_stored_under_our_names_and_served_as_downloads(database, tmp_path):
    async with email_center(database, tmp_path) as ec:
        ws, c, cookie = await ready_console(ec.base)
        m = make_mail()
        m.add_attachment(b"<script>alert(1)</script>", maintype="text", subtype="html",
                         filename="../../etc/evil.html")
        m.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="C:\\x\\bill.pdf")
        await asyncio.to_thread(ec.send, m)
        offer = await c.next("offer")
        await c.send("email_accept", offer_id=offer["offer_id"])
        view = await c.next("email")
        atts = view["messages"][0]["attachments"]
        assert [a["filename"] for a in atts] == ["evil.html", "bill.pdf"]
        names = sorted(p.name for p in (tmp_path / "mail").iterdir())
        assert len(names) == 2 and not any("evil" in n or "bill" in n for n in names)
        async with aiohttp.ClientSession(headers={"Cookie": cookie}) as http:
            r = await http.get(f"{ec.base}/email/attachments/{atts[0]['id']}")
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
            assert r.headers["Content-Disposition"].startswith("attachment")
            assert await r.read() == b"<script>alert(1)</script>"
            r = await http.get(f"{ec.base}/email/attachments/999999")
            assert r.status == 404
        async with aiohttp.ClientSession() as anon:
            r = await anon.get(f"{ec.base}/email/attachments/{atts[0]['id']}")
            assert r.status == 401
        await ws.close()
