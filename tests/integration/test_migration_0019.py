"""Migration 0019 on a database with stores, returns and collected pickups:
down to 0018 (returns back into the order's two columns) and up again.

Stores get what their coarse area and point can tell (the country; a ZIP code
when the store sits exactly on one ZIP's centre; the time zone at the point);
each return asked for becomes a row of `returns` (accepted when the order was
refunded, with its refund); pickups already collected are delivered.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import select, text

from broker.accounts import services as accounts
from broker.accounts.models import Store
from broker.clock import FrozenClock
from broker.context import Context
from broker.fulfilment import services as fulfilment
from broker.fulfilment.models import Assignment
from broker.geo.geocoding import LocationQuery
from broker.ledger.models import LedgerTransaction
from broker.migrate import alembic_config, upgrade
from broker.orders import services as orders
from broker.orders.models import DeliveredHow, Delivery, Order
from broker.returns import services as returns
from broker.returns.models import Return, ReturnStatus
from broker.settlement.services import settle
from tests.conftest import START, _server_url, make_settings, postgres_database
from tests.factories import HERE, World, north_of


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


def test_stores_returns_and_pickups_are_carried_over(database):
    ctx = Context.from_settings(make_settings(database, admin_token="x"), clock=FrozenClock(START))
    try:
        world = World(ctx)
        maker = world.manufacturer()
        shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        by_zip = accounts.add_store(ctx, shop.actor, accounts.NewStore("By ZIP", LocationQuery("94110", "US"), 10))
        abroad = accounts.add_store(ctx, shop.actor, accounts.NewStore("Abroad", LocationQuery(lat=52.52, lon=13.4),
                                                                        10))
        asked, refunded, plain = (world.order(maker, email=f"c{i}@example.com") for i in range(3))
        pickup = orders.place_order(ctx, maker.slug, orders.PlaceOrder(
            items=[orders.Item("SKU-1", 1)], customer=orders.Customer("Pat", "pat@example.com"),
            ship_to=orders.Address("", "", "94103", "US", lat=HERE[0], lon=HERE[1]), delivery=Delivery.PICKUP))
        for placed in (asked, refunded, plain, pickup):
            world.bid(shop, placed.order.id, store_id=shop.store_id)
        ctx.clock.advance(hours=13)
        settle(ctx)
        with ctx.uow() as uow:
            assignment = {a.order_id: a.id for a in uow.session.scalars(select(Assignment))}
        for placed in (asked, refunded, plain):
            fulfilment.record_shipment(ctx, shop.actor, assignment[placed.order.id],
                                       fulfilment.RecordShipment("UPS", "1Z"))
        fulfilment.collect_pickup(ctx, shop.actor, assignment[pickup.order.id], pickup.pickup_code)
        returns.request_return(ctx, asked.order.id, asked.access_token, "Too small")
        later = dataclasses.replace(ctx, clock=FrozenClock(ctx.clock.now + timedelta(hours=1)))
        returns.request_return(later, refunded.order.id, refunded.access_token, "Broken")
        returns.accept_return(later, shop.actor, refunded.order.id)
        with ctx.uow() as uow:
            refund_ref = uow.session.scalar(select(LedgerTransaction.reference).where(
                LedgerTransaction.order_id == refunded.order.id, LedgerTransaction.kind == "refund"))
            collected_at = uow.session.get(Order, pickup.order.id).shipped_at
    finally:
        ctx.engine.dispose()

    command.downgrade(alembic_config(database), "0018")
    before = Context.from_settings(make_settings(database, admin_token="x")).engine
    try:
        with before.begin() as conn:
            rows = dict(conn.execute(text("SELECT id, return_reason FROM orders WHERE return_reason IS NOT NULL"))
                        .all())
            assert rows == {asked.order.id: "Too small", refunded.order.id: "Broken"}
            # A store placed by a remote geocoder's answer, as 0018 wrote its area.
            conn.execute(text("UPDATE stores SET area = 'DE 101xx' WHERE id = :id"), {"id": abroad.id})
    finally:
        before.dispose()

    upgrade(database)
    after = Context.from_settings(make_settings(database, admin_token="x"))
    try:
        with after.uow() as uow:
            session = uow.session
            first = session.get(Store, shop.store_id)  # placed by coordinates: its point is no ZIP's centre
            assert (first.country, first.postal_code, first.region, first.line1) == ("", "", "", "")
            assert first.timezone == "America/Los_Angeles" and first.hours is None
            zip_store = session.get(Store, by_zip.id)
            assert (zip_store.country, zip_store.postal_code, zip_store.region, zip_store.city) == ("US", "94110",
                                                                                                 "CA", "")
            assert zip_store.timezone == "America/Los_Angeles"
            berlin = session.get(Store, abroad.id)
            assert (berlin.country, berlin.postal_code, berlin.timezone) == ("DE", "", "Europe/Berlin")

            moved = {r.order_id: r for r in session.scalars(select(Return))}
            assert set(moved) == {asked.order.id, refunded.order.id}
            waiting, done = moved[asked.order.id], moved[refunded.order.id]
            assert (waiting.status, waiting.reason, waiting.assignment_id, waiting.requested_at) == (
                ReturnStatus.REQUESTED, "Too small", assignment[asked.order.id], START + timedelta(hours=13))
            assert (done.status, done.reason, done.refund_amount, done.refund_reference, done.decided_by_kind) == (
                ReturnStatus.ACCEPTED, "Broken", 5000, refund_ref, None)
            collected = session.get(Order, pickup.order.id)
            assert (collected.delivered_at, collected.delivered_how) == (collected_at, DeliveredHow.PICKUP)
            assert session.get(Order, plain.order.id).delivered_at is None
    finally:
        after.engine.dispose()
    # The migrated return is answered as any other.
    ctx = Context.from_settings(make_settings(database, admin_token="x"),
                                clock=FrozenClock(START + timedelta(days=2)))
    try:
        view = returns.refuse_return(ctx, shop.actor, asked.order.id, "Worn: we cannot take it back")
        assert [r.status for r in view.returns] == [ReturnStatus.REFUSED]
    finally:
        ctx.engine.dispose()
