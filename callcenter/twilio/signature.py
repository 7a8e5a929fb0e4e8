"""Webhook signatures: every request is checked with the twilio library's RequestValidator against
the URL Twilio requested. Behind a proxy that URL is the configured public base URL plus the path
and query as received; headers such as X-Forwarded-Host are never trusted."""
from __future__ import annotations

from typing import Any

from aiohttp import web
from multidict import MultiDictProxy
from twilio.request_validator import SIGNATURE_HEADER, RequestValidator, get_signature_algorithm

SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"


def public_url(request: web.Request, public_base_url: str | None) -> str:
    """The URL Twilio signed: ``public_base_url`` + the raw path and query, or without a public base
    URL the request's own scheme, Host and path."""
    if public_base_url:
        return public_base_url.rstrip("/") + request.raw_path
    return f"{request.scheme}://{request.host}{request.raw_path}"


def is_signed(request: web.Request, params: MultiDictProxy[Any], token: str,
              public_base_url: str | None) -> bool:
    """True when the request carries Twilio's signature over its URL and form parameters (a form
    with anything but text fields, such as a file, is never Twilio's)."""
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature or not all(isinstance(v, str) for v in params.values()):
        return False
    algorithm = get_signature_algorithm(request.headers.get(SETTINGS_HEADER))
    validator = RequestValidator(token)
    return bool(validator.validate(public_url(request, public_base_url), params, signature, algorithm))
