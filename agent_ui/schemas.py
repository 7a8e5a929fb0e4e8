"""JSON Schemas (draft 2020-12) of the console websocket protocol: one file per message type.

    from agent_ui import schemas
    schemas.validate({"type": "set_state", "state": "ready"})            # returns the message
    schemas.validate(msg, direction="client")   # refuses server types coming from a console

`agent_ui/schemas/<type>.json` holds each message type; `x-direction` says who sends it
(`server` or `client`). Shared definitions (the customer card, codes, times) are in
`agent_ui/schemas/defs/common.json` and referenced by relative `$ref`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SCHEMA_DIR = Path(__file__).with_name("schemas")
Direction = Literal["server", "client"]


class MessageInvalid(ValueError):
    """A message that does not match the protocol. `code` is the protocol error code
    (`bad_message`, `unknown_type`); `path` points at the offending field ("/ticket/type")."""

    def __init__(self, code: str, message: str, *, type_: str | None = None, path: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.type = type_
        self.path = path


@dataclass(frozen=True)
class _Loaded:
    validators: dict[str, Draft202012Validator]
    directions: dict[str, Direction]
    schemas: dict[str, dict[str, Any]]


@cache
def _load() -> _Loaded:
    resources = []
    schemas: dict[str, dict[str, Any]] = {}
    for path in sorted(SCHEMA_DIR.rglob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(doc)
        resources.append((doc["$id"], Resource.from_contents(doc, default_specification=DRAFT202012)))
        if path.parent == SCHEMA_DIR:
            type_ = path.stem
            if doc.get("properties", {}).get("type", {}).get("const") != type_:
                raise RuntimeError(f"{path}: properties.type.const must be {type_!r}")
            schemas[type_] = doc
    registry: Registry = Registry().with_resources(resources)
    fmt = FormatChecker()
    validators = {t: Draft202012Validator(s, registry=registry, format_checker=fmt)
                  for t, s in schemas.items()}
    directions: dict[str, Direction] = {}
    for t, s in schemas.items():
        d = s.get("x-direction")
        if d not in ("server", "client"):
            raise RuntimeError(f"schema {t}: x-direction must be 'server' or 'client'")
        directions[t] = d
    return _Loaded(validators, directions, schemas)


def message_types(direction: Direction | None = None) -> frozenset[str]:
    """Every message type with a schema, or those one side sends."""
    loaded = _load()
    return frozenset(t for t, d in loaded.directions.items() if direction in (None, d))


def schema(type_: str) -> dict[str, Any]:
    return _load().schemas[type_]


def validate(message: Any, *, direction: Direction | None = None) -> dict[str, Any]:
    """Return `message` if it is a valid protocol message (of `direction`, if given);
    raise MessageInvalid with a clear, bounded explanation otherwise."""
    if not isinstance(message, dict):
        raise MessageInvalid("bad_message", "a message must be a JSON object")
    type_ = message.get("type")
    if not isinstance(type_, str):
        raise MessageInvalid("bad_message", "a message needs a string 'type'")
    loaded = _load()
    if type_ not in loaded.validators or (direction and loaded.directions[type_] != direction):
        shown = type_ if len(type_) <= 64 else type_[:64] + "…"
        raise MessageInvalid("unknown_type", f"unknown message type {shown!r}")
    error = best_match(loaded.validators[type_].iter_errors(message))
    if error is not None:
        path = "".join(f"/{p}" for p in error.absolute_path)
        custom = error.schema.get("x-error") if isinstance(error.schema, dict) else None
        text = custom if isinstance(custom, str) else error.message
        if len(text) > 300:
            text = text[:300] + "…"
        raise MessageInvalid("bad_message", f"{type_}: {text} (at {path or '/'})",
                             type_=type_, path=path)
    return message


__all__ = ["MessageInvalid", "SCHEMA_DIR", "message_types", "schema", "validate"]
