"""Web chat messages: one row per message, numbered per chat (the interaction), stored whole.

    log = ChatLog(db)
    msg = await log.append(interaction_id, seq=1, sender="customer", body="Hello", client_id="c1")
    later = await log.since(interaction_id, after_seq=0)     # the transcript, in order

`append` returns only once the row is committed (messages arriving together share one
transaction: group commit). A message whose `client_id` is already stored for the chat is not
stored twice: the stored one is returned (a client resending after a reconnect).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Engine,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.db import Database
from crm_core.errors import NotFound, ValidationError
from crm_core.models import Base, one_of
from crm_core.types import IdType, UTCDateTime, as_utc, utcnow

MAX_BODY_CHARS = 100_000  # the store's own bound; the chat channel's limit is lower
MAX_CLIENT_ID = 64


class Sender(StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    BOT = "bot"
    SYSTEM = "system"


class ChatMessageRow(Base):
    __tablename__ = "chat_messages"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    interaction_id: Mapped[int] = mapped_column(IdType, ForeignKey("interactions.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    sender: Mapped[str] = mapped_column(String(8))
    author: Mapped[str | None] = mapped_column(String(64), default=None)  # agent username
    client_id: Mapped[str | None] = mapped_column(String(MAX_CLIENT_ID), default=None)
    body: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("interaction_id", "seq", name="uq_chat_messages_interaction_id_seq"),
        UniqueConstraint("interaction_id", "client_id", name="uq_chat_messages_interaction_id_client_id"),
        one_of("sender", Sender),
    )


@dataclass(frozen=True, slots=True)
class StoredMessage:
    interaction_id: int
    seq: int
    sender: str
    body: str
    at: datetime
    author: str | None = None
    client_id: str | None = None


def _row(r: Any) -> StoredMessage:
    return StoredMessage(r.interaction_id, r.seq, r.sender, r.body, as_utc(r.at), r.author, r.client_id)


_COLS = (ChatMessageRow.interaction_id, ChatMessageRow.seq, ChatMessageRow.sender, ChatMessageRow.body,
         ChatMessageRow.at, ChatMessageRow.author, ChatMessageRow.client_id)


class ChatLog:
    """Stores and reads chat messages. One per process (it batches concurrent appends)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending: list[tuple[StoredMessage, asyncio.Future[StoredMessage]]] = []
        self._task: asyncio.Task[None] | None = None
        # SQLite: a batch is written in one trip to a worker thread on a plain sqlite3 connection
        # (begin, insert, commit), instead of one thread hop per statement through aiosqlite.
        self._writer: Engine | None = None
        if db.is_sqlite and db.url.database not in (None, "", ":memory:"):
            from crm_core.db import _sqlite_pragmas

            self._writer = create_engine(db.url.set(drivername="sqlite"), pool_size=1, max_overflow=1)
            event.listen(self._writer, "connect", _sqlite_pragmas)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.dispose()

    def _insert_sync(self, rows: list[dict[str, Any]]) -> None:
        assert self._writer is not None
        with self._writer.begin() as conn:
            conn.execute(insert(ChatMessageRow), rows)

    async def _insert(self, rows: list[dict[str, Any]]) -> None:
        if self._writer is not None:
            await asyncio.to_thread(self._insert_sync, rows)
            return
        async with self.db.engine.begin() as conn:  # Core, no ORM session: less per batch
            await conn.execute(insert(ChatMessageRow), rows)

    async def append(self, interaction_id: int, seq: int, sender: str, body: str, *,
                     author: str | None = None, client_id: str | None = None,
                     at: datetime | None = None) -> StoredMessage:
        if sender not in Sender.__members__.values():
            raise ValidationError(f"unknown sender {sender!r}", field="sender", value=sender)
        if not isinstance(body, str) or len(body) > MAX_BODY_CHARS:
            raise ValidationError(f"a message body is text of at most {MAX_BODY_CHARS} characters",
                                  field="body")
        if client_id is not None and (not client_id or len(client_id) > MAX_CLIENT_ID):
            raise ValidationError("client_id must be 1..64 characters", field="client_id")
        if seq < 1:
            raise ValidationError("seq starts at 1", field="seq", value=seq)
        msg = StoredMessage(interaction_id, seq, sender, body, as_utc(at) if at else utcnow(), author,
                            client_id)
        fut: asyncio.Future[StoredMessage] = asyncio.get_running_loop().create_future()
        self._pending.append((msg, fut))
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._flush())
        return await asyncio.shield(fut)

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._insert([_values(m) for m, _ in batch])
            except IntegrityError:  # a duplicate or an unknown chat spoils the batch: one by one
                for m, fut in batch:
                    await self._one(m, fut)
                continue
            except Exception as e:  # noqa: BLE001 - every waiter hears about it
                for _m, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            for m, fut in batch:
                if not fut.done():
                    fut.set_result(m)

    async def _one(self, m: StoredMessage, fut: asyncio.Future[StoredMessage]) -> None:
        try:
            await self._insert([_values(m)])
        except IntegrityError:
            existing = await self.by_client_id(m.interaction_id, m.client_id) if m.client_id else None
            if not fut.done():
                if existing is not None:
                    fut.set_result(existing)
                else:
                    fut.set_exception(NotFound("Interaction", m.interaction_id) if not await self._exists(
                        m.interaction_id) else ValidationError(f"seq {m.seq} is taken", field="seq"))
            return
        except Exception as e:  # noqa: BLE001
            if not fut.done():
                fut.set_exception(e)
            return
        if not fut.done():
            fut.set_result(m)

    async def _exists(self, interaction_id: int) -> bool:
        from crm_core.models import Interaction

        async with self.db.session() as s:
            return await s.get(Interaction, interaction_id) is not None

    async def since(self, interaction_id: int, after_seq: int = 0,
                    limit: int = 10_000) -> list[StoredMessage]:
        """The chat's messages with seq > after_seq, in order."""
        async with self.db.session() as s:
            rows = (await s.execute(
                select(*_COLS).where(ChatMessageRow.interaction_id == interaction_id,
                                     ChatMessageRow.seq > after_seq)
                .order_by(ChatMessageRow.seq).limit(limit))).all()
        return [_row(r) for r in rows]

    async def by_client_id(self, interaction_id: int, client_id: str | None) -> StoredMessage | None:
        if not client_id:
            return None
        async with self.db.session() as s:
            r = (await s.execute(select(*_COLS).where(ChatMessageRow.interaction_id == interaction_id,
                                                      ChatMessageRow.client_id == client_id))).first()
        return _row(r) if r is not None else None

    async def last_seq(self, interaction_id: int) -> int:
        async with self.db.session() as s:
            n = (await s.execute(select(func.max(ChatMessageRow.seq))
                                 .where(ChatMessageRow.interaction_id == interaction_id))).scalar()
        return int(n or 0)

    async def count(self) -> int:
        async with self.db.session() as s:
            return int((await s.execute(select(func.count(ChatMessageRow.id)))).scalar() or 0)


def _values(m: StoredMessage) -> dict[str, Any]:
    return {"interaction_id": m.interaction_id, "seq": m.seq, "sender": m.sender, "author": m.author,
            "client_id": m.client_id, "body": m.body, "at": m.at}


__all__ = ["ChatLog", "ChatMessageRow", "Sender", "StoredMessage"]
