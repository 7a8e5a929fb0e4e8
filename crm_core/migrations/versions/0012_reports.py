"""Report rollups (issue 16): per-slot contact and agent-time counters, customer snapshots
and moves, daily-summary subscriptions.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
S = sa.String


def _int(name: str) -> sa.Column:
    return sa.Column(name, sa.Integer(), nullable=False)


def _float(name: str) -> sa.Column:
    return sa.Column(name, sa.Float(), nullable=False)


def _measures() -> list[sa.Column]:
    return [
        _int("contacts"),
        _int("offered"),
        _int("answered"),
        _int("answered_in_sl"),
        _int("abandoned"),
        _int("short_abandoned"),
        _float("wait_answered_s"),
        _int("handled"),
        _float("talk_s"),
        _float("wrap_s"),
        _int("transferred"),
        _int("repeats"),
        _int("fcr"),
        _int("csat_sum"),
        _int("csat_n"),
        _int("csat_good"),
    ]


def upgrade() -> None:
    op.create_table(
        "report_contacts",
        _int("slot"),
        sa.Column("queue", S(64), nullable=False),
        sa.Column("agent_id", ID, nullable=False),
        sa.Column("team", S(64), nullable=False),
        sa.Column("channel", S(8), nullable=False),
        sa.Column("tier", S(16), nullable=False),
        sa.Column("disposition", S(64), nullable=False),
        *_measures(),
        sa.PrimaryKeyConstraint(
            "slot",
            "queue",
            "agent_id",
            "team",
            "channel",
            "tier",
            "disposition",
            name=op.f("pk_report_contacts"),
        ),
    )
    op.create_table(
        "report_contacts_hour",
        _int("slot"),
        sa.Column("queue", S(64), nullable=False),
        sa.Column("agent_id", ID, nullable=False),
        sa.Column("team", S(64), nullable=False),
        sa.Column("channel", S(8), nullable=False),
        sa.Column("tier", S(16), nullable=False),
        *_measures(),
        sa.PrimaryKeyConstraint(
            "slot", "queue", "agent_id", "team", "channel", "tier", name=op.f("pk_report_contacts_hour")
        ),
    )
    op.create_table(
        "report_contacts_day",
        _int("shift"),
        _int("slot"),
        sa.Column("queue", S(64), nullable=False),
        sa.Column("team", S(64), nullable=False),
        sa.Column("channel", S(8), nullable=False),
        sa.Column("tier", S(16), nullable=False),
        *_measures(),
        sa.PrimaryKeyConstraint(
            "shift", "slot", "queue", "team", "channel", "tier", name=op.f("pk_report_contacts_day")
        ),
    )
    op.create_table(
        "report_contacts_agent_day",
        _int("slot"),
        sa.Column("agent_id", ID, nullable=False),
        sa.Column("team", S(64), nullable=False),
        sa.Column("queue", S(64), nullable=False),
        *_measures(),
        sa.PrimaryKeyConstraint(
            "slot", "agent_id", "queue", "team", name=op.f("pk_report_contacts_agent_day")
        ),
    )
    op.create_table(
        "report_contacts_disposition_day",
        _int("slot"),
        sa.Column("disposition", S(64), nullable=False),
        sa.Column("team", S(64), nullable=False),
        sa.Column("queue", S(64), nullable=False),
        *_measures(),
        sa.PrimaryKeyConstraint(
            "slot", "disposition", "queue", "team", name=op.f("pk_report_contacts_disposition_day")
        ),
    )
    for name in ("report_agent_time", "report_agent_time_day"):
        op.create_table(
            name,
            _int("slot"),
            sa.Column("agent_id", ID, nullable=False),
            sa.Column("team", S(64), nullable=False),
            sa.Column("state", S(16), nullable=False),
            sa.Column("reason", S(64), nullable=False),
            _float("seconds"),
            sa.PrimaryKeyConstraint("slot", "agent_id", "team", "state", "reason", name=op.f(f"pk_{name}")),
        )
    op.create_table(
        "report_customer_state",
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("tier", S(16), nullable=False),
        sa.Column("loyalty", S(16), nullable=False),
        sa.Column("type", S(16), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_report_customer_state")),
    )
    op.create_table(
        "report_customer_moves",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        _int("day"),
        sa.Column("customer_id", ID, nullable=False),
        *(
            sa.Column(f"{a}_{b}", S(16), nullable=False)
            for b in ("tier", "loyalty", "type")
            for a in ("from", "to")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_customer_moves")),
    )
    op.create_index("ix_report_customer_moves_day", "report_customer_moves", ["day"])
    op.create_table(
        "report_customer_counts",
        _int("day"),
        sa.Column("tier", S(16), nullable=False),
        sa.Column("loyalty", S(16), nullable=False),
        sa.Column("type", S(16), nullable=False),
        sa.Column("customers", ID, nullable=False),
        sa.PrimaryKeyConstraint("day", "tier", "loyalty", "type", name=op.f("pk_report_customer_counts")),
    )
    op.create_table(
        "report_subscriptions",
        sa.Column("user_id", ID, nullable=False),
        sa.Column("email", S(320), nullable=False),
        sa.Column("tz", S(64), nullable=False),
        sa.Column("last_day", S(10), nullable=True),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_report_subscriptions")),
    )


def downgrade() -> None:
    for t in (
        "report_subscriptions",
        "report_customer_counts",
        "report_customer_moves",
        "report_customer_state",
        "report_agent_time_day",
        "report_agent_time",
        "report_contacts_disposition_day",
        "report_contacts_agent_day",
        "report_contacts_day",
        "report_contacts_hour",
        "report_contacts",
    ):
        op.drop_table(t)
