"""Server-side web sessions and sign-in attempts, shared by every server process through the database.

    sessions = WebSessions(db)
    await sessions.create(token_hash, csrf, user_id, remote, now=now, expires_at=now + ttl)
    record = await sessions.get(token_hash)   # SessionRecord with the user's fields, or None

Only a hash of the session token is stored (the caller hashes it): a copy of the table does not let
anyone sign in. Times are aware UTC datetimes handed in by the caller (its clock), never read here.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Connection, ForeignKey, Index, String, delete, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, selectinload

from crm_core.db import Database
from crm_core.models import Base, User, one_of
from crm_core.types import IdType, UTCDateTime

USERNAME_KEY_MAX = 64
REMOTE_MAX = 64


class AttemptOutcome(StrEnum):
    OK = "ok"
    FAIL = "fail"
    LOCKED = "locked"  # refused by the lock-out before the password was checked; not counted


class WebSessionRow(Base):
    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the cookie value
    csrf: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"))
    remote: Mapped[str | None] = mapped_column(String(REMOTE_MAX), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_web_sessions_user_id", "user_id"),
        Index("ix_web_sessions_expires_at", "expires_at"),
    )


class LoginAttempt(Base):
    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    # the username as typed, trimmed and lower-cased (whether or not such a user exists)
    username: Mapped[str] = mapped_column(String(USERNAME_KEY_MAX))
    remote: Mapped[str] = mapped_column(String(REMOTE_MAX))
    outcome: Mapped[str] = mapped_column(String(8))

    __table_args__ = (
        one_of("outcome", AttemptOutcome),
        Index("ix_login_attempts_username_at", "username", "at"),
        Index("ix_login_attempts_remote_at", "remote", "at"),
    )


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One stored session with what the web layer needs of its user."""

    token_hash: str
    csrf: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    user_id: int
    username: str
    display_name: str
    roles: tuple[str, ...]
    teams: tuple[str, ...]
    extension: str | None
    disabled: bool


def username_key(username: str) -> str:
    """The key login attempts are counted under: trimmed, lower-cased, bounded."""
    return (username if isinstance(username, str) else "").strip().lower()[:USERNAME_KEY_MAX]


def remote_key(remote: str) -> str:
    return (remote or "unknown")[:REMOTE_MAX]


class WebSessions:
    """Sessions and sign-in attempts on one `Database` (SQLite or PostgreSQL)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------------ sessions
    async def create(
        self, token_hash: str, csrf: str, user_id: int, remote: str | None, *,
        now: datetime, expires_at: datetime,
    ) -> None:
        async with self.db.session() as s, s.begin():
            s.add(WebSessionRow(
                token_hash=token_hash, csrf=csrf, user_id=user_id,
                remote=remote_key(remote) if remote else None,
                created_at=now, last_seen_at=now, expires_at=expires_at,
            ))

    async def get(self, token_hash: str) -> SessionRecord | None:
        # one trip to the database: every open console re-checks its session periodically
        return await self.db.read(_get_sync, token_hash)

    async def touch(self, token_hash: str, now: datetime) -> None:
        async with self.db.session() as s, s.begin():
            await s.execute(update(WebSessionRow).where(WebSessionRow.token_hash == token_hash)
                            .values(last_seen_at=now))

    async def delete(self, token_hash: str) -> bool:
        async with self.db.session() as s, s.begin():
            res = await s.execute(delete(WebSessionRow).where(WebSessionRow.token_hash == token_hash))
        return bool(res.rowcount)  # type: ignore[attr-defined]

    async def delete_for_user(self, user_id: int) -> int:
        """Sign a user out everywhere (a password change, a disabled account)."""
        async with self.db.session() as s, s.begin():
            res = await s.execute(delete(WebSessionRow).where(WebSessionRow.user_id == user_id))
        return int(res.rowcount)  # type: ignore[attr-defined]

    async def count_for_user(self, user_id: int) -> int:
        async with self.db.session() as s:
            return int((await s.execute(
                select(func.count()).select_from(WebSessionRow).where(WebSessionRow.user_id == user_id)
            )).scalar_one())

    # ------------------------------------------------------------------ sign-in attempts
    async def record_attempt(self, username: str, remote: str, outcome: AttemptOutcome,
                             at: datetime) -> None:
        async with self.db.session() as s, s.begin():
            s.add(LoginAttempt(at=at, username=username_key(username), remote=remote_key(remote),
                               outcome=AttemptOutcome(outcome).value))

    async def recent_failures(
        self, *, since: datetime, username: str | None = None, remote: str | None = None,
        limit: int = 1000,
    ) -> list[datetime]:
        """Times of the failed attempts since `since`, newest first, for a username or a remote
        address. For a username, only the failures after its last successful sign-in count."""
        if (username is None) == (remote is None):
            raise ValueError("pass exactly one of username, remote")
        where = [LoginAttempt.at >= since, LoginAttempt.outcome == AttemptOutcome.FAIL.value]
        async with self.db.session() as s:
            if username is not None:
                key = username_key(username)
                where.append(LoginAttempt.username == key)
                last_ok = (await s.execute(
                    select(func.max(LoginAttempt.at)).where(
                        LoginAttempt.username == key, LoginAttempt.at >= since,
                        LoginAttempt.outcome == AttemptOutcome.OK.value)
                )).scalar_one_or_none()
                if last_ok is not None:
                    where.append(LoginAttempt.at > last_ok)
            else:
                where.append(LoginAttempt.remote == remote_key(remote or ""))
            rows = (await s.execute(
                select(LoginAttempt.at).where(*where).order_by(LoginAttempt.at.desc()).limit(limit)
            )).scalars()
            return list(rows)

    # ------------------------------------------------------------------ housekeeping
    async def purge(self, now: datetime, *, keep_attempts: timedelta = timedelta(days=30)) -> None:
        """Delete expired sessions and sign-in attempts older than `keep_attempts`."""
        async with self.db.session() as s, s.begin():
            await s.execute(delete(WebSessionRow).where(WebSessionRow.expires_at <= now))
            await s.execute(delete(LoginAttempt).where(LoginAttempt.at < now - keep_attempts))


__all__ = [
    "AttemptOutcome", "LoginAttempt", "SessionRecord", "WebSessionRow", "WebSessions",
    "remote_key", "username_key",
]


def _get_sync(conn: Connection, token_hash: str) -> SessionRecord | None:
    with Session(bind=conn) as s:
        row = s.execute(
            select(WebSessionRow, User)
            .join(User, User.id == WebSessionRow.user_id)
            .where(WebSessionRow.token_hash == token_hash)
            .options(selectinload(User.teams))
        ).first()
        if row is None:
            return None
        ws, u = row
        return SessionRecord(
            token_hash=ws.token_hash, csrf=ws.csrf, created_at=ws.created_at,
            last_seen_at=ws.last_seen_at, expires_at=ws.expires_at, user_id=u.id,
            username=u.username, display_name=u.display_name, roles=tuple(u.roles or ()),
            teams=tuple(t.name for t in u.teams), extension=u.extension, disabled=bool(u.disabled),
        )
