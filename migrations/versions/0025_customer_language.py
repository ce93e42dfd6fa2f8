"""the customer's language on an order and a personal request

* `orders.language`, `personal_requests.language`: the language the customer
  used when placing the order or posting the request ("de", "fr", "es", "ja",
  "en"); the emails to the customer are written in it. NULL for those from
  before this revision and for API clients that name none: the store's
  locale's language, else English.

Revision ID: 0025
Revises: 0021
Create Date: 2026-12-07 12:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0025'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('orders') as batch:
        batch.add_column(sa.Column('language', sa.String(length=8), nullable=True))
    with op.batch_alter_table('personal_requests') as batch:
        batch.add_column(sa.Column('language', sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('personal_requests') as batch:
        batch.drop_column('language')
    with op.batch_alter_table('orders') as batch:
        batch.drop_column('language')
