"""The pure parts of the email channel: reading mail (never raising), loop protection, HTML made
inert, threading headers and subjects of replies."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from callcenter.channels.email import outbound
from callcenter.channels.email.parse import Limits, parse, safe_content_type, safe_filename, sanitize_html


def raw(headers: str, body: str = "body") -> bytes:
    return (headers.strip().replace("\n", "\r\n") + "\r\n\r\n" + body + "\r\n").encode()


def test_threading_fields_and_ticket_token():
    p = parse(raw("From: \"Ann\" <Ann@Example.ORG>\nSubject: [T-000042] Re: help\n"
                  "Message-ID: <m3@example.org>\nIn-Reply-To: <o2@cc>\nReferences: <o1@cc>\n <o2@cc>"))
    assert p.from_address == "ann@example.org" and p.from_name == "Ann"
    assert p.message_id == "<m3@example.org>" and p.ticket_token == "T-000042"
    assert p.thread_refs == ["<o2@cc>", "<o1@cc>"]  # nearest first, no duplicates


@given(st.binary(max_size=3000))
def test_parse_never_raises(data):
    p = parse(data, envelope_from="x@example.org")
    assert isinstance(p.text, str) and isinstance(p.problems, list)


def test_loop_protection():
    own = frozenset({"support@example.com"})
    cases = {
        "Auto-Submitted: auto-generated": "auto-submitted: auto-generated",
        "Auto-Submitted: no": None,
        "Precedence: junk": "precedence: junk",
        "List-Unsubscribe: <mailto:u@example.org>": "mailing list",
        "X-Autoreply: yes": "auto-reply",
    }
    for header, reason in cases.items():
        p = parse(raw(f"From: a@example.org\n{header}"), envelope_from="a@example.org", own_addresses=own)
        assert p.auto == reason, header
    assert parse(raw("From: a@example.org"), envelope_from="").auto == "bounce (null sender)"
    assert parse(raw("From: a@example.org")).auto is None  # IMAP: no envelope
    assert parse(raw("Return-Path: <>\nFrom: a@example.org")).auto == "bounce (null return path)"
    assert parse(raw("From: MAILER-DAEMON@example.net"), envelope_from="x@example.net").auto
    assert parse(raw("From: support@example.com"), envelope_from="support@example.com",
                 own_addresses=own).auto == "from our own address"


def test_html_is_inert_and_text_comes_from_html():
    p = parse(raw("From: a@example.org\nContent-Type: text/html",
                  "<b>Hi</b><script>x()</script><img src=http://t.example.net/p><iframe src=//x></iframe>"
                  "<a href='javascript:x' onclick='y'>l</a><form><input></form>"))
    html = p.html_safe or ""
    for bad in ("script", "img", "iframe", "javascript", "onclick", "form", "input"):
        assert bad not in html
    assert "<b>Hi</b>" in html and p.text.startswith("Hi")
    link = sanitize_html("<a href='https://example.org'>x</a>")
    assert link.count('rel="noopener noreferrer nofollow"') == 1


def test_limits_on_attachments_and_depth():
    parts = "".join(f"--B\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; "
                    f"filename=\"f{i}.bin\"\r\n\r\n{'x' * 50}\r\n" for i in range(5))
    p = parse(raw("From: a@example.org\nContent-Type: multipart/mixed; boundary=B", parts + "--B--"),
              limits=Limits(max_attachments=3, max_attachment_bytes=40))
    assert p.attachments == []  # 52 bytes each: over the 40-byte limit, kept in the raw message
    assert sum("over the limit" in x for x in p.problems) == 5
    p = parse(raw("From: a@example.org\nContent-Type: multipart/mixed; boundary=B", parts + "--B--"),
              limits=Limits(max_attachments=3))
    assert [a.filename for a in p.attachments] == ["f0.bin", "f1.bin", "f2.bin"]
    nested = "".join(f"--b{i}\r\nContent-Type: multipart/mixed; boundary=b{i + 1}\r\n\r\n" for i in range(12))
    head = "From: a@example.org\nContent-Type: multipart/mixed; boundary=b0"
    p = parse(raw(head, nested + "--b12\r\n\r\nx"), limits=Limits(max_depth=5))
    assert any("deeper than 5" in x for x in p.problems)


def test_names_and_types_from_the_sender_are_not_trusted():
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("C:\\Users\\x\\..\\evil.exe") == "evil.exe"
    assert safe_filename("\x00\x1f.hidden") == "hidden"
    assert safe_filename(None) == "attachment"
    assert safe_content_type("Text/HTML") == "text/html"
    assert safe_content_type("text/html\r\nX-Injected: 1") == "application/octet-stream"


def test_reply_subjects_and_threading_headers():
    assert outbound.reply_subject("Re: RE: Invoice", "T-000001") == "[T-000001] Re: Invoice"
    assert outbound.reply_subject("[T-000001] Re: Invoice", "T-000001") == "Re: [T-000001] Re: Invoice"
    assert outbound.reply_subject("", None) == "Re: (no subject)"
    assert outbound.thread_headers(None, []) == (None, [])
    irt, refs = outbound.thread_headers("<p@x>", ["<a@x>", "<b@x>"])
    assert irt == "<p@x>" and refs == ["<a@x>", "<b@x>", "<p@x>"]
    many = [f"<{i}@x>" for i in range(40)]
    _irt, refs = outbound.thread_headers("<p@x>", many)
    assert len(refs) == outbound.MAX_REFERENCES and refs[0] == "<0@x>" and refs[-1] == "<p@x>"
    msg = outbound.compose(sender="s@example.com", sender_name="Support", to="a@example.org", subject="Re: x",
                           body="hi", domain="example.com", in_reply_to="<p@x>", references=refs, auto=True)
    assert msg["Auto-Submitted"] == "auto-replied" and msg["In-Reply-To"] == "<p@x>"
    assert msg["Message-ID"].endswith("@example.com>")
