"""Queues and skills: the routing catalog. The database is the authority; YAML only seeds it."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.db import Database
from crm_core.models import Base
from crm_core.types import JSONType, UTCDateTime, utcnow


class Skill(Base):
    __tablename__ = "skills"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Queue(Base):
    __tablename__ = "queues"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str] = mapped_column(String(200))
    # required skills with minimum proficiency, e.g. {"billing": 3}
    skills: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    sl_target_s: Mapped[int] = mapped_column(Integer, default=20)
    sl_target_pct: Mapped[int] = mapped_column(Integer, default=80)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # record every answered call of this queue (MixMonitor on answer)
    record: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        CheckConstraint("sl_target_s > 0 AND sl_target_pct BETWEEN 1 AND 100", name="sl_target"),
    )


async def list_queues(db: Database) -> list[Queue]:
    async with db.session() as s:
        return list((await s.scalars(select(Queue).order_by(Queue.name))).all())


async def list_skills(db: Database) -> list[Skill]:
    async with db.session() as s:
        return list((await s.scalars(select(Skill).order_by(Skill.name))).all())
