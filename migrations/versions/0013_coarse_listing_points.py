"""listings keep the cell's centre as their position and the exact point apart;
bids keep what the retailer was shown; messages belong to an assignment

* `listings.lat/lon` become the centre of the ship-to point's 0.02° grid cell
  (what the retailer's map already drew); the exact point moves to
  `exact_lat/exact_lon`, read only for settlement's ranking.
* `bids.distance_km` becomes what a retailer is shown before the award (from
  the cell's centre, whole kilometres, at least 1); `cell_distance_km` (from the
  centre, to the metre) decides coverage; `exact_distance_km` (the old
  `distance_km`, measured to the exact point) ranks bids at settlement.
* `messages.assignment_id`: each message belongs to the assignment that was
  current when it was written (the latest one assigned at or before it). A
  message written before the order had any assignment gets the order's latest
  one (who it was for cannot be known; the fulfiller shipping now is the one it
  can still help); on an order that never had one, it stays NULL (only the
  customer ever saw it).

The arithmetic is written out here rather than imported, so that this
migration does the same thing whatever later code does.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 10:00:00
"""
from __future__ import annotations

import math

import sqlalchemy as sa
from alembic import op
from geographiclib.geodesic import Geodesic

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

CELL = 0.02
BATCH = 5000
# WGS-84, in kilometres, as broker.geo.distance measures.
_WGS84_KM = Geodesic(6378.137, 1 / 298.257223563)


def _centre(lat: float, lon: float) -> tuple[float, float]:
    def snap(value: float) -> float:
        return round((math.floor(value / CELL) + 0.5) * CELL, 6)

    return max(-90.0, min(90.0, snap(lat))), max(-180.0, min(180.0, snap(lon)))


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    return round(_WGS84_KM.Inverse(lat1, lon1, lat2, lon2, Geodesic.DISTANCE)["s12"], 3)


def _shown(km: float) -> float:
    return float(max(1, math.floor(km + 0.5)))


def _batches(conn, query: str):
    """Rows of `query` (which selects `id` first and takes :after), BATCH at a time, by id."""
    after = -1
    while True:
        rows = conn.execute(sa.text(query), {"after": after, "limit": BATCH}).all()
        if not rows:
            return
        yield rows
        after = rows[-1][0]


def upgrade() -> None:
    conn = op.get_bind()
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('exact_lat', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('exact_lon', sa.Float(), nullable=True))
    with op.batch_alter_table('bids', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cell_distance_km', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('exact_distance_km', sa.Float(), nullable=True))

    for rows in _batches(conn, "SELECT id, lat, lon FROM listings WHERE id > :after ORDER BY id LIMIT :limit"):
        conn.execute(
            sa.text("UPDATE listings SET exact_lat = :exact_lat, exact_lon = :exact_lon, lat = :lat, lon = :lon "
                    "WHERE id = :id"),
            [dict(id=i, exact_lat=lat, exact_lon=lon, **dict(zip(("lat", "lon"), _centre(lat, lon))))
             for i, lat, lon in rows])
    # Every bid's distance so far was measured to the exact point (and again
    # whenever its store moved): it is the exact distance.
    for rows in _batches(conn, "SELECT b.id, b.distance_km, s.lat, s.lon, l.lat, l.lon FROM bids b "
                               "JOIN stores s ON s.id = b.store_id JOIN listings l ON l.id = b.listing_id "
                               "WHERE b.id > :after ORDER BY b.id LIMIT :limit"):
        updates = []
        for bid_id, exact, store_lat, store_lon, lat, lon in rows:
            cell = _km(store_lat, store_lon, lat, lon)
            updates.append(dict(id=bid_id, shown=_shown(cell), cell=cell, exact=exact))
        conn.execute(sa.text("UPDATE bids SET distance_km = :shown, cell_distance_km = :cell, "
                             "exact_distance_km = :exact WHERE id = :id"), updates)

    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.alter_column('exact_lat', existing_type=sa.Float(), nullable=False)
        batch_op.alter_column('exact_lon', existing_type=sa.Float(), nullable=False)
    with op.batch_alter_table('bids', schema=None) as batch_op:
        batch_op.alter_column('cell_distance_km', existing_type=sa.Float(), nullable=False)
        batch_op.alter_column('exact_distance_km', existing_type=sa.Float(), nullable=False)

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('assignment_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                                      nullable=True))
        batch_op.create_index(batch_op.f('ix_messages_assignment_id'), ['assignment_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_messages_assignment_id_assignments'), 'assignments',
                                    ['assignment_id'], ['id'])
    conn.execute(sa.text(
        "UPDATE messages SET assignment_id = (SELECT a.id FROM assignments a WHERE a.order_id = messages.order_id "
        "AND a.assigned_at <= messages.created_at ORDER BY a.assigned_at DESC, a.id DESC LIMIT 1)"))
    conn.execute(sa.text(
        "UPDATE messages SET assignment_id = (SELECT a.id FROM assignments a WHERE a.order_id = messages.order_id "
        "ORDER BY a.assigned_at DESC, a.id DESC LIMIT 1) WHERE assignment_id IS NULL"))


def downgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_messages_assignment_id_assignments'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_messages_assignment_id'))
        batch_op.drop_column('assignment_id')
    conn = op.get_bind()
    conn.execute(sa.text("UPDATE bids SET distance_km = exact_distance_km"))
    conn.execute(sa.text("UPDATE listings SET lat = exact_lat, lon = exact_lon"))
    with op.batch_alter_table('bids', schema=None) as batch_op:
        batch_op.drop_column('exact_distance_km')
        batch_op.drop_column('cell_distance_km')
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.drop_column('exact_lon')
        batch_op.drop_column('exact_lat')
