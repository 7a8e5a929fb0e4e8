"""Reading an email: pure, no I/O. Raw bytes in, a `Parsed` out, never an exception.

Hostile mail (deep or unterminated MIME, bad charsets, header floods, scripts and remote images)
is read as far as it goes and each problem is named in `Parsed.problems`; the raw bytes are stored
whole elsewhere, so nothing is lost. HTML is made inert with nh3 (no scripts, no images, no
styles, links with rel=noopener noreferrer nofollow).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr
from typing import Any

import nh3

MSGID = re.compile(r"<[^<>\s]{1,490}>")
TICKET_TOKEN = re.compile(r"\[(T-\d{1,12})\]")
CTYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}$")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
HTML_TAGS = frozenset(nh3.ALLOWED_TAGS) - {"img"}


@dataclass(frozen=True)
class Limits:
    max_depth: int = 10  # MIME nesting read (deeper parts are skipped, and named)
    max_parts: int = 200
    max_headers: int = 300  # more is a "header flood" (named; the message is still read)
    max_text_chars: int = 200_000
    max_attachments: int = 20
    max_attachment_bytes: int = 5_000_000


@dataclass
class Attachment:
    filename: str  # for display only; never a path on disk
    content_type: str
    data: bytes


@dataclass
class Parsed:
    message_id: str | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    subject: str = ""
    from_address: str | None = None  # lower-cased addr-spec, or None when unreadable
    from_name: str = ""
    reply_to: str | None = None
    to: list[str] = field(default_factory=list)
    date: str | None = None
    text: str = ""
    html_safe: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    auto: str | None = None  # why this message must not be auto-answered (RFC 3834), or None
    problems: list[str] = field(default_factory=list)

    @property
    def ticket_token(self) -> str | None:
        m = TICKET_TOKEN.search(self.subject)
        return m.group(1) if m else None

    @property
    def thread_refs(self) -> list[str]:
        """The ids this message answers, nearest first (In-Reply-To, then References backwards)."""
        out = [self.in_reply_to] if self.in_reply_to else []
        out += [r for r in reversed(self.references) if r not in out]
        return out


def parse(raw: bytes, *, envelope_from: str | None = None, own_addresses: frozenset[str] = frozenset(),
          limits: Limits = Limits()) -> Parsed:
    out = Parsed()
    try:
        msg = BytesParser(policy=policy.default).parsebytes(raw)
    except Exception as e:  # noqa: BLE001 - the parser should not raise; if it does, say so
        out.problems.append(f"unreadable message: {type(e).__name__}")
        out.text = raw[: limits.max_text_chars].decode("utf-8", "replace")
        out.auto = auto_reason(None, envelope_from, None, own_addresses)
        return out
    if len(msg.keys()) > limits.max_headers:
        out.problems.append(f"header flood: {len(msg.keys())} headers")
    for d in msg.defects[:5]:
        out.problems.append(f"defect: {type(d).__name__}")
    out.message_id = _first_id(_header(msg, "Message-ID", out))
    out.in_reply_to = _first_id(_header(msg, "In-Reply-To", out))
    out.references = MSGID.findall(_header(msg, "References", out))[-50:]
    out.subject = " ".join(CONTROL.sub(" ", _header(msg, "Subject", out)).split())[:998]
    name, addr = parseaddr(_header(msg, "From", out))
    out.from_name = " ".join(CONTROL.sub(" ", name).split())[:200]
    out.from_address = _addr(addr)
    if out.from_address is None:
        out.problems.append("no readable From address")
    if sum(1 for k in msg.keys() if k.lower() == "from") > 1:  # counted unparsed: a bad value can't raise
        out.problems.append("several From headers (spoofing?)")
    _n, reply = parseaddr(_header(msg, "Reply-To", out))
    out.reply_to = _addr(reply)
    out.to = [a for a in (_addr(x) for _n2, x in getaddresses([_header(msg, "To", out)])) if a][:50]
    out.date = _header(msg, "Date", out)[:100] or None
    _body(msg, out, limits)
    out.auto = auto_reason(msg, envelope_from, out.from_address, own_addresses)
    return out


def auto_reason(msg: Message | None, envelope_from: str | None, from_address: str | None,
                own_addresses: frozenset[str]) -> str | None:
    """Why no automatic reply may go to this message (RFC 3834 and loop protection), or None."""
    if envelope_from is not None and envelope_from.strip() in ("", "<>"):
        return "bounce (null sender)"
    if from_address and from_address in own_addresses:
        return "from our own address"
    if from_address and from_address.split("@")[0] in ("mailer-daemon", "postmaster"):
        return "bounce (mailer-daemon)"
    if msg is None:
        return "unreadable"
    if _safe_get(msg, "Return-Path") == "<>":
        return "bounce (null return path)"
    auto = _safe_get(msg, "Auto-Submitted").lower()
    if auto and auto != "no":
        return f"auto-submitted: {auto[:40]}"
    prec = _safe_get(msg, "Precedence").lower()
    if prec in ("bulk", "junk", "list"):
        return f"precedence: {prec}"
    if _safe_get(msg, "List-Id") or _safe_get(msg, "List-Unsubscribe"):
        return "mailing list"
    if _safe_get(msg, "X-Autoreply") or _safe_get(msg, "X-Autorespond"):
        return "auto-reply"
    if _safe_get(msg, "X-Auto-Response-Suppress").lower() in ("all", "autoreply", "oof"):
        return "auto-response suppressed"
    if msg.get_content_type() == "multipart/report":
        return "delivery report"
    return None


def sanitize_html(html: str) -> str:
    """Inert HTML: scripts, styles, images (remote or not), forms and event handlers removed."""
    return nh3.clean(html, tags=set(HTML_TAGS), link_rel="noopener noreferrer nofollow",
                     url_schemes={"http", "https", "mailto"})


def safe_filename(name: str | None) -> str:
    """The sender's file name, for display only: no directories, no control characters."""
    base = (name or "").replace("\\", "/").split("/")[-1]
    base = " ".join(CONTROL.sub("", base).split()).lstrip(".")
    return base[:200] or "attachment"


def safe_content_type(ctype: str | None) -> str:
    c = (ctype or "").strip().lower()
    return c if CTYPE.match(c) else "application/octet-stream"


# --------------------------------------------------------------------------- internals
def _safe_get(msg: Message, name: str) -> str:
    try:
        return " ".join(str(msg.get(name, "") or "").split())
    except Exception:  # noqa: BLE001 - a header the parser chokes on reads as absent
        return ""


def _header(msg: Message, name: str, out: Parsed) -> str:
    try:
        return str(msg.get(name, "") or "")
    except Exception as e:  # noqa: BLE001
        out.problems.append(f"unreadable {name} header: {type(e).__name__}")
        return ""


def _first_id(value: str) -> str | None:
    m = MSGID.search(value)
    return m.group(0) if m else None


def _addr(addr: str) -> str | None:
    a = addr.strip().lower()
    if not a or len(a) > 254 or a.count("@") != 1 or CONTROL.search(a) or " " in a:
        return None
    local, domain = a.split("@")
    return a if local and "." in domain and not domain.startswith(".") else None


def _body(msg: Message, out: Parsed, limits: Limits) -> None:
    """Walk the MIME tree without recursion (depth-limited), taking the first text/plain and
    text/html bodies and the attachments."""
    stack: list[tuple[Any, int]] = [(msg, 0)]
    parts = 0
    text: str | None = None
    html: str | None = None
    skipped_deep = False
    while stack:
        part, depth = stack.pop()
        parts += 1
        if parts > limits.max_parts:
            out.problems.append(f"more than {limits.max_parts} MIME parts: the rest is not read")
            break
        try:
            multipart = part.is_multipart()
        except Exception:  # noqa: BLE001
            multipart = False
        if multipart:
            if depth >= limits.max_depth:
                skipped_deep = True
                continue
            try:
                children = part.get_payload()
            except Exception:  # noqa: BLE001
                children = []
            if isinstance(children, list):
                stack.extend((c, depth + 1) for c in reversed(children))
            continue
        ctype = _ctype(part)
        disposition = _disposition(part)
        filename = _filename(part)
        if disposition != "attachment" and filename is None and ctype in ("text/plain", "text/html"):
            body = _text_of(part, out)
            if ctype == "text/plain" and not (text or "").strip():
                text = body
            elif ctype == "text/html" and html is None:
                html = body
            continue
        if ctype.startswith("multipart/"):  # a multipart whose parts could not be read
            continue
        _attachment(part, ctype, filename, out, limits)
    if skipped_deep:
        out.problems.append(f"MIME nested deeper than {limits.max_depth}: inner parts not read")
    if html is not None:
        try:
            out.html_safe = sanitize_html(html[: limits.max_text_chars])
        except Exception as e:  # noqa: BLE001
            out.problems.append(f"HTML could not be cleaned: {type(e).__name__}")
    if not (text or "").strip() and html is not None:
        text = nh3.clean(html[: limits.max_text_chars], tags=set())
    out.text = (text or "")[: limits.max_text_chars]


def _ctype(part: Any) -> str:
    try:
        return str(part.get_content_type())
    except Exception:  # noqa: BLE001
        return "application/octet-stream"


def _disposition(part: Any) -> str | None:
    try:
        d = part.get_content_disposition()
        return str(d) if d else None
    except Exception:  # noqa: BLE001
        return None


def _filename(part: Any) -> str | None:
    try:
        f = part.get_filename()
        return str(f) if f else None
    except Exception:  # noqa: BLE001
        return "attachment"


def _text_of(part: Any, out: Parsed) -> str:
    if isinstance(part, EmailMessage):
        try:
            content = part.get_content()
            if isinstance(content, str):
                return content
        except (LookupError, UnicodeError, ValueError, AssertionError, KeyError, TypeError) as e:
            out.problems.append(f"bad charset or encoding ({type(e).__name__}): read as UTF-8")
        except Exception as e:  # noqa: BLE001
            out.problems.append(f"unreadable text part: {type(e).__name__}")
    try:
        data = part.get_payload(decode=True) or b""
    except Exception:  # noqa: BLE001
        data = b""
    if isinstance(data, str):
        return data
    return bytes(data).decode("utf-8", "replace")


def _attachment(part: Any, ctype: str, filename: str | None, out: Parsed, limits: Limits) -> None:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001
        data = None
    if not isinstance(data, bytes | bytearray):
        try:
            data = part.as_bytes()
        except Exception:  # noqa: BLE001
            out.problems.append("an attachment could not be read")
            return
    name = safe_filename(filename)
    if len(out.attachments) >= limits.max_attachments:
        out.problems.append(f"attachment {name!r} not stored: more than {limits.max_attachments}")
        return
    if len(data) > limits.max_attachment_bytes:
        out.problems.append(f"attachment {name!r} not stored: {len(data)} bytes is over the limit "
                            f"of {limits.max_attachment_bytes} (kept in the raw message)")
        return
    out.attachments.append(Attachment(name, safe_content_type(ctype), bytes(data)))
