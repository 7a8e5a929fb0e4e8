"""Hostile frames on every websocket message handler, over real sockets against the running app:
the agent console (/ws/agent, whose dispatcher also serves the wallboard socket's messages) as a
user with every role, so each handler is reached past the role check, and the chat widget
(/ws/chat). Frames are drawn by Hypothesis from the message schemas (known types with fields of
any JSON type, unknown fields and types), plus JSON that is not an object and text that is not
JSON. Every frame must get a clear answer (an `error` with a code, or the reply), never an
`internal` error (an unhandled exception), and the socket must stay usable."""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from agent_ui import schemas
from agent_ui.chat_routes import WIDGET_SCHEMAS, validate_widget
from tests.callcenter.chat.harness import ORIGIN, SITE, chat_env
from tests.fuzz import jsonschema_st
from tests.fuzz.server import PASSWORD, CenterThread, budget

pytestmark = [pytest.mark.timeout(3600),
              pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning")]
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(["", "+15551234567", "ready", "not_ready", "0", "-1", "x" * 3000]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10)


def _properties(directory: Path, direction: str) -> dict[str, list[str]]:
    out = {}
    for path in sorted(directory.glob("*.json")):
        doc = json.loads(path.read_text())
        if doc.get("x-direction") == direction and "type" in doc.get("properties", {}):
            out[doc["properties"]["type"]["const"]] = sorted(set(doc["properties"]) - {"type"})
    return out


def messages(props: dict[str, list[str]], id_key: str) -> st.SearchStrategy[Any]:
    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        type_ = draw(st.sampled_from(sorted(props)) | st.text(max_size=12))
        fields = props.get(type_, [])
        chosen = draw(st.lists(st.sampled_from(fields), unique=True)) if fields else []
        msg: dict[str, Any] = {"type": type_}
        for f in chosen:
            msg[f] = draw(json_values)
        msg.update(draw(st.dictionaries(st.text(max_size=6), json_values, max_size=2)))
        msg.pop(id_key, None)
        return msg

    return build()


def valid_then_spoiled(directory: Path, id_key: str) -> st.SearchStrategy[dict[str, Any]]:
    """Schema-valid messages (they reach the handlers), some with one field spoiled."""
    valid = st.one_of(list(jsonschema_st.messages(directory, "client").values()))

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        msg = dict(draw(valid))
        msg.pop(id_key, None)
        if draw(st.booleans()) and len(msg) > 1:
            key = draw(st.sampled_from(sorted(k for k in msg if k != "type")))
            msg[key] = draw(json_values)
        return msg

    return build()


def frames(props: dict[str, list[str]], id_key: str, directory: Path) -> st.SearchStrategy[str]:
    return st.one_of(
        valid_then_spoiled(directory, id_key).map(json.dumps),
        valid_then_spoiled(directory, id_key).map(json.dumps),
        valid_then_spoiled(directory, id_key).map(json.dumps),
        messages(props, id_key).map(json.dumps),
        json_values.map(json.dumps),  # JSON, but maybe not an object
        st.text(max_size=200),  # maybe not JSON at all
        st.sampled_from(["{", "[" * 5000 + "]" * 5000, '{"type": NaN}', '{"type": "search", "q": Infinity}',
                         "\ufeff{}", '{"type":"search","type":"set_state"}']),
    )


class Socket:
    """One open websocket; each frame is followed by a sentinel whose error marks the end of the
    frame's answers."""

    def __init__(self, open_: Any, id_key: str, validate: Any) -> None:
        self.open_, self.id_key, self.validate = open_, id_key, validate
        self.ws: ClientConnection = open_()
        self.n = 0

    def exchange(self, frame: str) -> list[dict[str, Any]]:
        try:
            return self._exchange(frame)
        except ConnectionClosed as e:
            # the documented ways the server ends a socket: done (1000), reconnect (4000: e.g. the
            # chat ended), frame too large (1009); anything else (1011: a crash) fails the test
            assert e.rcvd is not None and e.rcvd.code in (1000, 1009, 4000), (frame, e)
            self.ws = self.open_()
            return []

    def _exchange(self, frame: str) -> list[dict[str, Any]]:
        self.n += 1
        sentinel = f"sentinel-{self.n}"
        self.ws.send(frame)
        self.ws.send(json.dumps({"type": "no_such_type", self.id_key: sentinel}))
        got = []
        while True:
            msg = json.loads(self.ws.recv(timeout=30))
            if msg.get("type") == "wallboard":
                continue  # the wallboard's own pushes (not answers)
            self.validate(msg)
            if msg.get(self.id_key) == sentinel:
                assert msg["type"] == "error" and msg["code"] in ("unknown_type", "bad_message"), msg
                return got
            got.append(msg)

    def close(self) -> None:
        self.ws.close()


def _login(base: str) -> str:
    http = requests.Session()
    token = CSRF_RE.search(http.get(base + "/login", timeout=30).text).group(1)  # type: ignore[union-attr]
    r = http.post(base + "/login", data={"username": "root", "password": PASSWORD, "csrf": token},
                  allow_redirects=False, timeout=30)
    assert r.status_code == 303
    return "; ".join(f"{k}={v}" for k, v in http.cookies.items())


@pytest.fixture(scope="module")
def center(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CenterThread]:
    with CenterThread(Path(tmp_path_factory.mktemp("ws_fuzz")), **chat_env()) as srv:
        yield srv


SEEN: dict[str, int] = {}  # answer kinds, to see which handlers the frames reached


def _check(answers: list[dict[str, Any]], frame: str) -> None:
    for msg in answers:
        kind = f"{msg['type']}:{msg.get('code', '')}"
        SEEN[kind] = SEEN.get(kind, 0) + 1
        if msg["type"] == "error":
            assert msg["code"] != "internal", (frame, msg)  # an unhandled exception on the server
            assert msg["message"], (frame, msg)


@pytest.mark.parametrize("path", ["/ws/agent", "/ws/wallboard"])
def test_console_handlers_answer_hostile_frames(center: CenterThread, path: str) -> None:
    if not any(r.resource.canonical == path for r in center.rc.app.router.routes()):
        pytest.skip(f"{path} is not mounted")
    cookie = _login(center.base)
    url = center.base.replace("http", "ws") + path

    def open_() -> ClientConnection:
        return connect(url, additional_headers={"Cookie": cookie, "Origin": center.base},
                       max_size=2**24, open_timeout=30)

    sock = Socket(open_, "request_id", lambda m: schemas.validate(m, direction="server"))
    props = _properties(schemas.SCHEMA_DIR, "client")
    assert {"set_state", "search", "chat_send", "ack_alert"} <= set(props)

    @settings(max_examples=budget(300), deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(frame=frames(props, "request_id", schemas.SCHEMA_DIR))
    def run(frame: str) -> None:
        _check(sock.exchange(frame), frame)

    try:
        run()
        sock.ws.send(b"\x00binary")  # not part of the protocol: an error, and the socket stays open
        reply = json.loads(sock.ws.recv(timeout=30))
        while reply["type"] == "wallboard":  # the wallboard's own pushes
            reply = json.loads(sock.ws.recv(timeout=30))
        assert reply["code"] == "bad_message"
        answers = sock.exchange(json.dumps({"type": "search", "q": "Vip", "request_id": "last"}))
        assert any(m["type"] == "search_results" for m in answers)  # still a working console
    finally:
        sock.close()


def test_chat_widget_handlers_answer_hostile_frames(center: CenterThread) -> None:
    url = center.base.replace("http", "ws") + f"/ws/chat?site={SITE}"

    def open_() -> ClientConnection:
        return connect(url, additional_headers={"Origin": ORIGIN}, max_size=2**24, open_timeout=30)

    sock = Socket(open_, "client_id", lambda m: validate_widget(m, direction="server"))
    props = _properties(WIDGET_SCHEMAS, "client")
    assert {"start", "send", "typing"} <= set(props)

    @settings(max_examples=budget(300), deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(frame=frames(props, "client_id", WIDGET_SCHEMAS))
    def run(frame: str) -> None:
        _check(sock.exchange(frame), frame)

    try:
        run()
    finally:
        sock.close()
