"""Column types that behave the same on SQLite and PostgreSQL.

- `UTCDateTime`: timezone-aware UTC datetimes in and out. PostgreSQL stores `timestamptz`; SQLite
  stores naive UTC text (so it sorts correctly). Naive datetimes are refused on write.
- `Money`: exact `Decimal` with 2 places. PostgreSQL stores NUMERIC(14, 2); SQLite stores integer
  cents (SQLite has no decimal type and SQLAlchemy would go through float).
- `JSONType`: JSON, JSONB on PostgreSQL.
- `IdType`: BIGINT on PostgreSQL, INTEGER on SQLite (so that it is the rowid alias there).
"""
from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, Numeric, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

CENT = Decimal("0.01")

IdType = BigInteger().with_variant(Integer(), "sqlite")
JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """An aware datetime converted to UTC; naive datetimes are refused (ambiguous)."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"naive datetime {value!r}: pass a timezone-aware datetime")
    return value.astimezone(UTC)


def to_money(value: Any) -> Decimal:
    """Decimal with exactly 2 places. Floats are refused (they are not exact)."""
    if isinstance(value, float):
        raise TypeError("money must be Decimal, int or str, never float")
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation as e:
        raise ValueError(f"not a money amount: {value!r}") from e
    if not d.is_finite():
        raise ValueError(f"not a money amount: {value!r}")
    return d.quantize(CENT, rounding=ROUND_HALF_EVEN)


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(DateTime(timezone=False))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Money(TypeDecorator[Decimal]):
    impl = Numeric(14, 2)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(14, 2, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        d = to_money(value)
        if dialect.name == "sqlite":
            return int(d * 100)
        return d

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            if isinstance(value, float):  # only if a non-integer slipped in by hand
                return to_money(repr(value)) / 100
            return (Decimal(int(value)) / 100).quantize(CENT)
        return to_money(value)


def c_collated_string(length: int) -> TypeEngine[str]:
    """A string compared bytewise on both backends, so that prefix range scans use the btree index."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")
