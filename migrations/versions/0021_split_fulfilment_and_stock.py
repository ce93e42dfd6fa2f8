"""split fulfilment, stock and standing bids

* `bids.lines`: the lines (and quantities) a bid covers; NULL, the whole order
  (every bid before this revision). `bids.standing_bid_id`: the standing bid
  that placed it.
* `settlement_decisions.part` and `.lines`: an order settled as a plan has one
  decision per part in a round; the unique key becomes (listing, round, part).
  Existing decisions are part 0 of their round, covering the whole order.
* `assignments.lines`: the part an assignment ships; NULL, the whole order.
* `earnings.assignment_id`: the part an earning was made on.
* `stock_feeds`, `stock_levels`, `stock_reservations`, `standing_bids`.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 09:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import broker.db

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')

revision = '0021'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('standing_bids',
    sa.Column('id', BigId, nullable=False),
    sa.Column('retailer_id', BigId, nullable=False),
    sa.Column('store_id', BigId, nullable=True),
    sa.Column('manufacturer_ids', sa.JSON(), nullable=False),
    sa.Column('max_distance_km', sa.Float(), nullable=False),
    sa.Column('partial', sa.Boolean(), nullable=False),
    sa.Column('created_at', broker.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('removed_at', broker.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['retailer_id'], ['retailers.id'], name=op.f('fk_standing_bids_retailer_id_retailers')),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_standing_bids_store_id_stores')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_standing_bids'))
    )
    with op.batch_alter_table('standing_bids', schema=None) as batch_op:
        batch_op.create_index('ix_standing_bids_retailer_id', ['retailer_id'], unique=False)
    op.create_table('stock_feeds',
    sa.Column('store_id', BigId, nullable=False),
    sa.Column('updated_at', broker.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_stock_feeds_store_id_stores')),
    sa.PrimaryKeyConstraint('store_id', name=op.f('pk_stock_feeds'))
    )
    op.create_table('stock_levels',
    sa.Column('store_id', BigId, nullable=False),
    sa.Column('sku', sa.String(length=64), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('reserved', sa.Integer(), server_default='0', nullable=False),
    sa.Column('updated_at', broker.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('quantity >= 0', name=op.f('ck_stock_levels_quantity_not_negative')),
    sa.CheckConstraint('reserved >= 0', name=op.f('ck_stock_levels_reserved_not_negative')),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_stock_levels_store_id_stores')),
    sa.PrimaryKeyConstraint('store_id', 'sku', name=op.f('pk_stock_levels'))
    )
    with op.batch_alter_table('stock_levels', schema=None) as batch_op:
        batch_op.create_index('ix_stock_levels_sku', ['sku'], unique=False)
    op.create_table('stock_reservations',
    sa.Column('assignment_id', BigId, nullable=False),
    sa.Column('store_id', BigId, nullable=False),
    sa.Column('sku', sa.String(length=64), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('ended', sa.String(length=10), nullable=True),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignments.id'], name=op.f('fk_stock_reservations_assignment_id_assignments')),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_stock_reservations_store_id_stores')),
    sa.PrimaryKeyConstraint('assignment_id', 'store_id', 'sku', name=op.f('pk_stock_reservations'))
    )
    with op.batch_alter_table('bids', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lines', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('standing_bid_id', BigId, nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_bids_standing_bid_id_standing_bids'), 'standing_bids',
                                    ['standing_bid_id'], ['id'])
    with op.batch_alter_table('settlement_decisions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('part', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('lines', sa.JSON(), nullable=True))
        batch_op.drop_constraint('uq_settlement_decisions_listing_id_round', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_settlement_decisions_listing_id_round_part'),
                                          ['listing_id', 'round', 'part'])
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lines', sa.JSON(), nullable=True))
    with op.batch_alter_table('earnings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('assignment_id', BigId, nullable=True))
        batch_op.create_index(batch_op.f('ix_earnings_assignment_id'), ['assignment_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_earnings_assignment_id_assignments'), 'assignments',
                                    ['assignment_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('earnings', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_earnings_assignment_id_assignments'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_earnings_assignment_id'))
        batch_op.drop_column('assignment_id')
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.drop_column('lines')
    with op.batch_alter_table('settlement_decisions', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_settlement_decisions_listing_id_round_part'), type_='unique')
        batch_op.create_unique_constraint('uq_settlement_decisions_listing_id_round', ['listing_id', 'round'])
        batch_op.drop_column('lines')
        batch_op.drop_column('part')
    with op.batch_alter_table('bids', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_bids_standing_bid_id_standing_bids'), type_='foreignkey')
        batch_op.drop_column('standing_bid_id')
        batch_op.drop_column('lines')
    op.drop_table('stock_reservations')
    with op.batch_alter_table('stock_levels', schema=None) as batch_op:
        batch_op.drop_index('ix_stock_levels_sku')
    op.drop_table('stock_levels')
    op.drop_table('stock_feeds')
    with op.batch_alter_table('standing_bids', schema=None) as batch_op:
        batch_op.drop_index('ix_standing_bids_retailer_id')
    op.drop_table('standing_bids')
