"""A Hypothesis strategy for the values a JSON Schema (draft 2020-12, the subset our message
schemas use) accepts: $ref (into the same file or a sibling's $defs), const, enum, anyOf/oneOf,
type (one or a list), string lengths and patterns, integer bounds, arrays and objects."""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

_JSON_TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")


@cache
def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _resolve(ref: str, base: Path) -> tuple[dict[str, Any], Path]:
    file, _, pointer = ref.partition("#")
    path = (base.parent / file) if file else base
    node: Any = _load(path)
    for part in [p for p in pointer.split("/") if p]:
        node = node[part]
    return node, path


def _merge(rest: dict[str, Any], option: Any) -> Any:
    if not rest or not isinstance(option, dict):
        return option
    out = {**rest, **option}
    if "required" in rest or "required" in option:
        out["required"] = sorted({*rest.get("required", []), *option.get("required", [])})
    if "properties" in rest and "properties" in option:
        out["properties"] = {**rest["properties"], **option["properties"]}
    return out


def from_schema(schema: dict[str, Any] | bool, base: Path) -> st.SearchStrategy[Any]:
    if schema is True or schema == {}:
        return st.none() | st.booleans() | st.integers() | st.text(max_size=20)
    if schema is False:
        return st.nothing()
    assert isinstance(schema, dict)
    if "$ref" in schema:
        target, path = _resolve(schema["$ref"], base)
        return from_schema({**target, **{k: v for k, v in schema.items() if k != "$ref"}}, path)
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:  # each option merged with the rest of the schema (its properties, type)
            rest = {k: v for k, v in schema.items() if k != key}
            return st.one_of([from_schema(_merge(rest, s), base) for s in schema[key]])
    t = schema.get("type")
    if isinstance(t, list):
        return st.one_of([from_schema({**schema, "type": x}, base) for x in t])
    if t is None:
        t = "object" if "properties" in schema else "string"
    if t == "null":
        return st.none()
    if t == "boolean":
        return st.booleans()
    if t == "integer":
        lo = schema.get("minimum", -(2**40))
        hi = schema.get("maximum", 2**40)
        return st.integers(lo, hi)
    if t == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False, allow_infinity=False)
    if t == "string":
        lo, hi = schema.get("minLength", 0), min(schema.get("maxLength", 40), 200)
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda s: lo <= len(s) <= hi)
        return st.text(min_size=lo, max_size=max(lo, hi))
    if t == "array":
        items = from_schema(schema.get("items", True), base)
        lo = schema.get("minItems", 0)
        return st.lists(items, min_size=lo, max_size=max(lo, min(schema.get("maxItems", 4), 4)))
    if t == "object":
        props = schema.get("properties", {})
        required = [k for k in schema.get("required", []) if k in props]
        optional = [k for k in props if k not in required]
        return st.fixed_dictionaries({k: from_schema(props[k], base) for k in required},
                                     optional={k: from_schema(props[k], base) for k in optional})
    raise ValueError(f"unsupported schema type {t!r}")


def messages(directory: Path, direction: str) -> dict[str, st.SearchStrategy[dict[str, Any]]]:
    """Message type -> a strategy of valid messages of that type, for the schemas in `directory`."""
    out = {}
    for path in sorted(directory.glob("*.json")):
        doc = _load(path)
        if doc.get("x-direction") == direction:
            out[doc["properties"]["type"]["const"]] = from_schema(doc, path)
    return out
