"""Shared helpers for the IVR tests: build flows from YAML snippets and drive the engine."""
from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from ivr import Engine, Finished, Input, Limits, Played, Step, load_flow
from ivr.engine import FlowState, Play

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "ivr" / "demo.yaml"
FLOWS = Path(__file__).resolve().parent / "flows"
# Wednesday 2026-11-25 15:00 UTC = 10:00 in New York: the demo is open
OPEN = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
NIGHT = datetime(2026, 11, 26, 4, 0, tzinfo=UTC)  # 23:00 in New York


def flow(nodes: str, *, head: str = "", languages: str = "[en]", entry: str = "start",
         prompts: str = "") -> Engine:
    """An engine for a small flow: ``nodes`` is the YAML of the nodes mapping."""
    text = (f"flow: t\nlanguages: {languages}\ndefault_queue: fallback\nentries: {{main: {entry}}}\n"
            + head + "prompts:\n" + textwrap.indent(textwrap.dedent(prompts) or "{}\n", "  ")
            + "nodes:\n" + textwrap.indent(textwrap.dedent(nodes), "  "))
    return Engine(load_flow(text, "t.yaml"))


def demo(limits: Limits | None = None) -> Engine:
    return Engine(load_flow(DEMO.read_text(encoding="utf-8"), str(DEMO)), limits)


def run(engine: Engine, inputs: Iterable[Input], *, variables: Mapping[str, object] | None = None,
        now: datetime = OPEN, entry: str = "main", auto_play: bool = True,
        language: str | None = None) -> tuple[FlowState, Step, list[Step]]:
    """Start, then feed ``inputs`` one per non-Play step (Plays are acknowledged automatically
    when ``auto_play``). Returns (state, last step, every step seen)."""
    state, step = engine.start(variables or {}, now, entry=entry, language=language)  # type: ignore[arg-type]
    seen = [step]
    it = iter(inputs)
    while not isinstance(step, Finished):
        if auto_play and isinstance(step, Play):
            state, step = engine.feed(state, Played())
        else:
            try:
                inp = next(it)
            except StopIteration:
                break
            state, step = engine.feed(state, inp)
        seen.append(step)
    return state, step, seen


def events(state_or_done: FlowState | Finished) -> list[tuple[str, str]]:
    return [(e.node, e.event) for e in state_or_done.path]
