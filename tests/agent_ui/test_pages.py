"""Pages and static files: security headers everywhere, no inline script, stable test ids."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from agent_ui.routes import PAGES, STATIC
from tests.agent_ui.conftest import client, login

EXPECTED = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def check_headers(resp) -> None:
    for name, value in EXPECTED.items():
        assert resp.headers.get(name) == value, name
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp


@pytest.mark.parametrize("path", ["/", "/login", "/static/console.js", "/static/console.css",
                                  "/static/site.css", "/no-such-page"])
async def test_security_headers_without_session(ws_server, path):
    async with client() as http:
        r = await http.get(ws_server + path, allow_redirects=False)
        assert r.status in (200, 404)
        check_headers(r)


async def test_security_headers_and_no_store_on_the_console(ws_server):
    async with client() as http:
        r = await login(http, ws_server)
        check_headers(r)
        page = await http.get(f"{ws_server}/console", allow_redirects=False)
        check_headers(page)
        assert page.headers["Cache-Control"] == "no-store"
        assert page.content_type == "text/html"
        r = await http.post(f"{ws_server}/logout", allow_redirects=False)
        assert r.status == 403
        check_headers(r)


async def test_static_assets_have_their_types(ws_server):
    async with client() as http:
        js = await http.get(f"{ws_server}/static/console.js")
        assert js.status == 200 and "javascript" in js.content_type
        css = await http.get(f"{ws_server}/static/console.css")
        assert css.status == 200 and css.content_type == "text/css"


async def test_user_values_are_escaped_in_pages(ws_server):
    async with client() as http:
        page = await http.get(f"{ws_server}/login")
        token = re.search(r'name="csrf" value="([^"]+)"', await page.text()).group(1)
        r = await http.post(f"{ws_server}/login", allow_redirects=False,
                            data={"username": '"><script>alert(1)</script>', "password": "x" * 9,
                                  "csrf": token})
        body = await r.text()
        assert "<script>alert(1)</script>" not in body and "&lt;script&gt;" in body


class _Scan(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.testids: set[str] = set()
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "data-testid" in a:
            self.testids.add(a["data-testid"])
        if tag == "script" and not a.get("src"):
            self.problems.append("inline <script>")
        if tag == "style":
            self.problems.append("inline <style>")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"inline handler {name}")
            if name == "style":
                self.problems.append("style attribute")
            if name in ("src", "href") and value and value.startswith(("http:", "https:", "//")):
                self.problems.append(f"external asset {value}")


@pytest.mark.parametrize("page", ["login.html", "console.html"])
def test_pages_have_no_inline_code_or_external_assets(page):
    scan = _Scan()
    scan.feed((PAGES / page).read_text())
    assert scan.problems == []


def test_every_test_id_the_script_uses_exists_in_the_page():
    scan = _Scan()
    scan.feed((PAGES / "console.html").read_text())
    used = set(re.findall(r'\$\("([a-z0-9-]+)"\)', (STATIC / "console.js").read_text()))
    assert used and used <= scan.testids, used - scan.testids


def test_script_never_writes_html_from_data():
    js = (STATIC / "console.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in js, sink


def test_static_dir_has_no_source_maps_or_cdn_references():
    for f in Path(STATIC).rglob("*"):  # the chat widget's folder too
        if not f.is_file():
            continue
        text = f.read_text(errors="ignore")
        assert "cdn." not in text and "sourceMappingURL" not in text, f.name
