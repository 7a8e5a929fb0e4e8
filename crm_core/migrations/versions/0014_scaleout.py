"""Scale-out: outbox and fencing (issue 18).

`cc_fence`: one row per lease-guarded writer (the AMI leader, each outbox partition). A write made
on behalf of a lease runs in the same transaction as an UPDATE of its row that only matches when
the writer's token is not older than the newest one seen (a stale leader's write is refused), and
it records the last outbox entry applied (a redelivered entry is skipped: exactly once).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cc_fence",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("token", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("last_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("cc_fence")
