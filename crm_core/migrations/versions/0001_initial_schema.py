# ruff: noqa: E501
"""Initial schema: customers, contact points, users and teams, interactions, tickets, surveys,
disposition codes and the audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Written to run on SQLite (batch mode) and PostgreSQL alike. Types per backend:
- ids: BIGINT on PostgreSQL, INTEGER (rowid alias) on SQLite;
- times: timestamptz on PostgreSQL, naive UTC on SQLite (crm_core.types.UTCDateTime);
- money: NUMERIC(14, 2) on PostgreSQL, integer cents on SQLite (crm_core.types.Money);
- search keys: COLLATE "C" on PostgreSQL so that prefix ranges use the btree index.
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
MONEY = sa.Numeric(14, 2).with_variant(sa.BigInteger(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def cstr(length: int) -> sa.types.TypeEngine:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('at', TS, nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('entity', sa.String(length=64), nullable=False),
    sa.Column('entity_id', sa.String(length=64), nullable=True),
    sa.Column('before', JSON, nullable=True),
    sa.Column('after', JSON, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_at', ['at'], unique=False)
        batch_op.create_index('ix_audit_log_entity_entity_id', ['entity', 'entity_id'], unique=False)

    op.create_table('customers',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('name_key', cstr(200), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('tier', sa.String(length=16), nullable=False),
    sa.Column('tier_override', sa.String(length=16), nullable=True),
    sa.Column('loyalty', sa.String(length=16), nullable=False),
    sa.Column('tags', JSON, nullable=False),
    sa.Column('lifetime_value', MONEY, nullable=False),
    sa.Column('language', sa.String(length=16), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('contact_count', sa.Integer(), nullable=False),
    sa.Column('first_contact_at', TS, nullable=True),
    sa.Column('last_contact_at', TS, nullable=True),
    sa.Column('csat_sum', sa.Integer(), nullable=False),
    sa.Column('csat_count', sa.Integer(), nullable=False),
    sa.Column('created_at', TS, nullable=False),
    sa.Column('updated_at', TS, nullable=False),
    sa.CheckConstraint("loyalty IN ('potential', 'new', 'returning', 'loyal', 'lost')", name=op.f('ck_customers_loyalty')),
    sa.CheckConstraint("tier IN ('vip', 'key', 'regular')", name=op.f('ck_customers_tier')),
    sa.CheckConstraint("tier_override IS NULL OR tier_override IN ('vip', 'key', 'regular')", name=op.f('ck_customers_tier_override')),
    sa.CheckConstraint("type IN ('prospect', 'customer', 'partner', 'blacklisted')", name=op.f('ck_customers_type')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customers'))
    )
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.create_index('ix_customers_name_key', ['name_key'], unique=False)
        batch_op.create_index('ix_customers_tier', ['tier'], unique=False)

    op.create_table('disposition_codes',
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_disposition_codes'))
    )
    op.create_table('teams',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=True),
    sa.Column('created_at', TS, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_teams')),
    sa.UniqueConstraint('name', name=op.f('uq_teams_name'))
    )
    op.create_table('users',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('username', cstr(64), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('roles', JSON, nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('extension', sa.String(length=32), nullable=True),
    sa.Column('device', sa.String(length=128), nullable=True),
    sa.Column('capacity_voice', sa.Integer(), nullable=False),
    sa.Column('capacity_chat', sa.Integer(), nullable=False),
    sa.Column('capacity_email', sa.Integer(), nullable=False),
    sa.Column('created_at', TS, nullable=False),
    sa.Column('updated_at', TS, nullable=False),
    sa.Column('last_login_at', TS, nullable=True),
    sa.CheckConstraint('capacity_voice >= 0 AND capacity_chat >= 0 AND capacity_email >= 0', name=op.f('ck_users_capacities')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('extension', name=op.f('uq_users_extension')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('agent_skills',
    sa.Column('user_id', ID, nullable=False),
    sa.Column('skill', sa.String(length=64), nullable=False),
    sa.Column('proficiency', sa.Integer(), nullable=False),
    sa.CheckConstraint('proficiency BETWEEN 1 AND 10', name=op.f('ck_agent_skills_proficiency')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_agent_skills_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'skill', name=op.f('pk_agent_skills'))
    )
    with op.batch_alter_table('agent_skills', schema=None) as batch_op:
        batch_op.create_index('ix_agent_skills_skill', ['skill'], unique=False)

    op.create_table('contact_points',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('customer_id', ID, nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('value', cstr(320), nullable=False),
    sa.Column('label', sa.String(length=32), nullable=True),
    sa.Column('created_at', TS, nullable=False),
    sa.CheckConstraint("kind IN ('phone', 'email', 'chat')", name=op.f('ck_contact_points_kind')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_contact_points_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_points')),
    sa.UniqueConstraint('kind', 'value', name='uq_contact_points_kind_value')
    )
    with op.batch_alter_table('contact_points', schema=None) as batch_op:
        batch_op.create_index('ix_contact_points_customer_id', ['customer_id'], unique=False)

    op.create_table('customer_name_tokens',
    sa.Column('token', cstr(64), nullable=False),
    sa.Column('customer_id', ID, nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_customer_name_tokens_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token', 'customer_id', name=op.f('pk_customer_name_tokens'))
    )
    with op.batch_alter_table('customer_name_tokens', schema=None) as batch_op:
        batch_op.create_index('ix_customer_name_tokens_customer_id', ['customer_id'], unique=False)

    op.create_table('interactions',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('customer_id', ID, nullable=True),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('direction', sa.String(length=8), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('external_id', sa.String(length=128), nullable=True),
    sa.Column('from_address', sa.String(length=320), nullable=True),
    sa.Column('to_address', sa.String(length=320), nullable=True),
    sa.Column('created_at', TS, nullable=False),
    sa.Column('queued_at', TS, nullable=True),
    sa.Column('offered_at', TS, nullable=True),
    sa.Column('answered_at', TS, nullable=True),
    sa.Column('ended_at', TS, nullable=True),
    sa.Column('wrapup_done_at', TS, nullable=True),
    sa.Column('ivr_path', JSON, nullable=False),
    sa.Column('queue', sa.String(length=64), nullable=True),
    sa.Column('skills', JSON, nullable=False),
    sa.Column('agent_id', ID, nullable=True),
    sa.Column('disposition_code', sa.String(length=64), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('transcript_ref', sa.String(length=500), nullable=True),
    sa.Column('recording_ref', sa.String(length=500), nullable=True),
    sa.Column('csat_score', sa.Integer(), nullable=True),
    sa.Column('escalation_steps', JSON, nullable=False),
    sa.Column('updated_at', TS, nullable=False),
    sa.CheckConstraint("channel IN ('voice', 'chat', 'email')", name=op.f('ck_interactions_channel')),
    sa.CheckConstraint("direction IN ('inbound', 'outbound')", name=op.f('ck_interactions_direction')),
    sa.CheckConstraint("state IN ('new', 'ivr', 'queued', 'offered', 'answered', 'ended', 'wrapup_done', 'abandoned', 'failed')", name=op.f('ck_interactions_state')),
    sa.ForeignKeyConstraint(['agent_id'], ['users.id'], name=op.f('fk_interactions_agent_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_interactions_customer_id_customers'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_interactions'))
    )
    with op.batch_alter_table('interactions', schema=None) as batch_op:
        batch_op.create_index('ix_interactions_agent_id_created_at', ['agent_id', 'created_at'], unique=False)
        batch_op.create_index('ix_interactions_created_at', ['created_at'], unique=False)
        batch_op.create_index('ix_interactions_customer_id_created_at', ['customer_id', 'created_at'], unique=False)
        batch_op.create_index('ix_interactions_external_id', ['external_id'], unique=False)

    op.create_table('team_members',
    sa.Column('team_id', ID, nullable=False),
    sa.Column('user_id', ID, nullable=False),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_team_members_team_id_teams'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_team_members_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('team_id', 'user_id', name=op.f('pk_team_members'))
    )
    with op.batch_alter_table('team_members', schema=None) as batch_op:
        batch_op.create_index('ix_team_members_user_id', ['user_id'], unique=False)

    op.create_table('tickets',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('number', cstr(32), nullable=False),
    sa.Column('customer_id', ID, nullable=True),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('priority', sa.String(length=8), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('sla_due_at', TS, nullable=True),
    sa.Column('assignee_id', ID, nullable=True),
    sa.Column('escalation_queue', sa.String(length=64), nullable=True),
    sa.Column('created_at', TS, nullable=False),
    sa.Column('updated_at', TS, nullable=False),
    sa.Column('solved_at', TS, nullable=True),
    sa.Column('closed_at', TS, nullable=True),
    sa.CheckConstraint("priority IN ('low', 'normal', 'high', 'urgent')", name=op.f('ck_tickets_priority')),
    sa.CheckConstraint("status IN ('open', 'pending', 'solved', 'closed')", name=op.f('ck_tickets_status')),
    sa.CheckConstraint("type IN ('service_request', 'complaint', 'inquiry')", name=op.f('ck_tickets_type')),
    sa.ForeignKeyConstraint(['assignee_id'], ['users.id'], name=op.f('fk_tickets_assignee_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_tickets_customer_id_customers'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tickets')),
    sa.UniqueConstraint('number', name=op.f('uq_tickets_number'))
    )
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index('ix_tickets_assignee_id_status', ['assignee_id', 'status'], unique=False)
        batch_op.create_index('ix_tickets_customer_id_status', ['customer_id', 'status'], unique=False)
        batch_op.create_index('ix_tickets_status_sla_due_at', ['status', 'sla_due_at'], unique=False)

    op.create_table('interaction_events',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('interaction_id', ID, nullable=False),
    sa.Column('at', TS, nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('data', JSON, nullable=False),
    sa.ForeignKeyConstraint(['interaction_id'], ['interactions.id'], name=op.f('fk_interaction_events_interaction_id_interactions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_interaction_events'))
    )
    with op.batch_alter_table('interaction_events', schema=None) as batch_op:
        batch_op.create_index('ix_interaction_events_interaction_id_id', ['interaction_id', 'id'], unique=False)

    op.create_table('survey_results',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('interaction_id', ID, nullable=True),
    sa.Column('customer_id', ID, nullable=True),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('created_at', TS, nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_survey_results_customer_id_customers'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['interaction_id'], ['interactions.id'], name=op.f('fk_survey_results_interaction_id_interactions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_survey_results'))
    )
    with op.batch_alter_table('survey_results', schema=None) as batch_op:
        batch_op.create_index('ix_survey_results_customer_id_created_at', ['customer_id', 'created_at'], unique=False)
        batch_op.create_index('ix_survey_results_interaction_id', ['interaction_id'], unique=False)

    op.create_table('ticket_interactions',
    sa.Column('ticket_id', ID, nullable=False),
    sa.Column('interaction_id', ID, nullable=False),
    sa.ForeignKeyConstraint(['interaction_id'], ['interactions.id'], name=op.f('fk_ticket_interactions_interaction_id_interactions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_ticket_interactions_ticket_id_tickets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('ticket_id', 'interaction_id', name=op.f('pk_ticket_interactions'))
    )
    with op.batch_alter_table('ticket_interactions', schema=None) as batch_op:
        batch_op.create_index('ix_ticket_interactions_interaction_id', ['interaction_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('ticket_interactions', schema=None) as batch_op:
        batch_op.drop_index('ix_ticket_interactions_interaction_id')

    op.drop_table('ticket_interactions')
    with op.batch_alter_table('survey_results', schema=None) as batch_op:
        batch_op.drop_index('ix_survey_results_interaction_id')
        batch_op.drop_index('ix_survey_results_customer_id_created_at')

    op.drop_table('survey_results')
    with op.batch_alter_table('interaction_events', schema=None) as batch_op:
        batch_op.drop_index('ix_interaction_events_interaction_id_id')

    op.drop_table('interaction_events')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_status_sla_due_at')
        batch_op.drop_index('ix_tickets_customer_id_status')
        batch_op.drop_index('ix_tickets_assignee_id_status')

    op.drop_table('tickets')
    with op.batch_alter_table('team_members', schema=None) as batch_op:
        batch_op.drop_index('ix_team_members_user_id')

    op.drop_table('team_members')
    with op.batch_alter_table('interactions', schema=None) as batch_op:
        batch_op.drop_index('ix_interactions_external_id')
        batch_op.drop_index('ix_interactions_customer_id_created_at')
        batch_op.drop_index('ix_interactions_created_at')
        batch_op.drop_index('ix_interactions_agent_id_created_at')

    op.drop_table('interactions')
    with op.batch_alter_table('customer_name_tokens', schema=None) as batch_op:
        batch_op.drop_index('ix_customer_name_tokens_customer_id')

    op.drop_table('customer_name_tokens')
    with op.batch_alter_table('contact_points', schema=None) as batch_op:
        batch_op.drop_index('ix_contact_points_customer_id')

    op.drop_table('contact_points')
    with op.batch_alter_table('agent_skills', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_skills_skill')

    op.drop_table('agent_skills')
    op.drop_table('users')
    op.drop_table('teams')
    op.drop_table('disposition_codes')
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index('ix_customers_tier')
        batch_op.drop_index('ix_customers_name_key')

    op.drop_table('customers')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_entity_entity_id')
        batch_op.drop_index('ix_audit_log_at')

    op.drop_table('audit_log')
