"""Email in the customer store: every message (inbound and outbound, raw bytes kept whole), its
attachments (files under names the center makes), and the IMAP messages already taken.

An inbound email is stored with its interaction in one transaction *before* the SMTP listener
answers 250 or the IMAP poller flags it, so nothing accepted is ever lost; parsing, threading and
routing come after and update the row.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.db import Database
from crm_core.enums import InteractionState
from crm_core.errors import NotFound
from crm_core.models import Base, Interaction, InteractionEvent
from crm_core.types import IdType, JSONType, UTCDateTime, utcnow

MAX_ID = 500  # Message-ID and friends are cut to this many characters


class EmailMessage(Base):
    __tablename__ = "email_messages"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    interaction_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("interactions.id", ondelete="SET NULL"), default=None)
    direction: Mapped[str] = mapped_column(String(8))  # inbound, outbound
    # inbound: received -> processed | failed; outbound: sent | send_failed
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))  # smtp, imap, console, auto
    message_id: Mapped[str | None] = mapped_column(String(MAX_ID), default=None)
    in_reply_to: Mapped[str | None] = mapped_column(String(MAX_ID), default=None)
    refs: Mapped[list[str]] = mapped_column(JSONType, default=list)  # References, in order
    thread_id: Mapped[int | None] = mapped_column(IdType, default=None)  # the first message's id
    ticket_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("tickets.id", ondelete="SET NULL"), default=None)
    subject: Mapped[str | None] = mapped_column(Text, default=None)
    from_address: Mapped[str | None] = mapped_column(String(320), default=None)
    to_addresses: Mapped[list[str]] = mapped_column(JSONType, default=list)
    envelope_from: Mapped[str | None] = mapped_column(String(320), default=None)
    envelope_to: Mapped[list[str]] = mapped_column(JSONType, default=list)
    text_body: Mapped[str | None] = mapped_column(Text, default=None)
    html_safe: Mapped[str | None] = mapped_column(Text, default=None)  # sanitized (nh3), inert
    auto: Mapped[str | None] = mapped_column(String(64), default=None)  # why no auto-reply
    problems: Mapped[list[str]] = mapped_column(JSONType, default=list)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    size: Mapped[int] = mapped_column(Integer, default=0)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        Index("ix_email_messages_message_id", "message_id"),
        Index("ix_email_messages_thread_id", "thread_id"),
        Index("ix_email_messages_interaction_id", "interaction_id"),
    )


class EmailAttachment(Base):
    __tablename__ = "email_attachments"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    email_id: Mapped[int] = mapped_column(IdType, ForeignKey("email_messages.id", ondelete="CASCADE"))
    stored_name: Mapped[str] = mapped_column(String(64), unique=True)  # made by the center
    filename: Mapped[str] = mapped_column(String(255))  # the sender's name, for display only
    content_type: Mapped[str] = mapped_column(String(127))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_email_attachments_email_id", "email_id"),)


class ImapTaken(Base):
    """One row per IMAP message taken: (mailbox, UIDVALIDITY, UID) is never taken twice."""

    __tablename__ = "email_imap_taken"

    mailbox: Mapped[str] = mapped_column(String(300), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    uid: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    email_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("email_messages.id", ondelete="SET NULL"), default=None)
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


@dataclass(frozen=True)
class Received:
    email_id: int
    interaction_id: int


async def receive(db: Database, raw: bytes, *, source: str, envelope_from: str | None,
                  envelope_to: Sequence[str], imap: tuple[str, int, int] | None = None,
                  at: datetime | None = None) -> Received | None:
    """Store an inbound message whole, with its interaction (timeline: opened, received), in one
    transaction. With `imap` = (mailbox, uidvalidity, uid), the message is also marked taken; if it
    was taken before, nothing is written and None is returned."""
    when = at or utcnow()
    env_from = (envelope_from or "")[:320] or None
    env_to = [a[:320] for a in envelope_to][:100]
    try:
        async with db.session() as s, s.begin():
            if imap is not None:
                s.add(ImapTaken(mailbox=imap[0][:300], uidvalidity=imap[1], uid=imap[2], taken_at=when))
                await s.flush()
            i = Interaction(channel="email", direction="inbound", state=InteractionState.NEW.value,
                            from_address=env_from, to_address=(env_to[0] if env_to else None),
                            skills={}, ivr_path=[], escalation_steps=[], created_at=when, updated_at=when)
            s.add(i)
            await s.flush()
            m = EmailMessage(interaction_id=i.id, direction="inbound", status="received", source=source,
                             envelope_from=env_from, envelope_to=env_to, raw=raw, size=len(raw),
                             refs=[], to_addresses=[], problems=[], created_at=when)
            s.add(m)
            await s.flush()
            s.add_all([
                InteractionEvent(interaction_id=i.id, at=when, kind="opened", ok=True,
                                 data={"channel": "email", "direction": "inbound", "state": "new"}),
                InteractionEvent(interaction_id=i.id, at=when, kind="received", ok=True,
                                 data={"source": source, "bytes": len(raw), "email_id": m.id,
                                       "envelope_from": env_from, **({"imap_uid": imap[2]} if imap else {})}),
            ])
            if imap is not None:
                await s.flush()
                taken = await s.get(ImapTaken, (imap[0][:300], imap[1], imap[2]))
                if taken is not None:
                    taken.email_id = m.id
            return Received(m.id, i.id)
    except IntegrityError:
        if imap is None:
            raise
        return None


async def taken_uids(db: Database, mailbox: str, uidvalidity: int, uids: Iterable[int]) -> set[int]:
    """Which of `uids` were already taken from this mailbox."""
    wanted = list(uids)
    if not wanted:
        return set()
    async with db.session() as s:
        rows = await s.scalars(select(ImapTaken.uid).where(
            ImapTaken.mailbox == mailbox[:300], ImapTaken.uidvalidity == uidvalidity,
            ImapTaken.uid.in_(wanted)))
        return set(rows.all())


async def get_email(db: Database, email_id: int) -> EmailMessage:
    async with db.session() as s:
        m = await s.get(EmailMessage, email_id)
        if m is None:
            raise NotFound("EmailMessage", email_id)
        return m


async def update_email(db: Database, email_id: int, *,
                       events: Sequence[tuple[str, bool, Mapping[str, Any]]] = (), **fields: Any) -> None:
    """Update a message; `events` (kind, ok, data) go on its interaction's timeline in the same
    transaction."""
    async with db.session() as s, s.begin():
        m = await s.get(EmailMessage, email_id)
        if m is None:
            raise NotFound("EmailMessage", email_id)
        for k, v in fields.items():
            setattr(m, k, v)
        if m.interaction_id is not None:
            s.add_all([InteractionEvent(interaction_id=m.interaction_id, kind=k, ok=ok, data=dict(d))
                       for k, ok, d in events])


async def find_duplicate(db: Database, email_id: int, message_id: str,
                         from_address: str | None) -> EmailMessage | None:
    """An earlier inbound message with the same Message-ID from the same sender (a retried
    delivery, or the same mail by SMTP and by IMAP)."""
    async with db.session() as s:
        return (await s.scalars(select(EmailMessage).where(
            EmailMessage.message_id == message_id[:MAX_ID], EmailMessage.direction == "inbound",
            EmailMessage.from_address == from_address, EmailMessage.id < email_id)
            .order_by(EmailMessage.id).limit(1))).first()


async def find_by_message_ids(db: Database, ids: Sequence[str]) -> EmailMessage | None:
    """The newest stored message (either direction) whose Message-ID is one of `ids`."""
    ids = [i[:MAX_ID] for i in ids if i][:200]
    if not ids:
        return None
    async with db.session() as s:
        return (await s.scalars(select(EmailMessage).where(EmailMessage.message_id.in_(ids))
                                .order_by(EmailMessage.id.desc()).limit(1))).first()


async def latest_in_ticket(db: Database, ticket_id: int) -> EmailMessage | None:
    async with db.session() as s:
        return (await s.scalars(select(EmailMessage).where(EmailMessage.ticket_id == ticket_id)
                                .order_by(EmailMessage.id.desc()).limit(1))).first()


async def thread(db: Database, thread_id: int, limit: int = 50) -> list[EmailMessage]:
    """The conversation, oldest first (at most the newest `limit` messages)."""
    async with db.session() as s:
        rows = (await s.scalars(select(EmailMessage).where(EmailMessage.thread_id == thread_id)
                                .order_by(EmailMessage.id.desc()).limit(limit))).all()
    return list(reversed(rows))


async def emails_of(db: Database, interaction_id: int) -> list[EmailMessage]:
    async with db.session() as s:
        return list((await s.scalars(select(EmailMessage).where(
            EmailMessage.interaction_id == interaction_id).order_by(EmailMessage.id))).all())


async def record_outbound(db: Database, *, interaction_id: int | None, status: str, source: str,
                          raw: bytes, fields: Mapping[str, Any],
                          event: tuple[str, bool, Mapping[str, Any]] | None = None) -> int:
    """Store a message the center sent (or failed to send), with its timeline event, in one go."""
    async with db.session() as s, s.begin():
        values: dict[str, Any] = {"refs": [], "to_addresses": [], "envelope_to": [], "problems": [],
                                  **fields}
        m = EmailMessage(interaction_id=interaction_id, direction="outbound", status=status, source=source,
                         raw=raw, size=len(raw), **values)
        s.add(m)
        await s.flush()
        if event is not None and interaction_id is not None:
            kind, ok, data = event
            s.add(InteractionEvent(interaction_id=interaction_id, kind=kind, ok=ok,
                                   data={**data, "email_id": m.id}))
        return m.id


async def add_attachments(db: Database, email_id: int,
                          rows: Sequence[tuple[str, str, str, int]]) -> list[EmailAttachment]:
    """(stored_name, filename, content_type, size) rows for files already written."""
    out = [EmailAttachment(email_id=email_id, stored_name=n, filename=f[:255], content_type=c[:127],
                           size=z) for n, f, c, z in rows]
    async with db.session() as s, s.begin():
        s.add_all(out)
    return out


async def attachments_of(db: Database, email_ids: Sequence[int]) -> list[EmailAttachment]:
    if not email_ids:
        return []
    async with db.session() as s:
        return list((await s.scalars(select(EmailAttachment).where(
            EmailAttachment.email_id.in_(list(email_ids))).order_by(EmailAttachment.id))).all())


async def get_attachment(db: Database, attachment_id: int) -> tuple[EmailAttachment, EmailMessage]:
    async with db.session() as s:
        a = await s.get(EmailAttachment, attachment_id)
        if a is None:
            raise NotFound("EmailAttachment", attachment_id)
        m = await s.get(EmailMessage, a.email_id)
        assert m is not None
        return a, m


__all__ = [
    "EmailAttachment", "EmailMessage", "ImapTaken", "Received", "add_attachments", "attachments_of",
    "emails_of", "find_by_message_ids", "find_duplicate", "get_attachment", "get_email",
    "latest_in_ticket", "receive", "record_outbound", "taken_uids", "thread", "unfinished", "update_email",
]


async def unfinished(db: Database, limit: int = 10_000) -> list[tuple[EmailMessage, str]]:
    """Inbound emails whose interaction never reached an agent (state new, queued or offered),
    oldest first, with that state: after a restart they are processed or routed again."""
    states = ("new", "queued", "offered")
    async with db.session() as s:
        rows = (await s.execute(
            select(EmailMessage, Interaction.state)
            .join(Interaction, Interaction.id == EmailMessage.interaction_id)
            .where(EmailMessage.direction == "inbound", Interaction.channel == "email",
                   Interaction.state.in_(states))
            .order_by(EmailMessage.id).limit(limit))).all()
    return [(m, st) for m, st in rows]
