"""Channels made through the API (api_channels), and silences that mute one user's deliveries (silences.user).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_channels',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user', sa.String(), nullable=False),
    sa.Column('name', sa.String(), nullable=False),
    sa.Column('type', sa.String(), nullable=False),
    sa.Column('config', sa.Text(), nullable=False),
    sa.Column('secrets', sa.Text(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.Column('etag', sa.String(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user', 'name', name='uq_api_channels_user_name')
    )
    with op.batch_alter_table('api_channels', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_channels_user'), ['user'], unique=False)

    with op.batch_alter_table('silences', schema=None) as batch_op:
        batch_op.add_column(sa.Column('user', sa.String(), nullable=True))
        batch_op.create_index(batch_op.f('ix_silences_user'), ['user'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('silences', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_silences_user'))
        batch_op.drop_column('user')

    with op.batch_alter_table('api_channels', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_channels_user'))

    op.drop_table('api_channels')
