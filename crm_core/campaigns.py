"""Outbound campaigns (issue 17): the campaign, its calling/mailing list, attempts and the DNC list.

    cs = CampaignStore(db)
    c = await cs.create(name="winback", mode="predictive", queue="support", script="Hello ...",
                        dispositions=["sale", "not_interested"], skills={"support": 1})
    await cs.add_segment(c.id, {"loyalty": ["lost"], "tier": ["vip", "key"]})   # or import_csv()
    recs = await cs.claim_due(c.id, now, limit=10)     # pending records whose time has come
    await cs.log_attempt(c.id, rec.id, "busy", interaction_id=...)
    await cs.settle(rec.id, status="pending", attempts=1, next_at=..., last_outcome="busy")
    await cs.add_dnc("phone", "+12025550143")          # never called again, by any campaign

Blacklisted customers never enter a list (and are checked again before each dial by the rules).
The tables are created by migration 0013.
"""

from __future__ import annotations

import csv
import io
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.db import Database
from crm_core.enums import OPEN_TICKET_STATUSES, CustomerType, Loyalty, TicketType
from crm_core.errors import CrmError, NotFound, ValidationError
from crm_core.models import Base, ContactPoint, Customer, Ticket, one_of
from crm_core.normalize import normalize_email, normalize_phone
from crm_core.types import IdType, JSONType, UTCDateTime, as_utc, utcnow


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    FINISHED = "finished"


class CampaignMode(StrEnum):
    PREVIEW = "preview"
    PROGRESSIVE = "progressive"
    PREDICTIVE = "predictive"
    EMAIL = "email"


class RecordStatus(StrEnum):
    PENDING = "pending"  # waiting for its turn (or for a retry at next_at)
    ACTIVE = "active"  # being dialled / previewed / mailed now
    DONE = "done"  # ended by a disposition (or mailed)
    FAILED = "failed"  # given up (max attempts, invalid address)
    SKIPPED = "skipped"  # an agent skipped it in preview, with a reason
    EXCLUDED = "excluded"  # a rule excludes it for good (DNC, blacklisted, unsubscribed)


class ChannelKind(StrEnum):
    VOICE = "voice"
    EMAIL = "email"


class DncKind(StrEnum):
    PHONE = "phone"
    EMAIL = "email"


class DncReason(StrEnum):
    DNC = "dnc"  # the customer asked not to be called (or a national DNC register)
    UNSUBSCRIBE = "unsubscribe"  # the email's unsubscribe link
    BOUNCE = "bounce"  # a hard bounce: the address is invalid


DNC_REASONS = tuple(r.value for r in DncReason)


class CampaignRow(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    channel: Mapped[str] = mapped_column(String(8))
    mode: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=CampaignStatus.DRAFT.value)
    queue: Mapped[str | None] = mapped_column(String(64), default=None)
    skills: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    script: Mapped[str | None] = mapped_column(Text, default=None)
    dispositions: Mapped[list[str]] = mapped_column(JSONType, default=list)
    segment: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    schedule: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    retry_s: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    abandon_cap_pct: Mapped[float] = mapped_column(Float, default=3.0)
    subject: Mapped[str | None] = mapped_column(String(300), default=None)
    body: Mapped[str | None] = mapped_column(Text, default=None)
    rate_per_min: Mapped[int] = mapped_column(Integer, default=60)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        one_of("channel", ChannelKind),
        one_of("mode", CampaignMode),
        one_of("status", CampaignStatus),
    )


class CampaignRecordRow(Base):
    __tablename__ = "campaign_records"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(IdType, ForeignKey("campaigns.id", ondelete="CASCADE"))
    customer_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("customers.id", ondelete="SET NULL"), default=None
    )
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32), default=None)
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    timezone: Mapped[str | None] = mapped_column(String(64), default=None)
    status: Mapped[str] = mapped_column(String(16), default=RecordStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_outcome: Mapped[str | None] = mapped_column(String(32), default=None)
    disposition: Mapped[str | None] = mapped_column(String(64), default=None)
    interaction_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("interactions.id", ondelete="SET NULL"), default=None
    )
    token: Mapped[str] = mapped_column(String(64), unique=True)  # the unsubscribe link's secret
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        one_of("status", RecordStatus),
        Index("ix_campaign_records_campaign_id_status_next_at", "campaign_id", "status", "next_at"),
    )


class CampaignAttemptRow(Base):
    """One dial (or mail) of a record, with its outcome: the campaign's counters come from here."""

    __tablename__ = "campaign_attempts"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(IdType, ForeignKey("campaigns.id", ondelete="CASCADE"))
    record_id: Mapped[int] = mapped_column(IdType, ForeignKey("campaign_records.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    outcome: Mapped[str] = mapped_column(String(32))
    agent: Mapped[str | None] = mapped_column(String(64), default=None)
    interaction_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("interactions.id", ondelete="SET NULL"), default=None
    )
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    __table_args__ = (Index("ix_campaign_attempts_campaign_id_outcome", "campaign_id", "outcome"),)


class CampaignDncRow(Base):
    """Do-not-call / do-not-mail: a phone or an address no campaign contacts again."""

    __tablename__ = "campaign_dnc"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(8))
    value: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(String(16))
    campaign_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("campaigns.id", ondelete="SET NULL"), default=None
    )
    added_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("kind", "value"),
        one_of("kind", DncKind),
        one_of("reason", DncReason),
    )


# ----------------------------------------------------------------------------- plain values
@dataclass(frozen=True, slots=True)
class Campaign:
    id: int
    name: str
    channel: str
    mode: str
    status: str
    queue: str | None
    skills: dict[str, int]
    script: str | None
    dispositions: list[str]
    segment: dict[str, Any] | None
    schedule: dict[str, Any]
    max_attempts: int
    retry_s: dict[str, float]
    abandon_cap_pct: float
    subject: str | None = None
    body: str | None = None
    rate_per_min: int = 60

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class CampaignRecord:
    id: int
    campaign_id: int
    customer_id: int | None
    name: str
    phone: str | None
    email: str | None
    timezone: str | None
    status: str
    attempts: int
    next_at: datetime | None
    last_outcome: str | None
    disposition: str | None
    interaction_id: int | None
    token: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]
        d["next_at"] = self.next_at.isoformat() if self.next_at else None
        d.pop("token")
        return d


def _campaign(r: CampaignRow) -> Campaign:
    return Campaign(
        r.id,
        r.name,
        r.channel,
        r.mode,
        r.status,
        r.queue,
        dict(r.skills or {}),
        r.script,
        list(r.dispositions or []),
        r.segment,
        dict(r.schedule or {}),
        r.max_attempts,
        dict(r.retry_s or {}),
        float(r.abandon_cap_pct),
        r.subject,
        r.body,
        r.rate_per_min,
    )


def _record(r: CampaignRecordRow) -> CampaignRecord:
    return CampaignRecord(
        r.id,
        r.campaign_id,
        r.customer_id,
        r.name,
        r.phone,
        r.email,
        r.timezone,
        r.status,
        r.attempts,
        r.next_at,
        r.last_outcome,
        r.disposition,
        r.interaction_id,
        r.token,
        dict(r.data or {}),
    )


SEGMENT_KEYS = frozenset({"tier", "loyalty", "type", "tags", "open_complaints", "at_risk"})


def at_risk_clause() -> Any:
    """ "At risk" customers, the campaign's own definition until the reports define theirs (issue 16):
    loyalty `lost`, or an open complaint, or an average satisfaction of 2 or less. Replace this one
    function to use the reports' segment."""
    return or_(
        Customer.loyalty == Loyalty.LOST.value,
        _open_complaint(),
        and_(Customer.csat_count > 0, Customer.csat_sum <= 2 * Customer.csat_count),
    )


def _open_complaint() -> Any:
    return exists().where(
        Ticket.customer_id == Customer.id,
        Ticket.type == TicketType.COMPLAINT.value,
        Ticket.status.in_([s.value for s in OPEN_TICKET_STATUSES]),
    )


def segment_where(segment: dict[str, Any]) -> list[Any]:
    """SQL conditions on `customers` for a segment (tags are matched afterwards, in Python: JSON
    lists are not matched the same way on SQLite and PostgreSQL). Blacklisted are always left out."""
    unknown = set(segment) - SEGMENT_KEYS
    if unknown:
        raise ValidationError(f"unknown segment keys {sorted(unknown)}", field="segment")
    conds: list[Any] = [Customer.type != CustomerType.BLACKLISTED.value]
    for key, col in (("tier", Customer.tier), ("loyalty", Customer.loyalty), ("type", Customer.type)):
        vals = segment.get(key)
        if vals:
            if isinstance(vals, str):
                vals = [vals]
            conds.append(col.in_([str(v) for v in vals]))
    if segment.get("open_complaints"):
        conds.append(_open_complaint())
    if segment.get("at_risk"):
        conds.append(at_risk_clause())
    return conds


class CampaignStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- campaigns -------------------------------------------------------------------------
    async def create(
        self,
        *,
        name: str,
        mode: str,
        queue: str | None = None,
        skills: dict[str, int] | None = None,
        script: str | None = None,
        dispositions: list[str] | None = None,
        schedule: dict[str, Any] | None = None,
        max_attempts: int = 3,
        retry_s: dict[str, float] | None = None,
        abandon_cap_pct: float = 3.0,
        subject: str | None = None,
        body: str | None = None,
        rate_per_min: int = 60,
    ) -> Campaign:
        if not name or len(name) > 100:
            raise ValidationError("a campaign needs a name of at most 100 characters", field="name")
        if mode not in CampaignMode.__members__.values():
            raise ValidationError(f"unknown mode {mode!r}", field="mode")
        if max_attempts < 1:
            raise ValidationError("max_attempts must be at least 1", field="max_attempts")
        if not 0 < abandon_cap_pct <= 100:
            raise ValidationError("abandon_cap_pct must be in (0, 100]", field="abandon_cap_pct")
        if rate_per_min < 1:
            raise ValidationError("rate_per_min must be at least 1", field="rate_per_min")
        channel = "email" if mode == "email" else "voice"
        if channel == "email" and not (subject and body):
            raise ValidationError("an email campaign needs a subject and a body", field="body")
        now = utcnow()
        row = CampaignRow(
            name=name,
            channel=channel,
            mode=mode,
            status=CampaignStatus.DRAFT.value,
            queue=queue,
            skills=dict(skills or {}),
            script=script,
            dispositions=list(dispositions or []),
            segment=None,
            schedule=dict(schedule or {}),
            max_attempts=max_attempts,
            retry_s=dict(retry_s or {}),
            abandon_cap_pct=float(abandon_cap_pct),
            subject=subject,
            body=body,
            rate_per_min=rate_per_min,
            created_at=now,
            updated_at=now,
        )
        async with self.db.session() as s, s.begin():
            if (await s.execute(select(CampaignRow.id).where(CampaignRow.name == name))).first():
                raise ValidationError(f"a campaign named {name!r} exists", field="name")
            s.add(row)
            await s.flush()
        return _campaign(row)

    async def get(self, campaign_id: int) -> Campaign:
        async with self.db.session() as s:
            row = await s.get(CampaignRow, campaign_id)
            if row is None:
                raise NotFound("Campaign", campaign_id)
            return _campaign(row)

    async def all(self) -> list[Campaign]:
        async with self.db.session() as s:
            return [
                _campaign(r)
                for r in (await s.execute(select(CampaignRow).order_by(CampaignRow.id))).scalars()
            ]

    async def set_status(self, campaign_id: int, status: str) -> Campaign:
        if status not in CampaignStatus.__members__.values():
            raise ValidationError(f"unknown status {status!r}", field="status")
        async with self.db.session() as s, s.begin():
            row = await s.get(CampaignRow, campaign_id)
            if row is None:
                raise NotFound("Campaign", campaign_id)
            row.status, row.updated_at = status, utcnow()
            if status == CampaignStatus.STOPPED.value:  # nothing stays claimed by a stopped campaign
                await s.execute(
                    update(CampaignRecordRow)
                    .where(
                        CampaignRecordRow.campaign_id == campaign_id,
                        CampaignRecordRow.status == RecordStatus.ACTIVE.value,
                    )
                    .values(status=RecordStatus.PENDING.value)
                )
            return _campaign(row)

    # ---- lists -----------------------------------------------------------------------------
    async def add_segment(self, campaign_id: int, segment: dict[str, Any]) -> int:
        """Add the customers of a CRM segment (with a phone, or an email for an email campaign)."""
        conds = segment_where(segment)
        tags = segment.get("tags") or []
        if isinstance(tags, str):
            tags = [tags]
        async with self.db.session() as s, s.begin():
            camp = await s.get(CampaignRow, campaign_id)
            if camp is None:
                raise NotFound("Campaign", campaign_id)
            kind = "email" if camp.channel == "email" else "phone"
            rows = (
                await s.execute(
                    select(Customer.id, Customer.name, Customer.tags, ContactPoint.value)
                    .join(
                        ContactPoint, and_(ContactPoint.customer_id == Customer.id, ContactPoint.kind == kind)
                    )
                    .where(*conds)
                    .order_by(Customer.id, ContactPoint.id)
                )
            ).all()
            have = set(
                (
                    await s.execute(
                        select(CampaignRecordRow.customer_id).where(
                            CampaignRecordRow.campaign_id == campaign_id
                        )
                    )
                ).scalars()
            )
            n = 0
            for cid, name, ctags, value in rows:
                if cid in have or (tags and not set(tags) & set(ctags or [])):
                    continue
                have.add(cid)
                s.add(
                    _new_record(
                        campaign_id,
                        customer_id=cid,
                        name=name,
                        **({"email": value} if kind == "email" else {"phone": value}),
                    )
                )
                n += 1
            camp.segment, camp.updated_at = dict(segment), utcnow()
        return n

    async def import_csv(
        self, campaign_id: int, text: str, region: str = "US"
    ) -> tuple[int, list[dict[str, Any]]]:
        """Rows `name,phone,email,timezone` (a header line names the columns). Returns (added,
        rejected rows with the reason); nothing is written if the header is wrong."""
        reader = csv.DictReader(io.StringIO(text))
        if (
            not reader.fieldnames
            or "name" not in reader.fieldnames
            or not ({"phone", "email"} & set(reader.fieldnames))
        ):
            raise ValidationError("the CSV needs a header with name and phone (or email)", field="csv")
        rejected: list[dict[str, Any]] = []
        records = []
        for line, row in enumerate(reader, start=2):
            name = (row.get("name") or "").strip()
            phone, email, tz = (
                (row.get("phone") or "").strip(),
                (row.get("email") or "").strip(),
                (row.get("timezone") or "").strip() or None,
            )
            try:
                if not name:
                    raise ValidationError("no name", field="name")
                phone_n = normalize_phone(phone, region) if phone else None
                email_n = normalize_email(email) if email else None
                if phone_n is None and email_n is None:
                    raise ValidationError("no phone and no email", field="phone")
                if tz is not None:
                    from zoneinfo import ZoneInfo

                    try:
                        ZoneInfo(tz)
                    except Exception:  # noqa: BLE001 - any bad key
                        raise ValidationError(f"unknown time zone {tz!r}", field="timezone") from None
            except CrmError as e:
                rejected.append({"line": line, "error": str(e)})
                continue
            records.append(
                _new_record(
                    campaign_id, customer_id=None, name=name, phone=phone_n, email=email_n, timezone=tz
                )
            )
        async with self.db.session() as s, s.begin():
            if await s.get(CampaignRow, campaign_id) is None:
                raise NotFound("Campaign", campaign_id)
            # a CSV row that is a known customer's number is linked to the customer (timeline, blacklist)
            for rec in records:
                value = rec.phone or rec.email
                cid = (
                    await s.execute(
                        select(ContactPoint.customer_id).where(ContactPoint.value == value).limit(1)
                    )
                ).scalar()
                rec.customer_id = cid
                s.add(rec)
        return len(records), rejected

    async def records(self, campaign_id: int) -> list[CampaignRecord]:
        async with self.db.session() as s:
            return [
                _record(r)
                for r in (
                    await s.execute(
                        select(CampaignRecordRow)
                        .where(CampaignRecordRow.campaign_id == campaign_id)
                        .order_by(CampaignRecordRow.id)
                    )
                ).scalars()
            ]

    async def record(self, record_id: int) -> CampaignRecord:
        async with self.db.session() as s:
            row = await s.get(CampaignRecordRow, record_id)
            if row is None:
                raise NotFound("CampaignRecord", record_id)
            return _record(row)

    async def record_by_token(self, token: str) -> CampaignRecord:
        async with self.db.session() as s:
            row = (
                await s.execute(select(CampaignRecordRow).where(CampaignRecordRow.token == token))
            ).scalar()
            if row is None:
                raise NotFound("CampaignRecord", "token")
            return _record(row)

    async def claim_due(self, campaign_id: int, now: datetime, limit: int) -> list[CampaignRecord]:
        """Pending records whose time has come (first never tried, then by retry time), marked active."""
        out: list[CampaignRecord] = []
        if limit <= 0:
            return out
        async with self.db.session() as s, s.begin():
            rows = (
                (
                    await s.execute(
                        select(CampaignRecordRow)
                        .where(
                            CampaignRecordRow.campaign_id == campaign_id,
                            CampaignRecordRow.status == RecordStatus.PENDING.value,
                            or_(
                                CampaignRecordRow.next_at.is_(None), CampaignRecordRow.next_at <= as_utc(now)
                            ),
                        )
                        .order_by(CampaignRecordRow.attempts, CampaignRecordRow.id)
                        .limit(limit)
                    )
                )
                .scalars()
                .all()
            )
            for r in rows:
                res = await s.execute(
                    update(CampaignRecordRow)
                    .where(
                        CampaignRecordRow.id == r.id, CampaignRecordRow.status == RecordStatus.PENDING.value
                    )
                    .values(status=RecordStatus.ACTIVE.value, updated_at=utcnow())
                )
                if res.rowcount == 1:  # type: ignore[attr-defined]
                    r.status = RecordStatus.ACTIVE.value
                    out.append(_record(r))
        return out

    async def settle(
        self,
        record_id: int,
        *,
        status: str,
        attempts: int | None = None,
        next_at: datetime | None = None,
        last_outcome: str | None = None,
        disposition: str | None = None,
        interaction_id: int | None = None,
    ) -> CampaignRecord:
        if status not in RecordStatus.__members__.values():
            raise ValidationError(f"unknown record status {status!r}", field="status")
        async with self.db.session() as s, s.begin():
            row = await s.get(CampaignRecordRow, record_id)
            if row is None:
                raise NotFound("CampaignRecord", record_id)
            row.status, row.next_at, row.updated_at = status, next_at and as_utc(next_at), utcnow()
            if attempts is not None:
                row.attempts = attempts
            if last_outcome is not None:
                row.last_outcome = last_outcome
            if disposition is not None:
                row.disposition = disposition
            if interaction_id is not None:
                row.interaction_id = interaction_id
            return _record(row)

    async def log_attempt(
        self,
        campaign_id: int,
        record_id: int,
        outcome: str,
        *,
        agent: str | None = None,
        interaction_id: int | None = None,
        data: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> None:
        async with self.db.session() as s, s.begin():
            s.add(
                CampaignAttemptRow(
                    campaign_id=campaign_id,
                    record_id=record_id,
                    at=at or utcnow(),
                    outcome=outcome,
                    agent=agent,
                    interaction_id=interaction_id,
                    data=dict(data or {}),
                )
            )

    async def stats(self, campaign_id: int) -> dict[str, Any]:
        """Attempts by outcome, records by status and by disposition."""
        async with self.db.session() as s:
            outcomes = dict(
                (
                    await s.execute(
                        select(CampaignAttemptRow.outcome, func.count())
                        .where(CampaignAttemptRow.campaign_id == campaign_id)
                        .group_by(CampaignAttemptRow.outcome)
                    )
                ).all()
            )
            statuses = dict(
                (
                    await s.execute(
                        select(CampaignRecordRow.status, func.count())
                        .where(CampaignRecordRow.campaign_id == campaign_id)
                        .group_by(CampaignRecordRow.status)
                    )
                ).all()
            )
            dispositions = dict(
                (
                    await s.execute(
                        select(CampaignRecordRow.disposition, func.count())
                        .where(
                            CampaignRecordRow.campaign_id == campaign_id,
                            CampaignRecordRow.disposition.is_not(None),
                        )
                        .group_by(CampaignRecordRow.disposition)
                    )
                ).all()
            )
        return {"outcomes": outcomes, "records": statuses, "dispositions": dispositions}

    async def results(self, campaign_id: int) -> dict[str, Any]:
        """Records by disposition and by segment (the customer's tier, loyalty and type now;
        records without a customer under `none`), and attempts by outcome."""
        out: dict[str, Any] = {"by_disposition": {}, "by_outcome": {}}
        async with self.db.session() as s:
            if await s.get(CampaignRow, campaign_id) is None:
                raise NotFound("Campaign", campaign_id)
            out["by_outcome"] = dict(
                (
                    await s.execute(
                        select(CampaignAttemptRow.outcome, func.count())
                        .where(CampaignAttemptRow.campaign_id == campaign_id)
                        .group_by(CampaignAttemptRow.outcome)
                    )
                ).all()
            )
            for key, col in (("tier", Customer.tier), ("loyalty", Customer.loyalty), ("type", Customer.type)):
                rows = (
                    await s.execute(
                        select(col, CampaignRecordRow.status, CampaignRecordRow.disposition, func.count())
                        .select_from(CampaignRecordRow)
                        .join(Customer, Customer.id == CampaignRecordRow.customer_id, isouter=True)
                        .where(CampaignRecordRow.campaign_id == campaign_id)
                        .group_by(col, CampaignRecordRow.status, CampaignRecordRow.disposition)
                    )
                ).all()
                seg: dict[str, dict[str, Any]] = {}
                for value, status, dispo, n in rows:
                    cell = seg.setdefault(value or "none", {"records": 0, "status": {}, "dispositions": {}})
                    cell["records"] += n
                    cell["status"][status] = cell["status"].get(status, 0) + n
                    if dispo:
                        cell["dispositions"][dispo] = cell["dispositions"].get(dispo, 0) + n
                        if key == "tier":
                            out["by_disposition"][dispo] = out["by_disposition"].get(dispo, 0) + n
                out[f"by_{key}"] = seg
        return out

    # ---- do not call / do not mail -----------------------------------------------------------
    async def add_dnc(
        self, kind: str, value: str, reason: str = "dnc", campaign_id: int | None = None
    ) -> bool:
        """True if added (False if it was already there)."""
        if kind not in ("phone", "email") or reason not in DNC_REASONS:
            raise ValidationError("kind is phone or email; reason dnc, unsubscribe or bounce", field="kind")
        value = normalize_phone(value) if kind == "phone" else normalize_email(value)
        async with self.db.session() as s, s.begin():
            if (
                await s.execute(
                    select(CampaignDncRow.id).where(
                        CampaignDncRow.kind == kind, CampaignDncRow.value == value
                    )
                )
            ).first():
                return False
            s.add(
                CampaignDncRow(
                    kind=kind, value=value, reason=reason, campaign_id=campaign_id, added_at=utcnow()
                )
            )
        return True

    async def dnc(self, kind: str, value: str) -> str | None:
        """The reason `value` may not be contacted, or None."""
        async with self.db.session() as s:
            return (
                await s.execute(
                    select(CampaignDncRow.reason).where(
                        CampaignDncRow.kind == kind, CampaignDncRow.value == value
                    )
                )
            ).scalar()

    async def blacklisted(self, customer_id: int | None) -> bool:
        if customer_id is None:
            return False
        async with self.db.session() as s:
            t = (await s.execute(select(Customer.type).where(Customer.id == customer_id))).scalar()
        return t == CustomerType.BLACKLISTED.value


def _new_record(
    campaign_id: int,
    *,
    customer_id: int | None,
    name: str,
    phone: str | None = None,
    email: str | None = None,
    timezone: str | None = None,
) -> CampaignRecordRow:
    return CampaignRecordRow(
        campaign_id=campaign_id,
        customer_id=customer_id,
        name=name[:200],
        phone=phone,
        email=email,
        timezone=timezone,
        status=RecordStatus.PENDING.value,
        attempts=0,
        token=secrets.token_urlsafe(24),
        data={},
        updated_at=utcnow(),
    )
