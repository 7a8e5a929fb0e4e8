"""Disposition codes (a configurable table) and the audit log."""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from crm_core._base import StoreBase
from crm_core.errors import ValidationError
from crm_core.models import AuditEntry, DispositionCode

MAX_CODE = 64


class AdminMixin(StoreBase):
    async def list_disposition_codes(self, *, active_only: bool = False) -> list[DispositionCode]:
        async with self.db.session() as s:
            stmt = select(DispositionCode)
            if active_only:
                stmt = stmt.where(DispositionCode.active.is_(True))
            return list((await s.execute(
                stmt.order_by(DispositionCode.position, DispositionCode.code)
            )).scalars())

    async def upsert_disposition_code(
        self,
        code: str,
        label: str,
        *,
        active: bool = True,
        position: int | None = None,
        actor: str = "system",
    ) -> DispositionCode:
        """Create or change a disposition code (codes are never deleted: deactivate them)."""
        if not isinstance(code, str) or not code.strip() or len(code.strip()) > MAX_CODE:
            raise ValidationError(f"code must be 1..{MAX_CODE} characters", field="code")
        if not isinstance(label, str) or not label.strip() or len(label) > 200:
            raise ValidationError("label must be 1..200 characters", field="label")
        code = code.strip()
        async with self.db.session() as s, s.begin():
            dc = await s.get(DispositionCode, code)
            before = None
            if dc is None:
                if position is None:
                    position = int((await s.execute(
                        select(func.coalesce(func.max(DispositionCode.position), -1))
                    )).scalar_one()) + 1
                dc = DispositionCode(code=code, label=label.strip(), active=bool(active),
                                     position=position)
                s.add(dc)
            else:
                before = {"label": dc.label, "active": dc.active, "position": dc.position}
                dc.label = label.strip()
                dc.active = bool(active)
                if position is not None:
                    dc.position = position
            self._audit(s, actor, "disposition.upsert", "disposition_code", code, before,
                        {"label": dc.label, "active": dc.active, "position": dc.position})
        return dc

    async def seed_disposition_codes(self) -> int:
        """Insert the rules' default codes that are missing; returns how many were added."""
        async with self.db.session() as s, s.begin():
            have = set((await s.execute(select(DispositionCode.code))).scalars())
            added = 0
            for pos, (code, label) in enumerate(self.rules.disposition_codes):
                if code not in have:
                    s.add(DispositionCode(code=code, label=label, active=True, position=pos))
                    added += 1
        return added

    async def write_audit(
        self, actor: str, action: str, entity: str, entity_id: Any = None,
        before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
    ) -> AuditEntry:
        async with self.db.session() as s, s.begin():
            return self._audit(s, actor, action, entity, entity_id, before, after)

    async def list_audit(
        self, *, entity: str | None = None, entity_id: Any = None, action: str | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Newest first."""
        async with self.db.session() as s:
            stmt = select(AuditEntry)
            if entity is not None:
                stmt = stmt.where(AuditEntry.entity == entity)
            if entity_id is not None:
                stmt = stmt.where(AuditEntry.entity_id == str(entity_id))
            if action is not None:
                stmt = stmt.where(AuditEntry.action == action)
            return list((await s.execute(
                stmt.order_by(AuditEntry.id.desc()).limit(limit)
            )).scalars())
