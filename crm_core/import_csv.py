"""CSV import of customers: every row validated, a report of rejected rows with their reasons, and
never half a file: the valid rows go in as one transaction (`valid_rows`), or, when any row is
rejected, nothing does (`all_or_nothing`).

    report = await import_customers(store, csv_text, mode="all_or_nothing", actor="ada")

Columns (header row, any order; only `name` is required): name, phones, emails (several separated
by `;`), tier (vip/key/regular: a manual tier), type, lifetime_value, language, tags (`;`), notes.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select, tuple_

from crm_core.enums import CustomerType, Tier
from crm_core.errors import CrmError, ValidationError
from crm_core.models import ContactPoint, Customer
from crm_core.normalize import (
    check_text,
    clean_language,
    clean_name,
    clean_tags,
    enum_value,
    name_key,
    normalize_email,
    normalize_phone,
)
from crm_core.types import utcnow

Mode = Literal["valid_rows", "all_or_nothing"]
COLUMNS = ("name", "phones", "emails", "tier", "type", "lifetime_value", "language", "tags", "notes")
MAX_ROWS = 100_000
MAX_BYTES = 20 * 1024 * 1024


@dataclass
class Rejected:
    line: int  # the file's line number (the header is line 1)
    reasons: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "reasons": self.reasons}


@dataclass
class ImportReport:
    mode: str
    rows: int
    imported: int
    rejected: list[Rejected] = field(default_factory=list)
    customer_ids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "rows": self.rows, "imported": self.imported,
                "rejected": [r.to_dict() for r in self.rejected], "customer_ids": self.customer_ids}


@dataclass
class _Row:
    line: int
    values: dict[str, Any]
    contacts: list[tuple[str, str]]


def _split(raw: str | None) -> list[str]:
    return [p.strip() for p in (raw or "").split(";") if p.strip()]


def parse(text: str, region: str, rules: Any) -> tuple[list[_Row], list[Rejected], int]:
    """Pure: the valid rows, the rejected ones with reasons, and the number of data rows."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise ValidationError(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB", field="file")
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if "name" not in header:
        raise ValidationError("the header row must name a 'name' column", field="file")
    unknown = sorted(set(header) - set(COLUMNS))
    if unknown:
        raise ValidationError(f"unknown columns: {', '.join(unknown)}", field="file")
    reader.fieldnames = header
    valid: list[_Row] = []
    rejected: list[Rejected] = []
    seen: dict[tuple[str, str], int] = {}
    rows = 0
    for rec in reader:
        rows += 1
        if rows > MAX_ROWS:
            raise ValidationError(f"more than {MAX_ROWS} rows", field="file")
        line = reader.line_num
        reasons: list[str] = []
        if None in rec:  # more cells than the header
            reasons.append("more cells than columns")
        values: dict[str, Any] = {}
        contacts: list[tuple[str, str]] = []

        check = _checker(reasons)
        values["name"] = check("name", clean_name, rec.get("name") or "")
        for raw in _split(rec.get("phones")):
            p = check(f"phone {raw!r}", normalize_phone, raw, region)
            if p:
                contacts.append(("phone", p))
        for raw in _split(rec.get("emails")):
            e = check(f"email {raw!r}", normalize_email, raw)
            if e:
                contacts.append(("email", e))
        if (rec.get("tier") or "").strip():
            t = check("tier", enum_value, Tier, rec["tier"].strip().lower(), "tier")
            values["tier_override"] = t.value if t else None
        if (rec.get("type") or "").strip():
            t = check("type", enum_value, CustomerType, rec["type"].strip().lower(), "type")
            values["type"] = t.value if t else None
        if (rec.get("lifetime_value") or "").strip():
            values["lifetime_value"] = check("lifetime_value", _money, rec["lifetime_value"])
        values["language"] = check("language", clean_language, (rec.get("language") or "").strip() or None)
        values["tags"] = check("tags", clean_tags, _split(rec.get("tags"))) or []
        values["notes"] = check("notes", check_text, (rec.get("notes") or "").strip() or None,
                                rules.note_max_chars, "notes")
        for c in contacts:
            if c in seen:
                reasons.append(f"{c[0]} {c[1]} is also on line {seen[c]}")
            else:
                seen[c] = line
        if reasons:
            rejected.append(Rejected(line, reasons))
        else:
            valid.append(_Row(line, values, contacts))
    return valid, rejected, rows


def _checker(reasons: list[str]) -> Any:
    """Run a cleaning function; on a CrmError note `label: reason` and give None."""
    def check(label: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except CrmError as err:
            reasons.append(f"{label}: {err}")
            return None

    return check


def _money(raw: str) -> Any:
    from decimal import Decimal, InvalidOperation

    try:
        v = Decimal(raw.strip())
    except InvalidOperation:
        raise ValidationError("not a number") from None
    if not v.is_finite() or v < 0:
        raise ValidationError("must be a positive amount")
    return v


async def import_customers(store: Any, text: str, *, mode: Mode = "valid_rows",
                           actor: str = "system") -> ImportReport:
    """Validate every row; write the valid ones in one transaction (or none, see the module doc)."""
    if mode not in ("valid_rows", "all_or_nothing"):
        raise ValidationError("mode must be valid_rows or all_or_nothing", field="mode")
    valid, rejected, rows = parse(text, store.default_region, store.rules)
    report = ImportReport(mode, rows, 0, rejected)
    async with store.db.session() as s, s.begin():
        pairs = [c for r in valid for c in r.contacts]
        taken: set[tuple[str, str]] = set()
        for i in range(0, len(pairs), 500):
            chunk = pairs[i:i + 500]
            taken |= {(k, v) for k, v in (await s.execute(select(ContactPoint.kind, ContactPoint.value)
                                                          .where(tuple_(ContactPoint.kind, ContactPoint.value)
                                                                 .in_(chunk)))).all()}
        keep = []
        for r in valid:
            clash = [f"{k} {v} already belongs to a customer" for k, v in r.contacts if (k, v) in taken]
            if clash:
                report.rejected.append(Rejected(r.line, clash))
            else:
                keep.append(r)
        report.rejected.sort(key=lambda r: r.line)
        if mode == "all_or_nothing" and report.rejected:
            store._audit(s, actor, "customer.import", "customer", None, None,
                         {"mode": mode, "rows": rows, "imported": 0, "rejected": len(report.rejected)})
            return report
        now = utcnow()
        for r in keep:
            v = r.values
            ltv = store._money(v.get("lifetime_value") or 0)
            override = v.get("tier_override")
            c = Customer(name=v["name"], name_key=name_key(v["name"]), type=v.get("type") or "customer",
                         tags=v["tags"], lifetime_value=ltv, language=v["language"], notes=v["notes"],
                         tier_override=override, tier=store.rules.effective_tier(ltv, override).value,
                         created_at=now, updated_at=now)
            c.contact_points = [ContactPoint(kind=k, value=val, created_at=now) for k, val in r.contacts]
            s.add(c)
            await s.flush()
            store._set_tokens(s, c.id, v["name"])
            report.customer_ids.append(c.id)
        report.imported = len(keep)
        store._audit(s, actor, "customer.import", "customer", None, None,
                     {"mode": mode, "rows": rows, "imported": report.imported,
                      "rejected": len(report.rejected)})
    return report
