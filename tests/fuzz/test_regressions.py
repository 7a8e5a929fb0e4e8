"""What the fuzzers found, kept as plain tests (each fixed; see docs/security.md, "Fuzzing")."""
from __future__ import annotations

import aiohttp
import pytest

from callcenter.app import build_store
from callcenter.channels.email.parse import parse
from callcenter.settings import load_settings
from ivr.loader import check_text
from tests.callcenter.voice_harness import running_center

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("raw", [
    b"From:Content-Type: multipart/mixed; boundary=x\r\n\x00Carla <carla@example.com>\n\nHello\n",
    b"From: team: a@b.c; x\r\n\r\nhi",
])
def test_mime_a_from_header_that_parses_as_a_group(raw: bytes) -> None:
    # test_parsers.py: email's get_all("From") raised AttributeError ('Group' has no local_part)
    p = parse(raw)
    assert p.from_address is None and "no readable From address" in p.problems


@pytest.mark.parametrize("text", ["\x1f", "flow: x\x00\n", "flow: demo\nentries: {main: \x07}\n"])
def test_flow_with_control_characters_is_an_issue_not_a_crash(text: str) -> None:
    # test_parsers.py: PyYAML's reader raised ReaderError before the loader's own error handling
    flow, issues = check_text(text, "bad.yaml")
    assert flow is None and [i.code for i in issues] == ["yaml"]


async def test_api_upload_of_such_a_flow_is_a_400(database) -> None:
    store = build_store(load_settings(env={}), database)
    ada = await store.create_user("ada", "admin-password", roles=["admin"], display_name="Ada")
    _t, token = await store.create_api_token(ada.id, "t", "admin")
    async with running_center(database) as rc, aiohttp.ClientSession() as http:
        r = await http.post(f"{rc.base}/api/v1/ivr/flows/demo", data=b"flow: demo\x1f\n",
                            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/yaml"})
        body = await r.json()
        assert r.status == 400 and body["error"]["code"] == "invalid_flow", body
        # and a refusal by the access check is the API's error object too (schemathesis)
        r = await http.get(f"{rc.base}/api/v1/audit")
        assert r.status == 401 and (await r.json())["error"]["code"] == "unauthorized"


async def test_a_static_file_name_too_long_for_the_file_system_is_a_404(database) -> None:
    # test_http_routes.py (make fuzz): GET /static/<3000 characters> was a 500 (ENAMETOOLONG)
    async with running_center(database) as rc, aiohttp.ClientSession() as http:
        for name in ("a" * 3000, "a/" * 10 + "b" * 300, "console.js"):
            r = await http.get(f"{rc.base}/static/{name}")
            assert r.status == (200 if name == "console.js" else 404), (name[:20], r.status)
