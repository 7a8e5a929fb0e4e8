"""Roles, teams, administration: API tokens (sha256 only) and the teams that own queues (issue 14).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("last_used_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.CheckConstraint("role IN ('agent', 'supervisor', 'admin')", name=op.f("ck_api_tokens_role")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "queue_teams",
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("team_id", ID, nullable=False),
        sa.ForeignKeyConstraint(["queue"], ["queues.name"], name=op.f("fk_queue_teams_queue_queues"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], name=op.f("fk_queue_teams_team_id_teams"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("queue", "team_id", name=op.f("pk_queue_teams")),
    )
    op.create_table(
        "queue_policies",
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("policy", JSON, nullable=False),
        sa.ForeignKeyConstraint(["queue"], ["queues.name"], name=op.f("fk_queue_policies_queue_queues"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("queue", name=op.f("pk_queue_policies")),
    )
    op.create_table(
        "reason_codes",
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_reason_codes")),
    )
    op.create_table(
        "ivr_flow_versions",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ivr_flow_versions")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_ivr_flow_versions_name_version")),
    )


def downgrade() -> None:
    op.drop_table("ivr_flow_versions")
    op.drop_table("reason_codes")
    op.drop_table("queue_policies")
    op.drop_table("queue_teams")
    op.drop_table("api_tokens")
