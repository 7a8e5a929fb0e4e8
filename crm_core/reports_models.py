"""Report rollups (issue 16): counters summed per 15-minute slot, kept up to date as
interactions end (crm_core/reports.py), so that reports read thousands of rows, not millions.

A slot is `floor(epoch seconds / 900)` of the contact's arrival (UTC); dimensions that may be
missing are stored as '' or 0 so that they can take part in the primary key.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.models import Base
from crm_core.types import IdType


class ContactMeasures:
    """The counters every report_contacts* table sums, in the order of crm_core.reports.MEASURES
    (SQLAlchemy puts a mixin's columns after the table's own key columns)."""

    contacts: Mapped[int] = mapped_column(Integer, default=0)
    offered: Mapped[int] = mapped_column(Integer, default=0)
    answered: Mapped[int] = mapped_column(Integer, default=0)
    answered_in_sl: Mapped[int] = mapped_column(Integer, default=0)
    abandoned: Mapped[int] = mapped_column(Integer, default=0)
    short_abandoned: Mapped[int] = mapped_column(Integer, default=0)
    wait_answered_s: Mapped[float] = mapped_column(Float, default=0.0)
    handled: Mapped[int] = mapped_column(Integer, default=0)
    talk_s: Mapped[float] = mapped_column(Float, default=0.0)
    wrap_s: Mapped[float] = mapped_column(Float, default=0.0)
    transferred: Mapped[int] = mapped_column(Integer, default=0)
    repeats: Mapped[int] = mapped_column(Integer, default=0)
    fcr: Mapped[int] = mapped_column(Integer, default=0)
    csat_sum: Mapped[int] = mapped_column(Integer, default=0)
    csat_n: Mapped[int] = mapped_column(Integer, default=0)
    csat_good: Mapped[int] = mapped_column(Integer, default=0)


class ReportContact(ContactMeasures, Base):
    """What the contacts that arrived in a slot came to, per queue, agent, team, channel, tier
    and disposition (sums; the ratios are computed when read)."""

    __tablename__ = "report_contacts"

    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    queue: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[int] = mapped_column(IdType, primary_key=True)
    team: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel: Mapped[str] = mapped_column(String(8), primary_key=True)
    tier: Mapped[str] = mapped_column(String(16), primary_key=True)
    disposition: Mapped[str] = mapped_column(String(64), primary_key=True)


class ReportContactHour(ContactMeasures, Base):
    """The same counters per hour (slot: floor(epoch / 3600)) without the disposition: what
    reports by hour, day or week read in time zones with whole-hour offsets (4x fewer rows)."""

    __tablename__ = "report_contacts_hour"

    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    queue: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[int] = mapped_column(IdType, primary_key=True)
    team: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel: Mapped[str] = mapped_column(String(8), primary_key=True)
    tier: Mapped[str] = mapped_column(String(16), primary_key=True)


class ReportContactDay(ContactMeasures, Base):
    """The same counters per day (slot: floor((epoch - shift h) / 86400)) without agent or
    disposition, kept for days starting at 0, 6, 12 and 18 h UTC: what long ranges read."""

    __tablename__ = "report_contacts_day"

    shift: Mapped[int] = mapped_column(Integer, primary_key=True)  # the day starts at this UTC hour
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    queue: Mapped[str] = mapped_column(String(64), primary_key=True)
    team: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel: Mapped[str] = mapped_column(String(8), primary_key=True)
    tier: Mapped[str] = mapped_column(String(16), primary_key=True)


class ReportContactAgentDay(ContactMeasures, Base):
    """Per UTC day and agent (with team and queue for the scope): long ranges by agent."""

    __tablename__ = "report_contacts_agent_day"

    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(IdType, primary_key=True)
    queue: Mapped[str] = mapped_column(String(64), primary_key=True)
    team: Mapped[str] = mapped_column(String(64), primary_key=True)


class ReportContactDispositionDay(ContactMeasures, Base):
    """Per UTC day and disposition (with team and queue for the scope): long ranges by disposition."""

    __tablename__ = "report_contacts_disposition_day"

    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    disposition: Mapped[str] = mapped_column(String(64), primary_key=True)
    queue: Mapped[str] = mapped_column(String(64), primary_key=True)
    team: Mapped[str] = mapped_column(String(64), primary_key=True)


class AgentTimeColumns:
    """The key and the seconds of both report_agent_time* tables."""

    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(IdType, primary_key=True)
    team: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), primary_key=True)
    reason: Mapped[str] = mapped_column(String(64), primary_key=True)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)


class ReportAgentTime(AgentTimeColumns, Base):
    """Seconds agents spent in each state (ready, busy, wrap_up, not_ready with its reason) per slot."""

    __tablename__ = "report_agent_time"


class ReportAgentTimeDay(AgentTimeColumns, Base):
    """The same seconds per UTC day (slot: floor(epoch / 86400))."""

    __tablename__ = "report_agent_time_day"


class ReportCustomerState(Base):
    """Each customer's tier, loyalty and type as of the last snapshot (to see who moved)."""

    __tablename__ = "report_customer_state"

    customer_id: Mapped[int] = mapped_column(IdType, primary_key=True)
    tier: Mapped[str] = mapped_column(String(16))
    loyalty: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(16))


class ReportCustomerMove(Base):
    """A customer whose tier, loyalty or type changed between two snapshots (day: UTC epoch day)."""

    __tablename__ = "report_customer_moves"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    day: Mapped[int] = mapped_column(Integer)
    customer_id: Mapped[int] = mapped_column(IdType)
    from_tier: Mapped[str] = mapped_column(String(16))
    to_tier: Mapped[str] = mapped_column(String(16))
    from_loyalty: Mapped[str] = mapped_column(String(16))
    to_loyalty: Mapped[str] = mapped_column(String(16))
    from_type: Mapped[str] = mapped_column(String(16))
    to_type: Mapped[str] = mapped_column(String(16))

    __table_args__ = (Index("ix_report_customer_moves_day", "day"),)


class ReportCustomerCount(Base):
    """How many customers each (tier, loyalty, type) had on a day's snapshot."""

    __tablename__ = "report_customer_counts"

    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    tier: Mapped[str] = mapped_column(String(16), primary_key=True)
    loyalty: Mapped[str] = mapped_column(String(16), primary_key=True)
    type: Mapped[str] = mapped_column(String(16), primary_key=True)
    customers: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), default=0)


class ReportSubscription(Base):
    """A supervisor who gets the daily summary by email (day: the last local day sent)."""

    __tablename__ = "report_subscriptions"

    user_id: Mapped[int] = mapped_column(IdType, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    tz: Mapped[str] = mapped_column(String(64), default="UTC")
    last_day: Mapped[str | None] = mapped_column(String(10), default=None)


class ReportPending(Base):
    """An ended interaction whose counters are not in the rollups yet (or must be added again
    after a change): folded in batches, off the interaction's own write (crm_core/reports.py).
    `marked`: epoch seconds when it was queued (the background folds only older ones)."""

    __tablename__ = "report_pending"

    interaction_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=False)
    marked: Mapped[float] = mapped_column(Float, default=0.0)


__all__ = [
    "ReportAgentTime",
    "ReportAgentTimeDay",
    "ReportContact",
    "ReportContactAgentDay",
    "ReportContactDay",
    "ReportContactDispositionDay",
    "ReportContactHour",
    "ReportCustomerCount",
    "ReportCustomerMove",
    "ReportCustomerState",
    "ReportPending",
    "ReportSubscription",
]
