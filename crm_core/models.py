"""ORM models of the customer store (SQLAlchemy 2.x, typed, no lazy loads).

Every relationship is `lazy="raise"`: load what you need with `selectinload` or a query.
The Alembic revisions in `migrations/versions/` create exactly these tables.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from crm_core.enums import (
    Channel,
    ContactKind,
    CustomerType,
    Direction,
    InteractionState,
    Loyalty,
    TicketPriority,
    TicketStatus,
    TicketType,
    Tier,
    values,
)
from crm_core.types import IdType, JSONType, Money, UTCDateTime, c_collated_string, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def one_of(column: str, enum: type[StrEnum], name: str | None = None) -> CheckConstraint:
    allowed = ", ".join(f"'{v}'" for v in values(enum))
    return CheckConstraint(f"{column} IN ({allowed})", name=name or column)


def _id() -> Mapped[int]:
    return mapped_column(IdType, primary_key=True, autoincrement=True)


# --------------------------------------------------------------------------- customers
class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = _id()
    name: Mapped[str] = mapped_column(String(200))
    # casefolded, accent-free, single-spaced name: prefix search and ordering
    name_key: Mapped[str] = mapped_column(c_collated_string(200))
    type: Mapped[str] = mapped_column(String(16), default=CustomerType.CUSTOMER.value)
    tier: Mapped[str] = mapped_column(String(16), default=Tier.REGULAR.value)
    tier_override: Mapped[str | None] = mapped_column(String(16), default=None)
    loyalty: Mapped[str] = mapped_column(String(16), default=Loyalty.POTENTIAL.value)
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    lifetime_value: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0.00"))
    language: Mapped[str | None] = mapped_column(String(16), default=None)
    notes: Mapped[str | None] = mapped_column(Text, default=None)
    # activity aggregates, maintained by the store (and by bulk.refresh_customer_aggregates)
    contact_count: Mapped[int] = mapped_column(Integer, default=0)
    first_contact_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_contact_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    csat_sum: Mapped[int] = mapped_column(Integer, default=0)
    csat_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    contact_points: Mapped[list[ContactPoint]] = relationship(
        back_populates="customer", lazy="raise", cascade="all, delete-orphan",
        passive_deletes=True, order_by="ContactPoint.id",
    )

    __table_args__ = (
        one_of("type", CustomerType),
        one_of("tier", Tier),
        CheckConstraint(
            "tier_override IS NULL OR tier_override IN ("
            + ", ".join(f"'{v}'" for v in values(Tier)) + ")",
            name="tier_override",
        ),
        one_of("loyalty", Loyalty),
        Index("ix_customers_name_key", "name_key"),
        Index("ix_customers_tier", "tier"),
    )


class CustomerNameToken(Base):
    """One row per word of a customer's name: indexed word-prefix search on both backends."""

    __tablename__ = "customer_name_tokens"

    token: Mapped[str] = mapped_column(c_collated_string(64), primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )

    __table_args__ = (Index("ix_customer_name_tokens_customer_id", "customer_id"),)


class ContactPoint(Base):
    __tablename__ = "contact_points"

    id: Mapped[int] = _id()
    customer_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("customers.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(8))
    # phone: E.164; email: lower-cased; chat: "<network>:<id>" as given
    value: Mapped[str] = mapped_column(c_collated_string(320))
    label: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    customer: Mapped[Customer] = relationship(back_populates="contact_points", lazy="raise")

    __table_args__ = (
        UniqueConstraint("kind", "value", name="uq_contact_points_kind_value"),
        one_of("kind", ContactKind),
        Index("ix_contact_points_customer_id", "customer_id"),
    )


# --------------------------------------------------------------------------- users and teams
team_members = Table(
    "team_members",
    Base.metadata,
    Column("team_id", IdType, ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", IdType, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_team_members_user_id", "user_id"),
)


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[int] = _id()
    name: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    members: Mapped[list[User]] = relationship(
        secondary=team_members, back_populates="teams", lazy="raise", order_by="User.id"
    )


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = _id()
    username: Mapped[str] = mapped_column(c_collated_string(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    roles: Mapped[list[str]] = mapped_column(JSONType, default=list)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    extension: Mapped[str | None] = mapped_column(String(32), unique=True, default=None)
    device: Mapped[str | None] = mapped_column(String(128), default=None)
    capacity_voice: Mapped[int] = mapped_column(Integer, default=1)
    capacity_chat: Mapped[int] = mapped_column(Integer, default=0)
    capacity_email: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    skills: Mapped[list[AgentSkill]] = relationship(
        back_populates="user", lazy="raise", cascade="all, delete-orphan",
        passive_deletes=True, order_by="AgentSkill.skill",
    )
    teams: Mapped[list[Team]] = relationship(
        secondary=team_members, back_populates="members", lazy="raise", order_by="Team.name"
    )

    __table_args__ = (
        CheckConstraint(
            "capacity_voice >= 0 AND capacity_chat >= 0 AND capacity_email >= 0",
            name="capacities",
        ),
    )

    @property
    def skill_map(self) -> dict[str, int]:
        return {s.skill: s.proficiency for s in self.skills}

    @property
    def capacities(self) -> dict[str, int]:
        return {"voice": self.capacity_voice, "chat": self.capacity_chat,
                "email": self.capacity_email}


class AgentSkill(Base):
    __tablename__ = "agent_skills"

    user_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    skill: Mapped[str] = mapped_column(String(64), primary_key=True)
    proficiency: Mapped[int] = mapped_column(Integer)

    user: Mapped[User] = relationship(back_populates="skills", lazy="raise")

    __table_args__ = (
        CheckConstraint("proficiency BETWEEN 1 AND 10", name="proficiency"),
        Index("ix_agent_skills_skill", "skill"),
    )


# --------------------------------------------------------------------------- interactions
class Interaction(Base):
    __tablename__ = "interactions"

    id: Mapped[int] = _id()
    customer_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("customers.id", ondelete="SET NULL"), default=None
    )
    channel: Mapped[str] = mapped_column(String(8))
    direction: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16), default=InteractionState.NEW.value)
    external_id: Mapped[str | None] = mapped_column(String(128), default=None)  # e.g. linkedid
    from_address: Mapped[str | None] = mapped_column(String(320), default=None)
    to_address: Mapped[str | None] = mapped_column(String(320), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    offered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    wrapup_done_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    ivr_path: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    queue: Mapped[str | None] = mapped_column(String(64), default=None)
    skills: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    agent_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    disposition_code: Mapped[str | None] = mapped_column(String(64), default=None)
    notes: Mapped[str | None] = mapped_column(Text, default=None)
    transcript_ref: Mapped[str | None] = mapped_column(String(500), default=None)
    recording_ref: Mapped[str | None] = mapped_column(String(500), default=None)
    csat_score: Mapped[int | None] = mapped_column(Integer, default=None)
    escalation_steps: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        one_of("channel", Channel),
        one_of("direction", Direction),
        one_of("state", InteractionState),
        Index("ix_interactions_customer_id_created_at", "customer_id", "created_at"),
        Index("ix_interactions_agent_id_created_at", "agent_id", "created_at"),
        Index("ix_interactions_created_at", "created_at"),
        Index("ix_interactions_external_id", "external_id"),
    )


class InteractionEvent(Base):
    """Append-only timeline of an interaction; rows are never updated."""

    __tablename__ = "interaction_events"

    id: Mapped[int] = _id()
    interaction_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("interactions.id", ondelete="CASCADE")
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    kind: Mapped[str] = mapped_column(String(64))
    ok: Mapped[bool] = mapped_column(Boolean, default=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    __table_args__ = (
        Index("ix_interaction_events_interaction_id_id", "interaction_id", "id"),
    )


# --------------------------------------------------------------------------- tickets
ticket_interactions = Table(
    "ticket_interactions",
    Base.metadata,
    Column("ticket_id", IdType, ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "interaction_id", IdType, ForeignKey("interactions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Index("ix_ticket_interactions_interaction_id", "interaction_id"),
)


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = _id()
    number: Mapped[str] = mapped_column(c_collated_string(32), unique=True)  # T-000123
    customer_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("customers.id", ondelete="SET NULL"), default=None
    )
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=TicketStatus.OPEN.value)
    priority: Mapped[str] = mapped_column(String(8), default=TicketPriority.NORMAL.value)
    subject: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    sla_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    assignee_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    escalation_queue: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    solved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    interactions: Mapped[list[Interaction]] = relationship(
        secondary=ticket_interactions, lazy="raise", order_by="Interaction.id"
    )

    __table_args__ = (
        one_of("type", TicketType),
        one_of("status", TicketStatus),
        one_of("priority", TicketPriority),
        Index("ix_tickets_customer_id_status", "customer_id", "status"),
        Index("ix_tickets_status_sla_due_at", "status", "sla_due_at"),
        Index("ix_tickets_assignee_id_status", "assignee_id", "status"),
    )


# --------------------------------------------------------------------------- satisfaction
class SurveyResult(Base):
    __tablename__ = "survey_results"

    id: Mapped[int] = _id()
    interaction_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("interactions.id", ondelete="SET NULL"), default=None
    )
    customer_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("customers.id", ondelete="SET NULL"), default=None
    )
    score: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str | None] = mapped_column(String(8), default=None)
    comment: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        Index("ix_survey_results_customer_id_created_at", "customer_id", "created_at"),
        Index("ix_survey_results_interaction_id", "interaction_id"),
    )


class DispositionCode(Base):
    __tablename__ = "disposition_codes"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


# --------------------------------------------------------------------------- audit
class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = _id()
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str | None] = mapped_column(String(64), default=None)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)

    __table_args__ = (
        Index("ix_audit_log_entity_entity_id", "entity", "entity_id"),
        Index("ix_audit_log_at", "at"),
    )


__all__ = [
    "AgentSkill", "AuditEntry", "Base", "ContactPoint", "Customer", "CustomerNameToken",
    "DispositionCode", "Interaction", "InteractionEvent", "SurveyResult", "Team", "Ticket",
    "User", "team_members", "ticket_interactions",
]

import crm_core.fencing_models  # noqa: E402, F401  (cc_fence, issue 18: its table belongs to the schema)
