"""Signed identities: a site that has logged its user in passes `user_id` and
`signature = hex(HMAC-SHA256(site secret, user_id))`, made on its server. Pure.

Unsigned, wrongly signed or malformed identities are never trusted."""
from __future__ import annotations

import hashlib
import hmac
import re

_USER_ID = re.compile(r"^[A-Za-z0-9_.@:+-]{1,128}$")
_SIG = re.compile(r"^[0-9a-f]{64}$")


def sign(secret: str, user_id: str) -> str:
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def verify(secret: str | None, user_id: object, signature: object) -> bool:
    """True only for a well-formed user id with the right signature, under a configured secret."""
    if not secret or not isinstance(user_id, str) or not isinstance(signature, str):
        return False
    if not _USER_ID.match(user_id) or not _SIG.match(signature.lower()):
        return False
    return hmac.compare_digest(sign(secret, user_id), signature.lower())
