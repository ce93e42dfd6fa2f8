"""settlement heartbeat, lapse warnings, outbox

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 19:17:03.162558
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import broker.db


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('outbox_messages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('topic', sa.String(length=60), nullable=False),
    sa.Column('dedupe_key', sa.String(length=120), nullable=False),
    sa.Column('recipient_kind', sa.String(length=16), nullable=False),
    sa.Column('recipient_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('created_at', broker.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', broker.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_messages')),
    sa.UniqueConstraint('topic', 'dedupe_key', name=op.f('uq_outbox_messages_topic_dedupe_key'))
    )
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_messages_sent_at_id', ['sent_at', 'id'], unique=False)

    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('warned_at', broker.db.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('settlement_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('heartbeat_at', broker.db.UTCDateTime(timezone=True), nullable=True))
        # Existing runs predate the column: they get an empty worker.
        batch_op.add_column(sa.Column('worker', sa.String(length=120), nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('settlement_runs', schema=None) as batch_op:
        batch_op.drop_column('worker')
        batch_op.drop_column('heartbeat_at')

    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.drop_column('warned_at')

    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_messages_sent_at_id')

    op.drop_table('outbox_messages')
