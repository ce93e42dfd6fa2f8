"""Settlement decided in the database agrees with the rules, by property.

`broker.settlement.awarding` decides most order listings in SQL (window
functions over the batch's bids) and the rest with `rules.plan`. Random worlds
(orders of one to three lines; whole and part bids; ties in distance, score and
bid time; bidders made ineligible every way: inactive, not or no longer a dealer,
store closed or not theirs, out of radius; stores with and without stock feeds,
fresh or stale) are settled twice from the same database: as a run does, and
with every listing planned by `rules.plan` in Python. The decisions (winner of
each listing and part, rule, every candidate record), the assignments, the
listings' and orders' states and the stock reserved must be the same.

Runs on SQLite, and on PostgreSQL with BROKER_TEST_DATABASE_URL.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select

import broker.models as m
from broker.auth import digest
from broker.clock import FrozenClock
from broker.settlement import awarding
from broker.settlement import services as settlement

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
AS_OF = T0 + timedelta(hours=13)
SKUS = ("SKU-1", "SKU-2", "SKU-3")
# Few values, so that ties happen; some with every digit a float has.
DISTANCES = [2.5, 2.5, 2.5, 2.5000000000000004, 3.141592653589793, 0.30000000000000004, 12.0]
CELL_DISTANCES = [0.5, 0.5, 4.0, 9.0, 10.0, 45.0]
RADII = [1.0, 10.0, 25.0, 60.0, 60.0, 60.0]
SCORES = [0.5, 0.5, 0.5, 0.8333333333333334, 0.75, 0.12345678]
MOMENTS = [timedelta(0), timedelta(0), timedelta(0), timedelta(minutes=1, microseconds=123456),
           timedelta(minutes=2, microseconds=500)]
# Most bidders can win; each way of not being able to comes up now and then.
MOSTLY = [True] * 7 + [False]


@dataclasses.dataclass
class Shop:
    active: bool
    dealer: str  # "yes", "no", "revoked"
    score: float
    stores: list[tuple[float, bool, bool, str]]  # (radius, open, someone else's, feed: "none"/"fresh"/"stale")
    stock: dict[str, int]


@dataclasses.dataclass
class Bidding:
    shop: int
    store: int
    km: float
    cell_km: float
    at: timedelta
    price: int | None
    lines: list[tuple[int, int]] | None  # (line index, quantity); None: the whole order


@dataclasses.dataclass
class World:
    shops: list[Shop]
    orders: list[tuple[list[int], list[Bidding]]]  # (quantities of the lines, bids)
    batch_size: int


@st.composite
def worlds(draw, stock: bool = True) -> World:
    shops = []
    for _ in range(draw(st.integers(1, 6))):
        stores = [(draw(st.sampled_from(RADII)), draw(st.sampled_from(MOSTLY)),
                   not draw(st.sampled_from(MOSTLY)),
                   draw(st.sampled_from(["none", "none", "fresh", "stale"] if stock else ["none"])))
                  for _ in range(draw(st.integers(1, 2)))]
        shops.append(Shop(active=draw(st.sampled_from(MOSTLY)),
                          dealer=draw(st.sampled_from(["yes"] * 6 + ["no", "revoked"])),
                          score=draw(st.sampled_from(SCORES)), stores=stores,
                          stock={sku: draw(st.integers(0, 3)) for sku in SKUS}))
    orders = []
    part_bids = draw(st.booleans())
    for _ in range(draw(st.integers(1, 5))):
        quantities = draw(st.lists(st.integers(1, 2), min_size=1, max_size=3))
        bids = []
        fewest = 0 if draw(st.integers(0, 4)) == 0 else min(2, len(shops))
        for s in draw(st.lists(st.integers(0, len(shops) - 1), unique=True, min_size=fewest, max_size=len(shops))):
            lines = None
            if part_bids and draw(st.booleans()):
                chosen = draw(st.lists(st.integers(0, len(quantities) - 1), unique=True, min_size=1))
                lines = [(i, draw(st.integers(0, 3))) for i in sorted(chosen)]
                if draw(st.integers(0, 9)) == 0:
                    # A line named twice (the rules take the last): not read in the database.
                    lines.append((lines[0][0], draw(st.integers(0, 3))))
            bids.append(Bidding(shop=s, store=draw(st.integers(0, len(shops[s].stores) - 1)),
                                km=draw(st.sampled_from(DISTANCES)), cell_km=draw(st.sampled_from(CELL_DISTANCES)),
                                at=draw(st.sampled_from(MOMENTS)),
                                price=draw(st.sampled_from([None, 4500, 5000])), lines=lines))
        orders.append((quantities, bids))
    return World(shops, orders, draw(st.sampled_from([1, 2, 500])))


def build(ctx, world: World) -> dict[int, float]:
    """The world written straight into the tables (the services would refuse
    most of what makes a bidder ineligible after the fact); the shops' scores."""
    with ctx.uow() as uow:
        conn = uow.session.connection()
        maker = conn.execute(insert(m.Manufacturer).returning(m.Manufacturer.id), [dict(
            name="Prop Co", slug="prop-co", currency="USD", lat=40.7, lon=-74.0, area="New York", created_at=T0,
            frame_origins=[])]).scalar_one()
        product = conn.execute(insert(m.Product).returning(m.Product.id), [dict(
            manufacturer_id=maker, sku="SKU-1", name="Thing", price=5000, description="", active=True, in_stock=True,
            created_at=T0, updated_at=T0)]).scalar_one()
        shop_ids, store_ids = [], []
        for i, shop in enumerate(world.shops):
            shop_ids.append(conn.execute(insert(m.Retailer).returning(m.Retailer.id), [dict(
                name=f"Shop {i}", email=f"shop{i}@example.com", active=shop.active, created_at=T0)]).scalar_one())
        for i, shop in enumerate(world.shops):
            mine = []
            for radius, is_open, others, feed in shop.stores:
                owner = shop_ids[(i + 1) % len(shop_ids)] if others else shop_ids[i]
                store = conn.execute(insert(m.Store).returning(m.Store.id), [dict(
                    retailer_id=owner, name="Store", lat=40.7, lon=-74.0, area="x", service_radius_km=radius,
                    is_open=is_open, created_at=T0)]).scalar_one()
                mine.append(store)
                if feed != "none":
                    fed_at = AS_OF - timedelta(hours=1 if feed == "fresh" else 24 * 30)
                    conn.execute(insert(m.StockFeed), [dict(store_id=store, updated_at=fed_at)])
                    conn.execute(insert(m.StockLevel), [dict(store_id=store, sku=sku, quantity=n, reserved=0,
                                                             updated_at=fed_at)
                                                        for sku, n in shop.stock.items() if n or sku != "SKU-3"])
            store_ids.append(mine)
            if shop.dealer != "no":
                conn.execute(insert(m.DealerAuthorisation), [dict(
                    manufacturer_id=maker, retailer_id=shop_ids[i], authorised_at=T0,
                    revoked_at=T0 + timedelta(hours=1) if shop.dealer == "revoked" else None)])
        for n, (quantities, bids) in enumerate(world.orders):
            order = conn.execute(insert(m.Order).returning(m.Order.id), [dict(
                manufacturer_id=maker, status="open", currency="USD", total=5000, delivery="ship",
                customer_name="C", customer_email="c@example.com", ship_line1="1 St", ship_line2="",
                ship_city="City", ship_postal_code="00000", ship_country="US", ship_lat=40.7, ship_lon=-74.0,
                area="area", access_token_hash=digest(f"prop-{n}"), created_at=T0, updated_at=T0,
                pickup_attempts=0)]).scalar_one()
            line_ids = [conn.execute(insert(m.OrderLine).returning(m.OrderLine.id), [dict(
                order_id=order, product_id=product, sku=SKUS[k], name="Thing", unit_price=5000, quantity=q,
                line_total=5000 * q)]).scalar_one() for k, q in enumerate(quantities)]
            listing = conn.execute(insert(m.Listing).returning(m.Listing.id), [dict(
                kind="order", manufacturer_id=maker, order_id=order, status="open", lat=40.7, lon=-74.0,
                exact_lat=40.7, exact_lon=-74.0, area="area", price=5000, currency="USD", listed_at=T0)]).scalar_one()
            if bids:
                conn.execute(insert(m.Bid), [dict(
                    listing_id=listing, retailer_id=shop_ids[b.shop], store_id=store_ids[b.shop][b.store],
                    distance_km=round(b.km), cell_distance_km=b.cell_km, exact_distance_km=b.km, status="active",
                    created_at=T0 + b.at, price=b.price,
                    lines=None if b.lines is None else [{"line_id": line_ids[i], "sku": SKUS[i], "quantity": q}
                                                        for i, q in b.lines]) for b in bids])
        uow.commit()
    return {shop_ids[i]: shop.score for i, shop in enumerate(world.shops)}


def outcome(ctx) -> dict:
    """Everything a run writes, without the ids the database chose for it."""
    with ctx.uow() as uow:
        s = uow.session
        decisions = [
            (d.listing_id, d.round, d.part, str(d.cause), str(d.rule), str(d.fulfiller_kind), d.winner_retailer_id,
             d.winner_store_id, d.winner_distance_km,
             json.dumps(d.candidates if not isinstance(d.candidates, str) else json.loads(d.candidates)),
             json.dumps(d.lines), d.decided_at)
            for d in s.scalars(select(m.SettlementDecision).order_by(m.SettlementDecision.listing_id,
                                                                      m.SettlementDecision.part))]
        assignments = sorted(
            (a.order_id, str(a.fulfiller_kind), a.retailer_id, a.store_id, str(a.status), json.dumps(a.lines),
             a.due_at, d.listing_id, d.part)
            for a, d in s.execute(select(m.Assignment, m.SettlementDecision)
                                  .join(m.SettlementDecision, m.SettlementDecision.id == m.Assignment.decision_id))
        )
        reserved = sorted(s.execute(select(m.StockLevel.store_id, m.StockLevel.sku, m.StockLevel.reserved)).tuples())
        reservations = sorted(
            (r.store_id, r.sku, r.quantity, d.listing_id, d.part)
            for r, d in s.execute(select(m.StockReservation, m.SettlementDecision)
                                  .join(m.Assignment, m.Assignment.id == m.StockReservation.assignment_id)
                                  .join(m.SettlementDecision, m.SettlementDecision.id == m.Assignment.decision_id)))
        listings = sorted(s.execute(select(m.Listing.id, m.Listing.status, m.Listing.closed_at)).tuples())
        orders = sorted(s.execute(select(m.Order.id, m.Order.status)).tuples())
    return dict(decisions=decisions, assignments=assignments, reserved=reserved, reservations=reservations,
                listings=listings, orders=orders)


SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


@SETTINGS
@given(world=worlds())
def test_settled_in_the_database_as_the_rules_settle(ctx, connection, monkeypatch, world):
    _record(*_settle_both_ways(ctx, connection, monkeypatch, world))


@SETTINGS
@given(world=worlds(stock=False))
def test_part_bids_settled_in_the_database_as_the_rules_settle(ctx, connection, monkeypatch, world):
    """Without stock every listing is the database's to decide, unless its plan
    splits: part bids that cannot win, part bids able to fill the whole order,
    lines named twice, all in SQL or left to the rules as they must be."""
    _record(*_settle_both_ways(ctx, connection, monkeypatch, world))


def _settle_both_ways(ctx, connection, monkeypatch, world) -> tuple[list[int], set[int], list]:
    """Settle the world as a run does and with the rules alone, and require the
    same outcome. Returns the listings the database decided, those with a part
    bid, and the decisions."""
    small = dataclasses.replace(ctx.settings, settle_batch_size=world.batch_size)
    run_ctx = dataclasses.replace(ctx, settings=small, clock=FrozenClock(AS_OF))
    savepoint = connection.begin_nested()
    try:
        scores = build(ctx, world)
        with ctx.uow() as uow:
            part_bid_on = {bid.listing_id for bid in uow.session.scalars(select(m.Bid)) if bid.lines is not None}
        # Scores with ties and every digit, the same for both ways (no reviews are made here).
        monkeypatch.setattr(awarding, "fulfilment_scores",
                            lambda session, ids, now=None: {i: scores[i] for i in ids})

        by_sql = []
        real = awarding.decide_in_sql

        def counted(*args, **kwargs):
            found = real(*args, **kwargs)
            by_sql.extend(found[0])
            return found

        monkeypatch.setattr(settlement, "decide_in_sql", counted)
        # (The examples share the test's monkeypatch: the last one's second run left this.)
        monkeypatch.setattr(settlement, "decidable_in_sql", awarding.decidable_in_sql)
        inner = connection.begin_nested()
        report = settlement.settle(run_ctx, as_of=AS_OF)
        both = outcome(run_ctx)
        inner.rollback()

        monkeypatch.setattr(settlement, "decidable_in_sql", lambda *args, **kwargs: [])
        inner = connection.begin_nested()
        by_rules = settlement.settle(run_ctx, as_of=AS_OF)
        rules_only = outcome(run_ctx)
        inner.rollback()
    finally:
        savepoint.rollback()

    assert report.settled == len(world.orders) == by_rules.settled
    assert (report.to_retailers, report.to_manufacturer, report.by_rule) == (
        by_rules.to_retailers, by_rules.to_manufacturer, by_rules.by_rule)
    assert _comparable(both) == _comparable(rules_only)
    return by_sql, part_bid_on, both["decisions"]


def _record(by_sql, part_bid_on, decisions) -> None:
    event(f"decided in the database: {'some' if by_sql else 'none'}")
    if set(by_sql) & part_bid_on:
        event("an order with a part bid decided in the database")
    for decision in decisions:
        event(f"rule: {decision[4]}")


def _shop() -> Shop:
    return Shop(True, "yes", 0.5, [(60.0, True, False, "none")], {})


def _bid(shop: int, km: float, lines=None) -> Bidding:
    return Bidding(shop, 0, km, 0.5, timedelta(0), None, lines)


@pytest.mark.parametrize("lines, in_database, rule", [
    # A nearer bidder with only the first line loses to the one able to fill it all.
    ([(0, 1)], True, "fewest_shipments"),
    # A part bid naming every line in full is as able as a whole one, and nearer.
    ([(0, 1), (1, 2)], True, "nearest"),
    # Not enough of the second line: the nearer bidder cannot take the whole order.
    ([(0, 1), (1, 1)], True, "fewest_shipments"),
    # A part bid naming no line of the order (a quantity of 0) cannot win.
    ([(1, 0)], True, "only_eligible_bid"),
    # A line named twice: the rules take the last; the database leaves it to them.
    ([(0, 1), (1, 2), (1, 1)], False, "fewest_shipments"),
])
def test_part_bids_that_do_not_split_the_order_are_decided_in_the_database(ctx, connection, monkeypatch, lines,
                                                                           in_database, rule):
    world = World([_shop(), _shop()], [([1, 2], [_bid(0, 12.0), _bid(1, 2.5, lines)])], 500)
    by_sql, _, [decision] = _settle_both_ways(ctx, connection, monkeypatch, world)
    # (SQLite's statement leaves every listing with a part bid to the rules.)
    assert bool(by_sql) is (in_database and connection.dialect.name == "postgresql")
    assert decision[4] == rule


def _comparable(found: dict) -> dict:
    """The outcome with each decision's records read back as JSON (the text may
    write a whole float as 3 or 3.0), floats compared as floats."""
    decisions = []
    for row in found["decisions"]:
        records = json.loads(row[9])
        for record in records:
            record["distance_km"] = float(record["distance_km"])
            record["score"] = float(record["score"])
        decisions.append(row[:9] + (records,) + row[10:])
    return {**found, "decisions": decisions}


@pytest.mark.parametrize("seconds", [0, 0.5, 0.123456])
def test_a_bid_time_is_written_as_python_writes_it(ctx, connection, seconds):
    """The records' bid_at from SQL is `datetime.isoformat()`, microseconds or none."""
    world = World([Shop(True, "yes", 0.5, [(60.0, True, False, "none")], {})],
                  [([1], [Bidding(0, 0, 2.5, 0.5, timedelta(seconds=seconds), None, None)])], 500)
    savepoint = connection.begin_nested()
    try:
        build(ctx, world)
        with ctx.uow() as uow:
            listings = uow.session.execute(select(m.Listing.id)).all()
            # One whole-order bid, no stock: the database decides it.
            assert awarding.decidable_in_sql(uow.session, ctx, listings, now=AS_OF) == [listings[0].id]
        report = settlement.settle(dataclasses.replace(ctx, clock=FrozenClock(AS_OF)), as_of=AS_OF)
        found = outcome(ctx)
    finally:
        savepoint.rollback()
    assert report.settled == 1
    [record] = json.loads(found["decisions"][0][9])
    assert record["bid_at"] == (T0 + timedelta(seconds=seconds)).isoformat()
    assert (record["distance_km"], record["eligible"], record["reason"], record["lines"]) == (2.5, True, "", None)



