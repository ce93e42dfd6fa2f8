"""a store's custom domain is served only once verified

`domain_token` is what Broker expects back from
http://<custom_domain>/.well-known/broker-domain/<token>; `domain_verified_at`
says it came back. Domains set before this revision have neither: they serve
nothing until their store verifies them.

Revision ID: 0018
Revises: 0014
Create Date: 2026-12-07 09:00:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import broker.db


revision = '0018'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('manufacturers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('domain_token', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('domain_claimed_at', broker.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('domain_verified_at', broker.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('manufacturers', schema=None) as batch_op:
        batch_op.drop_column('domain_verified_at')
        batch_op.drop_column('domain_claimed_at')
        batch_op.drop_column('domain_token')
