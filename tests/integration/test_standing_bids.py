"""Standing bids: rules that bid from a store's stock, when a listing is posted
and when the stock changes, and bids like any other."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from broker.board import services as board
from broker.board.models import Bid, BidStatus
from broker.errors import Invalid, NotFound
from broker.fulfilment.models import Assignment
from broker.pagination import PageRequest
from broker.settlement import reports
from broker.settlement.services import settle
from broker.stock import services as stock
from broker.stock import standing
from tests.conftest import START
from tests.factories import HERE, World, north_of

LATER = START + timedelta(hours=13)


@pytest.fixture
def world(ctx):
    return World(ctx)


@pytest.fixture
def maker(world):
    return world.manufacturer(products=[("BIKE", 90000), ("HELMET", 10000)])


def put(ctx, shop, items, *, snapshot=True):
    return stock.set_stock(ctx, shop.actor, shop.store_id, [stock.StockItem(s, q) for s, q in items],
                           snapshot=snapshot)


def rule(ctx, shop, **kw):
    return stock.create_standing_bid(ctx, shop.actor, stock.NewStandingBid(**{"max_distance_km": 25, **kw}))


def bids_of(session, shop):
    return list(session.scalars(select(Bid).where(Bid.retailer_id == shop.id).order_by(Bid.id)
                                .execution_options(populate_existing=True)))


class TestPlacing:
    def test_two_orders_for_the_one_in_stock_are_both_bid_on_and_the_second_goes_on(self, world, maker, ctx,
                                                                                       clock, session):
        shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        far = world.retailer(north_of(HERE, 9), dealer_of=[maker])
        put(ctx, shop, [("BIKE", 1)])
        made = rule(ctx, shop, manufacturers=(maker.slug,))
        first, second = world.order(maker, sku="BIKE"), world.order(maker, sku="BIKE")
        placed = bids_of(session, shop)
        assert [(b.listing_id, b.standing_bid_id, b.lines) for b in placed] == [
            (world.listing_id(first.order.id), made.rule.id, None),
            (world.listing_id(second.order.id), made.rule.id, None)]
        for placed_order in (first, second):
            world.bid(far, placed_order.order.id)
        clock.now = LATER
        settle(ctx)
        assert [session.scalar(select(Assignment.retailer_id).where(Assignment.order_id == p.order.id))
                for p in (first, second)] == [shop.id, far.id]
        outcomes = {o.listing_id: o for o in reports.bid_outcomes(ctx, shop.actor, PageRequest(1, 50)).items}
        lost = outcomes[world.listing_id(second.order.id)]
        assert (lost.outcome, lost.my_eligibility) == ("lost", "out_of_stock")
        assert outcomes[world.listing_id(first.order.id)].outcome == "won"

    def test_a_stock_change_bids_on_listings_already_open(self, world, maker, ctx, session):
        shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        rule(ctx, shop)
        placed = world.order(maker, sku="BIKE")
        assert bids_of(session, shop) == []  # no feed: nothing to bid from
        view = put(ctx, shop, [("BIKE", 1)], snapshot=False)
        assert view.standing_bids_placed == 1
        [bid] = bids_of(session, shop)
        assert bid.listing_id == world.listing_id(placed.order.id)
        # Placing again changes nothing: one bid per listing and retailer.
        assert standing.place_for_store(ctx, shop.store_id) == 0
        assert len(bids_of(session, shop)) == 1

    def test_a_withdrawn_standing_bid_is_not_placed_again(self, world, maker, ctx, session):
        shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        put(ctx, shop, [("BIKE", 1)])
        rule(ctx, shop)
        placed = world.order(maker, sku="BIKE")
        board.withdraw_bid(ctx, shop.actor, world.listing_id(placed.order.id))
        put(ctx, shop, [("BIKE", 2)])
        [bid] = bids_of(session, shop)
        assert bid.status == BidStatus.WITHDRAWN

    def test_partial_rules_bid_on_the_lines_in_stock(self, world, maker, ctx, session):
        whole_only = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        partial = world.retailer(north_of(HERE, 3), dealer_of=[maker])
        for shop in (whole_only, partial):
            put(ctx, shop, [("BIKE", 1)])
        rule(ctx, whole_only)
        rule(ctx, partial, partial=True)
        placed = world.order(maker, items=[("BIKE", 1), ("HELMET", 1)])
        assert bids_of(session, whole_only) == []
        [bid] = bids_of(session, partial)
        assert bid.lines == [{"line_id": placed.order.lines[0].id, "sku": "BIKE", "quantity": 1}]

    def test_rules_keep_to_their_distance_and_their_manufacturers(self, world, maker, ctx, session):
        other_maker = world.manufacturer(products=[("BIKE", 1000)])
        shop = world.retailer(north_of(HERE, 12), dealer_of=[maker, other_maker])
        put(ctx, shop, [("BIKE", 5)])
        rule(ctx, shop, max_distance_km=10)
        rule(ctx, shop, max_distance_km=20, manufacturers=(other_maker.slug,))
        world.order(maker, sku="BIKE")
        theirs = world.order(other_maker, sku="BIKE")
        assert [b.listing_id for b in bids_of(session, shop)] == [world.listing_id(theirs.order.id)]

    def test_a_removed_rule_bids_no_more(self, world, maker, ctx, session):
        shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        put(ctx, shop, [("BIKE", 1)])
        made = rule(ctx, shop)
        stock.remove_standing_bid(ctx, shop.actor, made.rule.id)
        world.order(maker, sku="BIKE")
        assert bids_of(session, shop) == []
        assert stock.list_standing_bids(ctx, shop.actor) == []
        with pytest.raises(NotFound):
            stock.remove_standing_bid(ctx, shop.actor, made.rule.id)


class TestRules:
    def test_bad_rules_are_refused_with_every_mistake(self, world, maker, ctx):
        shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        other = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        stranger = world.manufacturer(products=[])
        with pytest.raises(Invalid) as raised:
            stock.create_standing_bid(ctx, shop.actor, stock.NewStandingBid(
                max_distance_km=0, store_id=other.store_id, manufacturers=(stranger.slug, "no-such-maker")))
        assert set(raised.value.errors) == {"max_distance_km", "store_id", "manufacturers"}
        assert stock.list_standing_bids(ctx, shop.actor) == []

    def test_a_retailer_lists_its_own_rules_only(self, world, maker, ctx):
        shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        other = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        rule(ctx, shop, manufacturers=(maker.slug,), partial=True)
        [view] = stock.list_standing_bids(ctx, shop.actor)
        assert (view.manufacturer_slugs, view.rule.partial, view.rule.max_distance_km) == ((maker.slug,), True, 25.0)
        assert stock.list_standing_bids(ctx, other.actor) == []
