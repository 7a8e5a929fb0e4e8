"""Hostile input for the parsers that read what outsiders send: MIME (the email channel), IVR flows
(the admin upload), and customer CSV files. Each must answer with its result or its one clear
error, never crash, and stay within its limits. Seeds are real documents, mutated by Hypothesis."""
from __future__ import annotations

import copy
import html.parser
import re
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcenter.channels.email.parse import Limits, parse
from crm_core import import_csv
from crm_core.errors import ValidationError
from crm_core.rules import Rules
from ivr.loader import check_text

pytestmark = pytest.mark.timeout(1800)
ROOT = Path(__file__).resolve().parents[2]
FUZZ = settings(deadline=None, suppress_health_check=list(HealthCheck))

hostile_text = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["", "\x00", "\r\n\r\n", "=?utf-8?b?////?=", "=?x?q?=ZZ?=", "<script>alert(1)</script>",
                     "../../etc/passwd", "a" * 5000, "\u202e", "\ud800".encode("utf-8", "surrogatepass")
                     .decode("utf-8", "replace"), "&a [*a, *a]", "!!python/object/apply:os.system ['id']"]))


# --------------------------------------------------------------------------- MIME
def _seeds() -> list[bytes]:
    plain = EmailMessage()
    plain["From"] = "Carla <carla@example.com>"
    plain["To"] = "support@center.example"
    plain["Subject"] = "Re: [#T-1234] my bill"
    plain["Message-ID"] = "<a1@example.com>"
    plain["In-Reply-To"] = "<a0@center.example>"
    plain.set_content("Hello,\nmy bill is wrong.\n")
    rich = EmailMessage()
    rich["From"] = "=?utf-8?q?J=C3=BCrgen?= <j@example.com>"
    rich["Subject"] = "=?utf-8?b?5L2g5aW9?="
    rich.set_content("text part")
    rich.add_alternative("<p onclick='x()'>hi <script>alert(1)</script><a href='javascript:x'>x</a></p>",
                         subtype="html")
    rich.add_attachment(b"%PDF-1.4 ...", maintype="application", subtype="pdf", filename="../../bill.pdf")
    rich.add_attachment(b"\x00" * 100, maintype="application", subtype="octet-stream",
                        filename="=?utf-8?q?evil=2Fname?=")
    return [plain.as_bytes(), rich.as_bytes()]


SEEDS = _seeds()


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 8))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "dup", "header"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(max_size=40) | st.sampled_from(
                [b"\r\n", b"\r\n\r\n", b"--", b"Content-Type: multipart/mixed; boundary=x\r\n",
                 b"Content-Transfer-Encoding: base64\r\n", b"=?", b"\xff\xfe"]))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 200))]
        elif op == "dup":
            data[at:at] = data[at:at + draw(st.integers(1, 300))] * draw(st.integers(1, 20))
        else:
            data[0:0] = draw(hostile_text).encode("utf-8", "replace")[:200] + b": x\r\n"
    return bytes(data)


class _Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.bad: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "iframe", "object", "embed", "form", "base", "meta"):
            self.bad.append(tag)
        for name, value in attrs:
            scheme = re.sub(r"[\x00-\x20]", "", value or "").lower()
            if name.startswith("on") or scheme.startswith(("javascript:", "vbscript:", "data:text")):
                self.bad.append(f"{tag} {name}={value!r}")


def _assert_inert(html_text: str) -> None:
    """No active tag, no event handler, no script URL (text that merely reads 'javascript:' is inert)."""
    tags = _Tags()
    tags.feed(html_text)
    assert not tags.bad, (tags.bad, html_text[:300])


def _check_parsed(raw: bytes, limits: Limits) -> None:
    p = parse(raw, envelope_from="bounce@example.com", own_addresses=frozenset({"support@center.example"}),
              limits=limits)
    assert isinstance(p.text, str) and len(p.text) <= limits.max_text_chars
    assert len(p.attachments) <= limits.max_attachments
    for a in p.attachments:
        assert "/" not in a.filename and "\\" not in a.filename and not a.filename.startswith(".")
        assert len(a.data) <= limits.max_attachment_bytes
        assert re.fullmatch(r"[\w.+-]+/[\w.+-]+", a.content_type), a.content_type
    if p.html_safe is not None:
        _assert_inert(p.html_safe)
    assert p.from_address is None or "@" in p.from_address


@FUZZ
@given(raw=mutated(SEEDS) | st.binary(max_size=2000))
def test_mime_parser_survives_mutated_mail(raw: bytes) -> None:
    _check_parsed(raw, Limits(max_text_chars=5000, max_attachments=3, max_attachment_bytes=2000))


def test_mime_bombs_stay_bounded() -> None:
    deep = b"Content-Type: multipart/mixed; boundary=b0\r\n\r\n"
    for i in range(1, 200):  # 200 nested multiparts
        deep += f"--b{i - 1}\r\nContent-Type: multipart/mixed; boundary=b{i}\r\n\r\n".encode()
    many = (b"Content-Type: multipart/mixed; boundary=x\r\n\r\n"
            + b"--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n" * 5000)
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(20000)) + b"\r\nbody"
    for raw in (deep, many, headers):
        t0 = time.monotonic()
        _check_parsed(raw, Limits())
        assert time.monotonic() - t0 < 30


# --------------------------------------------------------------------------- IVR flows
DEMO = (ROOT / "config/ivr/demo.yaml").read_text(encoding="utf-8")
DEMO_DOC = yaml.safe_load(DEMO)
FUNCTIONS = ["identify_caller", "account_balance"]
json_like = st.recursive(st.none() | st.booleans() | st.integers(-10**12, 10**12) | hostile_text
                         | st.floats(allow_nan=False),
                         lambda c: st.lists(c, max_size=3)
                         | st.dictionaries(st.text(max_size=8), c, max_size=3),
                         max_leaves=8)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


PATHS = _paths(DEMO_DOC)[1:]


@st.composite
def mutated_flow(draw: st.DrawFn) -> str:
    doc = copy.deepcopy(DEMO_DOC)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(PATHS))
        parent: Any = doc
        try:
            for p in path[:-1]:
                parent = parent[p]
            if draw(st.booleans()) and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = draw(json_like)
        except (KeyError, IndexError, TypeError):
            continue
    return yaml.safe_dump(doc, allow_unicode=True)


@st.composite
def mutated_flow_text(draw: st.DrawFn) -> str:
    lines = DEMO.splitlines()
    for _ in range(draw(st.integers(1, 5))):
        at = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["drop", "dup", "indent", "insert"]))
        if op == "drop":
            del lines[at]
        elif op == "dup":
            lines.insert(at, lines[at])
        elif op == "indent":
            lines[at] = " " * draw(st.integers(0, 6)) + lines[at].lstrip()
        else:
            lines.insert(at, draw(hostile_text))
    return "\n".join(lines)


def _check_flow(text: str) -> None:
    flow, issues = check_text(text, "fuzz.yaml", functions=FUNCTIONS)
    assert all(i.code and i.message and i.severity in ("error", "warning") for i in issues)
    assert (flow is None) == any(i.severity == "error" for i in issues)


@FUZZ
@given(text=mutated_flow() | mutated_flow_text() | st.text(max_size=300))
def test_flow_loader_answers_with_issues_never_crashes(text: str) -> None:
    _check_flow(text)


def test_flow_loader_refuses_yaml_bombs_and_tags_quickly() -> None:
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
    bombs = [laughs + "flow: x\n", "!!python/object/apply:os.system ['echo pwned']\n",
             "flow: " + "[" * 10000 + "]" * 10000, "x: " + "a" * 2_000_000]
    for text in bombs:
        t0 = time.monotonic()
        flow, issues = check_text(text, "bomb.yaml", functions=FUNCTIONS)
        assert flow is None and issues
        assert time.monotonic() - t0 < 30


# --------------------------------------------------------------------------- CSV import
RULES = Rules.default()
HEADER = "name,phones,emails,tier,type,lifetime_value,language,tags,notes"
GOOD_ROW = 'Carla Customer,+1 415 555 0100;(415) 555-0101,carla@example.com,vip,person,1200.50,en,"a;b",hello'
cells = st.one_of(hostile_text, st.sampled_from(["+14155550100", "not-a-phone", "x@y", "carla@example.com",
                                                   "vip", "gold", "1e308", "-5", "NaN", "en", "zz-ZZ",
                                                   '"', '""', "a,b", "\n", "=cmd|' /C calc'!A0"]))


@st.composite
def csv_text(draw: st.DrawFn) -> str:
    rows = [GOOD_ROW]
    for _ in range(draw(st.integers(0, 6))):
        n = draw(st.integers(0, 11))
        rows.append(",".join(draw(st.lists(cells, min_size=n, max_size=n))))
    text = "\n".join([HEADER, *rows])
    if draw(st.booleans()):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(hostile_text) + text[at:]
    return text


@FUZZ
@given(text=csv_text() | st.text(max_size=400))
def test_csv_import_rows_are_valid_or_rejected_with_reasons(text: str) -> None:
    try:
        valid, rejected, rows = import_csv.parse(text, "US", RULES)
    except ValidationError as e:
        assert str(e)  # the whole file refused, with its reason
        return
    assert len(valid) + len(rejected) == rows
    assert all(r.reasons and all(isinstance(x, str) and x for x in r.reasons) for r in rejected)
    for row in valid:
        assert row.values["name"]
        for kind, value in row.contacts:
            assert (kind == "phone" and value.startswith("+")) or (kind == "email" and "@" in value)
