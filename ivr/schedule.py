"""Business hours: a weekly schedule in a time zone, plus holidays. Time is always an argument.

Holidays come from dates listed in the flow and, optionally, from the ``holidays`` package
(``country``/``subdiv``); the package is imported only when a flow names a country.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, time
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ivr.model import HolidaySpec, WeeklySchedule

__all__ = [
    "DAYS",
    "holiday_name",
    "is_open",
    "parse_weekly",
    "status_at",
    "supported_countries",
    "zone",
]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def _day_keys(key: str) -> list[int] | None:
    """``mon``, ``mon-fri``, ``sat,sun``, ``daily`` -> weekday numbers (None if not a day key)."""
    key = key.strip().lower()
    if key in ("daily", "all", "every day"):
        return list(range(7))
    out: list[int] = []
    for part in key.split(","):
        part = part.strip()
        if "-" in part:
            a, _, b = part.partition("-")
            if a.strip() not in DAYS or b.strip() not in DAYS:
                return None
            i, j = DAYS.index(a.strip()), DAYS.index(b.strip())
            out.extend(range(i, j + 1) if i <= j else [*range(i, 7), *range(0, j + 1)])
        elif part in DAYS:
            out.append(DAYS.index(part))
        else:
            return None
    return out


def _intervals(value: Any) -> tuple[list[tuple[time, time | None, bool]], str | None]:
    """Parse ``closed``, ``open``/``24h``, ``"09:00-17:00"`` or a list of ranges.

    Returns (intervals, error). An interval's flag is True when it crosses midnight (its end
    belongs to the next day)."""
    items = value if isinstance(value, list) else [value]
    out: list[tuple[time, time | None, bool]] = []
    for item in items:
        if isinstance(item, str) and item.strip().lower() == "closed":
            continue
        if isinstance(item, str) and item.strip().lower() in ("open", "24h", "00:00-24:00"):
            out.append((time(0), None, False))
            continue
        m = _RANGE.match(item) if isinstance(item, str) else None
        if m is None:
            return [], f"{item!r} is not a time range like \"09:00-17:30\", \"closed\" or \"24h\""
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
            return [], f"{item!r}: hour or minute out of range"
        start = time(h1, m1)
        end = None if h2 == 24 else time(h2, m2)
        if end is not None and end == start:
            return [], f"{item!r}: an empty range"
        out.append((start, end, end is not None and end < start))
    return out, None


def parse_weekly(raw: Mapping[str, Any]) -> tuple[WeeklySchedule | None, list[tuple[str, str]]]:
    """Parse the ``weekly`` mapping. Returns (schedule, [(key, error message)])."""
    days: list[list[tuple[time, time | None]]] = [[] for _ in range(7)]
    seen: dict[int, str] = {}
    errors: list[tuple[str, str]] = []
    for key, value in raw.items():
        wd = _day_keys(str(key))
        if wd is None:
            errors.append((str(key), f"unknown day {key!r} (use mon..sun, ranges like mon-fri, "
                                     "lists like sat,sun, or daily)"))
            continue
        ivs, err = _intervals(value)
        if err is not None:
            errors.append((str(key), err))
            continue
        for d in wd:
            if d in seen:
                errors.append((str(key), f"{DAYS[d]} is already set by {seen[d]!r}"))
                continue
            seen[d] = str(key)
            for start, end, crosses in ivs:
                if crosses:
                    assert end is not None
                    days[d].append((start, None))
                    days[(d + 1) % 7].append((time(0), end))
                else:
                    days[d].append((start, end))
    if errors:
        return None, errors
    return WeeklySchedule(tuple(tuple(sorted(d)) for d in days)), []


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return None


def supported_countries() -> Mapping[str, Any] | None:
    """The ``holidays`` package's countries (code -> subdivisions), or None if not installed."""
    try:
        import holidays
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    result: Mapping[str, Any] = holidays.list_supported_countries()
    return result


@lru_cache(maxsize=128)
def _country_holidays(country: str, subdiv: str | None, year: int) -> Mapping[date, str]:
    try:
        import holidays
    except ImportError:  # pragma: no cover - depends on the environment
        return {}
    return dict(holidays.country_holidays(country, subdiv=subdiv, years=year))


def holiday_name(spec: HolidaySpec, day: date) -> str | None:
    """The holiday on ``day`` (a local date), or None."""
    if day in spec.dates:
        return "listed"
    if spec.country:
        return _country_holidays(spec.country, spec.subdiv, day.year).get(day)
    return None


def is_open(weekly: WeeklySchedule, local: datetime) -> bool:
    t = local.time().replace(tzinfo=None)
    return any(start <= t and (end is None or t < end) for start, end in weekly.days[local.weekday()])


def status_at(tz: str, weekly: WeeklySchedule, hol: HolidaySpec,
              now: datetime) -> Literal["open", "closed", "holiday"]:
    """``now`` must be timezone-aware (UTC is the convention); a naive one is taken as UTC."""
    zi = zone(tz)
    if zi is None:
        raise ValueError(f"unknown time zone {tz!r}")
    if now.tzinfo is None:
        now = now.replace(tzinfo=ZoneInfo("UTC"))
    local = now.astimezone(zi)
    if holiday_name(hol, local.date()) is not None:
        return "holiday"
    return "open" if is_open(weekly, local) else "closed"
