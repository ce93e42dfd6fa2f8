"""board: the listings' position index covers manufacturer, kind and id (PostgreSQL)

Counting the open listings within reach of a store in a big city read 136,000
rows from the table for their manufacturer and kind; with them in the index it
is an index-only scan. SQLite has no INCLUDE, so nothing changes there.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24 23:00:00
"""
from __future__ import annotations

from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_listings_status_lat_lon", table_name="listings")
    op.create_index("ix_listings_status_lat_lon", "listings", ["status", "lat", "lon"],
                    postgresql_include=["manufacturer_id", "kind", "id"])


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_listings_status_lat_lon", table_name="listings")
    op.create_index("ix_listings_status_lat_lon", "listings", ["status", "lat", "lon"])
