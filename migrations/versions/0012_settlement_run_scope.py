"""settlement runs record their scope: a shard of the manufacturers, or named manufacturers

NULL, as for every run before, means the run took every due listing.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-25 10:00:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('settlement_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scope', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('settlement_runs', schema=None) as batch_op:
        batch_op.drop_column('scope')
