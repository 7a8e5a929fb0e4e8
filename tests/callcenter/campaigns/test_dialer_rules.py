"""The rules checked before every campaign dial (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from callcenter.services.dialer_rules import (
    Attempt,
    Schedule,
    check,
    next_try,
    zones_for,
)

NY = "+12025550143"  # Washington DC: America/New_York
LA = "+14155550100"  # San Francisco: America/Los_Angeles
PARIS = "+33142685300"
WED_17_UTC = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)  # 12:00 in New York, 09:00 in LA, 18:00 in Paris
S = Schedule.from_dict({"hours": ["09:00", "20:00"], "days": [0, 1, 2, 3, 4]})


def attempt(**kw) -> Attempt:
    base = {"campaign_status": "running", "now": WED_17_UTC, "phone": NY}
    return Attempt(**{**base, **kw})


def test_a_clean_record_is_dialled():
    assert check(attempt(), S).ok


def test_calling_hours_are_the_customers_from_the_number():
    assert zones_for(NY) == ("America/New_York",)
    early = datetime(2026, 11, 25, 13, 30, tzinfo=UTC)  # 08:30 in New York, 14:30 in Paris
    v = check(attempt(now=early), S)
    assert not v.ok and v.reason == "outside_hours" and not v.final
    assert v.retry_at == datetime(2026, 11, 25, 14, 0, tzinfo=UTC)  # 09:00 in New York
    assert check(attempt(now=early, phone=PARIS), S).ok
    late = datetime(2026, 11, 25, 19, 30, tzinfo=UTC)  # 20:30 in Paris, 14:30 in New York
    assert check(attempt(now=late, phone=PARIS), S).reason == "outside_hours"
    assert check(attempt(now=late), S).ok


def test_the_customers_record_time_zone_wins_over_the_number():
    early = datetime(2026, 11, 25, 13, 30, tzinfo=UTC)
    assert check(attempt(now=early, timezone="Europe/Paris"), S).ok
    assert check(attempt(now=WED_17_UTC, timezone="Asia/Tokyo"), S).reason == "outside_hours"  # 02:00


def test_weekdays_of_the_schedule_in_the_customers_zone():
    saturday = datetime(2026, 11, 28, 17, 0, tzinfo=UTC)
    v = check(attempt(now=saturday), S)
    assert v.reason == "outside_hours"
    assert v.retry_at == datetime(2026, 11, 30, 14, 0, tzinfo=UTC)  # Monday 09:00 New York


def test_dnc_list_excludes_for_good():
    v = check(attempt(dnc="dnc"), S)
    assert not v.ok and v.reason == "dnc" and v.final


def test_blacklisted_never_called_even_inside_hours_and_before_anything_else():
    v = check(attempt(blacklisted=True, attempts=0), S)
    assert not v.ok and v.reason == "blacklisted" and v.final


def test_maximum_attempts():
    assert check(attempt(attempts=2, max_attempts=3), S).ok
    v = check(attempt(attempts=3, max_attempts=3), S)
    assert v.reason == "max_attempts" and v.final


def test_retry_delay_by_outcome():
    now = WED_17_UTC
    retry = {"busy": 120, "no_answer": 3600, "machine": 7200}
    assert next_try("busy", attempts=1, max_attempts=3, retry_s=retry, now=now) == now + timedelta(
        seconds=120
    )
    assert next_try("no_answer", attempts=1, max_attempts=3, retry_s=retry, now=now) == now + timedelta(
        hours=1
    )
    assert next_try("machine", attempts=2, max_attempts=3, retry_s=retry, now=now) == now + timedelta(hours=2)
    assert next_try("busy", attempts=3, max_attempts=3, retry_s=retry, now=now) is None  # used up
    assert next_try("answered", attempts=1, max_attempts=3, retry_s=retry, now=now) is None  # not retried
    # the rule holds the record until the delay is over
    v = check(attempt(attempts=1, next_at=now + timedelta(seconds=120)), S)
    assert v.reason == "retry_delay" and v.retry_at == now + timedelta(seconds=120)
    assert check(
        attempt(attempts=1, now=now + timedelta(seconds=120), next_at=now + timedelta(seconds=120)), S
    ).ok


def test_a_stopped_or_paused_campaign_dials_nothing():
    assert check(attempt(campaign_status="stopped"), S).reason == "campaign_stopped"
    assert check(attempt(campaign_status="paused"), S).reason == "campaign_paused"


def test_schedule_window_and_bad_input():
    s = Schedule.from_dict({"start": "2026-11-26T00:00:00Z", "end": "2026-11-27T00:00:00Z"})
    assert check(attempt(), s).reason == "campaign_not_started"
    assert check(attempt(now=datetime(2026, 11, 27, 17, 0, tzinfo=UTC)), s).final
    for bad in ({"hours": ["20:00", "09:00"]}, {"days": [7]}, {"start": "2026-11-26T00:00:00"}):
        try:
            Schedule.from_dict(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad} accepted")
    assert check(attempt(phone="not a number"), S).reason == "unknown_timezone"
