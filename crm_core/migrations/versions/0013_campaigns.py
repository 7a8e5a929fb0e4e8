"""Outbound campaigns (issue 17): `campaigns`, `campaign_records`, `campaign_attempts`, `campaign_dnc`.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("queue", sa.String(64), nullable=True),
        sa.Column("skills", JSON, nullable=False),
        sa.Column("script", sa.Text(), nullable=True),
        sa.Column("dispositions", JSON, nullable=False),
        sa.Column("segment", JSON, nullable=True),
        sa.Column("schedule", JSON, nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("retry_s", JSON, nullable=False),
        sa.Column("abandon_cap_pct", sa.Float(), nullable=False),
        sa.Column("subject", sa.String(300), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("rate_per_min", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("channel IN ('voice', 'email')", name=op.f("ck_campaigns_channel")),
        sa.CheckConstraint("mode IN ('preview', 'progressive', 'predictive', 'email')",
                           name=op.f("ck_campaigns_mode")),
        sa.CheckConstraint("status IN ('draft', 'running', 'paused', 'stopped', 'finished')",
                           name=op.f("ck_campaigns_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
        sa.UniqueConstraint("name", name=op.f("uq_campaigns_name")),
    )
    op.create_table(
        "campaign_records",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("campaign_id", ID, nullable=False),
        sa.Column("customer_id", ID, nullable=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("phone", sa.String(32), nullable=True),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", TS, nullable=True),
        sa.Column("last_outcome", sa.String(32), nullable=True),
        sa.Column("disposition", sa.String(64), nullable=True),
        sa.Column("interaction_id", ID, nullable=True),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("status IN ('pending', 'active', 'done', 'failed', 'skipped', 'excluded')",
                           name=op.f("ck_campaign_records_status")),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"],
                                name=op.f("fk_campaign_records_campaign_id_campaigns"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"],
                                name=op.f("fk_campaign_records_customer_id_customers"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["interaction_id"], ["interactions.id"],
                                name=op.f("fk_campaign_records_interaction_id_interactions"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_records")),
        sa.UniqueConstraint("token", name=op.f("uq_campaign_records_token")),
    )
    with op.batch_alter_table("campaign_records", schema=None) as batch_op:
        batch_op.create_index("ix_campaign_records_campaign_id_status_next_at",
                              ["campaign_id", "status", "next_at"], unique=False)
    op.create_table(
        "campaign_attempts",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("campaign_id", ID, nullable=False),
        sa.Column("record_id", ID, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("agent", sa.String(64), nullable=True),
        sa.Column("interaction_id", ID, nullable=True),
        sa.Column("data", JSON, nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"],
                                name=op.f("fk_campaign_attempts_campaign_id_campaigns"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["record_id"], ["campaign_records.id"],
                                name=op.f("fk_campaign_attempts_record_id_campaign_records"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["interaction_id"], ["interactions.id"],
                                name=op.f("fk_campaign_attempts_interaction_id_interactions"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_attempts")),
    )
    with op.batch_alter_table("campaign_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_campaign_attempts_campaign_id_outcome", ["campaign_id", "outcome"],
                              unique=False)
    op.create_table(
        "campaign_dnc",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("value", sa.String(320), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("campaign_id", ID, nullable=True),
        sa.Column("added_at", TS, nullable=False),
        sa.CheckConstraint("kind IN ('phone', 'email')", name=op.f("ck_campaign_dnc_kind")),
        sa.CheckConstraint("reason IN ('dnc', 'unsubscribe', 'bounce')", name=op.f("ck_campaign_dnc_reason")),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"],
                                name=op.f("fk_campaign_dnc_campaign_id_campaigns"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_dnc")),
        sa.UniqueConstraint("kind", "value", name=op.f("uq_campaign_dnc_kind_value")),
    )


def downgrade() -> None:
    op.drop_table("campaign_dnc")
    op.drop_table("campaign_attempts")
    op.drop_table("campaign_records")
    op.drop_table("campaigns")
