"""addresses worldwide: a region and a dependent locality on ship-to addresses;
how precisely each point is known

* `orders.ship_region`, `orders.ship_city_area`, and the same on
  `personal_requests`: the address fields a country's format may have beyond
  the street, city and postal code (a US state, a Canadian province, a Japanese
  prefecture; a Brazilian bairro). US rows get their state from their ZIP code,
  as new US orders do; rows whose ZIP the data does not know (or that were
  erased to a prefix) keep "".
* `listings.precision`, `orders.location_precision`,
  `personal_requests.location_precision`: "coordinates", "postal_code" or
  "city". Before this revision a point came either from the customer's
  coordinates (its area then read "near ..." when no postal code came with
  them) or from a US ZIP code's centre: rows whose area reads "near ..." are
  "coordinates", the others "postal_code". A row placed by coordinates that
  also carried a postal code is counted as "postal_code", which understates
  its precision and never overstates it.

The ZIP data is read here directly, so this migration does the same thing
whatever later code does.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-08 09:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def _us_states(conn, table: str) -> None:
    import zipcodes

    codes = conn.execute(sa.text(
        f"SELECT DISTINCT ship_postal_code FROM {table} WHERE ship_country = 'US' AND ship_region = ''"  # noqa: S608
    )).scalars().all()
    for code in codes:
        zip5 = (code or "").strip()[:5]
        if len(zip5) != 5 or not zip5.isdigit():
            continue
        try:
            matches = zipcodes.matching(zip5)
        except (ValueError, TypeError):
            continue
        state = next((m.get("state") for m in matches if m.get("state")), None)
        if state:
            conn.execute(sa.text(
                f"UPDATE {table} SET ship_region = :state WHERE ship_country = 'US' AND ship_region = '' "  # noqa: S608
                "AND ship_postal_code = :code"), {"state": state.upper(), "code": code})


def upgrade() -> None:
    conn = op.get_bind()
    for table in ('orders', 'personal_requests'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('ship_city_area', sa.String(length=120), server_default='', nullable=False))
            batch_op.add_column(sa.Column('ship_region', sa.String(length=80), server_default='', nullable=False))
            batch_op.add_column(sa.Column('location_precision', sa.String(length=12), server_default='postal_code',
                                          nullable=False))
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('precision', sa.String(length=12), server_default='postal_code',
                                      nullable=False))
    for table in ('orders', 'personal_requests', 'listings'):
        column = 'precision' if table == 'listings' else 'location_precision'
        conn.execute(sa.text(
            f"UPDATE {table} SET {column} = 'coordinates' WHERE area LIKE 'near %'"))  # noqa: S608
    for table in ('orders', 'personal_requests'):
        _us_states(conn, table)


def downgrade() -> None:
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.drop_column('precision')
    for table in ('personal_requests', 'orders'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('location_precision')
            batch_op.drop_column('ship_region')
            batch_op.drop_column('ship_city_area')
