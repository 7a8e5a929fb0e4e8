"""The pure parts of web chat: content checks and rendering, signed identities, rate limits,
queue position and estimated wait."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.channels.chat.content import ContentRefused, check_text, render_html, sanitize_html
from callcenter.channels.chat.identity import sign, verify
from callcenter.channels.chat.limits import KeyedBuckets, TokenBucket
from callcenter.channels.chat.waiting import estimated_wait_s, positions


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize(("text", "code"), [
    ("", "invalid"), ("  \n ", "invalid"), ("x" * 11, "too_large"), ("a\udc80", "invalid_text"),
    ("a\x00b", "invalid_text"), (42, "bad_message"),
])
def test_check_text_refuses_with_a_code(text, code):
    with pytest.raises(ContentRefused) as e:
        check_text(text, 10)
    assert e.value.code == code


def test_check_text_keeps_the_text_whole():
    hostile = "<script>alert(1)</script>\u202e"
    assert check_text(hostile, 100) is hostile


def test_render_html_escapes_and_links():
    out = render_html('<img src=x onerror=alert(1)> see https://example.org/a?b=1&c=2\nbye')
    assert out.startswith("&lt;img src=x onerror=alert(1)&gt;")
    link = '<a href="https://example.org/a?b=1&amp;c=2" target="_blank" rel="noopener noreferrer nofollow">'
    assert link in out
    assert out.endswith("<br>bye")
    assert render_html("javascript:alert(1)") == "javascript:alert(1)"  # text, not a link


def test_sanitize_html_keeps_only_inert_links():
    out = sanitize_html('<a href="javascript:alert(1)" onclick="x()">a</a><svg onload=x()></svg>'
                        '<script>x()</script><a href="https://ok.example">ok</a>')
    assert "javascript" not in out and "onclick" not in out and "<svg" not in out and "<script" not in out
    assert '<a href="https://ok.example" rel="noopener noreferrer nofollow">ok</a>' in out


@given(st.text(max_size=300))
def test_rendered_text_never_has_other_tags(text):
    out = render_html(text)
    stripped = out.replace("<br>", "").replace("</a>", "")
    assert "<" not in stripped.replace('<a href="http', "")


def test_signed_identity():
    sig = sign("secret", "user-1")
    assert verify("secret", "user-1", sig) and verify("secret", "user-1", sig.upper())
    assert not verify("other", "user-1", sig)
    assert not verify("secret", "user-2", sig)
    assert not verify(None, "user-1", sig)  # a site without a secret trusts nobody
    assert not verify("secret", "user-1", None)
    assert not verify("secret", "user 1", sign("secret", "user 1"))  # malformed user id
    assert not verify("secret", "user-1", sig[:-1])


def test_token_bucket_and_keyed_buckets():
    clock = Clock()
    b = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [b.take() for _ in range(4)] == [True, True, True, False]
    clock.t += 0.5
    assert b.take() and not b.take()
    k = KeyedBuckets(rate=1.0, burst=1, clock=clock, max_keys=2)
    assert k.take("a") and not k.take("a") and k.take("b")
    k.take("c")  # "a" is the least recently used: dropped
    assert set(k.buckets) == {"b", "c"}


def test_positions_per_queue_and_estimated_wait():
    pos = positions([("1", "general"), ("2", "billing"), ("3", "general"), ("4", "general")])
    assert pos == {"1": 1, "2": 1, "3": 2, "4": 3}
    assert estimated_wait_s(1, 3, 240) == 120
    assert estimated_wait_s(4, 3, 240) == 360
    assert estimated_wait_s(0, 3, 240) == 0
    assert estimated_wait_s(2, 0, 240) is None
