"""Message content: what is accepted, and how it is shown. Pure.

A message is stored exactly as the customer sent it. What anyone sees is `render_html(text)`:
the text HTML-escaped, web links made clickable, then cleaned by nh3 (only `a` with http(s) or
mailto links, and `br`), so that no payload (`<script>`, `<img onerror>`, `javascript:` links,
SVG) can run or load anything.
"""
from __future__ import annotations

import html
import re

import nh3

ALLOWED_TAGS = {"a", "br"}
ALLOWED_ATTRIBUTES = {"a": {"href", "target"}}
URL_SCHEMES = {"http", "https", "mailto"}
_URL = re.compile(r"\bhttps?://[^\s<>\"']{1,2000}")


class ContentRefused(ValueError):
    """Text the chat does not accept; `code` is the protocol error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_text(text: object, max_chars: int) -> str:
    """The message text as it will be stored, or ContentRefused (empty, too long, not Unicode)."""
    if not isinstance(text, str):
        raise ContentRefused("bad_message", "text must be a string")
    if not text.strip():
        raise ContentRefused("invalid", "the message is empty")
    if len(text) > max_chars:
        raise ContentRefused("too_large", f"a message is at most {max_chars} characters")
    if "\x00" in text:  # no database stores it in text, and no one types it
        raise ContentRefused("invalid_text", "the message contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates ("\udc80") from JSON escapes
        raise ContentRefused("invalid_text", "the message is not valid Unicode text") from None
    return text


def _linkify(escaped: str) -> str:
    def link(m: re.Match[str]) -> str:
        url = m.group(0)
        return f'<a href="{url}" target="_blank">{url}</a>'

    return _URL.sub(link, escaped)


def render_html(text: str) -> str:
    """Safe HTML for showing `text`: escaped, linkified, newlines as <br>, cleaned by nh3."""
    escaped = html.escape(text, quote=True)
    rich = _linkify(escaped).replace("\r\n", "\n").replace("\n", "<br>")
    return nh3.clean(rich, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, url_schemes=URL_SCHEMES,
                     link_rel="noopener noreferrer nofollow")


def sanitize_html(rich: str) -> str:
    """Rich HTML from elsewhere (e.g. a pasted snippet): cleaned by nh3 to the same inert subset."""
    return nh3.clean(rich, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, url_schemes=URL_SCHEMES,
                     link_rel="noopener noreferrer nofollow")
