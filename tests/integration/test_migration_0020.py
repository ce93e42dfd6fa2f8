"""Migration 0020 on a database with orders, requests and listings already:
US ship-tos get their state from their ZIP code, and every point says how
precisely it was known (coordinates where its area reads "near ...", a postal
code's centre otherwise: before 0020 nothing else placed a point)."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from broker.db import UTCDateTime, make_engine
from broker.migrate import upgrade
from tests.conftest import postgres_database

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def empty_database(tmp_path):
    server = os.environ.get("BROKER_TEST_DATABASE_URL")
    if not server:
        yield f"sqlite:///{tmp_path / 'migrate.db'}"
        return
    with postgres_database(server, prefix="broker_migrate") as url:
        yield url


def _insert(conn, table: str, **values) -> int:
    columns = ", ".join(values)
    params = ", ".join(f":{k}" for k in values)
    statement = sa.text(f"INSERT INTO {table} ({columns}) VALUES ({params})").bindparams(
        *[sa.bindparam(k, type_=UTCDateTime()) for k, v in values.items() if isinstance(v, datetime)])
    conn.execute(statement, values)
    return conn.execute(sa.text(f"SELECT max(id) FROM {table}")).scalar_one()


def _order(conn, maker: int, n: int, *, postal_code: str, country: str, area: str) -> int:
    order = _insert(conn, "orders", manufacturer_id=maker, status="open", currency="USD", total=100,
                    delivery="ship", customer_name="C", customer_email=f"c{n}@x.example", ship_line1="1 Main",
                    ship_line2="", ship_city="Somewhere", ship_postal_code=postal_code, ship_country=country,
                    ship_lat=37.77, ship_lon=-122.41, area=area, access_token_hash=f"{n:064d}", created_at=T0,
                    updated_at=T0, pickup_attempts=0)
    _insert(conn, "listings", kind="order", manufacturer_id=maker, order_id=order, status="open", lat=37.77,
            lon=-122.41, exact_lat=37.77, exact_lon=-122.41, area=area, price=100, currency="USD", listed_at=T0)
    return order


def test_us_ship_tos_get_their_state_and_every_point_its_precision(empty_database):
    upgrade(empty_database, "0017")
    engine = make_engine(empty_database)
    try:
        with engine.begin() as conn:
            maker = _insert(conn, "manufacturers", name="M", slug="m", currency="USD", lat=0.0, lon=0.0, area="A",
                            created_at=T0)
            by_zip = _order(conn, maker, 1, postal_code="94103", country="US", area="San Francisco, CA 941xx")
            zip_plus_4 = _order(conn, maker, 2, postal_code="10001-2345", country="US", area="New York, NY 100xx")
            unknown_zip = _order(conn, maker, 3, postal_code="00000", country="US", area="US 000xx")
            erased = _order(conn, maker, 4, postal_code="941", country="US", area="San Francisco, CA 941xx")
            by_point = _order(conn, maker, 5, postal_code="", country="AU", area="near -33.9, 151.2")
            request = _insert(conn, "personal_requests", pseudonym="Customer 0001", description="d", quantity=1,
                              max_price=100, currency="USD", prefer="nearest", status="open", lat=40.7, lon=-74.0,
                              area="near 40.7, -74.0", expires_at=T0, access_token_hash="r" * 64,
                              ship_name="N", ship_line1="1 Main", ship_line2="", ship_city="New York",
                              ship_postal_code="10001", ship_country="US", created_at=T0)
        upgrade(empty_database, "0020")
        with engine.connect() as conn:
            orders = {row.id: (row.ship_region, row.ship_city_area, row.location_precision) for row in conn.execute(
                sa.text("SELECT id, ship_region, ship_city_area, location_precision FROM orders"))}
            listings = dict(conn.execute(sa.text("SELECT order_id, precision FROM listings")).all())
            req = conn.execute(sa.text("SELECT ship_region, location_precision FROM personal_requests "
                                       "WHERE id = :id"), {"id": request}).one()
    finally:
        engine.dispose()
    assert orders == {by_zip: ("CA", "", "postal_code"), zip_plus_4: ("NY", "", "postal_code"),
                      unknown_zip: ("", "", "postal_code"), erased: ("", "", "postal_code"),
                      by_point: ("", "", "coordinates")}
    assert listings == {by_zip: "postal_code", zip_plus_4: "postal_code", unknown_zip: "postal_code",
                        erased: "postal_code", by_point: "coordinates"}
    assert tuple(req) == ("NY", "coordinates")


def test_it_goes_down_again(empty_database):
    upgrade(empty_database, "0020")
    from alembic import command

    from broker.migrate import alembic_config

    command.downgrade(alembic_config(empty_database), "0017")
    engine = make_engine(empty_database)
    try:
        columns = {c["name"] for c in sa.inspect(engine).get_columns("orders")}
    finally:
        engine.dispose()
    assert not {"ship_region", "ship_city_area", "location_precision"} & columns
