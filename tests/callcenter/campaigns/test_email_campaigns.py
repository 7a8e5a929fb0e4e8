"""Email campaigns through the email channel's smarthost (an aiosmtpd sink), on both backends:
per-recipient unsubscribe links honoured at once, a hard bounce (RFC 3464 report sent to the
center's SMTP listener) marks the address invalid, the rate limit, and a reply that comes back as
an email contact on the campaign email's conversation."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import aiohttp
import pytest

from callcenter.services.email_campaigns import TokenBucket, hard_bounces
from crm_core import email as mail
from crm_core.campaigns import CampaignStore
from tests.callcenter.email.harness import email_center
from tests.callcenter.email.harness import mail as inbound

pytestmark = pytest.mark.timeout(120)


def dsn(recipient: str, status: str = "5.1.1", action: str = "failed") -> bytes:
    """A delivery status notification (RFC 3464) as a mail server sends it."""
    return (
        "From: Mail Delivery System <mailer-daemon@mx.example.net>\r\n"
        "To: support@example.com\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <dsn-{status}-{recipient}@mx.example.net>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n\r\n"
        "--b1--\r\n"
    ).encode()


def test_hard_bounces_and_the_rate_limit():
    assert hard_bounces(dsn("cat@example.org")) == ["cat@example.org"]
    assert hard_bounces(dsn("cat@example.org", status="4.2.2", action="delayed")) == []
    assert hard_bounces(inbound().as_bytes()) == []
    b = TokenBucket(rate_per_min=60, burst=5)
    assert b.take(0.0, 10) == 5 and b.take(0.5, 10) == 0 and b.take(2.0, 10) == 2 and b.take(60.0, 100) == 5


async def _people(store):
    ann = await store.create_customer("Ann Customer", emails=["ann@example.org"], tags=["plan"])
    bob = await store.create_customer("Bob Customer", emails=["bob@example.org"], tags=["plan"])
    cat = await store.create_customer("Cat Customer", emails=["cat@example.org"], tags=["plan"])
    return ann, bob, cat


async def _campaign(cs, name, rate=600):
    c = await cs.create(
        name=name,
        mode="email",
        subject="A better plan for you, {name}",
        body="Hello {name},\nour new plan costs less.",
        rate_per_min=rate,
    )
    await cs.add_segment(c.id, {"tags": ["plan"]})  # (the bounce's sender became a customer)
    return c


async def test_email_campaign_unsubscribe_bounce_and_reply(database, tmp_path):
    async with email_center(database, tmp_path) as ec:
        ann, bob, cat = await _people(ec.store)
        cs = CampaignStore(database)
        svc = ec.center.campaigns
        first = await _campaign(cs, "plan-1")
        await svc.control(first.id, "start")
        got = {}
        for _ in range(3):
            _from, rcpt, msg = await ec.sink.next()
            got[rcpt[0]] = msg
        assert set(got) == {"ann@example.org", "bob@example.org", "cat@example.org"}
        links = {a: m["List-Unsubscribe"].strip("<>") for a, m in got.items()}
        assert len(set(links.values())) == 3  # one link per recipient
        assert got["ann@example.org"]["Subject"] == "A better plan for you, Ann Customer"
        assert links["bob@example.org"] in got["bob@example.org"].get_content()
        # Bob unsubscribes: honoured at once
        async with aiohttp.ClientSession() as http:
            r = await http.get(ec.base + urlsplit(links["bob@example.org"]).path)
            assert r.status == 200 and "bob@example.org" in await r.text()
            r = await http.get(ec.base + "/campaigns/unsubscribe/not-a-real-token-at-all")
            assert r.status == 404
        assert await cs.dnc("email", "bob@example.org") == "unsubscribe"
        # Cat's address bounces for good
        await asyncio.to_thread(ec.send, dsn("cat@example.org"), mail_from="")
        for _ in range(200):
            if await cs.dnc("email", "cat@example.org") == "bounce":
                break
            await ec.email.wait_processed(1)
        assert await cs.dnc("email", "cat@example.org") == "bounce"
        # Ann replies: an email contact on the campaign email's conversation
        sent_to_ann = await mail.find_by_message_ids(database, [got["ann@example.org"]["Message-ID"]])
        assert sent_to_ann is not None
        reply = inbound(
            "Re: A better plan for you",
            "Yes please, tell me more.",
            In_Reply_To=got["ann@example.org"]["Message-ID"],
        )
        await asyncio.to_thread(ec.send, reply)
        await ec.email.wait_processed(2)
        back = await mail.find_by_message_ids(database, [reply["Message-ID"]])
        assert back is not None and back.thread_id == (sent_to_ann.thread_id or sent_to_ann.id)
        i = await ec.store.get_interaction(back.interaction_id)
        assert i.channel == "email" and i.direction == "inbound" and i.customer_id == ann.id

        # the next campaign to the same segment writes to Ann only
        second = await _campaign(cs, "plan-2")
        await svc.control(second.id, "start")
        _from, rcpt, _msg = await ec.sink.next()
        assert rcpt == ["ann@example.org"]
        for _ in range(200):
            recs = {r.email: r for r in await cs.records(second.id)}
            if all(r.status != "pending" and r.status != "active" for r in recs.values()):
                break
            await asyncio.sleep(0.05)
        assert (recs["bob@example.org"].status, recs["bob@example.org"].last_outcome) == (
            "excluded",
            "unsubscribe",
        )
        assert (recs["cat@example.org"].status, recs["cat@example.org"].last_outcome) == (
            "excluded",
            "bounce",
        )
        assert recs["ann@example.org"].status == "done"
        await svc.control(second.id, "stop")
        left = [ec.sink.messages.get_nowait() for _ in range(ec.sink.messages.qsize())]
        assert not left, [
            (r, str(m["Subject"]), str(m.get("Auto-Submitted")), m.get_content()[:300]) for _f, r, m in left
        ]
        timeline = [e.kind for e in await ec.store.timeline(recs["ann@example.org"].interaction_id)]
        assert "campaign_email" in timeline and "campaign_sent" in timeline


async def test_rate_limit_holds_the_rest(database, tmp_path):
    async with email_center(database, tmp_path) as ec:
        await _people(ec.store)
        cs = CampaignStore(database)
        c = await _campaign(cs, "slow", rate=6)  # 6 a minute, a burst of 1
        await cs.set_status(c.id, "running")
        svc = ec.center.campaigns.email
        clock = [0.0]
        svc.mono = lambda: clock[0]
        assert await svc.send_due(c.id) == 1
        assert await svc.send_due(c.id) == 0
        clock[0] += 10.0  # one more token
        assert await svc.send_due(c.id) == 1
        st = await cs.stats(c.id)
        assert st["records"] == {"done": 2, "pending": 1}
