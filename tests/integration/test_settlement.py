"""Settlement through the services, on the test database."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from broker.accounts import services as accounts
from broker.auth import Actor, ActorKind
from broker.board.models import ListingStatus, Listing
from broker.fulfilment import services as fulfilment
from broker.fulfilment.models import Assignment, AssignmentStatus
from broker.orders.models import Order, OrderStatus
from broker.settlement.models import Cause, Rule, SettlementDecision
from broker.settlement.services import settle
from tests.conftest import START
from tests.factories import HERE, north_of

LATER = START + timedelta(hours=13)


@pytest.fixture
def maker(world):
    return world.manufacturer()


def assignment_of(session, order_id):
    return session.scalars(
        select(Assignment).where(Assignment.order_id == order_id).order_by(Assignment.id)
    ).all()


class TestSettle:
    def test_nearest_bidder_wins(self, world, maker, ctx, session):
        near = world.retailer(north_of(HERE, 3), dealer_of=[maker])
        far = world.retailer(north_of(HERE, 9), dealer_of=[maker])
        placed = world.order(maker)
        world.bid(far, placed.order.id)
        world.bid(near, placed.order.id)

        report = settle(ctx, as_of=LATER)

        assert (report.settled, report.to_retailers, report.to_manufacturer) == (1, 1, 0)
        [assignment] = assignment_of(session, placed.order.id)
        assert assignment.retailer_id == near.id
        assert assignment.due_at == ctx.now() + timedelta(hours=48)
        decision = session.scalar(select(SettlementDecision))
        assert decision.rule == Rule.NEAREST
        assert decision.winner_distance_km == pytest.approx(3, abs=0.05)
        assert {c["retailer_id"] for c in decision.candidates} == {near.id, far.id}
        assert session.get(Order, placed.order.id).status == OrderStatus.AWARDED

    def test_listing_not_yet_due_stays_on_the_board(self, world, maker, ctx, session):
        shop = world.retailer(north_of(HERE, 3), dealer_of=[maker])
        placed = world.order(maker)
        world.bid(shop, placed.order.id)

        report = settle(ctx, as_of=START + timedelta(hours=11, minutes=59))

        assert report.settled == 0
        assert session.scalar(select(Listing.status)) == ListingStatus.OPEN

    def test_no_bids_goes_to_manufacturer(self, world, maker, ctx, session):
        placed = world.order(maker)

        report = settle(ctx, as_of=LATER)

        assert (report.to_retailers, report.to_manufacturer) == (0, 1)
        [assignment] = assignment_of(session, placed.order.id)
        assert (assignment.fulfiller_kind, assignment.retailer_id) == ("manufacturer", None)
        assert session.scalar(select(SettlementDecision.rule)) == Rule.NO_BIDS

    def test_bidder_whose_dealer_authorisation_was_revoked_cannot_win(self, world, maker, ctx, session):
        revoked = world.retailer(north_of(HERE, 1), dealer_of=[maker])
        other = world.retailer(north_of(HERE, 20), dealer_of=[maker])
        placed = world.order(maker)
        world.bid(revoked, placed.order.id)
        world.bid(other, placed.order.id)
        accounts.revoke_dealer(ctx, maker.actor, revoked.id)

        settle(ctx, as_of=LATER)

        [assignment] = assignment_of(session, placed.order.id)
        assert assignment.retailer_id == other.id
        decision = session.scalar(select(SettlementDecision))
        reasons = {c["retailer_id"]: c["reason"] for c in decision.candidates}
        assert reasons == {revoked.id: "not_authorised", other.id: ""}

    def test_bidder_whose_store_shrank_its_radius_cannot_win(self, world, maker, ctx, session):
        shrunk = world.retailer(north_of(HERE, 10), radius=50, dealer_of=[maker])
        placed = world.order(maker)
        world.bid(shrunk, placed.order.id)
        accounts.update_store(ctx, shrunk.actor, shrunk.store_id, accounts.StoreChanges(service_radius_km=5))

        settle(ctx, as_of=LATER)

        [assignment] = assignment_of(session, placed.order.id)
        assert assignment.fulfiller_kind == "manufacturer"
        assert session.scalar(select(SettlementDecision.rule)) == Rule.NO_ELIGIBLE_BIDS

    def test_a_store_that_moved_after_bidding_is_judged_from_where_it_is(self, world, maker, ctx, session):
        movers = world.retailer(north_of(HERE, 2), radius=100, dealer_of=[maker])
        steady = world.retailer(north_of(HERE, 6), dealer_of=[maker])
        placed = world.order(maker)
        world.bid(movers, placed.order.id)
        world.bid(steady, placed.order.id)
        far = north_of(HERE, 30)
        accounts.update_store(ctx, movers.actor, movers.store_id,
                              accounts.StoreChanges(location=accounts.LocationQuery(lat=far[0], lon=far[1])))

        settle(ctx, as_of=LATER)

        [assignment] = assignment_of(session, placed.order.id)
        assert assignment.retailer_id == steady.id
        decision = session.scalar(select(SettlementDecision))
        moved = next(c for c in decision.candidates if c["retailer_id"] == movers.id)
        assert moved["distance_km"] == pytest.approx(30, abs=0.1)

    def test_tie_on_distance_goes_to_earlier_bid(self, world, maker, ctx, session):
        spot = north_of(HERE, 4)
        late = world.retailer(spot, dealer_of=[maker])
        early = world.retailer(spot, dealer_of=[maker])
        placed = world.order(maker)
        world.bid(late, placed.order.id, when=START + timedelta(hours=2))
        world.bid(early, placed.order.id, when=START + timedelta(hours=1))

        settle(ctx, as_of=LATER)

        [assignment] = assignment_of(session, placed.order.id)
        assert assignment.retailer_id == early.id
        assert session.scalar(select(SettlementDecision.rule)) == Rule.EARLIEST_BID

    def test_tie_on_distance_goes_first_to_better_fulfilment_record(self, world, maker, ctx, session):
        spot = north_of(HERE, 4)
        flaky = world.retailer(spot, dealer_of=[maker])
        steady = world.retailer(spot, dealer_of=[maker])
        # flaky wins an earlier order and gives it back: a release on its record.
        first = world.order(maker)
        world.bid(flaky, first.order.id)
        settle(ctx, as_of=LATER)
        [mine] = assignment_of(session, first.order.id)
        fulfilment.release_assignment(ctx, flaky.actor, mine.id)
        # Now both bid on a new order from the same spot; flaky bids first.
        second = world.order(maker, when=LATER)
        world.bid(flaky, second.order.id, when=LATER + timedelta(minutes=1))
        world.bid(steady, second.order.id, when=LATER + timedelta(minutes=2))

        settle(ctx, as_of=LATER + timedelta(hours=13))

        winner = assignment_of(session, second.order.id)[0]
        assert winner.retailer_id == steady.id
        decision = session.scalar(
            select(SettlementDecision).where(SettlementDecision.listing_id == world.listing_id(second.order.id))
        )
        assert decision.rule == Rule.FULFILMENT_SCORE

    def test_settling_again_for_the_same_moment_changes_nothing(self, world, maker, ctx, session):
        shop = world.retailer(north_of(HERE, 3), dealer_of=[maker])
        for _ in range(3):
            world.bid(shop, world.order(maker).order.id)
        world.order(maker)  # nobody bids

        first = settle(ctx, as_of=LATER)
        before = session.execute(
            select(Assignment.order_id, Assignment.retailer_id, Assignment.fulfiller_kind).order_by(Assignment.id)
        ).all()
        second = settle(ctx, as_of=LATER)
        after = session.execute(
            select(Assignment.order_id, Assignment.retailer_id, Assignment.fulfiller_kind).order_by(Assignment.id)
        ).all()

        assert (first.settled, second.settled) == (4, 0)
        assert before == after
        assert session.scalar(select(func.count()).select_from(SettlementDecision)) == 4

    def test_batches_settle_everything(self, world, maker, ctx, session):
        import dataclasses

        shop = world.retailer(north_of(HERE, 3), dealer_of=[maker])
        for i in range(7):
            placed = world.order(maker)
            if i % 2:
                world.bid(shop, placed.order.id)
        small = dataclasses.replace(ctx, settings=dataclasses.replace(ctx.settings, settle_batch_size=2))

        report = settle(small, as_of=LATER)

        assert (report.settled, report.to_retailers, report.to_manufacturer) == (7, 3, 4)
        assert session.scalar(select(func.count()).where(Listing.status == ListingStatus.OPEN)) == 0

    def test_dry_run_writes_nothing(self, world, maker, ctx, session):
        shop = world.retailer(north_of(HERE, 3), dealer_of=[maker])
        world.bid(shop, world.order(maker).order.id)

        plan = settle(ctx, as_of=LATER, dry_run=True)

        assert plan.settled == 1 and plan.decisions[0]["retailer_id"] == shop.id
        assert session.scalar(select(func.count()).select_from(SettlementDecision)) == 0
        assert session.scalar(select(Listing.status)) == ListingStatus.OPEN

    def test_cancelled_order_is_not_settled(self, world, maker, ctx, session):
        from broker.orders.services import cancel_order

        placed = world.order(maker)
        cancel_order(ctx, placed.order.id, placed.access_token)

        assert settle(ctx, as_of=LATER).settled == 0


class TestRelease:
    def test_release_goes_to_next_nearest_then_manufacturer(self, world, maker, ctx, session):
        first = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        second = world.retailer(north_of(HERE, 6), dealer_of=[maker])
        placed = world.order(maker)
        world.bid(first, placed.order.id)
        world.bid(second, placed.order.id)
        settle(ctx, as_of=LATER)

        [a1] = assignment_of(session, placed.order.id)
        fulfilment.release_assignment(ctx, first.actor, a1.id)
        a2 = assignment_of(session, placed.order.id)[-1]
        assert (a2.retailer_id, a2.status) == (second.id, AssignmentStatus.ACTIVE)

        fulfilment.release_assignment(ctx, second.actor, a2.id)
        a3 = assignment_of(session, placed.order.id)[-1]
        assert a3.fulfiller_kind == "manufacturer"
        rounds = session.execute(
            select(SettlementDecision.round, SettlementDecision.cause).order_by(SettlementDecision.round)
        ).all()
        assert rounds == [(0, Cause.SETTLEMENT), (1, Cause.RELEASE), (2, Cause.RELEASE)]
        assert session.get(Order, placed.order.id).status == OrderStatus.AWARDED

    def test_released_retailer_loses_sight_of_the_order(self, world, maker, ctx):
        from broker.errors import NotFound
        from broker.orders.services import get_order

        shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        placed = world.order(maker)
        world.bid(shop, placed.order.id)
        settle(ctx, as_of=LATER)
        assert get_order(ctx, shop.actor, placed.order.id).show_customer
        with ctx.uow() as uow:
            a = uow.session.scalar(select(Assignment))
        fulfilment.release_assignment(ctx, shop.actor, a.id)

        with pytest.raises(NotFound):
            get_order(ctx, shop.actor, placed.order.id)

    def test_manufacturer_cannot_release(self, world, maker, ctx, session):
        from broker.errors import Conflict

        world.order(maker)
        settle(ctx, as_of=LATER)
        a = session.scalar(select(Assignment))
        with pytest.raises(Conflict):
            fulfilment.release_assignment(ctx, Actor(ActorKind.MANUFACTURER, maker.id), a.id)
