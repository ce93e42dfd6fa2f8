"""shipping methods and tax: what an order costs delivered

* `shipping_methods`: a manufacturer's ways of shipping (a charge per order and
  per item, free over an amount, the countries served, a ship-within window),
  one of them its default.
* `tax_settings`, `tax_rates`: a manufacturer's tax table (whether its prices
  include tax; rates by country and region, in thousandths of a percent).
* `orders`: `subtotal`, `shipping`, `tax`, `tax_included`, `tax_jurisdiction`,
  `tax_rate`, and the shipping method chosen (`shipping_method`,
  `shipping_method_name`, `ship_within_hours`). Orders placed before this
  revision were the goods alone: their subtotal is their total, no shipping, no
  tax, no method (they keep BROKER_SHIP_WITHIN_HOURS).
* `payments.tax_amount`, `payments.tax_jurisdiction`, `payments.tax_base`: the
  tax inside the amount held (or inside `tax_base`, a personal request's winning
  offer under its ceiling), so captures and refunds post it to its own liability
  account. 0 for payments before this revision.
* `bids.shipping`, `bids.tax`: the parts of an offer's price on a personal
  request that are shipping and tax (0 for offers before this revision).

Revision ID: 0024
Revises: 0020
Create Date: 2026-12-07 09:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import broker.db

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'shipping_methods',
        sa.Column('id', broker.db.BigId, nullable=False),
        sa.Column('manufacturer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('code', sa.String(length=32), nullable=False),
        sa.Column('name', sa.String(length=80), nullable=False),
        sa.Column('price', sa.Integer(), nullable=False),
        sa.Column('per_item', sa.Integer(), server_default='0', nullable=False),
        sa.Column('free_over', sa.Integer(), nullable=True),
        sa.Column('ship_within_hours', sa.Integer(), nullable=False),
        sa.Column('countries', sa.JSON(), server_default=sa.text("'[]'"), nullable=False),
        sa.Column('is_default', sa.Boolean(), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', broker.db.UTCDateTime(), nullable=False),
        sa.Column('updated_at', broker.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['manufacturer_id'], ['manufacturers.id'],
                                name=op.f('fk_shipping_methods_manufacturer_id_manufacturers')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_shipping_methods')),
        sa.UniqueConstraint('manufacturer_id', 'code', name=op.f('uq_shipping_methods_manufacturer_id_code')),
    )
    op.create_index(op.f('ix_shipping_methods_manufacturer_id'), 'shipping_methods', ['manufacturer_id'])
    op.create_table(
        'tax_settings',
        sa.Column('manufacturer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('prices_include_tax', sa.Boolean(), nullable=False),
        sa.Column('shipping_taxed', sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column('updated_at', broker.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['manufacturer_id'], ['manufacturers.id'],
                                name=op.f('fk_tax_settings_manufacturer_id_manufacturers')),
        sa.PrimaryKeyConstraint('manufacturer_id', name=op.f('pk_tax_settings')),
    )
    op.create_table(
        'tax_rates',
        sa.Column('id', broker.db.BigId, nullable=False),
        sa.Column('manufacturer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('country', sa.String(length=2), nullable=False),
        sa.Column('region', sa.String(length=80), server_default='', nullable=False),
        sa.Column('rate', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['manufacturer_id'], ['manufacturers.id'],
                                name=op.f('fk_tax_rates_manufacturer_id_manufacturers')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_tax_rates')),
        sa.UniqueConstraint('manufacturer_id', 'country', 'region',
                            name=op.f('uq_tax_rates_manufacturer_id_country_region')),
    )
    op.create_index(op.f('ix_tax_rates_manufacturer_id'), 'tax_rates', ['manufacturer_id'])
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('subtotal', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('shipping', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('tax', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('tax_included', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('tax_jurisdiction', sa.String(length=40), server_default='', nullable=False))
        batch_op.add_column(sa.Column('tax_rate', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('shipping_method', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('shipping_method_name', sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column('ship_within_hours', sa.Integer(), nullable=True))
    op.execute("UPDATE orders SET subtotal = total")
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tax_amount', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('tax_jurisdiction', sa.String(length=40), server_default='', nullable=False))
        batch_op.add_column(sa.Column('tax_base', sa.Integer(), nullable=True))
    with op.batch_alter_table('bids', schema=None) as batch_op:
        batch_op.add_column(sa.Column('shipping', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('tax', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('bids', schema=None) as batch_op:
        batch_op.drop_column('tax')
        batch_op.drop_column('shipping')
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_column('tax_base')
        batch_op.drop_column('tax_jurisdiction')
        batch_op.drop_column('tax_amount')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        for column in ('ship_within_hours', 'shipping_method_name', 'shipping_method', 'tax_rate',
                       'tax_jurisdiction', 'tax_included', 'tax', 'shipping', 'subtotal'):
            batch_op.drop_column(column)
    op.drop_index(op.f('ix_tax_rates_manufacturer_id'), table_name='tax_rates')
    op.drop_table('tax_rates')
    op.drop_table('tax_settings')
    op.drop_index(op.f('ix_shipping_methods_manufacturer_id'), table_name='shipping_methods')
    op.drop_table('shipping_methods')
