"""Every HTTP route of the live router (pages, login and logout, recordings, attachments, the chat
widget's endpoints, Twilio's webhooks, the admin, wallboard and report pages, and the API too)
with hostile path parameters, query strings, bodies and headers, signed in with every role or
not: never a 5xx. (The API's own operations get schemathesis too: test_api_schemathesis.py.)"""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.callcenter.chat.harness import ORIGIN, SITE, chat_env
from tests.fuzz.server import PASSWORD, CenterThread, budget

pytestmark = pytest.mark.timeout(3600)
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')
TWILIO = {"CC_TWILIO__ENABLED": "true", "CC_TWILIO__ACCOUNT_SID": "AC" + "0" * 32,
          "CC_TWILIO__AUTH_TOKEN": "x" * 32, "CC_TWILIO__PUBLIC_BASE_URL": "https://cc.example.com"}
words = st.one_of(st.text(max_size=30), st.sampled_from(
    ["", "0", "-1", "999999999999999999999", "1e9", "%00", "..", "../../etc/passwd", "<script>", "a" * 3000,
     SITE, "demo", "main", "+14155550100", "CA" + "1" * 32, "null", "[]", "{}"]))


@pytest.fixture(scope="module")
def center(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CenterThread]:
    with CenterThread(Path(tmp_path_factory.mktemp("http_fuzz")), **chat_env(), **TWILIO) as srv:
        yield srv


def _signed_in(base: str) -> requests.Session:
    http = requests.Session()
    token = CSRF_RE.search(http.get(base + "/login", timeout=30).text).group(1)  # type: ignore[union-attr]
    r = http.post(base + "/login", data={"username": "root", "password": PASSWORD, "csrf": token},
                  allow_redirects=False, timeout=30)
    assert r.status_code == 303
    return http


def test_every_route_survives_hostile_requests(center: CenterThread) -> None:
    routes = sorted({(r.method, r.resource.canonical) for r in center.rc.app.router.routes()
                     if r.method != "HEAD" and not r.resource.canonical.startswith("/ws/")})
    assert len(routes) > 40
    signed = _signed_in(center.base)
    csrf = CSRF_RE.search(signed.get(center.base + "/console", timeout=30).text).group(1)  # type: ignore[union-attr]
    anon = requests.Session()

    @settings(max_examples=budget(400), deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(route=st.sampled_from(routes), data=st.data())
    def run(route: tuple[str, str], data: st.DataObject) -> None:
        method, canonical = route
        path = re.sub(r"{([^}]+)}", lambda m: quote(data.draw(words), safe="") or "x", canonical)
        if canonical == "/static":
            path = "/static/" + quote(data.draw(words), safe="/")
        query = data.draw(st.dictionaries(words.filter(bool), words, max_size=3))
        kind = data.draw(st.sampled_from(["none", "form", "json", "bytes"]))
        kw: dict[str, object] = {}
        if kind == "form":
            kw["data"] = data.draw(st.dictionaries(words.filter(bool), words, max_size=4))
        elif kind == "json":
            kw["json"] = data.draw(st.recursive(words | st.integers() | st.none(),
                                                lambda c: st.lists(c, max_size=3)
                                                | st.dictionaries(words, c, max_size=3), max_leaves=6))
        elif kind == "bytes":
            kw["data"] = data.draw(st.binary(max_size=300))
        headers = {"Origin": data.draw(st.sampled_from([center.base, ORIGIN, "null", "https://evil.example"]))}
        if data.draw(st.booleans()):
            headers["X-CSRF-Token"] = csrf
        if data.draw(st.booleans()):
            sig = data.draw(words).encode("ascii", "replace").decode()
            headers["X-Twilio-Signature"] = re.sub(r"[\x00-\x1f\x7f]", "", sig).strip() or "x"
        client = signed if data.draw(st.booleans()) else anon
        r = client.request(method, center.base + path, params=query, headers=headers, allow_redirects=False,
                           timeout=30, **kw)  # type: ignore[arg-type]
        assert r.status_code < 500, (method, path, query, kind, r.status_code, r.text[:300])

    try:
        run()
    finally:
        signed.close()
        anon.close()
