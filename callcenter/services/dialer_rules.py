"""The rules checked before every campaign dial (pure: no I/O, the time is a parameter).

    verdict = check(Attempt(campaign_status="running", now=now, phone="+12025550143", ...), schedule)
    if verdict.ok: dial ...
    elif verdict.final: exclude the record for good (DNC, blacklisted, attempts used up)
    else: try again at verdict.retry_at (outside calling hours, retry delay not over, paused)

    after = next_try("busy", attempts=1, max_attempts=3, retry_s={}, now=now)   # None: give up

Calling hours are the customer's: the record's own time zone if it has one, else the zones of the
phone number's region (libphonenumber); a number whose region spans several zones is called only
when the hours are open in all of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as pn_timezone

# outcomes of an attempt
ANSWERED = "answered"  # a person answered and was connected to an agent
BUSY = "busy"
NO_ANSWER = "no_answer"
MACHINE = "machine"  # an answering machine (AMD)
ABANDONED = "abandoned"  # answered, but no agent was free: the message was played
FAILED = "failed"  # the network refused the call (congestion, invalid number)
SKIPPED = "skipped"  # preview: the agent skipped the record
OUTCOMES = (ANSWERED, BUSY, NO_ANSWER, MACHINE, ABANDONED, FAILED, SKIPPED)

DEFAULT_RETRY_S: dict[str, float] = {
    BUSY: 10 * 60,
    NO_ANSWER: 60 * 60,
    MACHINE: 4 * 60 * 60,
    ABANDONED: 30 * 60,
    FAILED: 2 * 60 * 60,
}


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a campaign may call: local hours (customer's zone), weekdays (0 = Monday) and an
    optional window in UTC."""

    start: time = time(9, 0)
    end: time = time(20, 0)
    days: frozenset[int] = frozenset(range(0, 6))  # Monday to Saturday
    not_before: datetime | None = None
    not_after: datetime | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, object] | None) -> Schedule:
        """`{"hours": ["09:00", "20:00"], "days": [0, 1, 2, 3, 4], "start": iso, "end": iso}`."""
        d = d or {}
        hours = d.get("hours") or ("09:00", "20:00")
        if not isinstance(hours, Sequence) or len(hours) != 2:
            raise ValueError("hours is [start, end], e.g. ['09:00', '20:00']")
        start, end = (time.fromisoformat(str(h)) for h in hours)
        if start >= end:
            raise ValueError("the hours must end after they start")
        days = d.get("days", list(range(0, 6)))
        if not isinstance(days, Sequence) or not all(isinstance(x, int) and 0 <= x <= 6 for x in days):
            raise ValueError("days are weekday numbers 0 (Monday) to 6 (Sunday)")

        def when(key: str) -> datetime | None:
            v = d.get(key)
            if v is None:
                return None
            at = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
            if at.tzinfo is None:
                raise ValueError(f"{key} must say its time zone")
            return at.astimezone(UTC)

        return cls(start, end, frozenset(days), when("start"), when("end"))


@dataclass(frozen=True, slots=True)
class Attempt:
    """What the rules need to know about one record, now."""

    campaign_status: str
    now: datetime
    phone: str | None
    timezone: str | None = None  # the customer's record, if it says
    dnc: str | None = None  # the DNC list's reason for this number, if listed
    blacklisted: bool = False
    attempts: int = 0
    max_attempts: int = 3
    next_at: datetime | None = None  # not before (retry delay)


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reason: str = ""
    final: bool = False  # the record is never to be dialled again
    retry_at: datetime | None = None
    detail: dict[str, object] = field(default_factory=dict)


OK = Verdict(True)


def check(a: Attempt, schedule: Schedule) -> Verdict:
    """Every rule, in order; the first that refuses wins."""
    if a.campaign_status != "running":  # stopped or paused mid-run: no new dial, at once
        return Verdict(False, f"campaign_{a.campaign_status}")
    if a.blacklisted:
        return Verdict(False, "blacklisted", final=True)
    if a.dnc is not None:
        return Verdict(False, "dnc", final=True, detail={"list": a.dnc})
    if not a.phone:
        return Verdict(False, "no_phone", final=True)
    if a.attempts >= a.max_attempts:
        return Verdict(False, "max_attempts", final=True, detail={"attempts": a.attempts})
    if a.next_at is not None and a.now < a.next_at:
        return Verdict(False, "retry_delay", retry_at=a.next_at)
    if schedule.not_after is not None and a.now >= schedule.not_after:
        return Verdict(False, "campaign_ended", final=True)
    if schedule.not_before is not None and a.now < schedule.not_before:
        return Verdict(False, "campaign_not_started", retry_at=schedule.not_before)
    zones = zones_for(a.phone, a.timezone)
    if not zones:
        return Verdict(False, "unknown_timezone", final=True)
    if not all(open_at(a.now, z, schedule) for z in zones):
        return Verdict(
            False, "outside_hours", retry_at=next_open(a.now, zones, schedule), detail={"zones": list(zones)}
        )
    return OK


def next_try(
    outcome: str, *, attempts: int, max_attempts: int, retry_s: Mapping[str, float] | None, now: datetime
) -> datetime | None:
    """When to try a record again after an attempt with `outcome` (attempts counts it), or None
    to give up (attempts used up, or an outcome that is not retried)."""
    if attempts >= max_attempts:
        return None
    delays = {**DEFAULT_RETRY_S, **(retry_s or {})}
    if outcome not in delays:
        return None
    return now + timedelta(seconds=float(delays[outcome]))


# ----------------------------------------------------------------------------- time zones
@lru_cache(maxsize=4096)
def zones_for(phone: str | None, record_tz: str | None = None) -> tuple[str, ...]:
    """The customer's zones: their record's, else their number's region's (possibly several)."""
    if record_tz:
        try:
            ZoneInfo(record_tz)
            return (record_tz,)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    if not phone:
        return ()
    try:
        num = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return ()
    zones = tuple(z for z in pn_timezone.time_zones_for_number(num) if z != pn_timezone.UNKNOWN_TIMEZONE)
    valid = []
    for z in zones:
        try:
            ZoneInfo(z)
            valid.append(z)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return tuple(valid)


def open_at(now: datetime, zone: str, s: Schedule) -> bool:
    local = now.astimezone(ZoneInfo(zone))
    return local.weekday() in s.days and s.start <= local.time() < s.end


def next_open(now: datetime, zones: Sequence[str], s: Schedule) -> datetime | None:
    """The first quarter hour (within 8 days) when the hours are open in every zone."""
    t = now.replace(second=0, microsecond=0)
    t += timedelta(minutes=15 - t.minute % 15)
    for _ in range(8 * 24 * 4):
        if all(open_at(t, z, s) for z in zones):
            return t
        t += timedelta(minutes=15)
    return None
