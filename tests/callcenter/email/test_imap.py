"""IMAP polling against a real Dovecot (started per test on a free port): messages are taken once,
flagged \\Seen or moved, never taken twice (even when the flag is lost), and IDLE brings new mail
in without waiting for the next poll."""
from __future__ import annotations

import asyncio
import contextlib
import imaplib

import pytest

from callcenter.channels.email.imap import ImapConfig, ImapError, ImapPoller
from crm_core import email as mail
from tests.callcenter.email.harness import Dovecot, dovecot, email_center
from tests.callcenter.email.harness import mail as make_mail

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def imap_server():
    with dovecot() as d:
        yield d


def imap_do(d: Dovecot, *ops: tuple[str, tuple]) -> list:
    """Run imaplib commands (a second, independent IMAP client) in order; returns their data."""
    m = imaplib.IMAP4("127.0.0.1", d.port)
    try:
        m.login(d.user, d.password)
        out = []
        for name, args in ops:
            typ, data = getattr(m, name)(*args)
            assert typ == "OK", (name, data)
            out.append(data)
        return out
    finally:
        m.logout()


def append(d: Dovecot, *messages) -> None:
    imap_do(d, *[("append", ("INBOX", None, None, m.as_bytes())) for m in messages])


def unseen(d: Dovecot, mailbox: str = "INBOX") -> list[bytes]:
    return imap_do(d, ("select", (mailbox,)), ("uid", ("search", None, "UNSEEN")))[1][0].split()


def count(d: Dovecot, mailbox: str) -> int:
    return int(imap_do(d, ("select", (mailbox,)))[0][0])


def poller_for(ec, d: Dovecot, **kw) -> ImapPoller:
    cfg = ImapConfig("127.0.0.1", d.port, d.user, d.password, **kw)
    return ImapPoller(cfg, ec.email.take_imap, ec.email.imap_taken, ec.email.imap_too_big)


async def test_taken_once_flagged_seen_never_twice(database, tmp_path, imap_server):
    d = imap_server
    a, b = make_mail("first by IMAP"), make_mail("second by IMAP")
    await asyncio.to_thread(append, d, a, b)
    async with email_center(database, tmp_path, CC_EMAIL__SMTP_ENABLED="false") as ec:
        poller = poller_for(ec, d)
        try:
            assert await poller.poll_once() == 2
            await ec.email.wait_processed(2)
            acks = {(await ec.sink.next())[2]["In-Reply-To"] for _ in range(2)}
            assert acks == {a["Message-ID"], b["Message-ID"]}  # IMAP mail is acknowledged too
            assert await asyncio.to_thread(unseen, d) == []
            assert await poller.poll_once() == 0
            # The \Seen flag is lost (a crash between the store and the flag, another client):
            # the store remembers (mailbox, UIDVALIDITY, UID), so the message is not taken again.
            await asyncio.to_thread(imap_do, d, ("select", ("INBOX",)),
                                    ("uid", ("store", "1", "-FLAGS", "(\\Seen)")))
            assert await asyncio.to_thread(unseen, d) == [b"1"]
            assert await poller.poll_once() == 0
            assert await asyncio.to_thread(unseen, d) == []  # flagged again
        finally:
            await poller.close()
        async with database.session() as s:
            from sqlalchemy import select
            rows = (await s.scalars(select(mail.EmailMessage).where(
                mail.EmailMessage.direction == "inbound").order_by(mail.EmailMessage.id))).all()
        assert [r.subject for r in rows] == ["first by IMAP", "second by IMAP"]
        assert all(r.source == "imap" for r in rows)
        assert rows[0].raw.replace(b"\r\n", b"\n") == a.as_bytes().replace(b"\r\n", b"\n")
        kinds = [e.kind for e in await ec.store.timeline(rows[0].interaction_id)]
        assert "received" in kinds and "thread" in kinds and "queue" in kinds


async def test_move_to_a_folder_and_idle(database, tmp_path, imap_server):
    d = imap_server
    await asyncio.to_thread(imap_do, d, ("create", ("Taken",)))
    await asyncio.to_thread(append, d, make_mail("waiting already"))
    async with email_center(database, tmp_path, CC_EMAIL__SMTP_ENABLED="false") as ec:
        # poll_s is long: only IDLE can bring the second message in within the test's timeout
        poller = poller_for(ec, d, move_to="Taken", poll_s=300)
        task = asyncio.ensure_future(poller.run())
        try:
            await ec.email.wait_processed(1)
            await asyncio.to_thread(append, d, make_mail("arrives while idle"))
            await ec.email.wait_processed(2, timeout=20)
            assert await asyncio.to_thread(count, d, "INBOX") == 0
            assert await asyncio.to_thread(count, d, "Taken") == 2
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await poller.close()
        assert poller.last_error is None


async def test_wrong_password_is_a_clear_error(database, tmp_path, imap_server):
    d = imap_server
    async with email_center(database, tmp_path, CC_EMAIL__SMTP_ENABLED="false") as ec:
        cfg = ImapConfig("127.0.0.1", d.port, d.user, "wrong")
        poller = ImapPoller(cfg, ec.email.take_imap, ec.email.imap_taken)
        with pytest.raises(ImapError, match="login refused"):
            await poller.poll_once()


async def test_the_app_polls_when_configured(database, tmp_path, imap_server):
    d = imap_server
    await asyncio.to_thread(append, d, make_mail("through the app"))
    async with email_center(database, tmp_path, CC_EMAIL__IMAP_ENABLED="true",
                            CC_EMAIL__IMAP_PORT=str(d.port), CC_EMAIL__IMAP_USERNAME=d.user,
                            CC_EMAIL__IMAP_PASSWORD=d.password, CC_EMAIL__IMAP_POLL_S="300") as ec:
        await ec.email.wait_processed(1)
        assert await asyncio.to_thread(unseen, d) == []


async def test_a_message_over_the_limit_stays_in_the_mailbox(database, tmp_path, imap_server):
    d = imap_server
    await asyncio.to_thread(append, d, make_mail("huge", "x" * 50_000), make_mail("small"))
    async with email_center(database, tmp_path, CC_EMAIL__SMTP_ENABLED="false") as ec:
        poller = poller_for(ec, d, max_bytes=20_000)
        try:
            assert await poller.poll_once() == 1
            await ec.email.wait_processed(1)
            assert await poller.poll_once() == 0  # not tried again
        finally:
            await poller.close()
        flags = await asyncio.to_thread(imap_do, d, ("select", ("INBOX",)),
                                        ("uid", ("fetch", "1", "(FLAGS)")))
        assert b"$TooBig" in flags[1][0]
        async with database.session() as s:
            from sqlalchemy import select
            big = (await s.scalars(select(mail.EmailMessage)
                                   .where(mail.EmailMessage.status == "failed"))).one()
        assert "over the limit" in (big.error or "")
        interaction = await ec.store.get_interaction(big.interaction_id)
        assert interaction.state == "failed"
        assert [e.kind for e in await ec.store.timeline(big.interaction_id)][-2:] == ["too_big", "state"]
