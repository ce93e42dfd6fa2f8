"""storefront branding and stock

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 20:34:13.390491
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('manufacturers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('logo_url', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('color_primary', sa.String(length=7), server_default='#1d4ed8', nullable=False))
        batch_op.add_column(sa.Column('color_accent', sa.String(length=7), server_default='#f59e0b', nullable=False))
        batch_op.add_column(sa.Column('locale', sa.String(length=16), server_default='en_US', nullable=False))
        batch_op.add_column(sa.Column('custom_domain', sa.String(length=253), nullable=True))
        batch_op.add_column(sa.Column('frame_origins', sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
        batch_op.add_column(sa.Column('return_window_days', sa.Integer(), server_default='30', nullable=False))
        batch_op.create_unique_constraint(batch_op.f('uq_manufacturers_custom_domain'), ['custom_domain'])

    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.add_column(sa.Column('in_stock', sa.Boolean(), server_default=sa.true(), nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.drop_column('in_stock')

    with op.batch_alter_table('manufacturers', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_manufacturers_custom_domain'), type_='unique')
        batch_op.drop_column('return_window_days')
        batch_op.drop_column('frame_origins')
        batch_op.drop_column('custom_domain')
        batch_op.drop_column('locale')
        batch_op.drop_column('color_accent')
        batch_op.drop_column('color_primary')
        batch_op.drop_column('logo_url')

