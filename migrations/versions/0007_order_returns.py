"""order returns

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 20:40:26.172204
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import broker.db


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('return_requested_at', broker.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('return_reason', sa.String(length=500), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('return_reason')
        batch_op.drop_column('return_requested_at')

