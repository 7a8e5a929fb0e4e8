"""Web sessions (server-side, token stored as a sha256 hash) and sign-in attempts (lock-out).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("remote", sa.String(64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_web_sessions_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_web_sessions_token_hash")),
    )
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_web_sessions_user_id", ["user_id"], unique=False)
        batch_op.create_index("ix_web_sessions_expires_at", ["expires_at"], unique=False)

    op.create_table(
        "login_attempts",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("remote", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(8), nullable=False),
        sa.CheckConstraint("outcome IN ('ok', 'fail', 'locked')", name=op.f("ck_login_attempts_outcome")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_attempts")),
    )
    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_login_attempts_username_at", ["username", "at"], unique=False)
        batch_op.create_index("ix_login_attempts_remote_at", ["remote", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_login_attempts_remote_at")
        batch_op.drop_index("ix_login_attempts_username_at")
    op.drop_table("login_attempts")
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_web_sessions_expires_at")
        batch_op.drop_index("ix_web_sessions_user_id")
    op.drop_table("web_sessions")
