"""Settlement, by property: random bids and random worlds, checked against an oracle.

The oracle is written here from the product's words, not from the code: the winner
is the eligible bidder nearest to the ship-to point by exact distance (eligible:
active, still authorised by the manufacturer, its store open, and the listing's
place on the board, the centre of the ship-to point's 0.02° grid cell, inside
that store's radius); ties go to the better fulfilment score, then the earlier
bid, then the lower retailer id; with no eligible bid the manufacturer ships. It
narrows the field one rule at a time instead of sorting by a key, so it does not
share the rule module's shape.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime, timedelta, timezone

import pytest
from geopy.distance import geodesic
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from broker.accounts import services as accounts
from broker.accounts.models import DealerAuthorisation, Retailer, Store
from broker.auth import OPERATOR, Actor, ActorKind
from broker.board import services as board
from broker.board.models import Bid, BidStatus, Listing, ListingStatus
from broker.catalog import services as catalog
from broker.clock import FrozenClock
from broker.errors import Invalid, NotFound
from broker.fulfilment.models import Assignment
from broker.geo.geocoding import LocationQuery
from broker.orders import services as orders
from broker.orders.models import Order
from broker.settlement.models import Rule, SettlementDecision
from broker.settlement.rules import Candidate, choose, eligibility
from broker.settlement.services import settle
from tests.conftest import START
from tests.factories import HERE, KM

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
INF = float("inf")

rarely = st.sampled_from([False, False, False, True])
mostly = rarely.map(lambda b: not b)
# Per store or retailer: rare enough that most listings keep a few eligible bidders.
seldom = st.sampled_from([False] * 9 + [True])


# --- the oracle ------------------------------------------------------------------

def oracle(pool: list, *, distance, score, bid_at, retailer_id, price=None):
    """The winner among `pool` (all eligible): each rule in turn keeps only those
    best by it, until one is left."""
    steps = ([(Rule.LOWEST_PRICE, lambda c: price(c) if price(c) is not None else INF, min)] if price else []) + [
        (Rule.NEAREST, distance, min),
        (Rule.FULFILMENT_SCORE, score, max),
        (Rule.EARLIEST_BID, bid_at, min),
        (Rule.LOWEST_RETAILER_ID, retailer_id, min),
    ]
    if not pool:
        return None
    for _, key, best in steps:
        top = best(key(c) for c in pool)
        pool = [c for c in pool if key(c) == top]
        if len(pool) == 1:
            return pool[0]
    raise AssertionError(f"no rule told these apart: {pool}")


def deciding_rule(eligible: list[Candidate], prefer: str) -> Rule:
    """The first rule in which the winner differs from the runner-up."""
    keys = dict(distance=lambda c: c.distance_km, score=lambda c: c.score, bid_at=lambda c: c.bid_at,
                retailer_id=lambda c: c.retailer_id, price=(lambda c: c.price) if prefer == "lowest_price" else None)
    if len(eligible) == 1:
        return Rule.ONLY_ELIGIBLE_BID
    winner = oracle(eligible, **keys)
    runner_up = oracle([c for c in eligible if c is not winner], **keys)
    order = ([("price", Rule.LOWEST_PRICE)] if prefer == "lowest_price" else []) + [
        ("distance", Rule.NEAREST), ("score", Rule.FULFILMENT_SCORE), ("bid_at", Rule.EARLIEST_BID),
        ("retailer_id", Rule.LOWEST_RETAILER_ID)]
    for name, rule in order:
        a, b = keys[name](winner), keys[name](runner_up)
        if name == "price":
            a, b = (INF if a is None else a), (INF if b is None else b)
        if a != b:
            return rule
    raise AssertionError("the winner and the runner-up are the same bid")


# --- the pure rule ------------------------------------------------------------------

@st.composite
def candidates(draw):
    """Bids on one listing: one per retailer, with repeated values so that ties happen."""
    retailer_ids = draw(st.lists(st.integers(1, 40), max_size=8, unique=True))
    found = []
    for i, retailer_id in enumerate(retailer_ids):
        km = draw(st.sampled_from([0.0, 1.5, 4.0, 12.25]) | st.floats(0, 400, allow_nan=False))
        radius = draw(st.sampled_from([1.5, 5.0, 50.0]) | st.floats(0.5, 500, allow_nan=False))
        reason = eligibility(retailer_active=draw(mostly), authorised=draw(mostly), store_open=draw(mostly),
                             distance_km=km, radius_km=radius)
        found.append(Candidate(
            bid_id=1000 + i, retailer_id=retailer_id, store_id=500 + retailer_id, distance_km=km,
            score=draw(st.sampled_from([0.25, 0.5, 0.75])), bid_at=T0 + timedelta(minutes=draw(st.integers(0, 3))),
            eligible=not reason, reason=reason, price=draw(st.sampled_from([None, 500, 750, 1000])),
        ))
    return found


CANDIDATE_KEYS = dict(distance=lambda c: c.distance_km, score=lambda c: c.score, bid_at=lambda c: c.bid_at,
                      retailer_id=lambda c: c.retailer_id)


class TestChoose:
    @given(candidates(), st.sampled_from(["nearest", "lowest_price"]))
    def test_winner_is_the_best_eligible_bidder_by_the_rules_in_order(self, bids, prefer):
        choice = choose(bids, prefer)

        eligible = [c for c in bids if c.eligible]
        expected = oracle(eligible, **CANDIDATE_KEYS,
                             price=(lambda c: c.price) if prefer == "lowest_price" else None)
        assert choice.winner == expected
        if prefer == "nearest" and eligible:
            assert choice.winner.eligible
            assert choice.winner.distance_km == min(c.distance_km for c in eligible)

    @given(candidates(), st.sampled_from(["nearest", "lowest_price"]))
    def test_the_rule_recorded_is_the_one_that_set_the_winner_apart(self, bids, prefer):
        choice = choose(bids, prefer)

        eligible = [c for c in bids if c.eligible]
        if not bids:
            assert choice.rule is Rule.NO_BIDS
        elif not eligible:
            assert choice.rule is Rule.NO_ELIGIBLE_BIDS
        else:
            assert choice.rule is deciding_rule(eligible, prefer)

    @given(candidates(), st.sampled_from(["nearest", "lowest_price"]))
    def test_the_manufacturer_ships_exactly_when_no_bid_is_eligible(self, bids, prefer):
        choice = choose(bids, prefer)

        assert (choice.winner is None) == (not any(c.eligible for c in bids))

    @given(candidates())
    def test_every_bid_is_kept_once_with_its_reason(self, bids):
        choice = choose(bids)

        assert sorted(c.bid_id for c in choice.candidates) == sorted(c.bid_id for c in bids)
        assert all(c.eligible and not c.reason for c in choice.ranked)
        assert all(not c.eligible and c.reason for c in choice.ineligible)
        if choice.winner is not None:
            assert choice.ranked[0] == choice.winner

    @given(st.data(), candidates(), st.sampled_from(["nearest", "lowest_price"]))
    def test_the_order_bids_come_in_does_not_matter(self, data, bids, prefer):
        shuffled = data.draw(st.permutations(bids))

        a, b = choose(bids, prefer), choose(shuffled, prefer)

        assert (a.winner, a.rule, a.ranked) == (b.winner, b.rule, b.ranked)


# --- the service, against the database ------------------------------------------------

# Points as (km north, km east) of the usual ship-to point; stores and customers
# share them, so that exact ties in distance happen.
GRID = [(0, 0), (0, 2), (2, 0), (0, -3), (5, 5), (0, 8), (-12, 0), (25, 0), (0, 45)]
RADII = [1.0, 3.0, 9.0, 25.0, 60.0, 60.0]
LATER = START + timedelta(hours=13)  # listings placed at START are due; placed at START + 2h, not yet
NEXT_DAY = LATER + timedelta(days=1)


def point(index: int) -> tuple[float, float]:
    north, east = GRID[index]
    lat = HERE[0] + north * KM
    return lat, HERE[1] + east * KM / math.cos(math.radians(lat))


def km_between(a: tuple[float, float], b: tuple[float, float]) -> float:
    return round(geodesic(a, b).km, 3)


def cell_centre(where: tuple[float, float]) -> tuple[float, float]:
    """The centre of the 0.02° grid cell a point is in: where the board places a listing."""
    return tuple(round((math.floor(x / 0.02) + 0.5) * 0.02, 6) for x in where)


@dataclasses.dataclass
class ShopPlan:
    stores: list[tuple[int, float]]  # (grid point, radius)
    dealer: bool
    revoked: bool
    inactive: bool
    closed: list[bool]
    shrunk: list[bool]
    moved: list[int | None]


@dataclasses.dataclass
class WorldPlan:
    shops: list[ShopPlan]
    orders: list[tuple[int, bool]]  # (grid point, placed late)
    bids: list[tuple[int, int, int | None, int]]  # (order, shop, store index or None, minutes after listing)
    batch_size: int  # listings per settlement transaction: batch edges must not matter


@st.composite
def worlds(draw) -> WorldPlan:
    shops = []
    for _ in range(draw(st.integers(1, 6))):
        stores = draw(st.lists(st.tuples(st.integers(0, len(GRID) - 1), st.sampled_from(RADII)),
                               min_size=1, max_size=2))
        shops.append(ShopPlan(
            stores=stores, dealer=draw(mostly), revoked=draw(seldom), inactive=draw(seldom),
            closed=[draw(seldom) for _ in stores], shrunk=[draw(rarely) for _ in stores],
            moved=[draw(st.none() if not draw(rarely) else st.integers(0, len(GRID) - 1)) for _ in stores],
        ))
    placed = draw(st.lists(st.tuples(st.integers(0, len(GRID) - 1), rarely), min_size=1, max_size=4))
    bids = []
    for o in range(len(placed)):
        for s, shop in enumerate(shops):
            if draw(mostly):
                store = draw(st.none() | st.integers(0, len(shop.stores) - 1))
                bids.append((o, s, store, draw(st.integers(0, 3))))
    return WorldPlan(shops, placed, bids, draw(st.sampled_from([1, 2, 3, 500])))


def at(ctx, when: datetime):
    return dataclasses.replace(ctx, clock=FrozenClock(when))


def settling(ctx, plan: WorldPlan, when: datetime):
    """Settle as at `when`, in the plan's batch size."""
    small = dataclasses.replace(ctx.settings, settle_batch_size=plan.batch_size)
    return settle(dataclasses.replace(ctx, settings=small, clock=FrozenClock(when)), as_of=when)


def build(ctx, plan: WorldPlan) -> None:
    """The world through the real services; perturbations after the bids."""
    maker, _ = accounts.create_manufacturer(ctx, OPERATOR, accounts.NewManufacturer(
        "Prop Maker", "prop-maker", "USD", LocationQuery(lat=HERE[0], lon=HERE[1])))
    me = Actor(ActorKind.MANUFACTURER, maker.id)
    catalog.add_product(ctx, me, catalog.NewProduct("SKU-1", "Thing", 5000))
    shops: list[tuple[Actor, list[int]]] = []
    for i, shop in enumerate(plan.shops):
        (first, radius), *more = shop.stores
        lat, lon = point(first)
        retailer, store, _ = accounts.create_retailer(ctx, OPERATOR, accounts.NewRetailer(
            f"Shop {i}", f"shop{i}@example.com", LocationQuery(lat=lat, lon=lon), radius))
        actor = Actor(ActorKind.RETAILER, retailer.id)
        ids = [store.id]
        for where, radius in more:
            lat, lon = point(where)
            ids.append(accounts.add_store(ctx, actor, accounts.NewStore("Annex", LocationQuery(lat=lat, lon=lon),
                                                                        radius)).id)
        if shop.dealer:
            accounts.authorise_dealer(ctx, me, retailer.id)
        shops.append((actor, ids))

    listing_ids = []
    for where, late in plan.orders:
        lat, lon = point(where)
        when = START + timedelta(hours=2 if late else 0)
        placed = orders.place_order(at(ctx, when), "prop-maker", orders.PlaceOrder(
            items=[orders.Item("SKU-1", 1)], customer=orders.Customer("Prop Buyer", "buyer@example.com"),
            ship_to=orders.Address("1 Main St", "San Francisco", "94103", "US", lat=lat, lon=lon)))
        with ctx.uow() as uow:
            listing_ids.append(uow.session.scalar(select(Listing.id).where(Listing.order_id == placed.order.id)))

    for o, s, store, minutes in plan.bids:
        actor, store_ids = shops[s]
        when = START + timedelta(hours=2 if plan.orders[o][1] else 0, minutes=minutes)
        cmd = board.PlaceBid(listing_ids[o], store_id=None if store is None else store_ids[store])
        try:
            board.place_bid(at(ctx, when), actor, cmd)
        except (NotFound, Invalid):
            # Not on its board (not a dealer, or no store covers it), or the named store does not.
            assert not plan.shops[s].dealer or not _covers(plan.shops[s], store, plan.orders[o][0])
        else:
            assert plan.shops[s].dealer, "a retailer that is not a dealer placed a bid"

    for shop, (actor, store_ids) in zip(plan.shops, shops):
        if shop.dealer and shop.revoked:
            accounts.revoke_dealer(ctx, me, actor.id)
        for store_id, closed, shrunk, moved in zip(store_ids, shop.closed, shop.shrunk, shop.moved):
            changes = accounts.StoreChanges(
                is_open=False if closed else None, service_radius_km=0.5 if shrunk else None,
                location=None if moved is None else LocationQuery(lat=point(moved)[0], lon=point(moved)[1]))
            accounts.update_store(ctx, actor, store_id, changes)
        if shop.inactive:
            # No service suspends a retailer yet; the column is what settlement reads.
            with ctx.uow() as uow:
                uow.session.execute(update(Retailer).where(Retailer.id == actor.id).values(active=False))
                uow.commit()


def _covers(shop: ShopPlan, store: int | None, order_point: int) -> bool:
    chosen = shop.stores if store is None else [shop.stores[store]]
    return any(km_between(point(p), cell_centre(point(order_point))) <= radius for p, radius in chosen)


@dataclasses.dataclass(frozen=True)
class Expected:
    listed_at: datetime
    retailer_id: int | None
    store_id: int | None
    distance_km: float | None
    eligible: dict[int, bool]  # bid id -> eligible


def expected_outcomes(session) -> dict[int, Expected]:
    """What the product says each open listing's outcome is, from the database as it is now."""
    stores = {s.id: s for s in session.scalars(select(Store))}
    active = {r.id: r.active for r in session.scalars(select(Retailer))}
    authorised = set(session.execute(select(DealerAuthorisation.manufacturer_id, DealerAuthorisation.retailer_id)
                                     .where(DealerAuthorisation.revoked_at.is_(None))).tuples())
    out = {}
    for listing in session.scalars(select(Listing).where(Listing.status == ListingStatus.OPEN)):
        order = session.get(Order, listing.order_id)
        ship_to = (order.ship_lat, order.ship_lon)
        eligible, pool = {}, []
        for bid in session.scalars(select(Bid).where(Bid.listing_id == listing.id, Bid.status == BidStatus.ACTIVE)):
            store = stores[bid.store_id]
            covers = km_between((store.lat, store.lon), cell_centre(ship_to)) <= store.service_radius_km
            ok = (active[bid.retailer_id] and (listing.manufacturer_id, bid.retailer_id) in authorised
                  and store.is_open and store.retailer_id == bid.retailer_id and covers)
            eligible[bid.id] = ok
            if ok:
                pool.append((bid, km_between((store.lat, store.lon), ship_to)))
        # Every retailer here is new, with the same (prior) fulfilment score: no tie ends on it.
        winner = oracle(pool, distance=lambda p: p[1], score=lambda p: 0, bid_at=lambda p: p[0].created_at,
                           retailer_id=lambda p: p[0].retailer_id)
        out[listing.id] = Expected(listing.listed_at, winner and winner[0].retailer_id, winner and winner[0].store_id,
                                   winner and winner[1], eligible)
    return out


def outcomes(session) -> list[tuple]:
    return session.execute(
        select(SettlementDecision.listing_id, SettlementDecision.round, SettlementDecision.winner_retailer_id,
               Assignment.order_id, Assignment.retailer_id, Assignment.fulfiller_kind, Assignment.status)
        .join(Assignment, Assignment.decision_id == SettlementDecision.id)
        .order_by(SettlementDecision.listing_id, SettlementDecision.round)
    ).all()


def check(session, expected: dict[int, Expected], as_of: datetime) -> None:
    cutoff = as_of - timedelta(hours=12)
    for listing_id, want in expected.items():
        listing = session.get(Listing, listing_id)
        decisions = session.scalars(select(SettlementDecision).where(SettlementDecision.listing_id == listing_id)).all()
        assignments = session.scalars(select(Assignment).where(Assignment.order_id == listing.order_id)).all()
        if listing.listed_at > cutoff:
            assert (listing.status, decisions, assignments) == (ListingStatus.OPEN, [], []), "settled before due"
            continue
        assert listing.status == ListingStatus.AWARDED
        [decision] = decisions
        [assignment] = assignments
        assert assignment.decision_id == decision.id
        # The oracle leaves scores out: every retailer here is new, so they all tie.
        assert len({c["score"] for c in decision.candidates}) <= 1
        event(f"rule: {decision.rule}")
        for c in decision.candidates:
            event(f"ineligible: {c['reason']}" if c["reason"] else "eligible bid")
        recorded = {c["bid_id"]: c["eligible"] for c in decision.candidates}
        assert recorded == want.eligible, "eligibility differs from the product's rules"
        if want.retailer_id is None:
            assert (assignment.fulfiller_kind, assignment.retailer_id) == ("manufacturer", None)
            assert decision.rule in (Rule.NO_BIDS, Rule.NO_ELIGIBLE_BIDS)
        else:
            assert (assignment.fulfiller_kind, assignment.retailer_id, assignment.store_id) == (
                "retailer", want.retailer_id, want.store_id)
            assert decision.winner_distance_km == pytest.approx(want.distance_km, abs=1e-9)


SERVICE = settings(max_examples=60, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                          HealthCheck.data_too_large])


class TestSettle:
    @SERVICE
    @given(plan=worlds())
    def test_each_due_listing_goes_once_to_its_nearest_eligible_bidder_else_the_manufacturer(
            self, ctx, connection, plan):
        savepoint = connection.begin_nested()  # every example starts from an empty database
        try:
            build(ctx, plan)
            with ctx.uow() as uow:
                expected = expected_outcomes(uow.session)

            first = settling(ctx, plan, LATER)
            with ctx.uow() as uow:
                check(uow.session, expected, LATER)
                after_first = outcomes(uow.session)
            due = [want for want in expected.values() if want.listed_at <= LATER - timedelta(hours=12)]
            assert (first.settled, first.to_manufacturer) == (
                len(due), sum(1 for want in due if want.retailer_id is None))

            again = settling(ctx, plan, LATER)
            with ctx.uow() as uow:
                assert outcomes(uow.session) == after_first, "settling the same moment again changed something"
            assert again.settled == 0

            # A day on, the late listings are due too; the ones settled already are not touched.
            settling(ctx, plan, NEXT_DAY)
            with ctx.uow() as uow:
                check(uow.session, expected, NEXT_DAY)
                assert set(after_first) <= set(outcomes(uow.session))
        finally:
            savepoint.rollback()
