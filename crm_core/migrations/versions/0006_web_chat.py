"""Web chat (issue 12): `chat_messages`, one row per message, numbered per chat.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "chat_messages",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("interaction_id", ID, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(8), nullable=False),
        sa.Column("author", sa.String(64), nullable=True),
        sa.Column("client_id", sa.String(64), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.CheckConstraint("sender IN ('customer', 'agent', 'bot', 'system')",
                           name=op.f("ck_chat_messages_sender")),
        sa.ForeignKeyConstraint(["interaction_id"], ["interactions.id"],
                                name=op.f("fk_chat_messages_interaction_id_interactions"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_messages")),
        sa.UniqueConstraint("interaction_id", "seq", name="uq_chat_messages_interaction_id_seq"),
        sa.UniqueConstraint("interaction_id", "client_id", name="uq_chat_messages_interaction_id_client_id"),
    )


def downgrade() -> None:
    op.drop_table("chat_messages")
