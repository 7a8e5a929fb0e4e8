"""IMAP polling (aioimaplib) for mailboxes hosted elsewhere.

Each round: select the mailbox, list unseen UIDs, skip those already taken (the store remembers
(mailbox, UIDVALIDITY, UID)), fetch each new one with BODY.PEEK[], store it with its interaction in
one transaction, and only then flag it \\Seen or MOVE it away. A crash between the store and the
flag leaves a message that the next round skips: never taken twice. Between rounds the poller
IDLEs when the server offers it, and sleeps `poll_s` otherwise.
"""
from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aioimaplib

log = logging.getLogger(__name__)

UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
FETCH_UID = re.compile(rb"UID (\d+)")
SIZE = re.compile(rb"RFC822\.SIZE (\d+)")
TOO_BIG_FLAG = "$TooBig"

# (raw, mailbox, uidvalidity, uid) -> True if stored now, False if it was taken before
Take = Callable[[bytes, str, int, int], Awaitable[bool]]
Taken = Callable[[str, int, list[int]], Awaitable[set[int]]]
# (mailbox, uidvalidity, uid, size): a message over the size limit, left in the mailbox
TooBig = Callable[[str, int, int, int], Awaitable[None]]


class ImapError(Exception):
    """The server refused something (login, select...); the text says what."""


@dataclass(frozen=True)
class ImapConfig:
    host: str
    port: int
    username: str
    password: str
    mailbox: str = "INBOX"
    tls: bool = False
    move_to: str | None = None
    poll_s: float = 60.0
    timeout_s: float = 30.0
    max_bytes: int = 10_000_000  # bigger messages are left in the mailbox, flagged $TooBig


class ImapPoller:
    def __init__(self, config: ImapConfig, take: Take, taken: Taken, too_big: TooBig | None = None) -> None:
        self.config = config
        self.take = take
        self.taken = taken
        self.too_big = too_big
        self.client: aioimaplib.IMAP4 | None = None
        self.rounds = 0
        self.round_done = asyncio.Event()  # set after every round (tests and the benchmark wait on it)
        self.last_error: str | None = None

    async def connect(self) -> None:
        c = self.config
        if c.tls:
            client = aioimaplib.IMAP4_SSL(c.host, c.port, timeout=c.timeout_s,
                                          ssl_context=ssl.create_default_context())
        else:
            client = aioimaplib.IMAP4(c.host, c.port, timeout=c.timeout_s)
        await client.wait_hello_from_server()
        r = await client.login(c.username, c.password)
        if r.result != "OK":
            await _quiet_logout(client)
            raise ImapError(f"IMAP login refused for {c.username}: {_text(r.lines)}")
        self.client = client

    async def poll_once(self) -> int:
        """One round; returns how many messages were taken."""
        if self.client is None:
            await self.connect()
        client = self.client
        assert client is not None
        c = self.config
        r = await client.select(c.mailbox)
        if r.result != "OK":
            raise ImapError(f"cannot select {c.mailbox}: {_text(r.lines)}")
        validity = next((int(m.group(1)) for line in r.lines if isinstance(line, bytes | bytearray)
                         for m in [UIDVALIDITY.search(bytes(line))] if m), 0)
        r = await client.uid_search("UNSEEN", charset=None)
        if r.result != "OK":
            raise ImapError(f"search failed: {_text(r.lines)}")
        uids = [int(x) for line in r.lines[:1] for x in bytes(line).split() if x.isdigit()]
        already = await self.taken(c.mailbox, validity, uids) if uids else set()
        count = 0
        for uid in uids:
            if uid not in already:
                size = await self._size(client, uid)
                if size is not None and size > c.max_bytes:
                    log.warning("IMAP UID %s is %d bytes, over the limit: left in %s, flagged %s",
                                uid, size, c.mailbox, TOO_BIG_FLAG)
                    await client.uid("store", str(uid), "+FLAGS.SILENT", f"({TOO_BIG_FLAG} \\Seen)")
                    if self.too_big is not None:
                        await self.too_big(c.mailbox, validity, uid, size)
                    continue
                raw = await self._fetch(client, uid)
                if raw is None:
                    continue
                if await self.take(raw, c.mailbox, validity, uid):
                    count += 1
            await self._done_with(client, uid)
        self.rounds += 1
        self.round_done.set()
        return count

    async def _size(self, client: aioimaplib.IMAP4, uid: int) -> int | None:
        r = await client.uid("fetch", str(uid), "(RFC822.SIZE)")
        for line in r.lines:
            m = SIZE.search(bytes(line)) if isinstance(line, bytes | bytearray) else None
            if m:
                return int(m.group(1))
        return None

    async def _fetch(self, client: aioimaplib.IMAP4, uid: int) -> bytes | None:
        r = await client.uid("fetch", str(uid), "(BODY.PEEK[])")
        if r.result != "OK":
            log.warning("IMAP fetch of UID %s failed: %s", uid, _text(r.lines))
            return None
        for line in r.lines:
            if isinstance(line, bytearray):  # the literal: the message itself
                return bytes(line)
        return None

    async def _done_with(self, client: aioimaplib.IMAP4, uid: int) -> None:
        """Flag the message \\Seen, or MOVE it away when configured (and offered)."""
        c = self.config
        if c.move_to and client.has_capability("MOVE"):
            r = await client.uid("move", str(uid), c.move_to)
        else:
            r = await client.uid("store", str(uid), "+FLAGS.SILENT", "(\\Seen)")
        if r.result != "OK":
            log.warning("IMAP could not mark UID %s: %s", uid, _text(r.lines))

    async def wait_for_mail(self) -> None:
        """IDLE until the server pushes something (or poll_s passes); sleep without IDLE."""
        client = self.client
        c = self.config
        if client is None or not client.has_capability("IDLE"):
            await asyncio.sleep(c.poll_s)
            return
        idle = await client.idle_start(timeout=c.poll_s + 5)
        try:
            await client.wait_server_push(timeout=c.poll_s)
        except TimeoutError:
            pass
        finally:
            if client.has_pending_idle():
                client.idle_done()
            try:
                await asyncio.wait_for(idle, c.timeout_s)
            except TimeoutError:
                pass

    async def run(self, *, retry_s: float = 5.0) -> None:
        """Poll forever; a lost connection or a refusal is logged and retried."""
        while True:
            try:
                await self.poll_once()
                await self.wait_for_mail()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - keep polling; say why it failed
                self.last_error = f"{type(e).__name__}: {e}"
                log.warning("IMAP polling failed (%s); retrying in %.0f s", self.last_error, retry_s)
                await self.close()
                self.round_done.set()
                await asyncio.sleep(retry_s)

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await _quiet_logout(client)


async def _quiet_logout(client: aioimaplib.IMAP4) -> None:
    try:
        await asyncio.wait_for(client.logout(), 5)
    except Exception:  # noqa: BLE001 - closing anyway
        pass


def _text(lines: list[bytes]) -> str:
    return " ".join(bytes(x).decode("utf-8", "replace") for x in lines[-1:])[:200]
