"""Hostile and automatic mail over real SMTP: stored whole, rendered inert, never crashing or
stalling the listener; bounces, lists and auto-replies are never acknowledged (RFC 3834); threading
by references and ticket tokens only for the conversation's own customer."""
from __future__ import annotations

import asyncio

import pytest

from crm_core import email as mail
from tests.callcenter.email.harness import email_center
from tests.callcenter.email.harness import mail as make_mail

pytestmark = pytest.mark.timeout(120)

CRLF = b"\r\n"


def _raw(headers: str, body: bytes) -> bytes:
    return headers.replace("\n", "\r\n").encode() + CRLF + body


def hostile() -> dict[str, bytes]:
    deep = b"".join(b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1)
                    for i in range(2000))
    return {
        "script_html": _raw(
            "From: Eve <eve@example.org>\nTo: support@example.com\nSubject: click\n"
            "MIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n",
            b"<p onclick='x()'>Hi<script>alert(document.cookie)</script>"
            b"<img src='http://tracker.example.net/p.gif'><a href='javascript:evil()'>win</a>"
            b"<style>body{background:url(http://x.example.net/)}</style></p>\r\n"),
        "bad_charset": _raw(
            "From: eve@example.org\nTo: support@example.com\nSubject: charset\n"
            "MIME-Version: 1.0\nContent-Type: text/plain; charset=x-no-such-charset\n",
            b"caf\xe9 \xff\xfe bytes\r\n"),
        "unterminated": _raw(
            "From: eve@example.org\nTo: support@example.com\nSubject: open MIME\n"
            "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=XYZ\n",
            b"--XYZ\r\nContent-Type: text/plain\r\n\r\nstill readable\r\n--XYZ\r\nContent-Type: text/pl"),
        "deep": _raw(
            "From: eve@example.org\nTo: support@example.com\nSubject: deep\nMIME-Version: 1.0\n"
            "Content-Type: multipart/mixed; boundary=b0\n", deep),
        "header_flood": b"".join(b"X-Flood-%d: %s\r\n" % (i, b"y" * 50) for i in range(3000)) + _raw(
            "From: eve@example.org\nTo: support@example.com\nSubject: flood\n", b"flooded\r\n"),
        "spoofed": _raw(
            "From: boss@example.com\nFrom: eve@example.org\nSender: someone@example.net\n"
            "To: support@example.com\nSubject: two senders\n", b"who am I\r\n"),
        "big": _raw("From: eve@example.org\nTo: support@example.com\nSubject: big\n",
                    (b"z" * 998 + CRLF) * 3000),
    }


async def test_hostile_mail_is_stored_whole_and_rendered_inert(database, tmp_path):
    async with email_center(database, tmp_path, CC_EMAIL__ACKNOWLEDGE="false") as ec:
        sent = hostile()
        for name, raw in sent.items():
            assert await asyncio.to_thread(ec.send, raw, mail_from="eve@example.org") == {}, name
        # the listener still serves ordinary mail afterwards
        await asyncio.to_thread(ec.send, make_mail())
        await ec.email.wait_processed(len(sent) + 1)
        rows = {}
        async with database.session() as s:
            from sqlalchemy import select
            for m in (await s.scalars(select(mail.EmailMessage).order_by(mail.EmailMessage.id))).all():
                rows[m.subject or ""] = m
        by_name = dict(zip(sent, sorted(rows.values(), key=lambda m: m.id), strict=False))
        for name, raw in sent.items():
            m = by_name[name]
            on_wire = raw if raw.endswith(CRLF) else raw + CRLF  # SMTP ends DATA on a line end
            assert m.raw == on_wire, name  # stored whole, byte for byte
            assert m.status in ("processed", "failed"), name
            assert m.interaction_id is not None
            kinds = [e.kind for e in await ec.store.timeline(m.interaction_id)]
            assert "received" in kinds and "parsed" in kinds and "queue" in kinds, name

        html = by_name["script_html"].html_safe or ""
        for bad in ("<script", "<img", "onclick", "javascript:", "<style", "tracker.example.net"):
            assert bad not in html
        assert "Hi" in html
        assert "café" not in (by_name["bad_charset"].text_body or "")  # not guessed as latin-1…
        assert "bytes" in (by_name["bad_charset"].text_body or "")  # …but read, with replacements
        assert any("charset" in p for p in by_name["bad_charset"].problems)
        assert "still readable" in (by_name["unterminated"].text_body or "")
        assert any("Boundary" in p for p in by_name["unterminated"].problems)
        assert by_name["deep"].problems  # named: too deep / unreadable
        assert any("header flood" in p for p in by_name["header_flood"].problems)
        assert any("From" in p for p in by_name["spoofed"].problems)
        assert len(by_name["big"].raw) > 2_900_000


@pytest.mark.parametrize("headers, envelope_from", [
    ({"Auto_Submitted": "auto-replied"}, "ann@example.org"),
    ({"Precedence": "bulk"}, "ann@example.org"),
    ({"Precedence": "list"}, "ann@example.org"),
    ({"List_Id": "<news.example.org>"}, "ann@example.org"),
    ({}, ""),  # a bounce: null reverse-path
])
async def test_no_acknowledgement_to_automatic_mail(database, tmp_path, headers, envelope_from):
    async with email_center(database, tmp_path) as ec:
        auto = make_mail(**headers)
        await asyncio.to_thread(ec.send, auto, mail_from=envelope_from)
        await ec.email.wait_processed(1)
        normal = make_mail(sender="Bob <bob@example.org>")
        await asyncio.to_thread(ec.send, normal, mail_from="bob@example.org")
        _f, rcpts, ack = await ec.sink.next()
        assert rcpts == ["bob@example.org"] and ack["In-Reply-To"] == normal["Message-ID"]
        await ec.email.wait_processed(2)
        assert ec.sink.messages.empty()
        first = await mail.get_email(ec.store.db, 1)  # the automatic mail, stored first
        events = [e for e in await ec.store.timeline(first.interaction_id) if e.kind == "auto_ack"]
        assert events and events[0].data["sent"] is False and events[0].data["reason"]


async def test_a_delivery_report_from_the_mailer_daemon_is_not_answered(database, tmp_path):
    async with email_center(database, tmp_path) as ec:
        report = _raw(
            "From: Mail Delivery System <MAILER-DAEMON@example.net>\nTo: support@example.com\n"
            "Subject: Undelivered Mail Returned to Sender\nMIME-Version: 1.0\n"
            "Content-Type: multipart/report; report-type=delivery-status; boundary=R\n",
            b"--R\r\nContent-Type: text/plain\r\n\r\ncould not deliver\r\n--R\r\n"
            b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; example.net\r\n\r\n"
            b"--R--\r\n")
        await asyncio.to_thread(ec.send, report, mail_from="")
        await ec.email.wait_processed(1)
        assert ec.sink.messages.empty()


async def test_threading_by_token_and_unknown_references(database, tmp_path):
    async with email_center(database, tmp_path) as ec:
        first = make_mail("Broken router")
        await asyncio.to_thread(ec.send, first)
        _f, _r, ack = await ec.sink.next()
        token = ack["Subject"].split("]")[0].lstrip("[")
        # a reply to a message the center never sent: a new conversation (and a new ticket)
        stray = make_mail("Re: something", In_Reply_To="<never-sent@elsewhere.example>")
        await asyncio.to_thread(ec.send, stray)
        _f, _r, ack2 = await ec.sink.next()
        assert token not in ack2["Subject"]
        # the ticket token in the subject joins the ticket, without any references
        by_token = make_mail(f"More about [{token}]")
        await asyncio.to_thread(ec.send, by_token)
        # the same token from another customer does not join it
        other = make_mail(f"[{token}] I am not Ann", sender="Mallory <mallory@example.org>")
        await asyncio.to_thread(ec.send, other, mail_from="mallory@example.org")
        _f, rcpts, ack3 = await ec.sink.next()
        assert rcpts == ["mallory@example.org"] and token not in ack3["Subject"].split("]")[0]
        await ec.email.wait_processed(4)
        async with database.session() as db_s:
            from sqlalchemy import select
            inbound = (await db_s.scalars(select(mail.EmailMessage).where(
                mail.EmailMessage.direction == "inbound").order_by(mail.EmailMessage.id))).all()
        how = [[e.data for e in await ec.store.timeline(m.interaction_id) if e.kind == "thread"][0]
               for m in inbound]
        assert [h["how"] for h in how] == ["new", "new", "ticket token", "new"]
        assert how[2]["ticket"] == token and how[2]["thread_id"] == how[0]["thread_id"]
        assert how[1]["ticket"] != token and how[3]["ticket"] != token
        assert any("another customer" in p for p in inbound[3].problems)


async def test_the_same_message_delivered_twice_is_routed_once(database, tmp_path):
    async with email_center(database, tmp_path) as ec:
        m = make_mail("Retried delivery")
        await asyncio.to_thread(ec.send, m)
        await ec.email.wait_processed(1)
        await asyncio.to_thread(ec.send, m)  # e.g. the sender never saw our 250 and retried
        await ec.email.wait_processed(2)
        _f, _r, ack = await ec.sink.next()
        assert ack["In-Reply-To"] == m["Message-ID"]
        async with database.session() as db_s:
            from sqlalchemy import select
            inbound = (await db_s.scalars(select(mail.EmailMessage).where(
                mail.EmailMessage.direction == "inbound").order_by(mail.EmailMessage.id))).all()
        assert [x.status for x in inbound] == ["processed", "duplicate"]
        second = await ec.store.get_interaction(inbound[1].interaction_id)
        assert second.state == "wrapup_done"
        kinds = [e.kind for e in await ec.store.timeline(second.id)]
        assert "duplicate" in kinds and "queue" not in kinds
        assert len(ec.email.contacts) == 1
        assert ec.sink.messages.empty()
