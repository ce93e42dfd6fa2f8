"""A store's stock: feeds, their age, reservations, and no overselling at settlement."""

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from broker.pagination import PageRequest
from broker.errors import Invalid, NotFound
from broker.fulfilment import services as fulfilment
from broker.fulfilment.models import Assignment
from broker.settlement.models import SettlementDecision
from broker.settlement.services import settle
from broker.stock import services as stock
from broker.stock.models import StockLevel
from tests.conftest import START
from tests.factories import HERE, World, north_of

LATER = START + timedelta(hours=13)


@pytest.fixture
def world(ctx):
    return World(ctx)


@pytest.fixture
def maker(world):
    return world.manufacturer(products=[("BIKE", 90000), ("HELMET", 10000)])


def level(session, store_id, sku):
    row = session.scalar(select(StockLevel).where(StockLevel.store_id == store_id, StockLevel.sku == sku)
                         .execution_options(populate_existing=True))
    return None if row is None else (row.quantity, row.reserved)


def put(ctx, shop, items, *, snapshot=True):
    return stock.set_stock(ctx, shop.actor, shop.store_id, [stock.StockItem(s, q) for s, q in items],
                           snapshot=snapshot)


class TestFeeds:
    def test_a_snapshot_replaces_and_a_change_sets_what_it_names(self, world, maker, ctx, clock):
        shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        view = put(ctx, shop, [("BIKE", 2), ("HELMET", 5)])
        assert [(i.sku, i.quantity, i.available) for i in view.items] == [("BIKE", 2, 2), ("HELMET", 5, 5)]
        assert (view.updated_at, view.age_hours, view.fresh) == (START, 0.0, True)
        view = put(ctx, shop, [("HELMET", 1)], snapshot=False)
        assert [(i.sku, i.quantity) for i in view.items] == [("BIKE", 2), ("HELMET", 1)]
        view = put(ctx, shop, [("BIKE", 3)])
        assert [(i.sku, i.quantity) for i in view.items] == [("BIKE", 3)]

    def test_a_feed_older_than_the_limit_is_not_fresh(self, world, maker, ctx, clock):
        shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        put(ctx, shop, [("BIKE", 1)])
        clock.now = START + timedelta(hours=73)
        view = stock.get_stock(ctx, shop.actor, shop.store_id)
        assert (view.age_hours, view.fresh) == (73.0, False)

    def test_bad_stock_is_refused_with_every_mistake_and_nothing_written(self, world, maker, ctx, session):
        shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        with pytest.raises(Invalid) as raised:
            put(ctx, shop, [("BIKE", 1), ("BIKE", 2), ("", 1), ("HELMET", -1)])
        assert set(raised.value.errors) == {"items.1.sku", "items.2.sku", "items.3.quantity"}
        assert level(session, shop.store_id, "BIKE") is None

    def test_another_retailers_store_is_not_found(self, world, maker, ctx):
        shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        other = world.retailer(north_of(HERE, 3), dealer_of=[maker])
        with pytest.raises(NotFound):
            stock.set_stock(ctx, other.actor, shop.store_id, [stock.StockItem("BIKE", 1)], snapshot=True)
        with pytest.raises(NotFound):
            stock.get_stock(ctx, other.actor, shop.store_id)

    def test_a_csv_is_read_by_its_header(self):
        items = stock.parse_csv("\ufeffname,SKU,quantity\nBike,BIKE,2\n,HELMET,0\n\n")
        assert items == [stock.StockItem("BIKE", 2), stock.StockItem("HELMET", 0)]
        with pytest.raises(Invalid):
            stock.parse_csv("sku,qty\nBIKE,2\n")
        with pytest.raises(Invalid) as raised:
            stock.parse_csv("sku,quantity\nBIKE,two\nHELMET,-1\n")
        assert raised.value.errors == {"file": ["line 2: the quantity 'two' is not a whole number",
                                                "line 3: the quantity '-1' is not a whole number"]}

    def test_the_manufacturer_sees_its_products_in_its_dealers_stock(self, world, maker, ctx, clock):
        shop = world.retailer(north_of(HERE, 2), dealer_of=[maker], name="Stocked shop")
        stranger = world.retailer(north_of(HERE, 2), name="Not a dealer")
        put(ctx, shop, [("BIKE", 2), ("OTHER-MAKERS", 9)])
        put(ctx, stranger, [("BIKE", 4)])
        clock.now = START + timedelta(hours=5)
        rows = stock.dealer_stock(ctx, maker.actor, PageRequest()).items
        assert [(r.retailer_name, r.sku, r.quantity, r.age_hours, r.fresh) for r in rows] == [
            ("Stocked shop", "BIKE", 2, 5.0, True)]


    def test_dealer_stock_comes_in_pages_with_its_total(self, world, ctx, client):
        maker = world.manufacturer(products=[(f"PART-{i}", 1000) for i in range(5)])
        shops = [world.retailer(north_of(HERE, 2 + i), dealer_of=[maker], name=f"Shop {i}") for i in range(2)]
        for shop in shops:
            put(ctx, shop, [(f"PART-{i}", i + 1) for i in range(5)])
        every = stock.dealer_stock(ctx, maker.actor, PageRequest(1, 100))
        assert every.total == 10 and len(every.items) == 10
        pages = [stock.dealer_stock(ctx, maker.actor, PageRequest(n, 4)) for n in (1, 2, 3)]
        assert [len(p.items) for p in pages] == [4, 4, 2] and {p.total for p in pages} == {10}
        assert [r for p in pages for r in p.items] == every.items  # in one order, none twice
        headers = {"Authorization": f"Bearer {maker.key}"}
        answered = client.get("/api/v1/dealer-stock?page=3&page_size=4", headers=headers)
        assert answered.status_code == 200
        assert [(r["sku"], r["retailer_name"]) for r in answered.get_json()] == [("PART-4", "Shop 0"),
                                                                                ("PART-4", "Shop 1")]
        assert json.loads(answered.headers["X-Pagination"])["total"] == 10
        one_sku = client.get("/api/v1/dealer-stock?sku=PART-2", headers=headers)
        assert [r["quantity"] for r in one_sku.get_json()] == [3, 3]


class TestNoOverselling:
    def test_settlement_awards_a_store_no_more_than_its_stock(self, world, maker, ctx, clock, session):
        near = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        far = world.retailer(north_of(HERE, 9), dealer_of=[maker])
        put(ctx, near, [("BIKE", 1)])
        first, second = world.order(maker, sku="BIKE"), world.order(maker, sku="BIKE")
        for placed in (first, second):
            world.bid(near, placed.order.id)
            world.bid(far, placed.order.id)
        clock.now = LATER
        settle(ctx)
        winners = [session.scalar(select(Assignment.retailer_id).where(Assignment.order_id == p.order.id))
                   for p in (first, second)]
        assert winners == [near.id, far.id]
        decision = session.scalar(select(SettlementDecision).join(Assignment, Assignment.decision_id ==
                                                                  SettlementDecision.id)
                                  .where(Assignment.order_id == second.order.id))
        [mine] = [c for c in decision.candidates if c["retailer_id"] == near.id]
        assert (mine["eligible"], mine["reason"]) == (False, "out_of_stock")
        assert level(session, near.store_id, "BIKE") == (1, 1)

    def test_a_store_without_a_feed_or_with_a_stale_one_is_taken_at_its_word(self, world, maker, ctx, clock,
                                                                              session):
        stale = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        put(ctx, stale, [("BIKE", 0)])
        unfed = world.retailer(north_of(HERE, 3), dealer_of=[maker])
        first, second = world.order(maker, sku="BIKE"), world.order(maker, sku="BIKE")
        world.bid(stale, first.order.id)
        world.bid(unfed, second.order.id)
        clock.now = START + timedelta(hours=80)
        settle(ctx)
        assert [session.scalar(select(Assignment.retailer_id).where(Assignment.order_id == p.order.id))
                for p in (first, second)] == [stale.id, unfed.id]

    def test_an_award_reserves_a_release_gives_back_and_a_shipment_takes(self, world, maker, ctx, clock, session):
        near = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        put(ctx, near, [("BIKE", 3)])
        first, second = world.order(maker, sku="BIKE", quantity=2), world.order(maker, sku="BIKE")
        world.bid(near, first.order.id)
        world.bid(near, second.order.id)
        clock.now = LATER
        settle(ctx)
        assert level(session, near.store_id, "BIKE") == (3, 3)
        one = session.scalar(select(Assignment).where(Assignment.order_id == first.order.id))
        two = session.scalar(select(Assignment).where(Assignment.order_id == second.order.id))
        fulfilment.release_assignment(ctx, near.actor, one.id)
        assert level(session, near.store_id, "BIKE") == (3, 1)
        fulfilment.record_shipment(ctx, near.actor, two.id, fulfilment.RecordShipment("UPS", "1Z"))
        assert level(session, near.store_id, "BIKE") == (2, 0)

    def test_a_cancelled_order_gives_its_reservation_back(self, world, maker, ctx, clock, session):
        from broker.orders import services as orders

        near = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        put(ctx, near, [("BIKE", 1)])
        placed = world.order(maker, sku="BIKE")
        world.bid(near, placed.order.id)
        clock.now = LATER
        settle(ctx)
        assert level(session, near.store_id, "BIKE") == (1, 1)
        orders.cancel_order(ctx, placed.order.id, placed.access_token)
        assert level(session, near.store_id, "BIKE") == (1, 0)
