"""Baseline: every table of the store, as it was when migrations began.

Also adopts a store that the embedded mode created before migrations existed (``create_all``, no
``alembic_version``): tables that are there are kept with their rows; what an older version did not
create is added (a table, a column, an index); and on PostgreSQL the 64-bit columns that older
versions made 32-bit (steps, exit codes) are widened, so a step past 2**31 is stored there too.
A fresh database simply gets every table.

The tables are written out here, not taken from the models: a later model change must come with a
revision of its own, and must not change what this one did.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_META = sa.MetaData()

sa.Table(
    'deliveries', _META,
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('alert_uid', sa.String(), nullable=False),
    sa.Column('destination', sa.String(), nullable=False),
    sa.Column('user', sa.String(), nullable=False),
    sa.Column('group_key', sa.String(), nullable=False),
    sa.Column('level', sa.String(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('state', sa.String(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('next_attempt_at', sa.Float(), nullable=False),
    sa.Column('lease_until', sa.Float(), nullable=True),
    sa.Column('lease_owner', sa.String(), nullable=True),
    sa.Column('sent_at', sa.Float(), nullable=True),
    sa.Column('carried_by', sa.Integer(), nullable=True),
    sa.Column('message_id', sa.String(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.Index('ix_deliveries_alert_uid', 'alert_uid', unique=False),
    sa.Index('ix_deliveries_destination', 'destination', unique=False),
    sa.Index('ix_deliveries_due', 'state', 'next_attempt_at', unique=False),
)

sa.Table(
    'delivery_state', _META,
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('tokens', sa.Float(), nullable=True),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.Column('last_sent_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('key'),
)

sa.Table(
    'leases', _META,
    sa.Column('name', sa.String(), nullable=False),
    sa.Column('holder', sa.String(), nullable=False),
    sa.Column('host', sa.String(), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('until', sa.Float(), nullable=False),
    sa.Column('acquired_at', sa.Float(), nullable=False),
    sa.Column('renewed_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('name'),
)

sa.Table(
    'runs', _META,
    sa.Column('id', sa.String(64), nullable=False),
    sa.Column('owner', sa.String(), nullable=False),
    sa.Column('project', sa.String(), nullable=False),
    sa.Column('name', sa.String(), nullable=False),
    sa.Column('group', sa.String(), nullable=True),
    sa.Column('job_type', sa.String(), nullable=True),
    sa.Column('tags', sa.Text(), nullable=False),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('config', sa.Text(), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('state', sa.String(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.Column('heartbeat_at', sa.Float(), nullable=False),
    sa.Column('finished_at', sa.Float(), nullable=True),
    sa.Column('exit_code', sa.BigInteger(), nullable=True),
    sa.Column('error_type', sa.String(), nullable=True),
    sa.Column('error_text', sa.Text(), nullable=True),
    sa.Column('last_step', sa.BigInteger(), nullable=False),
    sa.Column('host', sa.String(), nullable=True),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.Index('ix_runs_owner', 'owner', unique=False),
    sa.Index('ix_runs_project', 'project', unique=False),
    sa.Index('ix_runs_state', 'state', unique=False),
)

sa.Table(
    'silences', _META,
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('matchers', sa.Text(), nullable=False),
    sa.Column('starts_at', sa.Float(), nullable=False),
    sa.Column('ends_at', sa.Float(), nullable=False),
    sa.Column('created_by', sa.String(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.Index('ix_silences_ends_at', 'ends_at', unique=False),
)

sa.Table(
    'users', _META,
    sa.Column('name', sa.String(64), nullable=False),
    sa.Column('is_admin', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('name'),
)

sa.Table(
    'alerts', _META,
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uid', sa.String(), nullable=True),
    sa.Column('run_id', sa.String(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('source', sa.String(), nullable=False),
    sa.Column('rule', sa.String(), nullable=True),
    sa.Column('status', sa.String(), nullable=False),
    sa.Column('metric', sa.String(), nullable=True),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('level', sa.String(), nullable=False),
    sa.Column('outcome', sa.String(), nullable=False),
    sa.Column('reason', sa.String(), nullable=True),
    sa.Column('wait_duration', sa.Float(), nullable=False),
    sa.Column('step', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.Index('ix_alerts_run_id', 'run_id', unique=False),
    sa.Index('ix_alerts_uid', 'uid', unique=False),
)

sa.Table(
    'api_keys', _META,
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user', sa.String(), nullable=False),
    sa.Column('prefix', sa.String(), nullable=False),
    sa.Column('key_hash', sa.Text(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('last_used_at', sa.Float(), nullable=True),
    sa.Column('revoked_at', sa.Float(), nullable=True),
    sa.Column('label', sa.String(), nullable=False),
    sa.ForeignKeyConstraint(['user'], ['users.name'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_hash'),
    sa.Index('ix_api_keys_prefix', 'prefix', unique=False),
    sa.Index('ix_api_keys_user', 'user', unique=False),
)

sa.Table(
    'history_chunks', _META,
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.String(), nullable=False),
    sa.Column('first_step', sa.BigInteger(), nullable=False),
    sa.Column('last_step', sa.BigInteger(), nullable=False),
    sa.Column('n_rows', sa.Integer(), nullable=False),
    sa.Column('last_time', sa.Float(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.Index('ix_history_chunks_run_step', 'run_id', 'first_step', unique=False),
)

sa.Table(
    'media', _META,
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.String(), nullable=False),
    sa.Column('step', sa.BigInteger(), nullable=False),
    sa.Column('key', sa.String(), nullable=False),
    sa.Column('kind', sa.String(), nullable=False),
    sa.Column('path', sa.String(), nullable=False),
    sa.Column('meta', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.Index('ix_media_run_id', 'run_id', unique=False),
)


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    existing = set(inspector.get_table_names())
    for table in _META.sorted_tables:  # parents before the tables that refer to them
        if table.name not in existing:
            table.create(bind)
            continue
        _adopt(bind, inspector, table)


def _adopt(bind, inspector, table: sa.Table) -> None:
    """Bring a table an older version created up to this revision, keeping its rows."""
    columns = {c["name"]: c for c in inspector.get_columns(table.name)}
    for column in table.columns:
        if column.name not in columns:
            # Added by a later version than the one that made this store: nullable, so old rows fit.
            op.add_column(table.name, sa.Column(column.name, column.type, nullable=True))
        elif (bind.dialect.name == "postgresql" and isinstance(column.type, sa.BigInteger)
              and not isinstance(columns[column.name]["type"], sa.BigInteger)):
            op.alter_column(table.name, column.name, type_=sa.BigInteger(),
                            existing_type=columns[column.name]["type"], existing_nullable=column.nullable)
    indexes = {index["name"] for index in inspector.get_indexes(table.name)}
    for index in table.indexes:
        if index.name not in indexes:
            index.create(bind)


def downgrade() -> None:
    for table in reversed(_META.sorted_tables):
        table.drop(op.get_bind(), checkfirst=True)
