"""Reports: ended interactions waiting to be folded into the rollups (report_pending).

An interaction's end used to add its counters to the rollups in its own transaction (about ten
statements on the hot path); now that transaction only queues its id here, and the counters of
many interactions are folded in at once, in the background and before every report read.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "report_pending",
        sa.Column("interaction_id", ID, primary_key=True, autoincrement=False),
        sa.Column("marked", sa.Float(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("report_pending")
