"""Callback retry policy: pure, no I/O. What a failed attempt leads to.

    policy = RetryPolicy(max_attempts=3, delay_s={"busy": 300, "no_answer": 900})
    step = policy.after(attempts=1, outcome=outcome_of("BUSY"), now=now)   # Retry(at=now+300s)

An attempt is one call to the customer. When the agent's own phone does not take the call, the
customer was never dialled: that does not count as an attempt (`counts` is False).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

BUSY, NO_ANSWER, CONGESTION, FAILED, AGENT, CANCELLED = (
    "busy", "no_answer", "congestion", "failed", "agent_unavailable", "cancelled")
OUTCOMES = (BUSY, NO_ANSWER, CONGESTION, FAILED, AGENT, CANCELLED)
DEFAULT_DELAYS: Mapping[str, float] = {BUSY: 300.0, NO_ANSWER: 900.0, CONGESTION: 120.0, FAILED: 300.0,
                                       AGENT: 30.0, CANCELLED: 300.0}

_DIAL_STATUS = {"BUSY": BUSY, "NOANSWER": NO_ANSWER, "CONGESTION": CONGESTION, "CHANUNAVAIL": CONGESTION,
                "CANCEL": CANCELLED}
# OriginateResponse Reason codes (Asterisk's AST_CONTROL_*): the agent's phone did not answer
_ORIGINATE_REASON = {"1": FAILED, "3": AGENT, "5": AGENT, "8": AGENT}


def outcome_of(dial_status: str | None) -> str:
    """The outcome of a call to the customer from Dial's DIALSTATUS (AMI DialEnd)."""
    return _DIAL_STATUS.get((dial_status or "").upper(), FAILED)


def originate_outcome(reason: str | None) -> str:
    """The outcome when the Originate to the agent's phone failed (OriginateResponse Reason)."""
    return _ORIGINATE_REASON.get(reason or "", AGENT)


def counts(outcome: str) -> bool:
    """Whether the outcome used up an attempt (the customer was dialled)."""
    return outcome != AGENT


@dataclass(frozen=True, slots=True)
class Retry:
    at: datetime
    attempt: int  # the number of the next attempt
    delay_s: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    attempts: int
    reason: str


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    delay_s: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_DELAYS))

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        bad = [k for k, v in self.delay_s.items() if k not in OUTCOMES or v < 0]
        if bad:
            raise ValueError(f"unknown outcome or negative delay: {sorted(bad)}")

    def delay(self, outcome: str) -> float:
        return float(self.delay_s.get(outcome, DEFAULT_DELAYS.get(outcome, DEFAULT_DELAYS[FAILED])))

    def after(self, *, attempts: int, outcome: str, now: datetime,
              max_attempts: int | None = None) -> Retry | GiveUp:
        """`attempts`: attempts made so far, including this one when it counts."""
        limit = self.max_attempts if max_attempts is None else max_attempts
        if counts(outcome) and attempts >= limit:
            return GiveUp(attempts, f"{outcome} on the last of {limit} attempts")
        wait = self.delay(outcome)
        return Retry(now + timedelta(seconds=wait), attempts + 1, wait)


def policy_for(queue: str, default: RetryPolicy, per_queue: Mapping[str, RetryPolicy]) -> RetryPolicy:
    return per_queue.get(queue, default)
