"""The fence table (migration 0014, issue 18): one row per lease-guarded writer (crm_core/fencing.py)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.models import Base
from crm_core.types import UTCDateTime


class Fence(Base):
    __tablename__ = "cc_fence"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    token: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    last_id: Mapped[str] = mapped_column(String(64), default="", server_default="")
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None, nullable=True)
