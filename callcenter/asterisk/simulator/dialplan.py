# ruff: noqa: E501
"""A small reader and evaluator for ``extensions.conf``: enough of Asterisk's dialplan for the
simulator to run the shipped configuration and the dialplans of the captures.

Supported: ``[context]``, ``exten => pattern,priority(label),App(args)``, ``same => n,...``,
``n``/``n(label)`` priorities, ``_`` patterns (``X Z N . ! [..]``), ``[globals]``, ``include =>``,
``${VAR}``, ``${CALLERID(num)}``/``(name)``, ``${EXTEN}``, ``${CONTEXT}``, ``$[a = b]``/``!=``
and ``GotoIf(cond?label[:label])`` targets ``[[context,]exten,]priority|label``.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Step:
    priority: int
    label: str | None
    app: str
    data: str


@dataclass
class Extension:
    pattern: str
    steps: dict[int, Step] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)

    def matches(self, exten: str) -> bool:
        return match_pattern(self.pattern, exten)


@dataclass
class Context:
    name: str
    extensions: list[Extension] = field(default_factory=list)
    includes: list[str] = field(default_factory=list)


def pattern_specificity(pattern: str) -> tuple[int, ...]:
    """How many characters each position of a ``_`` pattern accepts (smaller sorts first)."""
    sizes: list[int] = []
    p, i = pattern[1:], 0
    while i < len(p):
        c = p[i].upper()
        if c == "[":
            end = p.find("]", i)
            body = p[i + 1:end if end > 0 else len(p)]
            n = sum(int(b[2]) - int(b[0]) + 1 if len(b) == 3 and b[1] == "-" and b[0].isdigit() and b[2].isdigit()
                    else len(b) for b in re.findall(r".-.|.", body))
            sizes.append(n)
            i = end + 1 if end > 0 else len(p)
            continue
        sizes.append({"X": 10, "Z": 9, "N": 8, ".": 1000, "!": 1001}.get(c, 1))
        i += 1
    return tuple(sizes)


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    p = pattern[1:]
    while i < len(p):
        c = p[i]
        if c == "X":
            out.append("[0-9]")
        elif c == "Z":
            out.append("[1-9]")
        elif c == "N":
            out.append("[2-9]")
        elif c == ".":
            out.append(".+")
        elif c == "!":
            out.append(".*")
        elif c == "[":
            j = p.index("]", i)
            out.append("[" + p[i + 1:j] + "]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def match_pattern(pattern: str, exten: str) -> bool:
    if pattern.startswith("_"):
        return _pattern_regex(pattern).match(exten) is not None
    return pattern == exten


def split_args(data: str, sep: str = ",") -> list[str]:
    """Split application arguments on ``sep`` outside quotes, ``$[...]``, ``${...}`` and parentheses."""
    out: list[str] = []
    depth = 0
    cur = []
    quoted = False
    for c in data:
        if c == '"':
            quoted = not quoted
        elif not quoted and c in "([{":
            depth += 1
        elif not quoted and c in ")]}":
            depth -= 1
        if c == sep and depth <= 0 and not quoted:
            out.append("".join(cur))
            cur = []
            continue
        cur.append(c)
    out.append("".join(cur))
    return out


_LINE = re.compile(r"^(exten|same)\s*=>?\s*(.*)$")


class Dialplan:
    def __init__(self) -> None:
        self.contexts: dict[str, Context] = {}
        self.globals: dict[str, str] = {}

    @classmethod
    def parse(cls, text: str) -> Dialplan:
        dp = cls()
        ctx: Context | None = None
        in_globals = False
        last: Extension | None = None
        last_prio = 0
        for raw in text.splitlines():
            line = raw.split(";", 1)[0].strip() if ";" in raw and "\\;" not in raw else raw.strip()
            if not line:
                continue
            if line.startswith("[") and "]" in line:
                name = line[1:line.index("]")]
                in_globals = name == "globals"
                ctx = None if name in ("general", "globals") else dp.contexts.setdefault(name, Context(name))
                last = None
                continue
            if in_globals:
                k, _, v = line.partition("=")
                dp.globals[k.strip()] = v.strip()
                continue
            if ctx is None:
                continue
            if line.startswith("include"):
                ctx.includes.append(line.split("=>", 1)[1].strip())
                continue
            m = _LINE.match(line)
            if m is None:
                continue
            kind, rest = m.group(1), m.group(2).strip()
            if kind == "exten":
                pattern, _, rest = rest.partition(",")
                pattern = pattern.strip()
                ext = next((e for e in ctx.extensions if e.pattern == pattern), None)
                if ext is None:
                    ext = Extension(pattern)
                    ctx.extensions.append(ext)
            else:
                if last is None:
                    raise ValueError(f"'same =>' without an extension: {raw!r}")
                ext = last
            prio_s, _, app_s = rest.partition(",")
            prio_s = prio_s.strip()
            label = None
            lm = re.match(r"^([^(]+)\(([^)]*)\)$", prio_s)
            if lm:
                prio_s, label = lm.group(1), lm.group(2)
            if prio_s == "n":
                prio = last_prio + 1
            elif prio_s == "hint":
                continue
            else:
                prio = int(prio_s)
            app_s = app_s.strip()
            if "(" in app_s:
                app, data = app_s[:app_s.index("(")], app_s[app_s.index("(") + 1:]
                data = data[:-1] if data.endswith(")") else data
            else:
                app, data = app_s, ""
            ext.steps[prio] = Step(prio, label, app.strip(), data)
            if label:
                ext.labels[label] = prio
            last = ext
            last_prio = prio
        return dp

    @classmethod
    def load(cls, path: str | Path) -> Dialplan:
        return cls.parse(Path(path).read_text())

    def find(self, context: str, exten: str, _seen: frozenset[str] = frozenset()) -> Extension | None:
        ctx = self.contexts.get(context)
        if ctx is None or context in _seen:
            return None
        exact = [e for e in ctx.extensions if e.pattern == exten]
        if exact:
            return exact[0]
        matching = [e for e in ctx.extensions if e.matches(exten)]
        if matching:  # Asterisk tries the most specific pattern first (_502X before _50XX)
            return min(matching, key=lambda e: pattern_specificity(e.pattern))
        for inc in ctx.includes:
            found = self.find(inc, exten, _seen | {context})
            if found is not None:
                return found
        return None

    def exists(self, context: str, exten: str, priority: int = 1) -> bool:
        ext = self.find(context, exten)
        return ext is not None and priority in ext.steps


# ------------------------------------------------------------------------------- expressions

_VAR = re.compile(r"\$\{([^${}]*)\}")
_EXPR = re.compile(r"\$\[([^$\[\]]*)\]")


def substitute(text: str, lookup: Callable[[str], str]) -> str:
    """Replace ``${...}`` (innermost first) and ``$[...]`` in ``text``."""
    for _ in range(50):
        new = _VAR.sub(lambda m: lookup(m.group(1)), text)
        new = _EXPR.sub(lambda m: evaluate(m.group(1)), new) if new == text else new
        if new == text:
            return new
        text = new
    return text


def _unq(s: str) -> str:
    s = s.strip()
    if len(s) >= 2 and s[0] == s[-1] == '"':
        return s[1:-1]
    return s


def evaluate(expr: str) -> str:
    for op in ("!=", "=", ">=", "<=", ">", "<"):
        if op in expr:
            a, _, b = expr.partition(op)
            a, b = _unq(a), _unq(b)
            if op in ("=", "!="):
                res = a == b
                return "1" if res == (op == "=") else "0"
            try:
                fa, fb = float(a), float(b)
            except ValueError:
                return "0"
            return "1" if {">": fa > fb, "<": fa < fb, ">=": fa >= fb, "<=": fa <= fb}[op] else "0"
    return _unq(expr)


def truthy(value: str) -> bool:
    v = value.strip()
    return v not in ("", "0")


def lookup_in(vars_: Mapping[str, str], *fallbacks: Mapping[str, str]) -> Callable[[str], str]:
    def look(name: str) -> str:
        for m in (vars_, *fallbacks):
            if name in m:
                return m[name]
        return ""
    return look
