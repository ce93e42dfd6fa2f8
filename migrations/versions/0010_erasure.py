"""erasure: when a customer's personal data was erased, and disclosures about requests

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24 21:53:59.788890
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import broker.db


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    # A disclosure (or erasure) row may be about a personal request that never
    # became an order: order_id becomes optional, request_id is new.
    with op.batch_alter_table('disclosures', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_id', BIG_ID, nullable=True))
        batch_op.alter_column('order_id', existing_type=BIG_ID, nullable=True)
        batch_op.create_index(batch_op.f('ix_disclosures_request_id'), ['request_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_disclosures_request_id_personal_requests'), 'personal_requests',
                                    ['request_id'], ['id'])

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('erased_at', broker.db.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('personal_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('erased_at', broker.db.UTCDateTime(timezone=True), nullable=True))

    # Erasure finds the provider's events about a payment by their object's ref.
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_events_object_ref'), ['object_ref'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_events_object_ref'))

    with op.batch_alter_table('personal_requests', schema=None) as batch_op:
        batch_op.drop_column('erased_at')

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('erased_at')

    # Rows about requests alone have no place in the old table.
    op.execute(sa.text("DELETE FROM disclosures WHERE order_id IS NULL"))
    with op.batch_alter_table('disclosures', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_disclosures_request_id_personal_requests'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_disclosures_request_id'))
        batch_op.alter_column('order_id', existing_type=BIG_ID, nullable=False)
        batch_op.drop_column('request_id')
