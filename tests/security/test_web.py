"""Web security checks against the running app (real HTTP), enumerating the app's own router so
that routes added later are covered too:

- every state-changing request (POST/PUT/PATCH/DELETE) made with a valid session but without the
  CSRF token is refused, and accepted past the CSRF check with it; public ones say how they are
  guarded (login form token, logout token, Twilio signature);
- the session cookie is HttpOnly and SameSite, Secure over https and behind a TLS proxy
  (X-Forwarded-Proto, only when `web.trust_forwarded_proto` says so); a new session id at login;
- every HTML page the app serves has a Content-Security-Policy without inline script, and the
  page itself has no inline script, event-handler attribute or javascript: URL.
"""
from __future__ import annotations

import html.parser
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agent_ui import access
from agent_ui.routes import SESSION_COOKIE, STATIC
from callcenter.app import build_store
from callcenter.settings import load_settings
from tests.callcenter.voice_harness import running_center

pytestmark = pytest.mark.timeout(180)
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')
PASSWORD = "all-roles-password"
TWILIO = {"CC_TWILIO__ENABLED": "true", "CC_TWILIO__ACCOUNT_SID": "AC" + "0" * 32,
          "CC_TWILIO__AUTH_TOKEN": "x" * 32, "CC_TWILIO__PUBLIC_BASE_URL": "https://cc.example.com"}
WRITES = ("POST", "PUT", "PATCH", "DELETE")
# public state-changing routes and what refuses a forged request (status, text in the answer)
PUBLIC_WRITES = {
    "/login": (403, "expired"),  # the login form's own token (cookie + field)
    "/logout": (403, "CSRF"),  # the session's CSRF token
    "/campaigns/unsubscribe/{token}": (404, "not valid"),  # the recipient's own secret link token
    **{f"/twilio/{p}": (403, "signature")
       for p in ("voice", "gather", "wait", "dequeued", "connect", "dial", "status", "offer")},
}


def _fill(canonical: str) -> str:
    if canonical == "/static":
        return "/static/console.js"
    return re.sub(r"{([^}]+)}", lambda m: "999999" if "id" in m.group(1) or m.group(1) == "version"
                  else "nosuch", canonical)


async def _signed_in(base: str, username: str) -> tuple[aiohttp.ClientSession, str]:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    page = await http.get(f"{base}/login")
    token = CSRF_RE.search(await page.text())
    assert token
    r = await http.post(f"{base}/login", data={"username": username, "password": PASSWORD,
                                               "csrf": token.group(1)}, allow_redirects=False)
    assert r.status == 303
    console = await (await http.get(f"{base}/console")).text()
    csrf = CSRF_RE.search(console)
    assert csrf
    return http, csrf.group(1)


async def _all_roles_user(database) -> None:
    store = build_store(load_settings(env={}), database)
    await store.create_team("red")
    await store.create_user("root", PASSWORD, roles=["agent", "supervisor", "admin"],
                            display_name="Root", team="red")


def _routes(app: Any, methods: tuple[str, ...]) -> list[tuple[str, str]]:
    return sorted({(r.method, r.resource.canonical) for r in app.router.routes() if r.method in methods})


async def test_every_state_changing_request_needs_the_csrf_token(database) -> None:
    await _all_roles_user(database)
    async with running_center(database, **TWILIO) as rc:
        base = rc.base
        http, csrf = await _signed_in(base, "root")
        try:
            writes = _routes(rc.app, WRITES)
            assert len(writes) > 20
            for method, canonical in writes:
                url = base + _fill(canonical)
                rule = access.HTTP[(method, canonical)]
                if rule.scope == "public":
                    assert canonical in PUBLIC_WRITES, (
                        f"{method} {canonical} is public and changes state: add how it refuses forged "
                        "requests to PUBLIC_WRITES (and make sure it does)")
                    status, why = PUBLIC_WRITES[canonical]
                    r = await http.request(method, url, data={"x": "1"}, headers={"Origin": base},
                                           allow_redirects=False)
                    assert r.status == status and why in await r.text(), (method, canonical, r.status)
                    continue
                # signed in (every role), same origin, but no CSRF token: refused, nothing done
                r = await http.request(method, url, json={}, headers={"Origin": base}, allow_redirects=False)
                text = await r.text()
                assert r.status == 403 and "CSRF" in text, (method, canonical, r.status, text[:200])
                # with the token the request gets past the check (to its own validation)
                r = await http.request(method, url, json={}, allow_redirects=False,
                                       headers={"Origin": base, "X-CSRF-Token": csrf})
                text = await r.text()
                assert not (r.status == 403 and "CSRF" in text), (method, canonical)
                assert r.status < 500, (method, canonical, r.status, text[:300])
            # a wrong token is no better than none
            r = await http.post(base + "/api/v1/teams", json={"name": "x"},
                                headers={"Origin": base, "X-CSRF-Token": csrf[:-2] + "xx"})
            assert r.status == 403
        finally:
            await http.close()


async def test_every_signed_in_websocket_refuses_another_origin(database) -> None:
    import websockets
    from websockets.exceptions import InvalidStatus

    await _all_roles_user(database)
    async with running_center(database) as rc:
        http, _csrf = await _signed_in(rc.base, "root")
        cookie = "; ".join(f"{c.key}={c.value}" for c in http.cookie_jar)
        await http.close()
        sockets = [c for m, c in _routes(rc.app, ("GET",)) if c.startswith("/ws/") and c != "/ws/chat"]
        assert "/ws/agent" in sockets
        for path in sockets:
            url = rc.base.replace("http", "ws") + path
            for origin in ("https://evil.example", "null"):
                with pytest.raises(InvalidStatus) as refused:
                    async with websockets.connect(url, additional_headers={"Cookie": cookie,
                                                                           "Origin": origin}):
                        pass
                assert refused.value.response.status_code == 403, (path, origin)
            async with websockets.connect(url, additional_headers={"Cookie": cookie, "Origin": rc.base}):
                pass  # the same session from the page's own origin is accepted


async def test_session_cookie_flags_and_a_fresh_id_at_login(database) -> None:
    await _all_roles_user(database)
    async with running_center(database) as rc:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            jar.update_cookies({SESSION_COOKIE: "planted-by-an-attacker"})
            page = await http.get(f"{rc.base}/login")
            form_cookie = page.headers["Set-Cookie"]
            assert "HttpOnly" in form_cookie and "SameSite=Strict" in form_cookie
            token = CSRF_RE.search(await page.text()).group(1)
            r = await http.post(f"{rc.base}/login", allow_redirects=False,
                                data={"username": "root", "password": PASSWORD, "csrf": token})
            cookie = r.cookies[SESSION_COOKIE]
            assert cookie.value != "planted-by-an-attacker" and len(cookie.value) >= 40
            assert cookie["httponly"] and cookie["samesite"] == "Lax" and not cookie["secure"]
            assert cookie["path"] == "/"
            # signing in again gives yet another id; the old one no longer works
            first = cookie.value
            page = await http.get(f"{rc.base}/login")  # signed in: redirected to the console
            assert page.url.path == "/console"
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            page = await http.get(f"{rc.base}/login")
            token = CSRF_RE.search(await page.text()).group(1)
            r = await http.post(f"{rc.base}/login", allow_redirects=False,
                                data={"username": "root", "password": PASSWORD, "csrf": token})
            assert r.cookies[SESSION_COOKIE].value != first
        # behind a TLS proxy that is not trusted, the header changes nothing
        assert not await _secure_cookie(rc.base, {"X-Forwarded-Proto": "https"})


async def _secure_cookie(base: str, headers: dict[str, str], trusted: bool = False) -> bool:
    async with aiohttp.ClientSession() as http:
        page = await http.get(f"{base}/login", headers=headers)
        token = CSRF_RE.search(await page.text()).group(1)
        # the client speaks plain http to the proxy's back end: it would hold back a Secure cookie
        form_cookie = page.cookies["cc_login_csrf"]
        assert bool(form_cookie["secure"]) == (headers.get("X-Forwarded-Proto") == "https" and trusted)
        r = await http.post(f"{base}/login", allow_redirects=False,
                            headers={**headers, "Cookie": f"cc_login_csrf={form_cookie.value}"},
                            data={"username": "root", "password": PASSWORD, "csrf": token})
        assert r.status == 303, (r.status, page.headers.get("Set-Cookie"), await r.text())
        c = r.cookies[SESSION_COOKIE]
        assert c["httponly"] and c["samesite"] == "Lax"
        return bool(c["secure"])


async def test_secure_cookie_behind_a_trusted_tls_proxy(database) -> None:
    await _all_roles_user(database)
    async with running_center(database, CC_WEB__TRUST_FORWARDED_PROTO="true") as rc:
        assert await _secure_cookie(rc.base, {"X-Forwarded-Proto": "https"}, trusted=True)
        assert not await _secure_cookie(rc.base, {"X-Forwarded-Proto": "http"}, trusted=True)
    async with running_center(database, CC_WEB__COOKIE_SECURE="true") as rc:
        assert await _secure_cookie(rc.base, {"X-Forwarded-Proto": "https"}, trusted=True)


class _InlineFinder(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...> (inline event handler)")
            if value and value.strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}=javascript:...>")
        if tag == "script":
            self._in_script = "src" not in a
            if a.get("type", "").lower() == "importmap":
                self.problems.append("<script type=importmap> (inline)")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append(f"inline <script>: {data.strip()[:60]!r}")


def _check_csp(url: str, resp: aiohttp.ClientResponse, body: str) -> None:
    csp = resp.headers.get("Content-Security-Policy", "")
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    script = directives.get("script-src", directives.get("default-src"))
    assert script, (url, "no Content-Security-Policy with script-src")
    assert "'unsafe-inline'" not in script and "'unsafe-eval'" not in script, (url, csp)
    assert directives.get("object-src") == ["'none'"] and "frame-ancestors" in directives, (url, csp)
    finder = _InlineFinder()
    finder.feed(body)
    assert not finder.problems, (url, finder.problems)


async def test_every_page_has_a_csp_and_no_inline_script(database) -> None:
    await _all_roles_user(database)
    async with running_center(database, **TWILIO) as rc:
        http, _csrf = await _signed_in(rc.base, "root")
        anon = aiohttp.ClientSession()
        try:
            urls = [_fill(c) for m, c in _routes(rc.app, ("GET",)) if not c.startswith("/ws/")]
            urls += ["/static/" + p.relative_to(STATIC).as_posix() for p in sorted(STATIC.rglob("*.htm*"))]
            urls += ["/no/such/page"]
            pages = 0
            for path in urls:
                for client in (http, anon):
                    r = await client.get(rc.base + path, allow_redirects=False)
                    body = await r.text(errors="replace")
                    assert r.status < 500, (path, r.status)
                    assert r.headers.get("X-Content-Type-Options") == "nosniff", path
                    if "html" in r.headers.get("Content-Type", ""):
                        pages += 1
                        _check_csp(path, r, body)
            assert pages >= 5  # /, /login, /console, /admin, static pages...
        finally:
            await http.close()
            await anon.close()


def test_page_templates_have_no_inline_script() -> None:
    root = Path(STATIC).parent
    for page in sorted([*root.joinpath("pages").glob("*.html"), *STATIC.rglob("*.htm*")]):
        finder = _InlineFinder()
        finder.feed(page.read_text(encoding="utf-8"))
        assert not finder.problems, (page.name, finder.problems)
