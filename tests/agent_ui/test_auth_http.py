"""Sign-in over real HTTP with the real AuthService, on SQLite and PostgreSQL."""
from __future__ import annotations

from http.cookies import SimpleCookie

import pytest

from agent_ui.routes import UiConfig
from callcenter.services.auth import AuthService, AuthSettings
from crm_core.db import Database
from tests.agent_ui.conftest import (
    AUTH_SETTINGS,
    CSRF_RE,
    PASSWORD,
    StubConsoleFacade,
    client,
    login,
    make_app,
    make_store,
)
from tests.http import serve


@pytest.fixture
async def facade(database, clock) -> StubConsoleFacade:
    store = await make_store(database)
    return StubConsoleFacade(AuthService(database, store, clock, AUTH_SETTINGS))


@pytest.fixture
async def server(facade):
    async with serve(make_app(facade)) as url:
        yield url


def set_cookie(resp, name: str):
    for header in resp.headers.getall("Set-Cookie", []):
        c = SimpleCookie()
        c.load(header)
        if name in c:
            return c[name], header
    return None, None


async def console_csrf(http, url: str) -> str:
    page = await http.get(f"{url}/console", allow_redirects=False)
    assert page.status == 200
    return CSRF_RE.search(await page.text()).group(1)


async def test_login_sets_a_hardened_session_cookie(server):
    async with client() as http:
        r = await login(http, server)
        assert r.status == 303 and r.headers["Location"] == "/console"
        morsel, raw = set_cookie(r, "cc_session")
        assert morsel is not None and len(morsel.value) >= 43
        assert morsel["httponly"] and morsel["samesite"] == "Lax" and morsel["path"] == "/"
        assert not morsel["secure"]  # plain http and cookie_secure not set
        page = await http.get(f"{server}/console", allow_redirects=False)
        assert page.status == 200 and "Alice Agent" in await page.text()


async def test_cookie_secure_when_configured(facade):
    async with serve(make_app(facade, UiConfig(cookie_secure=True))) as url, client() as http:
        page = await http.get(f"{url}/login")
        morsel, _ = set_cookie(page, "cc_login_csrf")
        assert morsel["secure"]
        token = CSRF_RE.search(await page.text()).group(1)
        # the jar will not send a Secure cookie over http: hand it in explicitly
        r = await http.post(f"{url}/login", data={"username": "alice", "password": PASSWORD,
                                                  "csrf": token},
                            headers={"Cookie": f"cc_login_csrf={token}"}, allow_redirects=False)
        assert r.status == 303
        morsel, _ = set_cookie(r, "cc_session")
        assert morsel["secure"] and morsel["httponly"] and morsel["samesite"] == "Lax"


async def test_wrong_password_and_unknown_user_look_the_same(server):
    async with client() as http:
        wrong = await login(http, server, password="not the password")
        body_wrong = await wrong.text()
        unknown = await login(http, server, username="nobody")
        body_unknown = await unknown.text()
    assert wrong.status == unknown.status == 401
    assert "Invalid username or password." in body_wrong
    assert "Invalid username or password." in body_unknown
    assert set_cookie(wrong, "cc_session")[0] is None


async def test_login_form_needs_its_csrf_cookie(server):
    async with client() as http:
        page = await http.get(f"{server}/login")
        token = CSRF_RE.search(await page.text()).group(1)
        http.cookie_jar.clear()
        r = await http.post(f"{server}/login", allow_redirects=False,
                            data={"username": "alice", "password": PASSWORD, "csrf": token})
        assert r.status == 403 and set_cookie(r, "cc_session")[0] is None
        await http.get(f"{server}/login")  # cookie again, but a different form value
        r = await http.post(f"{server}/login", allow_redirects=False,
                            data={"username": "alice", "password": PASSWORD, "csrf": "forged"})
        assert r.status == 403 and set_cookie(r, "cc_session")[0] is None


async def test_cross_origin_login_post_is_refused(server):
    async with client() as http:
        page = await http.get(f"{server}/login")
        token = CSRF_RE.search(await page.text()).group(1)
        r = await http.post(f"{server}/login", allow_redirects=False,
                            headers={"Origin": "http://evil.example"},
                            data={"username": "alice", "password": PASSWORD, "csrf": token})
        assert r.status == 403


async def test_lockout_then_release_after_the_window(server, clock):
    async with client() as http:
        for _ in range(3):
            assert (await login(http, server, password="not the password")).status == 401
        locked = await login(http, server)  # the right password, but locked out
        assert locked.status == 429 and "Too many failed sign-in attempts" in await locked.text()
        assert int(locked.headers["Retry-After"]) >= 1
        clock.advance(minutes=16)
        assert (await login(http, server)).status == 303


async def post_login(http, url: str, extra_cookie: str = ""):
    """GET the form, then POST it with the form's CSRF cookie plus `extra_cookie`."""
    async with client() as fresh:
        page = await fresh.get(f"{url}/login")
        token = CSRF_RE.search(await page.text()).group(1)
    return await http.post(f"{url}/login", allow_redirects=False,
                           data={"username": "alice", "password": PASSWORD, "csrf": token},
                           headers={"Cookie": f"cc_login_csrf={token}{extra_cookie}"})


async def test_fresh_token_at_login_no_session_fixation(server, facade):
    async with client() as http:
        # an attacker-planted cookie value is never adopted
        r = await post_login(http, server, "; cc_session=planted-by-attacker")
        first, _ = set_cookie(r, "cc_session")
        assert r.status == 303 and first.value != "planted-by-attacker"
        assert await facade.session("planted-by-attacker") is None
        # signing in again from a browser that has a session: a new token, the old one ends
        r = await post_login(http, server, f"; cc_session={first.value}")
        second, _ = set_cookie(r, "cc_session")
        assert second.value != first.value
        assert await facade.session(first.value) is None
        assert await facade.session(second.value) is not None


async def test_login_page_redirects_when_signed_in(server):
    async with client() as http:
        await login(http, server)
        r = await http.get(f"{server}/login", allow_redirects=False)
        assert r.status == 302 and r.headers["Location"] == "/console"


async def test_console_redirects_to_login_without_session(server):
    async with client() as http:
        r = await http.get(f"{server}/console", allow_redirects=False)
        assert r.status == 302 and r.headers["Location"] == "/login"


async def test_logout_needs_csrf(server, facade):
    async with client() as http:
        r = await login(http, server)
        token = set_cookie(r, "cc_session")[0].value
        refused = await http.post(f"{server}/logout", allow_redirects=False)
        assert refused.status == 403
        refused = await http.post(f"{server}/logout", data={"csrf": "wrong"}, allow_redirects=False)
        assert refused.status == 403
        assert await facade.session(token) is not None
        csrf = await console_csrf(http, server)
        out = await http.post(f"{server}/logout", data={"csrf": csrf}, allow_redirects=False)
        assert out.status == 303 and out.headers["Location"] == "/login"
        morsel, _ = set_cookie(out, "cc_session")
        assert morsel is not None and morsel.value == ""  # deleted
        assert await facade.session(token) is None
        r = await http.get(f"{server}/console", allow_redirects=False)
        assert r.status == 302


async def test_logout_accepts_csrf_header(server, facade):
    async with client() as http:
        token = set_cookie(await login(http, server), "cc_session")[0].value
        csrf = await console_csrf(http, server)
        out = await http.post(f"{server}/logout", headers={"X-CSRF-Token": csrf}, allow_redirects=False)
        assert out.status == 303 and await facade.session(token) is None


async def test_session_shared_by_two_app_instances_on_one_database(database, clock):
    """Two processes' worth of app: separate Database engines, AuthServices and servers."""
    store = await make_store(database)
    other_db = Database(database.url.render_as_string(hide_password=False), schema=database.schema)
    try:
        a = StubConsoleFacade(AuthService(database, store, clock, AUTH_SETTINGS))
        b = StubConsoleFacade(AuthService(other_db, await _store_only(other_db), clock, AUTH_SETTINGS))
        async with serve(make_app(a)) as url_a, serve(make_app(b)) as url_b, client() as http:
            token = set_cookie(await login(http, url_a), "cc_session")[0].value
            r = await http.get(f"{url_b}/console", allow_redirects=False,
                               headers={"Cookie": f"cc_session={token}"})
            assert r.status == 200 and "Alice Agent" in await r.text()
            csrf = CSRF_RE.search(await r.text()).group(1)
            out = await http.post(f"{url_b}/logout", data={"csrf": csrf}, allow_redirects=False,
                                  headers={"Cookie": f"cc_session={token}"})
            assert out.status == 303
            r = await http.get(f"{url_a}/console", allow_redirects=False,
                               headers={"Cookie": f"cc_session={token}"})
            assert r.status == 302  # signed out on A too
    finally:
        await other_db.close()


async def _store_only(db):
    from crm_core.store import CrmStore
    from tests.agent_ui.conftest import FAST_HASHER

    return CrmStore(db, password_hasher=FAST_HASHER)


async def test_idle_session_is_refused(facade, clock):
    facade.auth.settings = AuthSettings(max_failures_per_user=3, idle_timeout=AUTH_SETTINGS.idle_timeout)
    async with serve(make_app(facade)) as url, client() as http:
        await login(http, url)
        clock.advance(minutes=31)
        r = await http.get(f"{url}/console", allow_redirects=False)
        assert r.status == 302
