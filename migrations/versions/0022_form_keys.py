"""one-time form keys: a reload or a double click of a form that creates
something creates it once (broker/formkeys)

Revision ID: 0022
Revises: 0020
Create Date: 2026-12-07 09:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0022'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'form_keys',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('key_hash', sa.String(length=64), nullable=False),
        sa.Column('scope', sa.String(length=120), nullable=False),
        sa.Column('sealed', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_form_keys')),
        sa.UniqueConstraint('key_hash', name=op.f('uq_form_keys_key_hash')),
    )
    op.create_index(op.f('ix_form_keys_created_at'), 'form_keys', ['created_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_form_keys_created_at'), table_name='form_keys')
    op.drop_table('form_keys')
