"""Conditions of ``condition`` nodes: parse from YAML, evaluate on variables.

A condition is a mapping: ``{var: customer.tier, eq: vip}``, ``{var: x, in: [a, b]}``,
``{var: x, exists: true}``, ``{var: amount, gt: 100}``, ``{var: x, matches: "^1"}``, or a
combinator ``{all: [...]}``, ``{any: [...]}``, ``{not: {...}}``.

A missing variable is ``None``: it equals nothing but ``null``, is in no list, and every ordering
comparison with it is false. Comparing a number with a word is a flow bug: :class:`ConditionError`.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from ivr.model import Cond
from ivr.values import VAR_NAME, Value

__all__ = ["COMPARISONS", "ConditionError", "evaluate", "parse_cond"]

COMPARISONS: Final = frozenset({"eq", "ne", "in", "not_in", "lt", "le", "gt", "ge", "exists",
                                "matches"})
_COMBINATORS: Final = frozenset({"all", "any", "not"})
MAX_DEPTH: Final = 8


class ConditionError(ValueError):
    pass


def parse_cond(raw: Any, depth: int = 0) -> tuple[Cond | None, str | None]:
    """Returns (condition, None) or (None, error message)."""
    if depth > MAX_DEPTH:
        return None, "conditions nested too deeply"
    if not isinstance(raw, Mapping):
        return None, "a condition must be a mapping like {var: customer.tier, eq: vip}"
    keys = set(raw)
    comb = keys & _COMBINATORS
    if comb:
        if len(keys) != 1:
            return None, f"{sorted(comb)[0]!r} must be alone in its condition (got {sorted(keys)})"
        op = comb.pop()
        arg = raw[op]
        if op == "not":
            inner, err = parse_cond(arg, depth + 1)
            return (Cond("not", parts=(inner,)), None) if inner else (None, err)
        if not isinstance(arg, list) or not arg:
            return None, f"{op!r} takes a non-empty list of conditions"
        parts: list[Cond] = []
        for item in arg:
            c, err = parse_cond(item, depth + 1)
            if c is None:
                return None, err
            parts.append(c)
        return Cond(op, parts=tuple(parts)), None
    if "var" not in keys:
        return None, (f"unknown condition keys {sorted(keys)}: expected 'var' with one of "
                      f"{sorted(COMPARISONS)}, or all/any/not")
    var = raw["var"]
    if not isinstance(var, str) or not VAR_NAME.match(var):
        return None, f"'var' must be a variable name, got {var!r}"
    ops = keys - {"var"}
    unknown = ops - COMPARISONS
    if unknown:
        return None, f"unknown comparison {sorted(unknown)[0]!r} (use one of {sorted(COMPARISONS)})"
    if len(ops) != 1:
        return None, f"a condition takes exactly one comparison, got {sorted(ops) or 'none'}"
    op = ops.pop()
    value = raw[op]
    if op in ("in", "not_in"):
        if not isinstance(value, list):
            return None, f"{op!r} takes a list"
        value = tuple(value)
    elif op == "exists":
        if not isinstance(value, bool):
            return None, "'exists' takes true or false"
    elif op == "matches":
        if not isinstance(value, str):
            return None, "'matches' takes a regular expression"
        try:
            re.compile(value)
        except re.error as exc:
            return None, f"bad regular expression {value!r}: {exc}"
    elif op in ("lt", "le", "gt", "ge"):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            return None, f"{op!r} takes a number or a string"
    elif isinstance(value, (list, Mapping)):
        return None, f"{op!r} takes a single value"
    return Cond(op, var, value), None


def _num(v: object) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _same(a: object, b: object) -> bool:
    """Equality that lets ``"5"`` equal ``5`` (lookups often hand back strings)."""
    if a is None or b is None:
        return a is b
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or str(a).lower() == str(b).lower()
    na, nb = _num(a), _num(b)
    if na is not None and nb is not None:
        return na == nb
    return str(a) == str(b)


def evaluate(cond: Cond, variables: Mapping[str, Value]) -> bool:
    op = cond.op
    if op == "all":
        return all(evaluate(p, variables) for p in cond.parts)
    if op == "any":
        return any(evaluate(p, variables) for p in cond.parts)
    if op == "not":
        return not evaluate(cond.parts[0], variables)
    v = variables.get(cond.var)
    if op == "exists":
        return (v is not None and v != "") == cond.value
    if op == "eq":
        return _same(v, cond.value)
    if op == "ne":
        return not _same(v, cond.value)
    if op in ("in", "not_in"):
        assert isinstance(cond.value, tuple)
        found = any(_same(v, item) for item in cond.value)
        return found if op == "in" else not found
    if op == "matches":
        return v is not None and re.search(str(cond.value), str(v)[:1000]) is not None
    if v is None:
        return False
    a, b = _num(v), _num(cond.value)
    left: Any
    right: Any
    if a is not None and b is not None:
        left, right = a, b
    elif isinstance(v, str) and isinstance(cond.value, str):
        left, right = v, cond.value
    else:
        raise ConditionError(f"cannot compare {cond.var}={v!r} with {cond.value!r}")
    if op == "lt":
        return bool(left < right)
    if op == "le":
        return bool(left <= right)
    if op == "gt":
        return bool(left > right)
    return bool(left >= right)  # ge
