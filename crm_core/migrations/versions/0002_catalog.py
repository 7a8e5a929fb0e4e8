"""Routing catalog: skills and queues.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "skills",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_skills")),
    )
    op.create_table(
        "queues",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("skills", JSON, nullable=False),
        sa.Column("sl_target_s", sa.Integer(), nullable=False),
        sa.Column("sl_target_pct", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "sl_target_s > 0 AND sl_target_pct BETWEEN 1 AND 100", name=op.f("ck_queues_sl_target")
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_queues")),
    )


def downgrade() -> None:
    op.drop_table("queues")
    op.drop_table("skills")
