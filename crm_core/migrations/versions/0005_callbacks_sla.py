"""Callbacks and ticket SLA escalation (issue 10): `callbacks`, `ticket_events`, `alerts`.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "callbacks",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("interaction_id", ID, nullable=False),
        sa.Column("origin_interaction_id", ID, nullable=True),
        sa.Column("customer_id", ID, nullable=True),
        sa.Column("requested_by", ID, nullable=True),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("skills", JSON, nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("last_outcome", sa.String(32), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("status IN ('scheduled', 'routing', 'offered', 'dialing', 'connected', "
                           "'failed', 'cancelled')", name=op.f("ck_callbacks_status")),
        sa.CheckConstraint("origin IN ('ivr', 'escalation', 'console')", name=op.f("ck_callbacks_origin")),
        sa.ForeignKeyConstraint(["interaction_id"], ["interactions.id"],
                                name=op.f("fk_callbacks_interaction_id_interactions"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["origin_interaction_id"], ["interactions.id"],
                                name=op.f("fk_callbacks_origin_interaction_id_interactions"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"],
                                name=op.f("fk_callbacks_customer_id_customers"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["requested_by"], ["users.id"],
                                name=op.f("fk_callbacks_requested_by_users"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callbacks")),
    )
    with op.batch_alter_table("callbacks", schema=None) as batch_op:
        batch_op.create_index("ix_callbacks_status_due_at", ["status", "due_at"], unique=False)
        batch_op.create_index("ix_callbacks_customer_id", ["customer_id"], unique=False)

    op.create_table(
        "ticket_events",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("ticket_id", ID, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"],
                                name=op.f("fk_ticket_events_ticket_id_tickets"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_events")),
    )
    with op.batch_alter_table("ticket_events", schema=None) as batch_op:
        batch_op.create_index("ix_ticket_events_ticket_id_kind", ["ticket_id", "kind"], unique=False)

    op.create_table(
        "alerts",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("message", sa.String(500), nullable=False),
        sa.Column("ticket_id", ID, nullable=True),
        sa.Column("queue", sa.String(64), nullable=True),
        sa.Column("data", JSON, nullable=False),
        sa.Column("acknowledged_at", TS, nullable=True),
        sa.Column("acknowledged_by", ID, nullable=True),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name=op.f("fk_alerts_ticket_id_tickets"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["acknowledged_by"], ["users.id"],
                                name=op.f("fk_alerts_acknowledged_by_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index("ix_alerts_acknowledged_at_at", ["acknowledged_at", "at"], unique=False)


def downgrade() -> None:
    op.drop_table("alerts")
    op.drop_table("ticket_events")
    op.drop_table("callbacks")
