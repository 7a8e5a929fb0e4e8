"""Import an existing Asterisk ``queues.conf`` into plain routing data, via pyst2's parser.

pyst2's :class:`asterisk.config.Config` does the line work (``[category]``, ``name = value``,
``member => ...``, ``;`` comments). This module adds what it lacks and that real files use --
template headers ``[q](!)`` / ``[q](tpl)``, ``#include`` / ``#tryinclude`` -- and turns the
result into frozen dataclasses (and JSON-ready dicts with :meth:`QueuesImport.to_dict`).

Asterisk's defaults are filled in for the settings routing needs (strategy ``ringall``,
timeout 15 s, retry 5 s, wrapuptime 0, weight 0, maxlen 0, ringinuse yes); every setting as
written stays in ``settings``.
"""
from __future__ import annotations

import glob
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from asterisk.config import Category, Config, Item, Line, ParseError

__all__ = [
    "STRATEGIES",
    "QueueConfig",
    "QueueImportError",
    "QueueMember",
    "QueuesImport",
    "import_queues",
]

log = logging.getLogger(__name__)

STRATEGIES = frozenset(
    {"ringall", "leastrecent", "fewestcalls", "random", "rrmemory", "rrordered", "linear",
     "wrandom"})
_ALIASES = {"roundrobin": "rrmemory"}  # Asterisk maps the old name with a warning
_TRUE = {"yes", "true", "y", "t", "1", "on"}


class QueueImportError(ValueError):
    """The file cannot be imported (syntax, unknown strategy, bad member line...)."""


@dataclass(frozen=True, slots=True)
class QueueMember:
    """``member => interface[,penalty[,membername[,state_interface[,ringinuse[,wrapuptime
    [,paused]]]]]]``"""

    interface: str
    penalty: int = 0
    membername: str | None = None
    state_interface: str | None = None
    ringinuse: bool | None = None
    wrapuptime: int | None = None
    paused: bool = False


@dataclass(frozen=True, slots=True)
class QueueConfig:
    name: str
    strategy: str = "ringall"
    timeout: int = 15
    retry: int = 5
    wrapuptime: int = 0
    weight: int = 0
    maxlen: int = 0
    ringinuse: bool = True
    musicclass: str | None = None
    joinempty: str | None = None
    leavewhenempty: str | None = None
    announce_frequency: int = 0
    servicelevel: int | None = None
    members: tuple[QueueMember, ...] = ()
    settings: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class QueuesImport:
    general: dict[str, str]
    queues: tuple[QueueConfig, ...]
    source: str

    def queue(self, name: str) -> QueueConfig:
        for q in self.queues:
            if q.name == name:
                return q
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (dicts, lists, str, int, bool, None): JSON/YAML-ready."""
        return {
            "source": self.source,
            "general": dict(self.general),
            "queues": [
                {**asdict(q), "members": [asdict(m) for m in q.members]} for q in self.queues
            ],
        }


# --------------------------------------------------------------------------- parsing


class _Config(Config):  # type: ignore[misc]
    """pyst2's Config plus template headers and #include."""

    def __init__(self, filename: str, _depth: int = 0) -> None:
        self.templates: dict[str, tuple[bool, list[str]]] = {}  # name -> (is_template, parents)
        self._depth = _depth
        super().__init__(filename)

    def load(self) -> None:
        try:
            super().load()
        except OSError as exc:
            raise QueueImportError(f"{self.filename}: {exc.strerror}") from exc

    def parse(self) -> None:
        cat: Category | None = None
        for num, raw in enumerate(self.raw_lines, 1):
            line = raw.strip()
            if not line or line[0] == ";":
                self.lines.append(Line(line, num))
                continue
            if line.startswith("#"):
                cat = self._directive(line, num, cat)
                continue
            if line[0] == "[":
                body = Line(line, num).line  # without a trailing ; comment
                head, sep, opts = body.partition("](")
                if sep and body.endswith(")"):
                    cat = Category(name=head[1:])
                    cat.number = num
                    names = [o.strip() for o in opts[:-1].split(",") if o.strip()]
                    self.templates[cat.name] = ("!" in names, [o for o in names if o != "!"])
                else:
                    cat = Category(line, num)
                self.lines.append(cat)
                self.categories.append(cat)
                continue
            item = Item(line, num)
            self.lines.append(item)
            if cat is None:
                raise ParseError(num, "setting outside of any [category]")
            cat.append(item)

    def _directive(self, line: str, num: int, cat: Category | None) -> Category | None:
        word, _, arg = line.partition(" ")
        arg = arg.strip().strip('"')
        if word not in ("#include", "#tryinclude"):
            log.warning("%s:%d: %s is not supported, skipped", self.filename, num, word)
            return cat
        if self._depth > 10:
            raise ParseError(num, "#include nested too deep")
        pattern = arg if os.path.isabs(arg) else os.path.join(os.path.dirname(self.filename), arg)
        files = sorted(glob.glob(pattern))
        if not files and word == "#include":
            raise ParseError(num, f"#include {arg}: no such file")
        for f in files:
            sub = _Config(f, self._depth + 1)
            self.templates.update(sub.templates)
            for c in sub.categories:
                self.categories.append(c)
            if sub.categories:
                cat = sub.categories[-1]  # like Asterisk: later lines continue that category
            elif cat is not None:
                for item in (i for i in sub.lines if isinstance(i, Item)):
                    cat.append(item)
        return cat


def _bool(value: str) -> bool:
    return value.strip().lower() in _TRUE


def _int(value: str, what: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise QueueImportError(f"{what}: {value!r} is not a number") from None


def _member(value: str, queue: str) -> QueueMember:
    parts = [p.strip() for p in value.split(",")]
    if not parts[0]:
        raise QueueImportError(f"[{queue}] member without an interface: {value!r}")
    def part(i: int) -> str | None:
        return parts[i] if len(parts) > i and parts[i] else None
    return QueueMember(
        interface=parts[0],
        penalty=_int(part(1) or "0", f"[{queue}] member penalty"),
        membername=part(2),
        state_interface=part(3),
        ringinuse=_bool(p) if (p := part(4)) is not None else None,
        wrapuptime=_int(p, f"[{queue}] member wrapuptime") if (p := part(5)) is not None else None,
        paused=_bool(part(6) or "no"),
    )


def _items(cfg: _Config, name: str, seen: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """The category's (name, value) items with its templates' items first."""
    if name in seen:
        raise QueueImportError(f"template loop through [{name}]")
    out: list[tuple[str, str]] = []
    _, parents = cfg.templates.get(name, (False, []))
    for parent in parents:
        if not any(c.name == parent for c in cfg.categories):
            raise QueueImportError(f"[{name}] uses unknown template [{parent}]")
        out += _items(cfg, parent, (*seen, name))
    for cat in cfg.categories:
        if cat.name == name:
            out += [(i.name.strip(), i.value.strip()) for i in cat.items]
    return out


def _queue(name: str, items: list[tuple[str, str]]) -> QueueConfig:
    settings: dict[str, str] = {}
    members: list[QueueMember] = []
    for key, value in items:
        k = key.lower()
        if k == "member":
            members.append(_member(value, name))
        else:
            settings[k] = value
    strategy = settings.get("strategy", "ringall").lower()
    strategy = _ALIASES.get(strategy, strategy)
    if strategy not in STRATEGIES:
        raise QueueImportError(f"[{name}] unknown strategy {strategy!r}")

    def num(key: str, default: int) -> int:
        return _int(settings[key], f"[{name}] {key}") if settings.get(key) else default

    return QueueConfig(
        name=name,
        strategy=strategy,
        timeout=num("timeout", 15),
        retry=num("retry", 5),
        wrapuptime=num("wrapuptime", 0),
        weight=num("weight", 0),
        maxlen=num("maxlen", 0),
        ringinuse=_bool(settings.get("ringinuse", "yes")),
        musicclass=settings.get("musicclass") or settings.get("music") or None,
        joinempty=settings.get("joinempty"),
        leavewhenempty=settings.get("leavewhenempty"),
        announce_frequency=num("announce-frequency", 0),
        servicelevel=num("servicelevel", 0) if settings.get("servicelevel") else None,
        members=tuple(members),
        settings=settings,
    )


def import_queues(path: str | os.PathLike[str]) -> QueuesImport:
    """Parse ``queues.conf`` at ``path`` into :class:`QueuesImport`."""
    try:
        cfg = _Config(os.fspath(path))
    except ParseError as exc:
        line, message = (exc.args + (None, None))[:2]
        raise QueueImportError(f"{path}:{line}: {message}") from exc
    general: dict[str, str] = {}
    queues: list[QueueConfig] = []
    done: set[str] = set()
    for cat in cfg.categories:
        name = cat.name
        if name in done:
            continue  # a category repeated later adds to the same queue (handled in _items)
        done.add(name)
        if name == "general":
            general = {k.lower(): v for k, v in _items(cfg, name)}
            continue
        is_template, _ = cfg.templates.get(name, (False, []))
        if is_template:
            continue
        queues.append(_queue(name, _items(cfg, name)))
    return QueuesImport(general=general, queues=tuple(queues), source=str(Path(path)))
