"""The rules as pure functions (no database): tier, loyalty, SLA, loading and validation."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from crm_core.enums import Loyalty, Tier
from crm_core.errors import RulesError
from crm_core.rules import (
    DEFAULT_RULES_PATH,
    DEFAULTS,
    Rules,
    add_months,
    effective_tier,
    loyalty_stage,
    sla_due,
    tier_for_value,
)

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
R = Rules.default()


def test_shipped_yaml_equals_the_built_in_defaults():
    assert DEFAULT_RULES_PATH.name == "crm_rules.yaml" and DEFAULT_RULES_PATH.is_file()
    assert yaml.safe_load(DEFAULT_RULES_PATH.read_text()) == DEFAULTS
    assert Rules.from_dict(DEFAULTS) == Rules.from_yaml(DEFAULT_RULES_PATH) == R


@pytest.mark.parametrize("ltv, tier", [
    ("0", Tier.REGULAR), ("9999.99", Tier.REGULAR), ("10000", Tier.KEY), ("10000.00", Tier.KEY),
    ("49999.99", Tier.KEY), ("50000", Tier.VIP), ("1000000", Tier.VIP),
])
def test_tier_from_lifetime_value_thresholds(ltv, tier):
    assert tier_for_value(Decimal(ltv), R) is tier


def test_manual_override_wins_until_cleared():
    assert effective_tier(Decimal("1"), "vip", R) is Tier.VIP
    assert effective_tier(Decimal("99999"), "regular", R) is Tier.REGULAR
    assert effective_tier(Decimal("99999"), None, R) is Tier.VIP


def test_tier_thresholds_come_from_the_rules():
    r = Rules.from_dict({"tiers": {"vip": "100", "key": "10"}})
    assert tier_for_value(Decimal("10"), r) is Tier.KEY
    assert tier_for_value(Decimal("100"), r) is Tier.VIP
    assert tier_for_value(Decimal("9.99"), r) is Tier.REGULAR


def _loyalty(total, recent, last_days_ago, rules=R):
    last = None if last_days_ago is None else NOW - timedelta(days=last_days_ago)
    return loyalty_stage(total_contacts=total, recent_contacts=recent, last_contact_at=last,
                         now=NOW, rules=rules)


@pytest.mark.parametrize("total, recent, last_days_ago, stage", [
    (0, 0, None, Loyalty.POTENTIAL),      # never in contact
    (1, 1, 1, Loyalty.NEW),               # first contact
    (2, 2, 3, Loyalty.RETURNING),         # repeat contacts within 6 months
    (2, 1, 10, Loyalty.NEW),              # contacts too far apart to count as returning
    (4, 4, 1, Loyalty.RETURNING),
    (5, 0, 200, Loyalty.LOYAL),           # 5 contacts or more
    (50, 50, 1, Loyalty.LOYAL),
    (50, 0, 400, Loyalty.LOST),           # silent for more than 12 months beats loyal
    (1, 0, 366, Loyalty.LOST),
])
def test_loyalty_stages(total, recent, last_days_ago, stage):
    assert _loyalty(total, recent, last_days_ago) is stage


def test_lost_boundary_is_calendar_months():
    twelve_months_ago = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
    kw = dict(total_contacts=1, recent_contacts=0, now=NOW, rules=R)
    assert loyalty_stage(last_contact_at=twelve_months_ago, **kw) is Loyalty.NEW
    assert loyalty_stage(last_contact_at=twelve_months_ago - timedelta(seconds=1), **kw) \
        is Loyalty.LOST


def test_loyalty_thresholds_come_from_the_rules():
    r = Rules.from_dict({"loyalty": {"returning_window_months": 1, "loyal_min_contacts": 3,
                                     "lost_after_months": 2}})
    assert _loyalty(3, 0, 10, r) is Loyalty.LOYAL
    assert _loyalty(2, 2, 10, r) is Loyalty.RETURNING
    assert _loyalty(2, 2, 70, r) is Loyalty.LOST
    assert r.returning_since(NOW) == datetime(2026, 5, 15, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("ttype, tier, hours", [
    ("service_request", "vip", 4), ("service_request", "key", 8),
    ("service_request", "regular", 24), ("complaint", "vip", 2), ("complaint", "key", 4),
    ("complaint", "regular", 8), ("inquiry", "vip", 8), ("inquiry", "key", 24),
    ("inquiry", "regular", 48),
])
def test_sla_matrix(ttype, tier, hours):
    assert sla_due(ttype, tier, NOW, R) == NOW + timedelta(hours=hours)


def test_sla_fractional_hours_and_utc():
    r = Rules.from_dict({"sla_hours": {t: {"vip": 0.5, "key": 1, "regular": 2}
                                       for t in ("service_request", "complaint", "inquiry")}})
    local = datetime(2026, 1, 1, 10, 0, tzinfo=UTC).astimezone()
    due = r.sla_due("complaint", "vip", local)
    assert due == datetime(2026, 1, 1, 10, 30, tzinfo=UTC) and due.tzinfo is UTC


def test_add_months_clamps_the_day():
    assert add_months(datetime(2026, 3, 31, tzinfo=UTC), -1) == datetime(2026, 2, 28, tzinfo=UTC)
    assert add_months(datetime(2026, 1, 15, tzinfo=UTC), -13) == datetime(2024, 12, 15, tzinfo=UTC)
    assert add_months(datetime(2024, 2, 29, tzinfo=UTC), 12) == datetime(2025, 2, 28, tzinfo=UTC)


@pytest.mark.parametrize("bad, message", [
    ({"tiers": {"gold": "1"}}, "unknown tier 'gold'"),
    ({"tiers": {"regular": "1"}}, "fallback"),
    ({"tiers": {"vip": "lots"}}, "tiers.vip"),
    ({"loyalty": {"loyal_min_contacts": 0}}, "positive integer"),
    ({"loyalty": {"bogus": 1}}, "unknown key"),
    ({"sla_hours": {"complaint": {"vip": 1, "key": 1}}}, "missing tier"),
    ({"sla_hours": {"complaint": {"vip": -1, "key": 1, "regular": 1}}}, "must be > 0"),
    ({"csat": {"min": 5, "max": 1}}, "csat"),
    ({"colour": "red"}, "unknown rules section"),
])
def test_bad_rules_are_refused_with_a_clear_message(bad, message):
    with pytest.raises(RulesError, match=message):
        Rules.from_dict(bad)


def test_from_yaml_names_the_file(tmp_path: Path):
    p = tmp_path / "rules.yaml"
    p.write_text("tiers: [unclosed\n")
    with pytest.raises(RulesError, match="rules.yaml"):
        Rules.from_yaml(p)
    p.write_text("note_max_chars: 50\n")
    assert Rules.from_yaml(p).note_max_chars == 50
