"""Migration 0014 on a database that has users already: who counts as verified.

Users who could only have set a password through a link mailed to them (a
colleague's or the operator's welcome link, a reset) or who signed up through a
manufacturer's invitation link are verified; a retailer's first user from the
old /signup, which mailed nothing, is not; a user who never followed their link
is not. Invitations found by matching an address (never a mailed link) go.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from broker.db import UTCDateTime, make_engine
from broker.migrate import upgrade
from tests.conftest import postgres_database

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


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


def test_existing_users_are_verified_only_if_they_came_through_a_mailed_link(empty_database):
    upgrade(empty_database, "0012")
    engine = make_engine(empty_database)
    try:
        with engine.begin() as conn:
            maker = _insert(conn, "manufacturers", name="M", slug="m", currency="USD", lat=0.0, lon=0.0, area="A",
                            created_at=T0)
            _insert(conn, "users", email="owner@m.example", name="O", password_hash="scrypt$x", role="manufacturer",
                    manufacturer_id=maker, created_at=T0 + timedelta(minutes=1))
            # Made by the operator, its user added later with `broker user add` and a password set by the link.
            by_api = _insert(conn, "retailers", name="R1", email="r1@x.example", active=True, created_at=T0)
            _insert(conn, "users", email="linked@r1.example", name="L", password_hash="scrypt$x", role="retailer",
                    retailer_id=by_api, created_at=T0 + timedelta(hours=1))
            # Signed up at /signup: company and user at one moment, nothing mailed.
            signed_up = _insert(conn, "retailers", name="R2", email="self@r2.example", active=True,
                                created_at=T0 + timedelta(hours=2))
            _insert(conn, "users", email="self@r2.example", name="S", password_hash="scrypt$x", role="retailer",
                    retailer_id=signed_up, created_at=T0 + timedelta(hours=2))
            # A colleague of theirs, who set a password through the welcome link.
            _insert(conn, "users", email="mate@r2.example", name="C", password_hash="scrypt$x", role="retailer",
                    retailer_id=signed_up, created_at=T0 + timedelta(hours=3))
            # Signed up through an invitation's link (its approved application decided at that moment).
            invited = _insert(conn, "retailers", name="R3", email="inv@r3.example", active=True,
                              created_at=T0 + timedelta(hours=4))
            _insert(conn, "users", email="inv@r3.example", name="I", password_hash="scrypt$x", role="retailer",
                    retailer_id=invited, created_at=T0 + timedelta(hours=4))
            _insert(conn, "dealer_applications", manufacturer_id=maker, retailer_id=invited, status="approved",
                    invited=True, note="", created_at=T0 + timedelta(hours=4), decided_at=T0 + timedelta(hours=4))
            # Added by a colleague, never followed the link: no password.
            _insert(conn, "users", email="waiting@r1.example", name="W", role="retailer", retailer_id=by_api,
                    created_at=T0 + timedelta(hours=5))
            # An invitation found by matching R1's address, never answered; and an application by R2.
            _insert(conn, "dealer_applications", manufacturer_id=maker, retailer_id=by_api, status="pending",
                    invited=True, note="", created_at=T0 + timedelta(hours=6))
            _insert(conn, "dealer_applications", manufacturer_id=maker, retailer_id=signed_up, status="pending",
                    invited=False, note="please", created_at=T0 + timedelta(hours=6))
        upgrade(empty_database, "0014")
        with engine.connect() as conn:
            verified = dict(conn.execute(sa.text("SELECT email, verified_at IS NOT NULL FROM users")).all())
            applications = sorted(conn.execute(sa.text(
                "SELECT retailer_id, status FROM dealer_applications")).all())
        assert {email: bool(v) for email, v in verified.items()} == {
            "owner@m.example": True, "linked@r1.example": True, "self@r2.example": False,
            "mate@r2.example": True, "inv@r3.example": True, "waiting@r1.example": False}
        assert applications == [(signed_up, "pending"), (invited, "approved")]
    finally:
        engine.dispose()
