"""pickup codes

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 21:02:00.773379
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pickup_code_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('pickup_attempts', sa.Integer(), server_default='0', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('pickup_attempts')
        batch_op.drop_column('pickup_code_hash')

