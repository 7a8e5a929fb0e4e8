"""Sign-in, server-side sessions and lock-out: the `login` / `session` / `logout` part of the facade.

    auth = AuthService(db, store, clock=utcnow, settings=AuthSettings(max_failures_per_user=5))
    web_session = await auth.login("alice", "secret password", remote="203.0.113.9")
    again = await auth.session(web_session.token)      # WebSession, or None once expired or idle
    await auth.logout(web_session.token)

- The password is checked by `CrmStore.authenticate` (argon2; same cost for an unknown username).
- A fresh random token on every sign-in (no session fixation); the database keeps only its sha256,
  so any number of server processes on the same database share the sessions.
- Each session has its own CSRF token, echoed by state-changing requests.
- Lock-out: after `max_failures_per_user` failures for one username (existing or not) or
  `max_failures_per_remote` failures from one address within `failure_window`, sign-in is refused
  until the oldest of those failures leaves the window. Refused attempts during a lock-out are
  recorded but not counted, so the lock-out ends on time. A successful sign-in clears the
  username's count (not the address's). Processes count through the database: under a burst of
  parallel attempts a few more than the threshold may get checked.
- The clock is injected (aware UTC datetimes): tests move time instead of sleeping.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from callcenter.facade import LoginRefused, WebSession, WebUser
from crm_core.db import Database
from crm_core.store import CrmStore
from crm_core.types import utcnow
from crm_core.web_sessions import AttemptOutcome, SessionRecord, WebSessions

log = logging.getLogger(__name__)

BAD_CREDENTIALS = "Invalid username or password."
LOCKED_OUT = "Too many failed sign-in attempts. Try again later."
MAX_USERNAME = 256
MAX_PASSWORD = 1024
MAX_TOKEN = 256

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class AuthSettings:
    session_ttl: timedelta = timedelta(hours=12)  # absolute lifetime of a session
    idle_timeout: timedelta = timedelta(minutes=30)  # no request for this long ends it
    max_failures_per_user: int = 5
    max_failures_per_remote: int = 20
    failure_window: timedelta = timedelta(minutes=15)
    touch_interval: timedelta = timedelta(seconds=60)  # write last_seen at most this often
    purge_interval: timedelta = timedelta(hours=1)  # delete expired sessions / old attempts

    def __post_init__(self) -> None:
        if self.max_failures_per_user < 1 or self.max_failures_per_remote < 1:
            raise ValueError("lock-out thresholds must be at least 1")
        for name in ("session_ttl", "idle_timeout", "failure_window"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be positive")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class AuthService:
    def __init__(self, db: Database, store: CrmStore, clock: Clock = utcnow,
                 settings: AuthSettings | None = None) -> None:
        self.db = db
        self.store = store
        self.clock = clock
        self.settings = settings or AuthSettings()
        self.sessions = WebSessions(db)
        self._last_purge: datetime | None = None

    # ------------------------------------------------------------------ facade
    async def login(self, username: str, password: str, remote: str) -> WebSession:
        """A new session, or LoginRefused. The message never tells whether the username exists."""
        now = self.clock()
        await self._maybe_purge(now)
        username = username if isinstance(username, str) else ""
        password = password if isinstance(password, str) else ""
        remote = remote or "unknown"
        locked_until = await self._locked_until(username, remote, now)
        if locked_until is not None:
            await self.sessions.record_attempt(username, remote, AttemptOutcome.LOCKED, now)
            log.warning("sign-in refused (locked out): remote=%s", remote)
            raise LoginRefused(LOCKED_OUT, locked_until=locked_until.timestamp())
        user = None
        if 0 < len(username) <= MAX_USERNAME and 0 < len(password) <= MAX_PASSWORD:
            user = await self.store.authenticate(username, password)
        if user is None:
            await self.sessions.record_attempt(username, remote, AttemptOutcome.FAIL, now)
            log.info("sign-in failed: remote=%s", remote)
            raise LoginRefused(BAD_CREDENTIALS)
        await self.sessions.record_attempt(username, remote, AttemptOutcome.OK, now)
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        await self.sessions.create(token_hash(token), csrf, user.id, remote, now=now,
                                   expires_at=now + self.settings.session_ttl)
        web_user = WebUser(
            id=user.id, username=user.username, display_name=user.display_name,
            roles=tuple(user.roles or ()), teams=tuple(t.name for t in user.teams),
            extension=user.extension,
        )
        return WebSession(token=token, csrf=csrf, user=web_user)

    async def session(self, token: str) -> WebSession | None:
        """The live session for a cookie value, or None (unknown, expired, idle, user disabled)."""
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN:
            return None
        h = token_hash(token)
        rec = await self.sessions.get(h)
        if rec is None:
            return None
        now = self.clock()
        if (rec.disabled or now >= rec.expires_at
                or now - rec.last_seen_at >= self.settings.idle_timeout):
            await self.sessions.delete(h)
            return None
        if now - rec.last_seen_at >= self.settings.touch_interval:
            await self.sessions.touch(h, now)
        return WebSession(token=token, csrf=rec.csrf, user=_web_user(rec))

    async def logout(self, token: str) -> None:
        if isinstance(token, str) and 0 < len(token) <= MAX_TOKEN:
            await self.sessions.delete(token_hash(token))

    # ------------------------------------------------------------------ helpers
    async def logout_user(self, user_id: int) -> int:
        """End every session of a user (password change, account disabled)."""
        return await self.sessions.delete_for_user(user_id)

    @staticmethod
    def csrf_ok(session: WebSession, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(session.csrf.encode(), (presented or "").encode())

    async def _locked_until(self, username: str, remote: str, now: datetime) -> datetime | None:
        s = self.settings
        since = now - s.failure_window
        until: datetime | None = None
        for limit, kw in ((s.max_failures_per_user, {"username": username}),
                          (s.max_failures_per_remote, {"remote": remote})):
            fails = await self.sessions.recent_failures(since=since, limit=limit, **kw)
            if len(fails) >= limit:
                # locked until the limit-th newest failure leaves the window
                t = fails[limit - 1] + s.failure_window
                until = t if until is None else max(until, t)
        return until

    async def _maybe_purge(self, now: datetime) -> None:
        if self._last_purge is not None and now - self._last_purge < self.settings.purge_interval:
            return
        self._last_purge = now
        try:
            await self.sessions.purge(now, keep_attempts=max(self.settings.failure_window,
                                                             timedelta(days=30)))
        except Exception:  # housekeeping must never block a sign-in
            log.exception("purging expired web sessions failed")


def _web_user(rec: SessionRecord) -> WebUser:
    return WebUser(id=rec.user_id, username=rec.username, display_name=rec.display_name,
                   roles=rec.roles, teams=rec.teams, extension=rec.extension)


__all__ = ["AuthService", "AuthSettings", "BAD_CREDENTIALS", "LOCKED_OUT", "token_hash"]
