"""AuthService on the real store (SQLite and PostgreSQL): credentials, lock-out, sessions."""
from __future__ import annotations

from datetime import timedelta

import pytest

from callcenter.facade import LoginRefused
from callcenter.services.auth import BAD_CREDENTIALS, LOCKED_OUT, AuthService, AuthSettings, token_hash
from crm_core.store import CrmStore
from crm_core.web_sessions import WebSessions
from tests.agent_ui.conftest import FAST_HASHER, PASSWORD, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(database) -> CrmStore:
    s = CrmStore(database, password_hasher=FAST_HASHER)
    await s.create_user("alice", PASSWORD, ["agent"], display_name="Alice Agent", extension="1001")
    return s


def make_auth(database, store, clock, **kw) -> AuthService:
    settings = AuthSettings(**{"max_failures_per_user": 3, "max_failures_per_remote": 10,
                               "failure_window": timedelta(minutes=15), **kw})
    return AuthService(database, store, clock, settings)


async def test_login_returns_session_with_user(database, store, clock):
    auth = make_auth(database, store, clock)
    ws = await auth.login("Alice", PASSWORD, "10.0.0.1")
    assert ws.user.username == "alice" and ws.user.display_name == "Alice Agent"
    assert ws.user.roles == ("agent",) and ws.user.extension == "1001"
    assert len(ws.token) >= 43 and len(ws.csrf) >= 43 and ws.token != ws.csrf
    again = await auth.session(ws.token)
    assert again is not None and again.user == ws.user and again.csrf == ws.csrf


async def test_token_is_stored_hashed_only(database, store, clock):
    auth = make_auth(database, store, clock)
    ws = await auth.login("alice", PASSWORD, "10.0.0.1")
    rec = await WebSessions(database).get(token_hash(ws.token))
    assert rec is not None
    assert await WebSessions(database).get(ws.token) is None  # the raw token is not a key


async def test_wrong_password_and_unknown_user_get_the_same_message(database, store, clock):
    auth = make_auth(database, store, clock)
    with pytest.raises(LoginRefused) as wrong:
        await auth.login("alice", "wrong password!", "10.0.0.1")
    with pytest.raises(LoginRefused) as unknown:
        await auth.login("nobody", "wrong password!", "10.0.0.1")
    assert str(wrong.value) == str(unknown.value) == BAD_CREDENTIALS
    assert wrong.value.locked_until is None and unknown.value.locked_until is None


async def test_disabled_user_cannot_sign_in_and_loses_sessions(database, store, clock):
    auth = make_auth(database, store, clock)
    ws = await auth.login("alice", PASSWORD, "10.0.0.1")
    await store.create_user("bob", PASSWORD, ["agent"], disabled=True)
    with pytest.raises(LoginRefused, match=BAD_CREDENTIALS):
        await auth.login("bob", PASSWORD, "10.0.0.1")
    assert await auth.logout_user(ws.user.id) == 1
    assert await auth.session(ws.token) is None


async def test_lockout_per_username_then_release_after_window(database, store, clock):
    auth = make_auth(database, store, clock)
    for _ in range(3):
        with pytest.raises(LoginRefused, match=BAD_CREDENTIALS):
            await auth.login("alice", "wrong password!", f"10.0.0.{_}")
        clock.advance(seconds=10)
    # locked: even the right password is refused, from any address
    with pytest.raises(LoginRefused) as e:
        await auth.login("alice", PASSWORD, "10.9.9.9")
    assert str(e.value) == LOCKED_OUT
    first_failure = clock.now - timedelta(seconds=30)
    assert e.value.locked_until == (first_failure + timedelta(minutes=15)).timestamp()
    # refused attempts while locked do not extend the lock-out
    clock.advance(minutes=14)
    with pytest.raises(LoginRefused, match="Too many"):
        await auth.login("alice", PASSWORD, "10.9.9.9")
    clock.advance(seconds=31)  # the oldest failure has left the window
    ws = await auth.login("alice", PASSWORD, "10.9.9.9")
    assert ws.user.username == "alice"


async def test_lockout_for_unknown_username_looks_the_same(database, store, clock):
    auth = make_auth(database, store, clock)
    for _ in range(3):
        with pytest.raises(LoginRefused):
            await auth.login("ghost", "wrong password!", "10.0.0.1")
    with pytest.raises(LoginRefused, match="Too many"):
        await auth.login("ghost", "wrong password!", "10.0.0.2")


async def test_success_clears_the_username_count(database, store, clock):
    auth = make_auth(database, store, clock)
    for _ in range(2):
        with pytest.raises(LoginRefused):
            await auth.login("alice", "wrong password!", "10.0.0.1")
    await auth.login("alice", PASSWORD, "10.0.0.1")
    for _ in range(2):
        with pytest.raises(LoginRefused, match=BAD_CREDENTIALS):
            await auth.login("alice", "wrong password!", "10.0.0.1")
    await auth.login("alice", PASSWORD, "10.0.0.1")


async def test_lockout_per_remote_address(database, store, clock):
    auth = make_auth(database, store, clock, max_failures_per_user=100, max_failures_per_remote=4)
    for i in range(4):
        with pytest.raises(LoginRefused, match=BAD_CREDENTIALS):
            await auth.login(f"user{i}", "wrong password!", "192.0.2.7")
    with pytest.raises(LoginRefused, match="Too many"):
        await auth.login("alice", PASSWORD, "192.0.2.7")
    assert (await auth.login("alice", PASSWORD, "192.0.2.8")).user.username == "alice"


async def test_fresh_token_on_every_login(database, store, clock):
    auth = make_auth(database, store, clock)
    a = await auth.login("alice", PASSWORD, "10.0.0.1")
    b = await auth.login("alice", PASSWORD, "10.0.0.1")
    assert a.token != b.token and a.csrf != b.csrf


async def test_idle_timeout_and_absolute_expiry(database, store, clock):
    auth = make_auth(database, store, clock, idle_timeout=timedelta(minutes=30),
                     session_ttl=timedelta(hours=2), touch_interval=timedelta(seconds=60))
    ws = await auth.login("alice", PASSWORD, "10.0.0.1")
    for _ in range(4):  # activity every 29 minutes keeps it alive ...
        clock.advance(minutes=29)
        assert await auth.session(ws.token) is not None
    clock.advance(minutes=5)
    assert await auth.session(ws.token) is None  # ... but not past its absolute lifetime (2 h)

    ws = await auth.login("alice", PASSWORD, "10.0.0.1")
    clock.advance(minutes=30)
    assert await auth.session(ws.token) is None  # idle


async def test_logout_and_garbage_tokens(database, store, clock):
    auth = make_auth(database, store, clock)
    ws = await auth.login("alice", PASSWORD, "10.0.0.1")
    await auth.logout(ws.token)
    assert await auth.session(ws.token) is None
    for bad in ("", "x" * 10_000, "nope", None):
        assert await auth.session(bad) is None  # type: ignore[arg-type]
        await auth.logout(bad)  # type: ignore[arg-type]


async def test_csrf_check():
    from callcenter.facade import WebSession, WebUser

    s = WebSession("t", "c" * 43, WebUser(1, "a", "A", ("agent",)))
    assert AuthService.csrf_ok(s, "c" * 43)
    assert not AuthService.csrf_ok(s, "c" * 42 + "d")
    assert not AuthService.csrf_ok(s, None)
    assert not AuthService.csrf_ok(s, "")


async def test_expired_rows_are_purged(database, store, clock):
    auth = make_auth(database, store, clock, session_ttl=timedelta(hours=1),
                     purge_interval=timedelta(minutes=5))
    ws = await auth.login("alice", PASSWORD, "10.0.0.1")
    clock.advance(hours=2)
    await auth.login("alice", PASSWORD, "10.0.0.1")  # triggers the purge
    assert await WebSessions(database).get(token_hash(ws.token)) is None
    assert await WebSessions(database).count_for_user(ws.user.id) == 1
