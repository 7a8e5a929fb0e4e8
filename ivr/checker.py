"""Graph checks of a parsed flow: dangling exits, unreachable nodes, loops that take no input,
unknown prompts, unknown lookup functions, missing sound files.

A loop that passes through no input-taking node (menu, collect, callback, survey) would spin
without the caller doing anything: it is an error here, and the engine caps automatic steps too.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal

from ivr.issues import Issue
from ivr.loader import RawGraph
from ivr.model import INPUT_TYPES, AudioPart, Flow, LookupNode

__all__ = ["check_graph", "no_input_cycles"]


def no_input_cycles(graph: RawGraph) -> list[list[str]]:
    """Strongly connected components of the non-input nodes that contain a cycle (Tarjan,
    iterative: a flow may be long)."""
    nodes = [n for n, t in graph.types.items() if t not in INPUT_TYPES]
    allowed = set(nodes)
    succ = {n: [t for _, t, _ in graph.exits.get(n, []) if t in allowed] for n in nodes}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack.add(v)
            recurse = False
            for j in range(i, len(succ[v])):
                w = succ[v][j]
                if w not in index:
                    work.append((v, j + 1))
                    work.append((w, 0))
                    recurse = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if recurse:
                continue
            if low[v] == index[v]:
                comp: list[str] = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1 or v in succ[v]:
                    out.append(sorted(comp, key=lambda n: graph.lines.get(n, 0)))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return out


def check_graph(flow: Flow, graph: RawGraph, *, functions: Iterable[str] | None = None,
                audio_exists: Callable[[str], bool] | None = None) -> list[Issue]:
    issues: list[Issue] = []

    def add(code: str, message: str, line: int, node: str | None = None,
            severity: Literal["error", "warning"] = "error") -> None:
        issues.append(Issue(code, message, line, node, flow.source, severity))

    known = set(graph.lines)
    for ename, target, line in graph.entries:
        if target not in known:
            add("dangling-exit", f"entry {ename!r} leads to {target!r}, which is not a node", line)
    for nid, exits in graph.exits.items():
        for exit_name, target, line in exits:
            if target not in known:
                add("dangling-exit", f"exit {exit_name!r} leads to {target!r}, which is not a node",
                    line, nid)

    # reachability from every entry
    seen: set[str] = set()
    todo = [t for _, t, _ in graph.entries if t in known]
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        todo.extend(t for _, t, _ in graph.exits.get(n, []) if t in known and t not in seen)
    if graph.entries:
        for nid in known - seen:
            add("unreachable", "unreachable: no entry leads here", graph.lines[nid], nid)

    for comp in no_input_cycles(graph):
        add("no-input-loop", "loop with no input: " + " -> ".join([*comp, comp[0]])
            + " (put a menu or collect in the loop)", graph.lines.get(comp[0], 0), comp[0])

    for nid, pid, line in graph.prompt_refs:
        if pid not in flow.prompts:
            add("unknown-prompt", f"prompt {pid!r} is not defined under 'prompts'", line, nid)
    used = {pid for _, pid, _ in graph.prompt_refs}
    for pid, pdef in flow.prompts.items():
        if pid not in used:
            add("unused-prompt", f"prompt {pid!r} is never used", pdef.line, None, "warning")

    fn_names = set(functions) if functions is not None else None
    for nid, node in flow.nodes.items():
        if isinstance(node, LookupNode):
            if fn_names is not None and node.function and node.function not in fn_names:
                add("unknown-function", f"lookup function {node.function!r} is not provided "
                                        f"(known: {', '.join(sorted(fn_names)) or 'none'})", node.line, nid)
            if node.on_error is None:
                add("no-error-exit", "no 'on_error': if the lookup fails the call goes to the default "
                                     f"queue {flow.default_queue!r}", node.line, nid, "warning")

    if audio_exists is not None:
        missing: set[str] = set()
        for pid, pdef in flow.prompts.items():
            for lang, pl in pdef.langs.items():
                for part in pl.audio:
                    if not isinstance(part, AudioPart) or part.file in missing:
                        continue
                    if not audio_exists(part.file):
                        missing.add(part.file)
                        add("missing-audio", f"prompt {pid!r} [{lang}]: no sound file {part.file!r}",
                            pdef.line)
    return issues
