"""Reviews and reputation through the services and the API, on the test database."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select

from broker.auth import ANONYMOUS, OPERATOR
from broker.errors import Conflict, Invalid, NotFound, Unauthenticated
from broker.fulfilment import services as fulfilment
from broker.orders.delivered import assume_deliveries, confirm_delivery
from broker.fulfilment.models import Assignment
from broker.orders import services as orders
from broker.payments import services as payments
from broker.payments.models import Payment
from broker.reputation import services as reputation
from broker.reputation.models import Review
from broker.reputation.rules import PRIOR_MEAN, REVEAL_AFTER, buyer_key, buyer_score, fulfilment_score
from broker.settlement.models import Rule, SettlementDecision
from broker.settlement.services import settle
from tests.conftest import ADMIN_TOKEN
from tests.factories import HERE, north_of

API = "/api/v1"


@pytest.fixture
def maker(world):
    return world.manufacturer()


@pytest.fixture
def shop(world, maker):
    return world.retailer(north_of(HERE, 3), dealer_of=[maker])


@pytest.fixture
def loser(world, maker):
    return world.retailer(north_of(HERE, 9), dealer_of=[maker])


def assignment_of(ctx, order_id: int) -> Assignment:
    with ctx.uow() as uow:
        return uow.session.scalars(
            select(Assignment).where(Assignment.order_id == order_id).order_by(Assignment.id.desc())
        ).first()


def awarded(world, ctx, clock, maker, *bidders, email="ada@example.com"):
    """An order the first bidder wins (the others bid from further away), or the
    manufacturer if nobody bids."""
    placed = world.order(maker, email=email)
    for bidder in bidders:
        world.bid(bidder, placed.order.id)
    clock.advance(hours=13)
    settle(ctx)
    return placed


def shipped(world, ctx, clock, maker, *bidders, email="ada@example.com"):
    placed = awarded(world, ctx, clock, maker, *bidders, email=email)
    fulfiller = bidders[0].actor if bidders else maker.actor
    fulfilment.record_shipment(ctx, fulfiller, assignment_of(ctx, placed.order.id).id,
                               fulfilment.RecordShipment("UPS", "1Z"))
    return placed


def delivered(world, ctx, clock, maker, *bidders, email="ada@example.com"):
    """Shipped, and the customer says it arrived: both sides may review."""
    placed = shipped(world, ctx, clock, maker, *bidders, email=email)
    confirm_delivery(ctx, placed.order.id, placed.access_token)
    return placed


def by_customer(ctx, placed, rating=5, comment=None):
    return reputation.review_as_customer(ctx, placed.order.id, placed.access_token, rating, comment)


def seen_by_customer(ctx, placed):
    return reputation.reviews_for_order(ctx, placed.order.id, access_token=placed.access_token)


# --- blind reviews ------------------------------------------------------------

class TestBlindReviews:
    def test_neither_side_sees_the_others_review_before_both_have_reviewed(self, world, ctx, clock, maker, shop):
        placed = delivered(world, ctx, clock, maker, shop)

        by_customer(ctx, placed, 2, "  slow to answer  ")

        mine = seen_by_customer(ctx, placed)
        assert (mine.party, mine.mine.rating, mine.mine.comment) == ("customer", 2, "slow to answer")
        assert (mine.theirs, mine.reveal_pending) == (None, True)
        theirs = reputation.reviews_for_order(ctx, placed.order.id, actor=shop.actor)
        assert (theirs.party, theirs.mine, theirs.theirs, theirs.reveal_pending) == ("fulfiller", None, None, True)

    def test_the_fulfiller_cannot_tell_whether_the_customer_has_reviewed(self, world, ctx, clock, maker, shop):
        placed = delivered(world, ctx, clock, maker, shop)
        before = reputation.reviews_for_order(ctx, placed.order.id, actor=shop.actor)

        by_customer(ctx, placed, 1)
        clock.advance(days=13)

        assert reputation.reviews_for_order(ctx, placed.order.id, actor=shop.actor) == before

    def test_once_both_have_reviewed_both_see_both(self, world, ctx, clock, maker, shop):
        placed = delivered(world, ctx, clock, maker, shop)
        by_customer(ctx, placed, 4, "fine")
        clock.advance(hours=2)
        reputation.review_as_fulfiller(ctx, shop.actor, placed.order.id, 5, "paid, polite")

        customer = seen_by_customer(ctx, placed)
        fulfiller = reputation.reviews_for_order(ctx, placed.order.id, actor=shop.actor)

        assert not customer.reveal_pending and not fulfiller.reveal_pending
        assert (customer.mine.rating, customer.theirs.rating, customer.theirs.comment) == (4, 5, "paid, polite")
        assert (fulfiller.mine.rating, fulfiller.theirs.rating, fulfiller.theirs.comment) == (5, 4, "fine")
        assert customer.theirs.author == "fulfiller" and fulfiller.theirs.author == "customer"

    def test_a_lone_review_is_revealed_fourteen_days_after_it_was_written(self, world, ctx, clock, maker, shop):
        placed = delivered(world, ctx, clock, maker, shop)
        reputation.review_as_fulfiller(ctx, shop.actor, placed.order.id, 3, "picky")

        clock.advance(seconds=REVEAL_AFTER.total_seconds() - 1)
        assert seen_by_customer(ctx, placed).theirs is None

        clock.advance(seconds=1)
        seen = seen_by_customer(ctx, placed)
        assert (seen.theirs.rating, seen.theirs.comment, seen.reveal_pending) == (3, "picky", False)
        assert seen.mine is None

    def test_the_silent_side_cannot_review_once_the_lone_review_is_revealed(self, world, ctx, clock, maker, shop):
        # Otherwise it could read the review and answer it in kind: the blind window
        # is also the window to review in.
        placed = delivered(world, ctx, clock, maker, shop)
        by_customer(ctx, placed, 1)
        clock.advance(days=14)

        with pytest.raises(Conflict):
            reputation.review_as_fulfiller(ctx, shop.actor, placed.order.id, 1)

    def test_the_second_side_may_review_until_the_last_moment(self, world, ctx, clock, maker, shop):
        placed = delivered(world, ctx, clock, maker, shop)
        by_customer(ctx, placed, 5)
        clock.advance(seconds=REVEAL_AFTER.total_seconds() - 1)

        reputation.review_as_fulfiller(ctx, shop.actor, placed.order.id, 5)

        assert seen_by_customer(ctx, placed).theirs.rating == 5

    def test_a_hidden_review_does_not_change_the_score_until_revealed(self, world, ctx, clock, maker, shop, session):
        placed = delivered(world, ctx, clock, maker, shop)
        record_only = reputation.reputation_of_retailer(ctx, shop.id)
        assert record_only.score == pytest.approx(fulfilment_score(1, 0, 0, 0))

        by_customer(ctx, placed, 1)

        assert reputation.reputation_of_retailer(ctx, shop.id) == record_only
        assert reputation.fulfilment_scores(session, [shop.id], now=ctx.now()) == {shop.id: record_only.score}
        clock.advance(days=14)
        revealed = reputation.reputation_of_retailer(ctx, shop.id)
        assert revealed.ratings == 1
        assert revealed.score == pytest.approx((1 + 0 + 5 * PRIOR_MEAN) / (2 + 5))
        assert revealed.score < record_only.score

    def test_a_hidden_review_of_the_buyer_does_not_change_its_score(self, world, ctx, clock, maker, shop, session):
        placed = delivered(world, ctx, clock, maker, shop)
        key = buyer_key("ada@example.com")
        reputation.review_as_fulfiller(ctx, shop.actor, placed.order.id, 1)

        assert reputation.buyer_score(session, key, now=ctx.now()) == pytest.approx(buyer_score(1, 0, 0))
        by_customer(ctx, placed, 5)  # both have reviewed: revealed at once
        assert reputation.buyer_score(session, key, now=ctx.now()) == pytest.approx((1 + 0 + 4.5) / (2 + 5))


# --- who may review, and what ------------------------------------------------

class TestWhoMayReview:
    def test_a_losing_retailer_is_not_a_party(self, world, ctx, clock, maker, shop, loser):
        placed = delivered(world, ctx, clock, maker, shop, loser)

        with pytest.raises(NotFound):
            reputation.review_as_fulfiller(ctx, loser.actor, placed.order.id, 1)
        with pytest.raises(NotFound):
            reputation.reviews_for_order(ctx, placed.order.id, actor=loser.actor)

    def test_another_customers_token_is_not_a_party(self, world, ctx, clock, maker, shop):
        placed = delivered(world, ctx, clock, maker, shop)
        other = delivered(world, ctx, clock, maker, shop, email="grace@example.com")

        with pytest.raises(NotFound):
            reputation.review_as_customer(ctx, placed.order.id, other.access_token, 1, None)
        with pytest.raises(NotFound):
            reputation.reviews_for_order(ctx, placed.order.id, access_token=other.access_token)

    def test_the_manufacturer_is_not_a_party_when_a_retailer_fulfilled(self, world, ctx, clock, maker, shop):
        placed = delivered(world, ctx, clock, maker, shop)

        with pytest.raises(NotFound):
            reputation.review_as_fulfiller(ctx, maker.actor, placed.order.id, 1)
        with pytest.raises(NotFound):
            reputation.reviews_for_order(ctx, placed.order.id, actor=maker.actor)

    def test_the_manufacturer_that_fulfilled_reviews_and_is_reviewed(self, world, ctx, clock, maker, session):
        placed = delivered(world, ctx, clock, maker)  # nobody bid

        reputation.review_as_fulfiller(ctx, maker.actor, placed.order.id, 4)
        by_customer(ctx, placed, 5)

        reviews = {r.author: r for r in session.scalars(select(Review).where(Review.order_id == placed.order.id))}
        assert (reviews["customer"].subject_kind, reviews["customer"].subject_id) == ("manufacturer", maker.id)
        assert (reviews["fulfiller"].subject_kind, reviews["fulfiller"].subject_id) == ("buyer", None)
        assert reviews["fulfiller"].subject_buyer_key == buyer_key("ada@example.com")
        assert reputation.reviews_for_order(ctx, placed.order.id, actor=maker.actor).theirs.rating == 5

    def test_an_operator_or_nobody_cannot_review_as_fulfiller(self, world, ctx, clock, maker, shop):
        placed = delivered(world, ctx, clock, maker, shop)

        with pytest.raises(Unauthenticated):
            reputation.review_as_fulfiller(ctx, ANONYMOUS, placed.order.id, 5)
        with pytest.raises(Unauthenticated):
            reputation.reviews_for_order(ctx, placed.order.id)
        with pytest.raises(NotFound):
            reputation.reviews_for_order(ctx, placed.order.id, actor=OPERATOR)

    def test_not_before_shipment(self, world, ctx, clock, maker, shop):
        placed = awarded(world, ctx, clock, maker, shop)

        with pytest.raises(Conflict):
            by_customer(ctx, placed)
        with pytest.raises(Conflict):
            reputation.review_as_fulfiller(ctx, shop.actor, placed.order.id, 5)
        # The winner who has not shipped yet is a party: it may look, with nothing to see.
        assert reputation.reviews_for_order(ctx, placed.order.id, actor=shop.actor).mine is None

    def test_not_between_shipment_and_delivery(self, world, ctx, clock, maker, shop):
        placed = shipped(world, ctx, clock, maker, shop)

        with pytest.raises(Conflict, match="delivered"):
            by_customer(ctx, placed)
        with pytest.raises(Conflict, match="delivered"):
            reputation.review_as_fulfiller(ctx, shop.actor, placed.order.id, 5)
        confirm_delivery(ctx, placed.order.id, placed.access_token)
        assert by_customer(ctx, placed).rating == 5
        assert reputation.review_as_fulfiller(ctx, shop.actor, placed.order.id, 4).rating == 4

    def test_an_order_assumed_delivered_may_be_reviewed(self, world, ctx, clock, maker, shop):
        placed = shipped(world, ctx, clock, maker, shop)
        clock.advance(days=ctx.settings.delivered_after_days, hours=1)
        assert assume_deliveries(ctx).assumed == 1
        assert by_customer(ctx, placed).rating == 5

    def test_not_an_order_still_on_the_board(self, world, ctx, maker):
        placed = world.order(maker)

        with pytest.raises(Conflict):
            by_customer(ctx, placed)

    def test_once_per_side(self, world, ctx, clock, maker, shop, session):
        placed = delivered(world, ctx, clock, maker, shop)
        by_customer(ctx, placed, 5, "great")
        reputation.review_as_fulfiller(ctx, shop.actor, placed.order.id, 5)

        with pytest.raises(Conflict):
            by_customer(ctx, placed, 1, "changed my mind")
        with pytest.raises(Conflict):
            reputation.review_as_fulfiller(ctx, shop.actor, placed.order.id, 1)
        assert [(r.rating, r.comment) for r in session.scalars(select(Review).order_by(Review.author))] == [
            (5, "great"), (5, "")]

    @pytest.mark.parametrize("rating", [0, 6])
    def test_rating_outside_1_to_5_is_refused(self, world, ctx, clock, maker, shop, session, rating):
        placed = delivered(world, ctx, clock, maker, shop)

        with pytest.raises(Invalid) as raised:
            by_customer(ctx, placed, rating)
        assert "rating" in raised.value.errors
        with pytest.raises(Invalid):
            reputation.review_as_fulfiller(ctx, shop.actor, placed.order.id, rating)
        assert session.scalars(select(Review)).all() == []

    def test_comment_longer_than_500_characters_is_refused(self, world, ctx, clock, maker, shop):
        placed = delivered(world, ctx, clock, maker, shop)

        with pytest.raises(Invalid) as raised:
            by_customer(ctx, placed, 3, "x" * 501)
        assert "comment" in raised.value.errors


# --- scores -----------------------------------------------------------------

class TestScores:
    def test_a_retailer_with_no_record_has_the_prior(self, ctx, shop):
        assert reputation.reputation_of_retailer(ctx, shop.id) == reputation.Reputation(PRIOR_MEAN, 4.6, 0)

    def test_an_unknown_retailer_is_404(self, ctx):
        with pytest.raises(NotFound):
            reputation.reputation_of_retailer(ctx, 10**9)

    def test_few_ratings_stay_near_the_prior_many_move_the_score(self, world, ctx, clock, maker, shop):
        scores = []
        for n in range(1, 13):
            placed = delivered(world, ctx, clock, maker, shop)
            by_customer(ctx, placed, 1)
            reputation.review_as_fulfiller(ctx, shop.actor, placed.order.id, 5)
            if n in (1, 12):
                scores.append(reputation.reputation_of_retailer(ctx, shop.id))

        one, twelve = scores
        assert one.ratings == 1 and twelve.ratings == 12
        # Every shipment was on time, every rating a 1: a point each way per order.
        assert one.score == pytest.approx((1 + 0 + 4.5) / (1 + 1 + 5))
        assert twelve.score == pytest.approx((12 + 0 + 4.5) / (12 + 12 + 5))
        assert twelve.stars == pytest.approx(3.3)

    def test_scores_of_many_retailers_take_a_fixed_number_of_queries(self, world, maker, session, connection):
        shops = [world.retailer(north_of(HERE, i), dealer_of=[maker]) for i in range(1, 7)]
        statements = []

        def count(*_args):
            statements.append(1)

        session.scalar(select(1))  # the session's savepoint is not one of the queries counted
        event.listen(connection, "before_cursor_execute", count)
        try:
            reputation.fulfilment_scores(session, [shops[0].id])
            one = len(statements)
            statements.clear()
            scores = reputation.fulfilment_scores(session, [s.id for s in shops])
        finally:
            event.remove(connection, "before_cursor_execute", count)

        assert len(statements) == one == 2
        assert scores == {s.id: pytest.approx(PRIOR_MEAN) for s in shops}

    def test_a_buyers_record_and_ratings_make_its_score(self, world, ctx, clock, maker, shop, session):
        # Two orders paid for (the email's case does not matter), one of them disputed,
        # one cancelled after it was awarded, and one cancelled while still on the board.
        first = delivered(world, ctx, clock, maker, shop, email="Ada@Example.com")
        shipped(world, ctx, clock, maker, shop, email=" ada@example.com")
        cancelled = awarded(world, ctx, clock, maker, shop, email="ADA@example.com")
        orders.cancel_order(ctx, cancelled.order.id, cancelled.access_token)
        on_board = world.order(maker, email="ada@example.com")
        orders.cancel_order(ctx, on_board.order.id, on_board.access_token)
        with ctx.uow() as uow:
            payment = uow.session.scalar(select(Payment).where(Payment.order_id == first.order.id))
            payments.record_dispute_opened(uow.session, payment, payment.amount, "dp_1", now=ctx.now())
            uow.commit()
        key = buyer_key("ada@example.com")

        # paid 1 (the disputed one is not), cancelled 1, disputed 1
        assert reputation.buyer_score(session, key, now=ctx.now()) == pytest.approx(buyer_score(1, 1, 1))
        assert reputation.buyer_score(session, key, now=ctx.now()) == pytest.approx((1 + 4.5) / (3 + 5))

        reputation.review_as_fulfiller(ctx, shop.actor, first.order.id, 5)
        by_customer(ctx, first, 5)
        rated = reputation.buyer_reputations(session, [key, buyer_key("nobody@example.com")], now=ctx.now())
        assert rated[key].score == pytest.approx((1 + 1 + 4.5) / (3 + 1 + 5))
        assert rated[key].ratings == 1
        assert rated[buyer_key("nobody@example.com")].score == pytest.approx(PRIOR_MEAN)


# --- settlement -----------------------------------------------------------------

class TestSettlementTieBreak:
    def test_tie_on_distance_goes_to_the_better_rated_retailer(self, world, ctx, clock, maker, session):
        spot = north_of(HERE, 4)
        loved = world.retailer(spot, dealer_of=[maker])
        panned = world.retailer(spot, dealer_of=[maker])
        # The same record for both (one order each, shipped on time), rated 5 and 1
        # by their customers, and both reviews revealed (the fulfillers reviewed too).
        for shop, stars in ((loved, 5), (panned, 1)):
            placed = delivered(world, ctx, clock, maker, shop)
            by_customer(ctx, placed, stars)
            reputation.review_as_fulfiller(ctx, shop.actor, placed.order.id, 5)
        # Both bid on a new order from the same spot; panned bids first.
        contested = world.order(maker)
        world.bid(panned, contested.order.id)
        clock.advance(minutes=1)
        world.bid(loved, contested.order.id)
        clock.advance(hours=13)

        settle(ctx)

        assert assignment_of(ctx, contested.order.id).retailer_id == loved.id
        decision = session.scalar(
            select(SettlementDecision).where(SettlementDecision.listing_id == world.listing_id(contested.order.id))
        )
        assert decision.rule == Rule.FULFILMENT_SCORE


# --- over HTTP --------------------------------------------------------------

def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def problem(resp, status: int) -> dict:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    return resp.get_json()


class TestApi:
    def test_review_both_ways_and_read_the_reputation(self, world, ctx, clock, maker, shop, client):
        placed = delivered(world, ctx, clock, maker, shop)
        path = f"{API}/orders/{placed.order.id}/reviews"
        token = {"X-Access-Token": placed.access_token}

        resp = client.post(path, json={"rating": 2, "comment": " late "}, headers=token)
        assert resp.status_code == 201, resp.get_data(as_text=True)
        assert resp.get_json() | {"created_at": None} == {
            "order_id": placed.order.id, "author": "customer", "rating": 2, "comment": "late", "created_at": None}
        blind = client.get(path, headers=bearer(shop.key)).get_json()
        assert blind == {"order_id": placed.order.id, "party": "fulfiller", "mine": None, "theirs": None,
                         "reveal_pending": True}
        public = client.get(f"{API}/retailers/{shop.id}/reputation")
        assert public.status_code == 200 and public.get_json()["ratings"] == 0

        assert client.post(path, json={"rating": 4}, headers=bearer(shop.key)).status_code == 201

        seen = client.get(path, headers=token).get_json()
        assert (seen["mine"]["rating"], seen["theirs"]["rating"], seen["theirs"]["comment"]) == (2, 4, "")
        assert seen["reveal_pending"] is False
        reputation_now = client.get(f"{API}/retailers/{shop.id}/reputation").get_json()
        expected = fulfilment_score(1, 0, 0, 0, ratings=reputation.Ratings(1, 2))
        assert reputation_now == {"score": pytest.approx(expected), "stars": round(1 + 4 * expected, 1),
                                  "ratings": 1}

    def test_refusals(self, world, ctx, clock, maker, shop, loser, client):
        placed = delivered(world, ctx, clock, maker, shop, loser)
        path = f"{API}/orders/{placed.order.id}/reviews"
        token = {"X-Access-Token": placed.access_token}

        problem(client.post(path, json={"rating": 5}), 401)
        problem(client.post(path, json={}), 401)  # credentials first, then the body
        problem(client.get(path), 401)
        problem(client.post(path, json={"rating": 5}, headers={"X-Access-Token": "wrong"}), 404)
        problem(client.post(path, json={"rating": 5}, headers=bearer(loser.key)), 404)
        problem(client.get(path, headers=bearer(maker.key)), 404)
        problem(client.post(path, json={"rating": 5}, headers=bearer(ADMIN_TOKEN)), 403)
        for rating in (0, 6, "5", 4.5, None):
            assert "rating" in problem(client.post(path, json={"rating": rating}, headers=token), 422)["errors"]
        assert "comment" in problem(client.post(path, json={"rating": 5, "comment": "x" * 501}, headers=token),
                                    422)["errors"]
        assert client.post(path, json={"rating": 5}, headers=token).status_code == 201
        problem(client.post(path, json={"rating": 5}, headers=token), 409)
        problem(client.get(f"{API}/retailers/{10**9}/reputation"), 404)

    def test_openapi_documents_the_endpoints(self, client):
        spec = client.get(f"{API}/openapi.json").get_json()
        post = spec["paths"]["/api/v1/orders/{order_id}/reviews"]["post"]
        assert post["security"] == [{"accessToken": []}, {"bearer": []}]
        assert "/api/v1/retailers/{retailer_id}/reputation" in spec["paths"]
