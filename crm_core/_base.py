"""Shared plumbing of the CrmStore mixins: the database, the rules, audit and lookups."""
from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.db import Database
from crm_core.errors import NotFound, ValidationError
from crm_core.models import AuditEntry, Base
from crm_core.rules import Rules
from crm_core.types import as_utc, utcnow

M = TypeVar("M", bound=Base)


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""Marks a keyword argument as "not given" (None can be a meaningful value)."""


class StoreBase:
    db: Database
    rules: Rules
    default_region: str
    hasher: PasswordHasher

    @staticmethod
    def _at(at: datetime | None) -> datetime:
        if at is None:
            return utcnow()
        try:
            return as_utc(at)
        except (ValueError, AttributeError) as e:
            raise ValidationError(str(e), field="at", value=at) from e

    @staticmethod
    async def _get(s: AsyncSession, model: type[M], key: Any, *, for_update: bool = False) -> M:
        obj = await s.get(model, key, with_for_update=for_update or None)
        if obj is None:
            raise NotFound(model.__name__, key)
        return obj

    @staticmethod
    def _audit(
        s: AsyncSession, actor: str, action: str, entity: str, entity_id: Any,
        before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> AuditEntry:
        entry = AuditEntry(
            at=at or utcnow(), actor=actor or "system", action=action, entity=entity,
            entity_id=None if entity_id is None else str(entity_id),
            before=_json(before), after=_json(after),
        )
        s.add(entry)
        return entry


def _json(d: dict[str, Any] | None) -> dict[str, Any] | None:
    from crm_core.views import _jsonable

    return None if d is None else _jsonable(d)  # type: ignore[no-any-return]
