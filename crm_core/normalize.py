"""Normalisation and validation of contact points, names, tags and free text (pure functions)."""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from crm_core.enums import ContactKind
from crm_core.errors import InvalidEmail, InvalidPhone, NoteTooLong, UnknownValue, ValidationError

# Caller IDs that mean "no number": compared after lower-casing and stripping <>, quotes, spaces.
ANONYMOUS_CALLER_IDS = frozenset({
    "", "anonymous", "unknown", "restricted", "private", "unavailable", "withheld", "blocked",
    "none", "null", "invalid", "anonymous@anonymous.invalid", "asterisk", "s",
})

_PHONE_JUNK = re.compile(r"^(tel:|sip:|sips:)", re.IGNORECASE)
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)
MAX_TOKEN = 64
MAX_NAME = 200
MAX_TAG = 64


def is_anonymous(raw: str | None) -> bool:
    if raw is None:
        return True
    s = raw.strip().strip("<>\"' ").lower()
    return s in ANONYMOUS_CALLER_IDS or not any(ch.isdigit() for ch in s)


def _parse_phone(raw: str, region: str) -> phonenumbers.PhoneNumber:
    s = _PHONE_JUNK.sub("", raw.strip())
    s = s.split("@", 1)[0]  # sip:+12025550143@pbx
    compact = re.sub(r"[\s().\-/]", "", s)
    if compact.startswith("00"):  # the ITU international prefix, used all over the world
        s = "+" + compact[2:]
    return phonenumbers.parse(s, region.upper())


def normalize_phone(raw: str, region: str = "US") -> str:
    """E.164 form of a phone number written in any common national or international format.

    Raises InvalidPhone for anything that is not a valid number (anonymous caller IDs included).
    """
    if not isinstance(raw, str) or is_anonymous(raw):
        raise InvalidPhone(f"not a phone number: {raw!r}", field="phone", value=raw)
    try:
        num = _parse_phone(raw, region)
    except phonenumbers.NumberParseException as e:
        raise InvalidPhone(f"not a phone number: {raw!r} ({e})", field="phone", value=raw) from e
    if not phonenumbers.is_valid_number(num):
        raise InvalidPhone(
            f"not a valid phone number: {raw!r} (region {region})", field="phone", value=raw
        )
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def lookup_phone(raw: str | None, region: str = "US") -> str | None:
    """The E.164 key to look a caller ID up by, or None when it cannot name a number.

    More lenient than normalize_phone (a possible number is enough): never raises.
    """
    if raw is None or not isinstance(raw, str) or is_anonymous(raw):
        return None
    try:
        num = _parse_phone(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(num):
        return None
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str) -> str:
    """Lower-cased, syntactically valid address (no DNS lookups)."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidEmail(f"not an email address: {raw!r}", field="email", value=raw)
    try:
        info = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as e:
        raise InvalidEmail(f"not an email address: {raw!r} ({e})", field="email", value=raw) from e
    return info.normalized.lower()


def lookup_email(raw: str | None) -> str | None:
    if raw is None:
        return None
    try:
        return normalize_email(raw)
    except InvalidEmail:
        return None


def normalize_chat_id(raw: str) -> str:
    """Chat identities are kept as given (e.g. "web:3f2a…", "whatsapp:+1202…"), trimmed."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationError(f"not a chat identity: {raw!r}", field="chat_id", value=raw)
    s = raw.strip()
    if len(s) > 320:
        raise ValidationError("chat identity longer than 320 characters", field="chat_id")
    return s


def normalize_contact(kind: str, value: str, region: str = "US") -> tuple[ContactKind, str]:
    k = enum_value(ContactKind, kind, "kind")
    if k is ContactKind.PHONE:
        return k, normalize_phone(value, region)
    if k is ContactKind.EMAIL:
        return k, normalize_email(value)
    return k, normalize_chat_id(value)


def name_key(name: str) -> str:
    """Case-, accent- and punctuation-insensitive form of a name: "  José  O'Neil" -> "jose o neil"."""
    decomposed = unicodedata.normalize("NFKD", name)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(_NON_WORD.sub(" ", stripped.casefold()).replace("_", " ").split())[:MAX_NAME]


def name_tokens(name: str) -> list[str]:
    """The distinct words of a name's key (searched by prefix)."""
    seen: dict[str, None] = {}
    for word in name.split():
        parts = name_key(word).split()
        for tok in parts:
            seen.setdefault(tok[:MAX_TOKEN], None)
        if len(parts) > 1:  # "O'Neil" -> "o", "neil" and "oneil"; "Smith-Jones" -> ... "smithjones"
            seen.setdefault("".join(parts)[:MAX_TOKEN], None)
    return list(seen)


def prefix_upper_bound(prefix: str) -> str:
    """The smallest string greater than every string starting with `prefix` (code-point order)."""
    last = ord(prefix[-1])
    return prefix[:-1] + chr(min(last + 1, 0x10FFFF))


def clean_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("a customer needs a name", field="name", value=name)
    s = " ".join(name.split())
    if len(s) > MAX_NAME:
        raise ValidationError(f"name longer than {MAX_NAME} characters", field="name")
    if not name_key(s):
        raise ValidationError(f"name has no letters or digits: {name!r}", field="name", value=name)
    return s


def clean_tags(tags: Iterable[str]) -> list[str]:
    if isinstance(tags, str):
        raise ValidationError("tags must be a list of strings, not a string", field="tags")
    out: set[str] = set()
    for t in tags:
        if not isinstance(t, str) or not t.strip():
            raise ValidationError(f"bad tag {t!r}", field="tags", value=t)
        s = " ".join(t.strip().lower().split())
        if len(s) > MAX_TAG:
            raise ValidationError(f"tag longer than {MAX_TAG} characters: {t!r}", field="tags")
        out.add(s)
    return sorted(out)


def clean_language(lang: str | None) -> str | None:
    if lang is None or lang == "":
        return None
    if not isinstance(lang, str) or not _LANGUAGE.match(lang.strip()):
        raise ValidationError(f"not a language tag: {lang!r}", field="language", value=lang)
    parts = lang.strip().split("-")
    parts[0] = parts[0].lower()
    parts[1:] = [p.upper() if len(p) == 2 else p for p in parts[1:]]
    return "-".join(parts)


def check_text(value: str | None, limit: int, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be text", field=field)
    if len(value) > limit:
        raise NoteTooLong(len(value), limit, field=field)
    return value


def enum_value(enum: type, value: object, field: str):  # type: ignore[no-untyped-def]
    """`enum(value)` or UnknownValue naming the field and the allowed values."""
    try:
        return enum(value)
    except (ValueError, TypeError):
        raise UnknownValue(field, value, [m.value for m in enum]) from None  # type: ignore[attr-defined]
