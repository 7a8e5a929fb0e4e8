"""Customer rules (tier, loyalty, ticket SLA), loaded from YAML and applied as pure functions.

The numbers live in `config/crm_rules.yaml`; `Rules.default()` reads it, or the identical
built-in `DEFAULTS` when the file is not shipped (e.g. an installed wheel).
"""
from __future__ import annotations

import calendar
import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from crm_core.enums import Loyalty, TicketType, Tier, values
from crm_core.errors import RulesError
from crm_core.types import as_utc, to_money

DEFAULT_RULES_PATH = Path(__file__).resolve().parent.parent / "config" / "crm_rules.yaml"

DEFAULTS: dict[str, Any] = {
    "tiers": {"vip": "50000.00", "key": "10000.00"},
    "loyalty": {"returning_window_months": 6, "loyal_min_contacts": 5, "lost_after_months": 12},
    "sla_hours": {
        "service_request": {"vip": 4, "key": 8, "regular": 24},
        "complaint": {"vip": 2, "key": 4, "regular": 8},
        "inquiry": {"vip": 8, "key": 24, "regular": 48},
    },
    "note_max_chars": 10000,
    "csat": {"min": 1, "max": 5},
    "disposition_codes": [
        {"code": "resolved", "label": "Resolved"},
        {"code": "follow_up", "label": "Follow-up needed"},
        {"code": "escalated", "label": "Escalated"},
        {"code": "callback", "label": "Callback scheduled"},
        {"code": "sale", "label": "Sale made"},
        {"code": "no_answer", "label": "No answer / voicemail"},
        {"code": "wrong_number", "label": "Wrong number"},
    ],
}


@dataclass(frozen=True)
class LoyaltyRules:
    returning_window_months: int = 6
    loyal_min_contacts: int = 5
    lost_after_months: int = 12


@dataclass(frozen=True)
class Rules:
    # (tier, minimum lifetime value), highest first; below all of them -> regular
    tier_thresholds: tuple[tuple[Tier, Decimal], ...]
    loyalty: LoyaltyRules
    # sla_hours[ticket type][tier] -> hours
    sla_hours: Mapping[TicketType, Mapping[Tier, Decimal]]
    note_max_chars: int = 10000
    csat_min: int = 1
    csat_max: int = 5
    disposition_codes: tuple[tuple[str, str], ...] = field(default=())

    # ------------------------------------------------------------------ loading
    @classmethod
    def default(cls) -> Rules:
        if DEFAULT_RULES_PATH.is_file():
            return cls.from_yaml(DEFAULT_RULES_PATH)
        return cls.from_dict(copy.deepcopy(DEFAULTS))

    @classmethod
    def from_yaml(cls, path: str | Path) -> Rules:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as e:
            raise RulesError(f"{path}: cannot read rules: {e}") from e
        try:
            return cls.from_dict(data or {})
        except RulesError as e:
            raise RulesError(f"{path}: {e}") from e

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Rules:
        """Build rules from a mapping shaped like crm_rules.yaml; missing sections use DEFAULTS."""
        if not isinstance(d, Mapping):
            raise RulesError("rules must be a mapping")
        unknown = set(d) - set(DEFAULTS)
        if unknown:
            raise RulesError(f"unknown rules section(s): {', '.join(sorted(unknown))}")
        merged = {**DEFAULTS, **d}

        tiers_raw = _mapping(merged["tiers"], "tiers")
        thresholds: list[tuple[Tier, Decimal]] = []
        for name, amount in tiers_raw.items():
            tier = _enum(Tier, name, "tiers")
            if tier is Tier.REGULAR:
                raise RulesError("tiers: `regular` is the fallback and takes no threshold")
            try:
                thresholds.append((tier, to_money(amount)))
            except (TypeError, ValueError) as e:
                raise RulesError(f"tiers.{name}: {e}") from e
        thresholds.sort(key=lambda t: t[1], reverse=True)

        loy = _mapping(merged["loyalty"], "loyalty")
        extra = set(loy) - set(LoyaltyRules.__dataclass_fields__)
        if extra:
            raise RulesError(f"loyalty: unknown key(s) {', '.join(sorted(extra))}")
        loyalty = LoyaltyRules(**{k: _positive_int(v, f"loyalty.{k}") for k, v in loy.items()})
        if loyalty.loyal_min_contacts < 2:
            raise RulesError("loyalty.loyal_min_contacts must be at least 2")

        sla_raw = _mapping(merged["sla_hours"], "sla_hours")
        sla: dict[TicketType, dict[Tier, Decimal]] = {}
        for tname, row in sla_raw.items():
            ttype = _enum(TicketType, tname, "sla_hours")
            cells: dict[Tier, Decimal] = {}
            for tier_name, hours in _mapping(row, f"sla_hours.{tname}").items():
                tier = _enum(Tier, tier_name, f"sla_hours.{tname}")
                try:
                    h = Decimal(str(hours))
                except Exception as e:  # noqa: BLE001
                    raise RulesError(f"sla_hours.{tname}.{tier_name}: not a number") from e
                if not h.is_finite() or h <= 0:
                    raise RulesError(f"sla_hours.{tname}.{tier_name}: must be > 0")
                cells[tier] = h
            missing = set(Tier) - set(cells)
            if missing:
                raise RulesError(
                    f"sla_hours.{tname}: missing tier(s) {', '.join(sorted(missing))}"
                )
            sla[ttype] = cells
        missing_types = set(TicketType) - set(sla)
        if missing_types:
            raise RulesError(f"sla_hours: missing ticket type(s) {', '.join(sorted(missing_types))}")

        csat = _mapping(merged["csat"], "csat")
        csat_min = int(csat.get("min", 1))
        csat_max = int(csat.get("max", 5))
        if csat_min >= csat_max:
            raise RulesError("csat: min must be below max")

        codes: list[tuple[str, str]] = []
        for i, item in enumerate(merged["disposition_codes"] or []):
            if not isinstance(item, Mapping) or not item.get("code"):
                raise RulesError(f"disposition_codes[{i}]: needs a code")
            codes.append((str(item["code"]), str(item.get("label") or item["code"])))

        return cls(
            tier_thresholds=tuple(thresholds),
            loyalty=loyalty,
            sla_hours=sla,
            note_max_chars=_positive_int(merged["note_max_chars"], "note_max_chars"),
            csat_min=csat_min,
            csat_max=csat_max,
            disposition_codes=tuple(codes),
        )

    # ------------------------------------------------------------------ the rules
    def tier_for_value(self, lifetime_value: Decimal) -> Tier:
        return tier_for_value(lifetime_value, self)

    def effective_tier(self, lifetime_value: Decimal, override: str | None) -> Tier:
        return effective_tier(lifetime_value, override, self)

    def loyalty_stage(
        self, *, total_contacts: int, recent_contacts: int, last_contact_at: datetime | None,
        now: datetime,
    ) -> Loyalty:
        return loyalty_stage(
            total_contacts=total_contacts, recent_contacts=recent_contacts,
            last_contact_at=last_contact_at, now=now, rules=self,
        )

    def sla_due(self, ticket_type: str, tier: str, created_at: datetime) -> datetime:
        return sla_due(ticket_type, tier, created_at, self)

    def returning_since(self, now: datetime) -> datetime:
        return add_months(now, -self.loyalty.returning_window_months)


# ---------------------------------------------------------------------- pure functions
def tier_for_value(lifetime_value: Decimal, rules: Rules) -> Tier:
    """The tier a lifetime value earns: the highest threshold it reaches, else regular."""
    value = to_money(lifetime_value)
    for tier, minimum in rules.tier_thresholds:
        if value >= minimum:
            return tier
    return Tier.REGULAR


def effective_tier(lifetime_value: Decimal, override: str | None, rules: Rules) -> Tier:
    """A manual override wins until it is cleared; otherwise the tier follows lifetime value."""
    if override is not None:
        return Tier(override)
    return tier_for_value(lifetime_value, rules)


def loyalty_stage(
    *, total_contacts: int, recent_contacts: int, last_contact_at: datetime | None,
    now: datetime, rules: Rules,
) -> Loyalty:
    """Loyalty from activity. `recent_contacts` counts contacts within the returning window."""
    if total_contacts <= 0 or last_contact_at is None:
        return Loyalty.POTENTIAL
    if as_utc(last_contact_at) < add_months(as_utc(now), -rules.loyalty.lost_after_months):
        return Loyalty.LOST
    if total_contacts >= rules.loyalty.loyal_min_contacts:
        return Loyalty.LOYAL
    if recent_contacts >= 2:
        return Loyalty.RETURNING
    return Loyalty.NEW


def sla_due(ticket_type: str, tier: str, created_at: datetime, rules: Rules) -> datetime:
    hours = rules.sla_hours[TicketType(ticket_type)][Tier(tier)]
    return as_utc(created_at) + timedelta(seconds=int(hours * 3600))


def add_months(dt: datetime, months: int) -> datetime:
    """Calendar month arithmetic; the day is clamped to the target month's length."""
    index = dt.year * 12 + (dt.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    day = min(dt.day, calendar.monthrange(year, month)[1])
    return dt.replace(year=year, month=month, day=day)


# ---------------------------------------------------------------------- helpers
def _mapping(v: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(v, Mapping):
        raise RulesError(f"{where}: expected a mapping")
    return v


def _enum(enum: Any, name: Any, where: str) -> Any:
    try:
        return enum(str(name))
    except ValueError:
        raise RulesError(
            f"{where}: unknown {enum.__name__.lower()} {name!r} "
            f"(expected one of: {', '.join(values(enum))})"
        ) from None


def _positive_int(v: Any, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise RulesError(f"{where}: expected a positive integer, got {v!r}")
    return v
