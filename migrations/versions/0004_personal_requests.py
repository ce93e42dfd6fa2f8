"""personal requests and messages

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 19:55:21.138459
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import broker.db


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('messages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('order_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('sender', sa.String(length=12), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', broker.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_messages_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_messages'))
    )
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_messages_order_id'), ['order_id'], unique=False)

    op.create_table('personal_requests',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('pseudonym', sa.String(length=24), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('manufacturer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('product_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('sku', sa.String(length=64), nullable=True),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('max_price', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('prefer', sa.String(length=12), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('area', sa.String(length=120), nullable=False),
    sa.Column('expires_at', broker.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('access_token_hash', sa.String(length=64), nullable=False),
    sa.Column('buyer_key', sa.String(length=64), nullable=True),
    sa.Column('contact_email', sa.String(length=254), nullable=True),
    sa.Column('callback_url', sa.String(length=500), nullable=True),
    sa.Column('ship_name', sa.String(length=200), nullable=False),
    sa.Column('ship_line1', sa.String(length=200), nullable=False),
    sa.Column('ship_line2', sa.String(length=200), nullable=False),
    sa.Column('ship_city', sa.String(length=120), nullable=False),
    sa.Column('ship_postal_code', sa.String(length=20), nullable=False),
    sa.Column('ship_country', sa.String(length=2), nullable=False),
    sa.Column('order_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', broker.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('closed_at', broker.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['manufacturer_id'], ['manufacturers.id'], name=op.f('fk_personal_requests_manufacturer_id_manufacturers')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_personal_requests_order_id_orders')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_personal_requests_product_id_products')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_personal_requests')),
    sa.UniqueConstraint('access_token_hash', name=op.f('uq_personal_requests_access_token_hash')),
    sa.UniqueConstraint('order_id', name=op.f('uq_personal_requests_order_id')),
    sa.UniqueConstraint('pseudonym', name=op.f('uq_personal_requests_pseudonym'))
    )
    with op.batch_alter_table('personal_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_personal_requests_buyer_key'), ['buyer_key'], unique=False)
        batch_op.create_index('ix_personal_requests_status_expires_at', ['status', 'expires_at'], unique=False)

    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.alter_column('manufacturer_id',
               existing_type=sa.INTEGER(),
               nullable=True)

    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.alter_column('manufacturer_id',
               existing_type=sa.INTEGER(),
               nullable=True)
        batch_op.create_unique_constraint(batch_op.f('uq_listings_request_id'), ['request_id'])
        batch_op.create_foreign_key(batch_op.f('fk_listings_request_id_personal_requests'), 'personal_requests', ['request_id'], ['id'])

    with op.batch_alter_table('order_lines', schema=None) as batch_op:
        # Existing lines: the total is what it always was, price times quantity.
        batch_op.add_column(sa.Column('line_total', sa.Integer(), nullable=False, server_default='0'))
        batch_op.alter_column('product_id',
               existing_type=sa.INTEGER(),
               nullable=True)
    op.execute('UPDATE order_lines SET line_total = unit_price * quantity')

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.alter_column('manufacturer_id',
               existing_type=sa.INTEGER(),
               nullable=True)

    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.alter_column('order_id',
               existing_type=sa.INTEGER(),
               nullable=True)
        batch_op.create_unique_constraint(batch_op.f('uq_payments_request_id'), ['request_id'])
        batch_op.create_foreign_key(batch_op.f('fk_payments_request_id_personal_requests'), 'personal_requests', ['request_id'], ['id'])



def downgrade() -> None:
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_payments_request_id_personal_requests'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_payments_request_id'), type_='unique')
        batch_op.alter_column('order_id',
               existing_type=sa.INTEGER(),
               nullable=False)
        batch_op.drop_column('request_id')

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.alter_column('manufacturer_id',
               existing_type=sa.INTEGER(),
               nullable=False)

    with op.batch_alter_table('order_lines', schema=None) as batch_op:
        batch_op.alter_column('product_id',
               existing_type=sa.INTEGER(),
               nullable=False)
        batch_op.drop_column('line_total')

    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_listings_request_id_personal_requests'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_listings_request_id'), type_='unique')
        batch_op.alter_column('manufacturer_id',
               existing_type=sa.INTEGER(),
               nullable=False)
        batch_op.drop_column('request_id')

    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.alter_column('manufacturer_id',
               existing_type=sa.INTEGER(),
               nullable=False)

    with op.batch_alter_table('personal_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_personal_requests_status_expires_at')
        batch_op.drop_index(batch_op.f('ix_personal_requests_buyer_key'))

    op.drop_table('personal_requests')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_messages_order_id'))

    op.drop_table('messages')
