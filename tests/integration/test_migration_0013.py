"""Migration 0013 on rows written before it: listings move to their cell's
centre and keep the exact point apart, bids keep what they would have shown,
and messages find the assignment they were written in.

The rows are made through the services at the head revision, the database is
taken down to 0012 (which puts the exact point back into `listings.lat/lon`
and drops the new columns), a few messages are written as 0012 allowed (a
customer's, before any award), and it is brought up again.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import bindparam, select, text

from broker.accounts.models import Store
from broker.auth import ANONYMOUS
from broker.board.models import Bid, Listing
from broker.clock import FrozenClock
from broker.context import Context
from broker.db import UTCDateTime
from broker.fulfilment import services as fulfilment
from broker.fulfilment.models import Assignment
from broker.geo.distance import approximate_point, distance_km, shown_distance_km
from broker.migrate import alembic_config, upgrade
from broker.pagination import PageRequest
from broker.personal import services as personal
from broker.personal.models import Message
from broker.settlement.services import settle
from tests.conftest import START, _server_url, make_settings, postgres_database
from tests.factories import World, north_of

CUSTOMER = (37.7795, -122.4196)
SETTLED = START + timedelta(hours=13)


@pytest.fixture
def database(tmp_path):
    server = _server_url()
    if server is None:
        url = f"sqlite:///{tmp_path / 'migration.db'}"
        upgrade(url)
        yield url
        return
    with postgres_database(server, prefix="broker_mig") as url:
        upgrade(url)
        yield url


def test_existing_rows_are_moved_to_the_cell_and_messages_to_their_assignment(database):
    ctx = Context.from_settings(make_settings(database, admin_token="x"), clock=FrozenClock(START))

    def at(when):
        return dataclasses.replace(ctx, clock=FrozenClock(when))

    try:
        world = World(ctx)
        maker = world.manufacturer()
        first = world.retailer(north_of(CUSTOMER, 3), dealer_of=[maker])
        second = world.retailer(north_of(CUSTOMER, 8), dealer_of=[maker])
        placed = world.order(maker, to=CUSTOMER)
        never_awarded = world.order(maker, to=CUSTOMER, when=START + timedelta(hours=2))  # not due at SETTLED
        world.bid(first, placed.order.id)
        world.bid(second, placed.order.id)
        settle(at(SETTLED))
        token = placed.access_token

        def say(when, body, actor=None):
            personal.send_message(at(when), placed.order.id, body, actor=actor or ANONYMOUS,
                                  token=None if actor else token)

        say(SETTLED + timedelta(hours=1), "to the first")
        say(SETTLED + timedelta(hours=1, minutes=5), "the first replies", first.actor)
        [held] = fulfilment.list_assignments(ctx, first.actor, PageRequest()).items
        fulfilment.release_assignment(at(SETTLED + timedelta(hours=2)), first.actor, held.assignment.id)
        say(SETTLED + timedelta(hours=3), "to the second")
        with ctx.uow() as uow:
            session = uow.session
            listing = session.scalar(select(Listing).where(Listing.order_id == placed.order.id))
            exact_by_bid = {b.id: b.exact_distance_km for b in session.scalars(select(Bid))}
            threads = {m.body: m.assignment_id for m in session.scalars(select(Message))}
            first_assignment, second_assignment = session.scalars(
                select(Assignment.id).where(Assignment.order_id == placed.order.id).order_by(Assignment.id)).all()
        assert threads == {"to the first": first_assignment, "the first replies": first_assignment,
                           "to the second": second_assignment}
    finally:
        ctx.engine.dispose()

    command.downgrade(alembic_config(database), "0012")
    before = Context.from_settings(make_settings(database, admin_token="x")).engine
    try:
        with before.begin() as conn:
            assert conn.execute(text("SELECT lat, lon FROM listings WHERE id = :id"),
                                {"id": listing.id}).one() == CUSTOMER
            assert dict(conn.execute(text("SELECT id, distance_km FROM bids")).all()) == exact_by_bid
            # What 0012 allowed: a customer's message before any award.
            insert = text("INSERT INTO messages (order_id, sender, body, created_at) VALUES (:o, 'customer', :b, :c)"
                          ).bindparams(bindparam("c", type_=UTCDateTime()))
            conn.execute(insert, {"o": placed.order.id, "b": "before the award", "c": START + timedelta(hours=1)})
            conn.execute(insert, {"o": never_awarded.order.id, "b": "to nobody", "c": START + timedelta(hours=3)})
    finally:
        before.dispose()

    upgrade(database)
    after = Context.from_settings(make_settings(database, admin_token="x"))
    try:
        with after.uow() as uow:
            session = uow.session
            moved = session.get(Listing, listing.id)
            assert (moved.lat, moved.lon) == approximate_point(*CUSTOMER)
            assert (moved.exact_lat, moved.exact_lon) == CUSTOMER
            for bid in session.scalars(select(Bid)):
                store = session.get(Store, bid.store_id)
                assert bid.exact_distance_km == exact_by_bid[bid.id]
                assert bid.cell_distance_km == distance_km(store.lat, store.lon, moved.lat, moved.lon)
                assert bid.distance_km == shown_distance_km(bid.cell_distance_km) != bid.exact_distance_km
            threads = {m.body: m.assignment_id for m in session.scalars(select(Message))}
        assert threads == {"to the first": first_assignment, "the first replies": first_assignment,
                           "to the second": second_assignment,
                           # Written before any assignment: the order's latest one.
                           "before the award": second_assignment,
                           # On an order that never had one: nobody's thread.
                           "to nobody": None}
    finally:
        after.engine.dispose()

