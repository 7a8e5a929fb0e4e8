"""YAML that remembers where things are: every mapping knows its own line and its keys' lines.

The flow language is read with a restricted resolver (YAML 1.2-like): only ``true``/``false`` are
booleans (``no`` is Norway, ``on`` is a word), ``09:00`` stays a string (no base-60 numbers) and
dates stay strings. Duplicate keys are reported instead of silently overwriting.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

__all__ = ["LineMap", "LineList", "YamlProblem", "load_yaml"]


@dataclass(frozen=True, slots=True)
class YamlProblem:
    line: int
    message: str


class LineMap(dict[str, Any]):
    """A mapping from YAML with ``line`` (where it starts) and ``key_lines`` (where each key is)."""

    line: int = 0
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class LineList(list[Any]):
    line: int = 0


class _Loader(yaml.SafeLoader):
    problems: list[YamlProblem]


_Loader.yaml_implicit_resolvers = {}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"), list("-+0123456789."))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])


def _int(loader: _Loader, node: yaml.ScalarNode) -> int:
    return int(str(node.value), 10)  # "010" is ten, not octal eight


def _mapping(loader: _Loader, node: yaml.MappingNode) -> LineMap:
    loader.flatten_mapping(node)
    out = LineMap()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, (dict, list)):
            loader.problems.append(YamlProblem(line, "a key must be a plain value"))
            continue
        skey = "" if key is None else str(key).lower() if isinstance(key, bool) else str(key)
        if skey in out:
            loader.problems.append(YamlProblem(line, f"duplicate key {skey!r} (first on line "
                                                     f"{out.key_lines[skey]})"))
            continue
        out[skey] = loader.construct_object(value_node, deep=True)
        out.key_lines[skey] = line
    return out


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    out = LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    return out


_Loader.add_constructor("tag:yaml.org,2002:int", _int)
_Loader.add_constructor("tag:yaml.org,2002:map", _mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _sequence)


def load_yaml(text: str) -> tuple[Any, list[YamlProblem]]:
    """Parse one YAML document. Returns (data or None, problems); never raises on bad YAML."""
    try:
        loader = _Loader(text)  # its reader refuses control characters at once (a YAMLError)
    except yaml.YAMLError as exc:
        return None, [YamlProblem(0, f"YAML error: {exc}")]
    loader.problems = []
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        return None, [YamlProblem(line, f"YAML syntax error: {exc.problem or exc.context}")]
    except yaml.YAMLError as exc:
        return None, [YamlProblem(0, f"YAML error: {exc}")]
    except RecursionError:
        return None, [YamlProblem(0, "YAML nested too deeply")]
    finally:
        loader.dispose()
    return data, loader.problems
