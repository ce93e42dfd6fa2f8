"""the offline provider's connected accounts are onboarded through a page

`offline_accounts.onboarded`: a new offline account is ready once its owner has
been through the simulated onboarding page (as a Stripe Express account is
once its owner finished Stripe's). Accounts made before this revision were
ready at once, so the column's default is true for them; Broker writes false
for every new one.

Revision ID: 0023
Revises: 0020
Create Date: 2026-12-07 09:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0023'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('offline_accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('onboarded', sa.Boolean(), server_default=sa.true(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('offline_accounts', schema=None) as batch_op:
        batch_op.drop_column('onboarded')
