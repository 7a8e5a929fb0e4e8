"""The callback retry policy (pure): outcomes from the PBX's statuses, retry or give up."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.services.callback_policy import (
    AGENT,
    BUSY,
    CONGESTION,
    FAILED,
    NO_ANSWER,
    OUTCOMES,
    GiveUp,
    Retry,
    RetryPolicy,
    counts,
    originate_outcome,
    outcome_of,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_outcomes_from_dial_statuses():
    assert outcome_of("BUSY") == BUSY
    assert outcome_of("NOANSWER") == NO_ANSWER
    assert outcome_of("congestion") == CONGESTION
    assert outcome_of("CHANUNAVAIL") == CONGESTION
    assert outcome_of("") == FAILED and outcome_of(None) == FAILED and outcome_of("WEIRD") == FAILED


def test_the_agents_phone_failing_is_not_an_attempt():
    assert originate_outcome("3") == AGENT and originate_outcome("5") == AGENT
    assert originate_outcome("1") == FAILED  # no such extension: a real failure
    assert not counts(AGENT) and counts(BUSY) and counts(NO_ANSWER)


def test_retry_delay_depends_on_the_outcome():
    p = RetryPolicy(max_attempts=3, delay_s={BUSY: 60, NO_ANSWER: 600})
    assert p.after(attempts=1, outcome=BUSY, now=NOW) == Retry(NOW + timedelta(seconds=60), 2, 60.0)
    assert p.after(attempts=2, outcome=NO_ANSWER, now=NOW) == Retry(NOW + timedelta(seconds=600), 3, 600.0)
    # an outcome without its own delay takes the default for it
    assert isinstance(p.after(attempts=1, outcome=CONGESTION, now=NOW), Retry)


def test_gives_up_after_the_last_attempt():
    p = RetryPolicy(max_attempts=2)
    step = p.after(attempts=2, outcome=BUSY, now=NOW)
    assert isinstance(step, GiveUp) and step.attempts == 2 and "busy" in step.reason
    # a per-callback limit wins over the policy's
    assert isinstance(p.after(attempts=2, outcome=BUSY, now=NOW, max_attempts=3), Retry)
    # the agent's phone failing never uses up the last attempt
    assert isinstance(p.after(attempts=2, outcome=AGENT, now=NOW), Retry)


def test_bad_policies_are_refused():
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(delay_s={"busy": -1})
    with pytest.raises(ValueError):
        RetryPolicy(delay_s={"on_fire": 10})


@given(st.integers(1, 10), st.lists(st.sampled_from(OUTCOMES), min_size=1, max_size=40))
def test_never_more_attempts_than_allowed(limit, outcomes):
    p = RetryPolicy(max_attempts=limit)
    attempts, now = 0, NOW
    for outcome in outcomes:
        attempts += 1 if counts(outcome) else 0
        step = p.after(attempts=attempts, outcome=outcome, now=now)
        if isinstance(step, GiveUp):
            assert attempts == limit
            return
        assert attempts < limit and step.at >= now
        now = step.at
    assert attempts < limit or not counts(outcomes[-1])


def test_policies_from_settings_per_queue():
    from callcenter.services.callbacks import retry_policies
    from callcenter.settings import SettingsError, load_settings

    s = load_settings(env={"CC_CALLBACKS__MAX_ATTEMPTS": "4", "CC_CALLBACKS__RETRY_S__BUSY": "90",
                           "CC_CALLBACKS__QUEUES__VIP__MAX_ATTEMPTS": "6",
                           "CC_CALLBACKS__QUEUES__VIP__RETRY_S__NO_ANSWER": "60"})
    default, per_queue = retry_policies(s.callbacks)
    assert default.max_attempts == 4 and default.delay(BUSY) == 90 and default.delay(NO_ANSWER) == 900
    vip = per_queue["vip"]
    assert vip.max_attempts == 6 and vip.delay(NO_ANSWER) == 60 and vip.delay(BUSY) == 90
    with pytest.raises(SettingsError, match="on_fire"):
        load_settings(env={"CC_CALLBACKS__RETRY_S__ON_FIRE": "1"})
