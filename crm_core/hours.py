"""Business hours and holidays that admins manage (issue 14): named sets, each a time zone, weekly
opening hours and holidays in the IVR flow's own format (docs/ivr.md, `business_hours` node):

    weekly:   {"mon-fri": "09:00-18:00", "sat": ["10:00-12:00", "13:00-16:00"], "sun": "closed"}
    holidays: {"country": "US", "subdiv": "CA", "dates": ["2026-12-24"]}

A flow's `business_hours` node that names a set (`schedule: main`) uses it instead of its own
hours. The host checks the values with the IVR flow checker before they are stored."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, mapped_column

from crm_core._base import StoreBase
from crm_core.db import Database
from crm_core.errors import NotFound
from crm_core.models import Base
from crm_core.types import JSONType, UTCDateTime, utcnow


class BusinessHours(Base):
    __tablename__ = "business_hours"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    timezone: Mapped[str] = mapped_column(String(64))
    weekly: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    holidays: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(64), default="system")


def hours_json(h: BusinessHours) -> dict[str, Any]:
    return {"name": h.name, "timezone": h.timezone, "weekly": dict(h.weekly or {}),
            "holidays": dict(h.holidays or {}), "updated_at": h.updated_at, "updated_by": h.updated_by}


class HoursStore(StoreBase):
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list_hours(self) -> list[BusinessHours]:
        async with self.db.session() as s:
            return list((await s.execute(select(BusinessHours).order_by(BusinessHours.name))).scalars())

    async def put_hours(self, name: str, timezone: str, weekly: dict[str, Any], holidays: dict[str, Any], *,
                        actor: str = "system") -> BusinessHours:
        """Create or replace a set (the values already checked); audited with before and after."""
        async with self.db.session() as s, s.begin():
            h = await s.get(BusinessHours, name)
            before = None if h is None else hours_json(h)
            if h is None:
                h = BusinessHours(name=name)
                s.add(h)
            h.timezone, h.weekly, h.holidays = timezone, dict(weekly), dict(holidays)
            h.updated_at, h.updated_by = utcnow(), actor[:64]
            after = hours_json(h)
            self._audit(s, actor, "hours.put", "business_hours", name, before, after)
        return h

    async def delete_hours(self, name: str, *, actor: str = "system") -> None:
        async with self.db.session() as s, s.begin():
            h = await s.get(BusinessHours, name)
            if h is None:
                raise NotFound("BusinessHours", name)
            self._audit(s, actor, "hours.delete", "business_hours", name, hours_json(h), None)
            await s.delete(h)


__all__ = ["BusinessHours", "HoursStore", "hours_json"]
