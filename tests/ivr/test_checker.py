"""The checker: each kind of error, with its node and YAML line (fixtures in tests/ivr/flows/)."""
from __future__ import annotations

import pytest

from ivr import FlowError, check_text, load_flow
from ivr.checker import no_input_cycles
from ivr.loader import parse_flow
from tests.ivr.helpers import DEMO, FLOWS


def issues_of(name: str) -> set[tuple[str, str | None, int]]:
    _, issues = check_text((FLOWS / name).read_text(encoding="utf-8"), name)
    return {(i.code, i.node, i.line) for i in issues if i.severity == "error"}


@pytest.mark.parametrize("fixture, expected", [
    ("unknown_type.yaml", {("unknown-type", "start", 7)}),
    ("unknown_key.yaml", {("unknown-key", "start", 10), ("unknown-key", None, 12)}),
    ("dangling_exit.yaml", {("dangling-exit", "start", 10)}),
    ("unreachable.yaml", {("unreachable", "orphan", 8)}),
    ("no_input_loop.yaml", {("no-input-loop", "start", 6)}),
    ("missing_prompt.yaml", {("missing-prompt", None, 7), ("unknown-prompt", "menu", 14)}),
    ("duplicate_key.yaml", {("yaml", None, 8)}),
    ("yaml_syntax.yaml", {("yaml", None, 4)}),
    ("bad_values.yaml", {
        ("bad-timezone", "start", 8), ("bad-hours", "start", 9), ("bad-holidays", "start", 10),
        ("bad-value", "ask", 16), ("bad-value", "ask", 17), ("bad-pattern", "ask", 19),
        ("bad-value", "ask", 20), ("bad-condition", "cond", 26)}),
])
def test_each_kind_of_error_names_node_and_line(fixture: str,
                                                expected: set[tuple[str, str | None, int]]) -> None:
    assert issues_of(fixture) == expected


def test_a_flow_with_errors_never_loads() -> None:
    for path in sorted(FLOWS.glob("*.yaml")):
        with pytest.raises(FlowError) as ei:
            load_flow(path.read_text(encoding="utf-8"), path.name)
        assert ei.value.errors and path.name in str(ei.value)


def test_demo_flow_is_clean() -> None:
    flow, issues = check_text(DEMO.read_text(encoding="utf-8"), "demo.yaml",
                              functions=["identify_caller", "account_balance"],
                              audio_exists=lambda f: (DEMO.parent / "prompts" / f"{f}.gsm").exists())
    assert flow is not None and issues == []
    assert set(flow.languages) == {"en", "zh"} and set(flow.entries) == {"main", "survey"}


def test_unknown_function_and_missing_audio() -> None:
    text = DEMO.read_text(encoding="utf-8")
    _, issues = check_text(text, "demo.yaml", functions=["identify_caller"],
                           audio_exists=lambda f: not f.endswith("/welcome"))
    codes = {(i.code, i.node) for i in issues}
    assert ("unknown-function", "balance_lookup") in codes
    assert sum(1 for i in issues if i.code == "missing-audio") == 2  # en and zh


def test_warnings_do_not_block() -> None:
    text = """
flow: w
default_queue: general
entries: {main: start}
prompts:
  unused: {en: "Never played."}
nodes:
  start: {type: lookup, function: f, next: done}
  done: {type: hangup}
"""
    flow, issues = check_text(text)
    assert flow is not None
    assert {(i.code, i.severity) for i in issues} == {("unused-prompt", "warning"),
                                                      ("no-error-exit", "warning")}


@pytest.mark.parametrize("text, code", [
    ("", "empty"),
    ("- a list\n", "bad-flow"),
    ("flow: x\nnodes: {a: {type: hangup}}\n", "missing-key"),  # no default_queue, no entries
    ("flow: x\ndefault_queue: q\nentries: {main: a}\nnodes: {a: {type: set_language, language: fr, next: b},"
     " b: {type: hangup}}\n", "unknown-language"),
    ("flow: x\ndefault_queue: q\nentries: {main: a}\nnodes: {a: {type: menu, prompt: {en: x}, "
     "options: {\"12a\": b}, on_invalid: b}, b: {type: hangup}}\n", "bad-option"),
    ("flow: x\ndefault_queue: q\nentries: {main: a}\nnodes: {a: {type: play, next: b}, b: {type: hangup}}\n",
     "missing-key"),
    ("flow: x\ndefault_queue: q\nentries: {main: a}\nnodes: {a: {prompt: p}}\n", "missing-type"),
    ("flow: x\ndefault_queue: q\nentries: {main: a}\nnodes: {a: {type: queue, queue: q, skills: {s: 11}}}\n",
     "bad-value"),
    ("flow: x\ndefault_queue: q\nentries: {main: a}\nnodes: {a: {type: hangup, prompt: {en: \"{x.}\"}}}\n",
     "bad-template"),
    ("x: " + "[" * 5000 + "]" * 5000, "yaml"),
    ("flow: x\n" + "#" * 1_000_001, "too-large"),
    ("a: &a [1]\nb: !!python/object:os.system [1]\n", "yaml"),
])
def test_other_errors(text: str, code: str) -> None:
    flow, issues = check_text(text)
    assert flow is None
    assert code in {i.code for i in issues}, issues


def test_yaml_subset_keeps_times_and_norway_as_strings() -> None:
    text = """
flow: x
languages: ["no", en]
default_queue: q
entries: {main: a}
nodes:
  a:
    type: business_hours
    timezone: Europe/Oslo
    weekly: {mon: 9:00-17:00, tue: ["08:00-12:00"]}
    on_open: b
    on_closed: b
  b: {type: hangup, prompt: {"no": "Ha det.", en: "Bye."}}
"""
    flow, issues = check_text(text)
    assert flow is not None, issues
    assert flow.languages == ("no", "en")


def test_loop_through_input_is_fine_and_tarjan_finds_self_loops() -> None:
    text = """
flow: x
default_queue: q
entries: {main: m}
nodes:
  m: {type: menu, prompt: {en: "1 again"}, options: {"1": p}, on_invalid: c}
  p: {type: play, prompt: {en: "again"}, next: m}
  c: {type: condition, branches: [{when: {var: x, eq: 1}, next: c}], else: h}
  h: {type: hangup}
"""
    _, issues, graph = parse_flow(text)
    assert no_input_cycles(graph) == [["c"]]
    _, issues2 = check_text(text)
    assert [(i.code, i.node) for i in issues2 if i.severity == "error"] == [("no-input-loop", "c")]
