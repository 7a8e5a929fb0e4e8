"""Variables, templates and masking.

Variables are flat: a lookup saved as ``customer`` gives ``customer.tier``, ``customer.name``...
Templates substitute ``{name}`` (``{{`` and ``}}`` are literal braces); nothing else is
evaluated, so a flow author cannot reach attributes or run code.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

__all__ = [
    "MASK",
    "SENSITIVE_WORDS",
    "VAR_NAME",
    "MissingVariable",
    "Value",
    "flatten",
    "is_sensitive",
    "mask",
    "render",
    "template_vars",
]

Value = str | int | float | bool | None

VAR_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*$")
_TEMPLATE: Final = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
MASK: Final = "***"
SENSITIVE_WORDS: Final = ("balance", "pin", "account", "password", "passcode", "card", "cvv",
                          "ssn", "iban", "secret", "dob", "birth")
MAX_VALUE_CHARS: Final = 1000
MAX_FLATTEN: Final = 200


class MissingVariable(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"variable {name!r} is not set")
        self.name = name


def template_vars(template: str) -> tuple[list[str], list[str]]:
    """Variables named in ``template`` and the malformed placeholders."""
    names: list[str] = []
    bad: list[str] = []
    for m in _TEMPLATE.finditer(template):
        if m.group(1) is None:
            continue
        name = m.group(1).strip()
        (names if VAR_NAME.match(name) else bad).append(name)
    rest = _TEMPLATE.sub("", template)
    if "{" in rest or "}" in rest:
        bad.append("unbalanced brace")
    return names, bad


def as_text(value: Value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def render(template: str, variables: Mapping[str, Value], *, strict: bool = True) -> str:
    """Substitute ``{name}``. A missing variable raises :class:`MissingVariable` when ``strict``,
    else renders as empty."""

    def sub(m: re.Match[str]) -> str:
        whole = m.group(0)
        if whole == "{{":
            return "{"
        if whole == "}}":
            return "}"
        name = m.group(1).strip()
        if name not in variables:
            if strict:
                raise MissingVariable(name)
            return ""
        return as_text(variables[name])

    return _TEMPLATE.sub(sub, template)


def is_sensitive(name: str, declared: Iterable[str] = ()) -> bool:
    """A variable is sensitive when declared so (by full name or last part) or when its last part
    contains a sensitive word (``account_no``, ``customer.pin``, ``balance``; not
    ``account.currency``)."""
    declared = set(declared)
    last = name.rsplit(".", 1)[-1]
    if name in declared or last in declared:
        return True
    return any(w in part for part in last.lower().split("_") for w in SENSITIVE_WORDS)


def mask(name: str, value: Value, declared: Iterable[str] = ()) -> Value:
    return MASK if value not in (None, "") and is_sensitive(name, declared) else value


def _scalar(v: object) -> Value:
    if v is None or isinstance(v, (bool, int, float)):
        return v
    s = str(v)
    return s if len(s) <= MAX_VALUE_CHARS else s[:MAX_VALUE_CHARS]


def flatten(prefix: str, data: Mapping[str, object], depth: int = 3) -> dict[str, Value]:
    """``{"a": {"b": 1}}`` under ``x`` -> ``{"x.a.b": 1}``; non-scalars become strings. Bounded
    in depth and in count (a lookup cannot flood the variables)."""
    out: dict[str, Value] = {}

    def walk(p: str, d: Mapping[str, object], level: int) -> None:
        for k, v in d.items():
            if len(out) >= MAX_FLATTEN:
                return
            key = re.sub(r"[^A-Za-z0-9_]", "_", str(k)) or "_"
            name = f"{p}.{key}" if p else key
            if isinstance(v, Mapping) and level < depth:
                walk(name, v, level + 1)
            else:
                out[name] = _scalar(v)

    walk(prefix, data, 1)
    return out
