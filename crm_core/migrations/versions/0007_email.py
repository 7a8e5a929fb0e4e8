"""Email channel (issue 13): messages (raw kept whole), attachments, IMAP messages taken.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "email_messages",
        sa.Column("id", _id, autoincrement=True, nullable=False),
        sa.Column("interaction_id", _id, sa.ForeignKey(
            "interactions.id", ondelete="SET NULL", name="fk_email_messages_interaction_id_interactions"),
            nullable=True),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("message_id", sa.String(500), nullable=True),
        sa.Column("in_reply_to", sa.String(500), nullable=True),
        sa.Column("refs", _json, nullable=False),
        sa.Column("thread_id", _id, nullable=True),
        sa.Column("ticket_id", _id, sa.ForeignKey(
            "tickets.id", ondelete="SET NULL", name="fk_email_messages_ticket_id_tickets"), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("from_address", sa.String(320), nullable=True),
        sa.Column("to_addresses", _json, nullable=False),
        sa.Column("envelope_from", sa.String(320), nullable=True),
        sa.Column("envelope_to", _json, nullable=False),
        sa.Column("text_body", sa.Text(), nullable=True),
        sa.Column("html_safe", sa.Text(), nullable=True),
        sa.Column("auto", sa.String(64), nullable=True),
        sa.Column("problems", _json, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_email_messages"),
    )
    op.create_index("ix_email_messages_message_id", "email_messages", ["message_id"])
    op.create_index("ix_email_messages_thread_id", "email_messages", ["thread_id"])
    op.create_index("ix_email_messages_interaction_id", "email_messages", ["interaction_id"])
    op.create_table(
        "email_attachments",
        sa.Column("id", _id, autoincrement=True, nullable=False),
        sa.Column("email_id", _id, sa.ForeignKey(
            "email_messages.id", ondelete="CASCADE", name="fk_email_attachments_email_id_email_messages"),
            nullable=False),
        sa.Column("stored_name", sa.String(64), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(127), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_email_attachments"),
        sa.UniqueConstraint("stored_name", name="uq_email_attachments_stored_name"),
    )
    op.create_index("ix_email_attachments_email_id", "email_attachments", ["email_id"])
    op.create_table(
        "email_imap_taken",
        sa.Column("mailbox", sa.String(300), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("email_id", _id, sa.ForeignKey(
            "email_messages.id", ondelete="SET NULL", name="fk_email_imap_taken_email_id_email_messages"),
            nullable=True),
        sa.Column("taken_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("mailbox", "uidvalidity", "uid", name="pk_email_imap_taken"),
    )


def downgrade() -> None:
    op.drop_table("email_imap_taken")
    op.drop_index("ix_email_attachments_email_id", table_name="email_attachments")
    op.drop_table("email_attachments")
    op.drop_index("ix_email_messages_interaction_id", table_name="email_messages")
    op.drop_index("ix_email_messages_thread_id", table_name="email_messages")
    op.drop_index("ix_email_messages_message_id", table_name="email_messages")
    op.drop_table("email_messages")
