"""Hostile input: digit floods, over-long input, run-time failures, and random input (Hypothesis)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr import (
    Ask,
    CallLookup,
    Digits,
    Engine,
    Finished,
    HungUp,
    Limits,
    LookupFailed,
    LookupResult,
    NoInput,
    Play,
    Played,
    QueueResult,
)
from tests.ivr.helpers import OPEN, demo, flow, run

FALLBACK = QueueResult("fallback", {}, 0, fallback=True)


def test_digit_flood_is_invalid_and_truncated_in_the_path() -> None:
    e = flow("""
        start: {type: menu, prompt: {en: "1?"}, options: {"1": q}, retries: 1, on_invalid: h}
        q: {type: queue, queue: q}
        h: {type: hangup, reason: flood}
        """)
    flood = "1" * 100_000
    state, step, _ = run(e, [Digits(flood), Digits(flood)])
    assert isinstance(step, Finished) and step.result.kind == "hangup"
    assert all(len(p.detail) <= 200 for p in step.path)
    assert len(repr(step.path)) < 5000


def test_over_long_collect_input_is_refused_not_cut() -> None:
    e = flow("""
        start: {type: collect, prompt: {en: "?"}, var: n, min_digits: 4, max_digits: 6, retries: 0,
                next: q, on_invalid: h}
        q: {type: queue, queue: q}
        h: {type: hangup}
        """)
    _, step, _ = run(e, [Digits("1234567")])
    assert isinstance(step, Finished) and step.result.kind == "hangup"


def test_endless_input_hits_the_input_cap() -> None:
    e = flow("""
        start: {type: menu, prompt: {en: "1?"}, options: {"1": p}, on_invalid: start}
        p: {type: play, prompt: {en: "again"}, next: start}
        """)
    state, step = e.start({}, OPEN)
    n = 0
    while not isinstance(step, Finished):
        state, step = e.feed(state, Played() if isinstance(step, Play) else Digits("1"))
        n += 1
        assert n < 1000
    assert step.result == FALLBACK and step.error is not None and "inputs" in step.error
    assert len(step.path) <= Limits().max_path + 3


def test_missing_variable_goes_to_the_default_queue_and_is_recorded() -> None:
    e = flow("""
        start: {type: play, prompt: {en: "Hello {customer.name}."}, next: h}
        h: {type: hangup}
        """)
    _, step = e.start({}, OPEN)
    assert isinstance(step, Finished) and step.result == FALLBACK
    assert step.error is not None and "customer.name" in step.error
    assert [p.event for p in step.path][-2:] == ["error", "finished"]


def test_lookup_failure_without_error_exit_goes_to_the_default_queue() -> None:
    e = flow("""
        start: {type: lookup, function: f, next: h}
        h: {type: hangup}
        """)
    state, step = e.start({}, OPEN)
    assert isinstance(step, CallLookup)
    _, step = e.feed(state, LookupFailed("ConnectionError: db down"))
    assert isinstance(step, Finished) and step.result == FALLBACK
    assert any(p.event == "lookup_failed" and "db down" in p.detail for p in step.path)


def test_bad_comparison_at_run_time_goes_to_the_default_queue() -> None:
    e = flow("""
        start: {type: condition, branches: [{when: {var: amount, gt: 10}, next: h}], else: h}
        h: {type: hangup}
        """)
    _, step = e.start({"amount": "lots"}, OPEN)
    assert isinstance(step, Finished) and step.result == FALLBACK and "compare" in (step.error or "")


def test_an_unknown_entry_and_a_huge_lookup_result() -> None:
    e = demo()
    _, step = e.start({}, OPEN, entry="nope")
    assert isinstance(step, Finished) and step.result == QueueResult("general", {}, 0, fallback=True)
    state, step, _ = run(e, [Digits("1")], variables={"caller_id": "+1415"})
    assert isinstance(step, CallLookup)
    state, step = e.feed(state, LookupResult({f"k{i}": "x" * 10_000 for i in range(10_000)}))
    assert len(state.variables) < 300
    assert all(len(str(v)) <= 1000 for v in state.variables.values())


def test_wrong_input_kinds_are_ignored_not_fatal() -> None:
    e = demo()
    state, step = e.start({"caller_id": "+14155550100"}, OPEN)
    state, step = e.feed(state, LookupResult({}))  # an Ask gets a lookup result
    assert isinstance(step, Ask)
    state, step = e.feed(state, Digits("1"))
    state, step = e.feed(state, Digits("1"))  # a Play gets digits: taken as played
    assert isinstance(step, CallLookup)


def test_the_engine_is_bounded_by_its_limits() -> None:
    e = Engine(demo().flow, Limits(max_inputs=5))
    state, step = e.start({}, OPEN, entry="survey")
    for _ in range(10):
        state, step = e.feed(state, Digits("9"))
    assert isinstance(step, Finished)


INPUTS = st.one_of(
    st.builds(Played), st.builds(NoInput), st.builds(HungUp),
    st.builds(Digits, st.text(alphabet="0123456789*#", max_size=12)),
    st.builds(Digits, st.text(max_size=40)),
    st.builds(LookupResult, st.one_of(st.none(), st.dictionaries(
        st.sampled_from(["tier", "type", "balance", "currency", "name", "language", "x"]),
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=10),
                  st.sampled_from(["vip", "blacklisted", "regular", "zh"])), max_size=5))),
    st.builds(LookupFailed, st.text(max_size=20), st.booleans()),
)
ENGINE = demo()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs=st.lists(INPUTS, max_size=60), minutes=st.integers(0, 60 * 24 * 14),
       entry=st.sampled_from(["main", "survey"]), caller=st.sampled_from(["", "+14155550100", "x" * 50]))
def test_random_inputs_never_crash_and_stay_bounded(inputs: list[object], minutes: int, entry: str,
                                                    caller: str) -> None:
    now = datetime(2026, 12, 20, tzinfo=UTC) + timedelta(minutes=minutes)
    state, step = ENGINE.start({"caller_id": caller}, now, entry=entry)
    for inp in inputs:
        state, step = ENGINE.feed(state, inp)  # type: ignore[arg-type]
        assert isinstance(step, Play | Ask | CallLookup | Finished)
    # whatever happened, a caller who keeps not answering reaches a result in bounded steps
    for _ in range(400):
        if isinstance(step, Finished):
            break
        nxt = Played() if isinstance(step, Play) else LookupFailed("x") if isinstance(step, CallLookup) \
            else NoInput()
        state, step = ENGINE.feed(state, nxt)
    assert isinstance(step, Finished)
    assert step.result.kind in {"queue", "callback", "transfer", "voicemail_or_ticket", "survey", "hangup",
                                "abandoned"}
    assert "14155550100" not in repr([p for p in step.path if p.event == "lookup"])
    assert len(step.path) <= Limits().max_path + 3
