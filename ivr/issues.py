"""Problems found in a flow, each with the node and the YAML line it is about."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = ["FlowError", "Issue"]


@dataclass(frozen=True, slots=True)
class Issue:
    """``code`` is stable (tests and tools match on it); ``message`` is for people."""

    code: str
    message: str
    line: int = 0
    node: str | None = None
    source: str = "<flow>"
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        what = f"node {self.node!r}: " if self.node else ""
        return f"{where}: {self.severity}: {what}{self.message} [{self.code}]"


class FlowError(Exception):
    """The flow has errors and must not go live. ``issues`` holds all of them (and warnings)."""

    def __init__(self, issues: Iterable[Issue]) -> None:
        self.issues = tuple(issues)
        errors = [i for i in self.issues if i.severity == "error"]
        head = "\n".join(str(i) for i in errors[:20])
        more = f"\n... and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(f"{len(errors)} error(s) in the flow:\n{head}{more}")

    @property
    def errors(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.severity == "error")
