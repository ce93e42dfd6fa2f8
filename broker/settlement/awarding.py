"""Awarding: the one path by which listings go to their fulfillers, whatever the
cause (a settlement run, a re-route after a release or a lapse, a personal
request accepted, expired or settled).

A decision is made one of two ways and written one way (`award`):

* In the database (`decide_in_sql`), for the order listings settlement meets
  most: those that go whole to one bidder (every bidder that bid on only some
  lines cannot win, or one able to fill everything can), or to the
  manufacturer, when no bidder's store keeps stock. Their candidates are ranked
  by window functions exactly as `rules.plan` ranks them, and the decisions,
  each with its record of every candidate, are written by one INSERT ... SELECT
  over the batch: no bid leaves the database.
* In Python, by `rules.plan` or `rules.choose`, for the rest: orders whose
  plan is a split (a set-cover search), bidders with stock to draw down,
  personal requests (ranked by their own preference) and re-routes. These are
  few; their decisions are copied in, and `award` writes everything after the
  decisions by the same statements for both.

Either way the assignments are made from the decisions by one INSERT ...
SELECT, the stock the plans use is reserved, and (for a settlement batch) the
listings and orders are each moved by one UPDATE. `rules.py` stays the
specification: tests/property/test_awarding_properties.py settles random
worlds both ways and requires the same decisions.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy import (
    JSON,
    BigInteger,
    Connection,
    String,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    func,
    insert,
    literal,
    not_,
    select,
    text,
    union,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from broker.accounts.models import DealerAuthorisation, Retailer, Store
from broker.board.models import Bid, BidStatus, Listing, ListingStatus
from broker.context import Context
from broker.db import UTCDateTime
from broker.fulfilment.models import Assignment, AssignmentStatus
from broker.orders.models import Delivery, Order, OrderLine, OrderStatus
from broker.orders.rules import check_move
from broker.payments import services as payments
from broker.payments.models import Payment, PaymentStatus
from broker.payments.provider import PaymentError
from broker.reputation.services import fulfilment_scores
from broker.settlement.models import Cause, FulfillerKind, SettlementDecision
from broker.settlement.rules import Candidate, Choice, Part, Plan, PlanLine, eligibility, records_json
from broker.stock import reserve as stock
from broker.stock.models import StockFeed, StockLevel

log = logging.getLogger(__name__)


def _core(session: Session) -> Connection:
    """The session's connection, for statements whose rows need no ORM objects:
    a run reads and writes hundreds of thousands of rows, and the ORM's per-row
    work was a large part of its time. Flushes first, as `session.execute` would."""
    if session.autoflush:
        session.flush()
    return session.connection()


def _among(column, ids: Iterable[int], conn: Connection | None = None):
    """`column IN (...)` for a batch's thousand ids. On PostgreSQL (given the
    connection) `= ANY(...)` with the ids as one array parameter: the statement
    stays cached and nothing is rendered per id (SQLAlchemy rendering each
    literal took two seconds a run). Elsewhere the ids are written into the
    statement: bound as a thousand parameters, they took longer than the query."""
    ids = list(ids)
    if conn is not None and conn.dialect.name == "postgresql":
        # Bound as the array's text ('{1,2,3}'), which the server parses: the
        # driver's dumper for a list checks each element in Python, a millisecond a batch.
        listed = "{" + ",".join([str(int(i)) for i in ids]) + "}"
        return column == any_(cast(bindparam(None, listed, type_=Text), ARRAY(BigInteger)))
    return column.in_(bindparam(None, ids, literal_execute=True))


def candidates_for(session: Session, listings: Sequence, exclude: dict[int, set[int]] | None = None, *,
                   now: datetime | None = None, scores: dict[int, float] | None = None) -> dict[int, list[Candidate]]:
    """Every active bid on these listings as a candidate, eligible or not, with
    eligibility judged now (a store may have closed, a dealer been revoked).

    `listings` are anything with an `id` and a `manufacturer_id` (ORM objects or
    rows). `scores` keeps bidders' fulfilment scores from one call to the next (a
    settlement run's batches share theirs); by default they are read afresh. A
    fixed number of queries whatever the batch size.

    A candidate's `distance_km` is the bid's exact distance, to the ship-to
    point itself: the ranking's. Whether its store covers the listing is judged
    by its distance to the listing's cell, as the board judges it.
    """
    exclude = exclude or {}
    scores = {} if scores is None else scores
    makers = {listing.id: listing.manufacturer_id for listing in listings}
    by_listing: dict[int, list[Candidate]] = {listing_id: [] for listing_id in makers}
    if not by_listing:
        return by_listing
    conn = _core(session)
    active_bid = (_among(Bid.listing_id, makers, conn), Bid.status == BidStatus.ACTIVE)
    rows = conn.execute(
        select(Bid.id, Bid.listing_id, Bid.retailer_id, Bid.store_id, Bid.exact_distance_km, Bid.cell_distance_km,
               Bid.price, Bid.created_at, and_(Store.is_open, Store.retailer_id == Bid.retailer_id),
               Store.service_radius_km, Bid.lines)
        .join(Store, Store.id == Bid.store_id)
        .where(*active_bid)
    ).all()
    if not rows:
        return by_listing
    # Who of the bidders cannot win anywhere, and which are whose dealers, each
    # asked of the bidders alone: joined to every bid, the retailers and the
    # authorisations (through the listings) tripled the time of reading the bids.
    bidders = select(Bid.retailer_id).where(*active_bid)
    inactive = set(conn.execute(select(Retailer.id).where(not_(Retailer.active), Retailer.id.in_(bidders))).scalars())
    maker_ids = {maker for maker in makers.values() if maker is not None}
    # Plain tuples: a set of Rows answers `in` through Row.__eq__, a Python call
    # per bid (two seconds of a 100,000-listing run).
    dealers = {(maker, retailer) for maker, retailer in conn.execute(
        select(DealerAuthorisation.manufacturer_id, DealerAuthorisation.retailer_id)
        .where(_among(DealerAuthorisation.manufacturer_id, maker_ids, conn), DealerAuthorisation.revoked_at.is_(None),
               DealerAuthorisation.retailer_id.in_(bidders))
    )} if maker_ids else set()
    # Reviews count once revealed, as of the moment being settled.
    unscored = {row[2] for row in rows} - scores.keys()
    if unscored:
        scores.update(fulfilment_scores(session, unscored, now=now))
    for bid_id, listing_id, retailer_id, store_id, km, cell_km, price, bid_at, store_open, radius, lines in rows:
        if exclude and retailer_id in exclude.get(listing_id, ()):
            continue
        maker = makers[listing_id]
        # The distances were measured when the bid was placed, and again whenever
        # its store moves (accounts.update_store), so they are from where the
        # store is. Whether the store covers the listing is judged from the
        # listing's cell, as on the board (a bid that could not be placed there
        # cannot win here, and the reverse); the ranking is by the exact distance.
        reason = eligibility(retailer_active=retailer_id not in inactive,
                             authorised=maker is None or (maker, retailer_id) in dealers,
                             store_open=store_open, distance_km=cell_km, radius_km=radius)
        by_listing[listing_id].append(
            Candidate(bid_id, retailer_id, store_id, km, scores[retailer_id], bid_at, not reason, reason, price,
                      _bid_lines(lines))
        )
    return by_listing


def _bid_lines(lines) -> tuple[tuple[int, int], ...] | None:
    if lines is None:
        return None
    if isinstance(lines, str):  # a JSON column read through a Core row on some drivers
        lines = json.loads(lines)
    return tuple((int(line["line_id"]), int(line["quantity"])) for line in lines)


def order_lines(session: Session, order_ids: Iterable[int]) -> dict[int, list[PlanLine]]:
    """Each order's lines as plans see them."""
    found: dict[int, list[PlanLine]] = {}
    ids = list(order_ids)
    if not ids:
        return found
    conn = _core(session)
    for order_id, line_id, sku, quantity in conn.execute(
            select(OrderLine.order_id, OrderLine.id, OrderLine.sku, OrderLine.quantity)
            .where(_among(OrderLine.order_id, ids, conn)).order_by(OrderLine.id)):
        found.setdefault(order_id, []).append(PlanLine(line_id, sku, quantity))
    return found


def _part_lines(plan: Plan, part: Part, whole_order: bool) -> list[dict] | None:
    """What a decision and its assignment record of the part: None when it is the
    whole order (as every award before plans was)."""
    if whole_order and plan.whole:
        return None
    return [{"line_id": line_id, "quantity": quantity} for line_id, quantity in part.lines]


def _decision_rows(listing_id: int, plan: Plan, *, round: int, cause: Cause, run_id: int | None, now: datetime,
                   whole_order: bool) -> list[tuple]:
    """The decisions that record a plan, one per part, as rows of _DECISION_COLUMNS
    (JSON values written as JSON text)."""
    records = records_json(plan.candidates)
    rows = []
    for number, part in enumerate(plan.parts):
        winner = part.candidate
        lines = _part_lines(plan, part, whole_order)
        rows.append((listing_id, round, number, run_id, cause.value, plan.rule.value,
                     (FulfillerKind.RETAILER if winner else FulfillerKind.MANUFACTURER).value,
                     winner.retailer_id if winner else None, winner.store_id if winner else None,
                     winner.distance_km if winner else None, records, now,
                     None if lines is None else json.dumps(lines)))
    return rows


def _due_at(ctx: Context, delivery: Delivery, now: datetime, ship_within_hours: int | None = None) -> datetime:
    # A pickup order's deadline is the customer's collection window, not a shipping
    # one; a shipped order's is its shipping method's window (Express is shorter),
    # or BROKER_SHIP_WITHIN_HOURS for an order that has none.
    if delivery == Delivery.PICKUP:
        hours = ctx.settings.pickup_within_hours
    else:
        hours = ship_within_hours or ctx.settings.ship_within_hours
    return now + timedelta(hours=hours)


_DECISION_COLUMNS = ("listing_id", "round", "part", "run_id", "cause", "rule", "fulfiller_kind",
                     "winner_retailer_id", "winner_store_id", "winner_distance_km", "candidates", "decided_at",
                     "lines")


def _insert_rows(conn: Connection, table: Table, columns: Sequence[str], rows: list[tuple]) -> None:
    """Insert many rows in the connection's transaction: with COPY on PostgreSQL
    (through psycopg), in half the time of a multi-row INSERT, and with an
    executemany INSERT elsewhere. JSON values come already written as JSON text."""
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        with conn.connection.dbapi_connection.cursor() as cursor, \
                cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    # Bound as text, so that the JSON type does not write the JSON text as a string.
    text_for_json = {name: bindparam(name, type_=Text()) for name in columns if isinstance(table.c[name].type, JSON)}
    conn.execute(insert(table).values(text_for_json), [dict(zip(columns, row)) for row in rows])


def _capture_if_hold_too_short(session: Session, ctx: Context, payment: Payment, due_at: datetime,
                               now: datetime) -> None:
    if payment.status != PaymentStatus.AUTHORIZED or payment.hold_expires_at is None:
        return
    if payment.hold_expires_at > due_at + payments.HOLD_MARGIN:
        return
    try:
        with session.begin_nested():
            payments.capture(session, ctx.payments, payment, now=now, reason="hold_expiry")
    except PaymentError as exc:
        # The hourly check tries again before the hold lapses; settlement goes on.
        log.error("early capture of payment %s failed: %s", payment.id, exc,
                  extra={"event": "payment.early_capture_failed", "payment_id": payment.id})


@dataclasses.dataclass(frozen=True)
class Planned:
    """A listing decided in Python: its plan, and the lines planned (a re-routed
    part's lines only; a personal request's: none, its one line goes whole)."""

    listing_id: int
    plan: Plan
    lines: Sequence[PlanLine] = ()


def plan_of(choice: Choice) -> Plan:
    """A choice (a personal request's) as the one-part plan `award` writes: the
    winner, or the manufacturer, takes the whole order."""
    return Plan((Part(choice.winner, ()),), choice.rule, choice.ranked, choice.ineligible, whole=True)


def award(session: Session, ctx: Context, planned: Sequence[Planned] = (), *, decided: Sequence[int] = (),
          round: int, cause: Cause, now: datetime, run_id: int | None = None,
          held: Mapping[int, Payment] | None = None, orders: Mapping[int, object] | None = None,
          whole_order: bool = True, close: bool = False) -> None:
    """Record the decisions and hand each part to its fulfiller, in the caller's
    transaction and a fixed number of statements whatever the batch's size.

    `planned` were decided in Python, and their decisions are written here; the
    listings `decided` were decided in the database (`decide_in_sql`), which wrote
    their decisions of this round. `held` are the orders'
    authorised payments ({order_id: Payment}): one whose hold would end before its
    fulfiller's shipping window is captured now. With `close` the listings are
    awarded and their orders moved to `awarded` (a settlement batch); otherwise the
    caller moves them (a re-route leaves them as they are). `whole_order`: False
    when the plans are of a part of the order (a re-route of a part), whose
    decisions then always name their lines.
    """
    held = held or {}
    listing_ids = [p.listing_id for p in planned] + list(decided)
    if not listing_ids:
        return
    conn = _core(session)
    if orders is None:
        orders = {row.id: row for row in conn.execute(
            select(Order.id, Order.status, Order.delivery, Order.ship_within_hours)
            .where(Order.id.in_(select(Listing.order_id).where(_among(Listing.id, listing_ids, conn)))))}
    order_of = {listing_id: order_id for listing_id, order_id in conn.execute(
        select(Listing.id, Listing.order_id).where(_among(Listing.id, listing_ids, conn)))}
    for listing_id in listing_ids:
        order = orders[order_of[listing_id]]
        if close:
            check_move(order.id, order.status, OrderStatus.AWARDED)
        payment = held.get(order.id)
        if payment is not None:
            _capture_if_hold_too_short(session, ctx, payment,
                                       _due_at(ctx, order.delivery, now, order.ship_within_hours), now)
    rows: list[tuple] = []
    reserving: dict[int, list[tuple[int, str, int]]] = {}  # listing -> [(part, sku, quantity)]
    for p in planned:
        rows.extend(_decision_rows(p.listing_id, p.plan, round=round, cause=cause, run_id=run_id, now=now,
                                   whole_order=whole_order))
        skus = {line.line_id: line.sku for line in p.lines}
        if p.plan.uses(p.lines):
            for number, part in enumerate(p.plan.parts):
                if part.candidate is not None:
                    reserving.setdefault(p.listing_id, []).extend(
                        (number, skus[line_id], quantity) for line_id, quantity in part.lines)
    # No ids come back: fetching them doubles the insert's time, and the
    # assignments below find their decisions by (listing, round) instead.
    if rows:
        _insert_rows(conn, SettlementDecision.__table__, _DECISION_COLUMNS, rows)
    decision = SettlementDecision.__table__.c
    # One branch per shipping window in the batch (a store has a few methods).
    windows = sorted({orders[order_of[i]].ship_within_hours for i in listing_ids} - {None})
    due_at = case((Order.delivery == Delivery.PICKUP, literal(_due_at(ctx, Delivery.PICKUP, now), UTCDateTime)),
                  *[(Order.ship_within_hours == hours, literal(_due_at(ctx, Delivery.SHIP, now, hours), UTCDateTime))
                    for hours in windows],
                  else_=literal(_due_at(ctx, Delivery.SHIP, now), UTCDateTime))
    conn.execute(insert(Assignment.__table__).from_select(
        ["order_id", "decision_id", "manufacturer_id", "fulfiller_kind", "retailer_id", "store_id", "status",
         "assigned_at", "due_at", "lines"],
        select(Listing.order_id, decision.id, Listing.manufacturer_id, decision.fulfiller_kind,
               decision.winner_retailer_id, decision.winner_store_id, literal(AssignmentStatus.ACTIVE, String),
               literal(now, UTCDateTime), due_at, decision.lines)
        .join(Listing, Listing.id == decision.listing_id)
        .join(Order, Order.id == Listing.order_id)
        .where(_among(decision.listing_id, listing_ids, conn), decision.round == round)
        .order_by(decision.id)
    ))
    if reserving:
        # Only stores that keep stock rows have anything to reserve: most keep none.
        stores = {part.candidate.store_id for p in planned if p.listing_id in reserving for part in p.plan.parts
                  if part.candidate is not None}
        keeping = set(conn.execute(select(StockLevel.store_id).distinct()
                                   .where(_among(StockLevel.store_id, stores, conn))).scalars())
        if not keeping:
            reserving = {}
    if reserving:
        made = {(listing_id, part): (assignment_id, store_id) for listing_id, part, assignment_id, store_id in
                conn.execute(select(decision.listing_id, decision.part, Assignment.id, Assignment.store_id)
                             .join(Assignment, Assignment.decision_id == decision.id)
                             .where(_among(decision.listing_id, list(reserving), conn), decision.round == round))}
        stock.reserve_many(session, [(*made[(listing_id, part)], sku, quantity)
                                     for listing_id, rows in reserving.items() for part, sku, quantity in rows])
    if close:
        conn.execute(
            update(Listing.__table__).where(_among(Listing.__table__.c.id, listing_ids, conn))
            .values(status=ListingStatus.AWARDED, closed_at=now, settlement_run_id=run_id)
        )
        conn.execute(
            update(Order.__table__).where(_among(Order.__table__.c.id, [order_of[i] for i in listing_ids], conn))
            .values(status=OrderStatus.AWARDED, updated_at=now)
        )


def decisions_of(session: Session, listing_id: int, round: int) -> list[SettlementDecision]:
    """A listing's decisions of one round, part by part, as `award` wrote them."""
    return list(session.scalars(select(SettlementDecision).where(
        SettlementDecision.listing_id == listing_id, SettlementDecision.round == round)
        .order_by(SettlementDecision.part)))


def decidable_in_sql(session: Session, ctx: Context, listings: Sequence, *, now: datetime) -> list[int]:
    """Of these order listings, the ones `decide_in_sql` may decide in the
    database: no bidding store keeps stock (stock is drawn down listing by
    listing as a batch is planned, and reserved where a store has a row for it,
    even with its feed stale), the order has lines, and on SQLite no bid is for
    part of the order. The others are planned by `rules.plan`."""
    ids = [listing.id for listing in listings]
    if not ids:
        return []
    conn = _core(session)
    fresh = stock.fresh_after(ctx, now)
    # A store with a fresh feed has stock to draw down; one with stock rows at all
    # (its feed stale) has rows an award reserves from.
    # (Asked of the stock tables once, not once per bid.)
    keeping = union(select(StockFeed.store_id).where(StockFeed.updated_at >= fresh),
                    select(StockLevel.store_id))
    lineless = ~select(OrderLine.id).where(OrderLine.order_id == Listing.order_id).exists()
    left_to_rules = Bid.store_id.in_(keeping)
    if conn.dialect.name != "postgresql":
        # SQLite's statement reads no bid's lines (see `_ranking_sql`).
        left_to_rules = left_to_rules | (func.coalesce(cast(Bid.lines, Text), "null") != "null")
    others = set(conn.execute(union(
        select(Bid.listing_id).where(_among(Bid.listing_id, ids, conn), Bid.status == BidStatus.ACTIVE,
                                     left_to_rules),
        select(Listing.id).where(_among(Listing.id, ids, conn), lineless),
    )).scalars())
    return [i for i in ids if i not in others]


def stock_fed(session: Session, ctx: Context, *, now: datetime) -> bool:
    """Whether any store's stock feed is fresh: without one, no plan has stock to draw down."""
    fresh = stock.fresh_after(ctx, now)
    return _core(session).execute(select(StockFeed.store_id).where(StockFeed.updated_at >= fresh).limit(1)) \
        .first() is not None


def decide_in_sql(session: Session, makers: Mapping[int, int | None], *, round: int, cause: Cause, now: datetime,
                  run_id: int | None, scores: dict[int, float]) -> tuple[list[int], Counter]:
    """Decide in the database those of these listings ({listing_id:
    manufacturer_id}, from `decidable_in_sql`) whose plan is not a split, and
    write their decisions of `round`; the others are left to `rules.plan`.
    `scores` are bidders' fulfilment scores, kept from one call to the next
    (read as needed). Returns the listings decided, and how many went by which
    rule to whom: {(rule, fulfiller_kind): count}."""
    conn = _core(session)
    pg = conn.dialect.name == "postgresql"
    ids = list(makers)
    if not ids:
        return [], Counter()
    # The batch's bidders, and whether each is active: passed in with its score,
    # rather than looked up for every bid.
    active = {retailer_id: is_active for retailer_id, is_active in conn.execute(
        select(Retailer.id, Retailer.active).where(Retailer.id.in_(
            select(Bid.retailer_id).where(_among(Bid.listing_id, ids, conn), Bid.status == BidStatus.ACTIVE))))}
    bidders = set(active)
    unscored = bidders - scores.keys()
    if unscored:
        scores.update(fulfilment_scores(session, unscored, now=now))
    # The database ranks by each bidder's place among the batch's scores (an
    # integer, so ties are exactly Python's), and writes the score as
    # `Candidate.as_record` rounds it, as Python writes that float.
    places = {score: place for place, score in enumerate(sorted({scores[r] for r in bidders}, reverse=True))}
    scored = sorted(bidders)
    params = dict(round=round, cause=cause.value, run_id=run_id, now=now)
    rows: list[tuple[int, str, str]] = []
    if pg:
        params.update(ids=_pg_array(ids), makers=_pg_array(makers.values()), score_ids=_pg_array(scored),
                      score_places=_pg_array(places[scores[r]] for r in scored),
                      score_texts="{" + ",".join(repr(round_score(scores[r])) for r in scored) + "}",
                      score_active="{" + ",".join("t" if active[r] else "f" for r in scored) + "}")
        # Not compiled (JIT): that took longer than running it (until the batch's
        # transaction ends).
        conn.exec_driver_sql("SET LOCAL jit = off")
        # Never prepared, so planned for each batch's own ids: the driver prepares a
        # statement it has run five times, and a generic plan (made without knowing
        # the ids) could scan every bid. (Not by `plan_cache_mode = force_custom_plan`
        # for the transaction: that re-planned every foreign-key check of every row
        # the batch writes, a third of a run's time in the database.)
        with conn.connection.dbapi_connection.cursor() as cursor:
            for statement in _pg_statements():
                cursor.execute(statement, params, prepare=False)
                rows.extend(cursor.fetchall())
    else:
        params.update(ids=json.dumps(ids), listings=json.dumps(list(makers.items())))
        _sqlite_bidders(conn, [(r, places[scores[r]], repr(round_score(scores[r])), active[r]) for r in scored])
        for statement in _statements():
            rows.extend(conn.execute(statement, params).tuples())
    return [listing_id for listing_id, _, _ in rows], Counter((rule, kind) for _, rule, kind in rows)


def _sqlite_bidders(conn: Connection, rows: list[tuple[int, int, str, bool]]) -> None:
    """The batch's bidders, with their scores and whether they are active, in a
    temporary table (this connection's, gone with it), for the ranking
    statement to look up by retailer."""
    conn.exec_driver_sql("CREATE TEMP TABLE IF NOT EXISTS settlement_bidders (retailer_id INTEGER PRIMARY KEY, "
                         "place INTEGER NOT NULL, score_text TEXT NOT NULL, active BOOLEAN NOT NULL)")
    conn.exec_driver_sql("DELETE FROM temp.settlement_bidders")
    if rows:
        conn.exec_driver_sql("INSERT INTO temp.settlement_bidders VALUES (?, ?, ?, ?)", rows)


def round_score(score: float) -> float:
    return round(score, 4)


def _pg_array(values: Iterable[int | None]) -> str:
    return "{" + ",".join(["NULL" if v is None else str(int(v)) for v in values]) + "}"


def _ranking_sql(pg: bool) -> str:
    """The INSERT ... SELECT that decides the listings with bids that `rules.plan`
    gives whole to one bidder or to none, and leaves the rest (whose plans split)
    undecided.

    Each bid is judged as `rules.eligibility` judges it; a part bid offering no
    line of the order cannot win (`no_lines_of_this_order`), as in `rules.plan`.
    A bidder is able to take the whole order when it bid on all of it, or on
    every line in full. When some eligible bidder is able, `plan` gives the order
    to the first of them ranked as `rules.choose` ranks (distance, better score,
    earlier bid, lower retailer id), by `fewest_shipments` when it is the only
    one able among several eligible, else by the first key that sets it apart
    from the second able one; when none is eligible, to the manufacturer. Every
    candidate is written in `plan`'s order (eligible first, nearest first) as
    `rules.records_json` writes it. A listing with a part bid whose lines the
    database does not read as the rules do (a line named twice, a number that is
    not an integer) is left to `plan` too. Returns each decision's listing, rule
    and fulfiller."""
    if pg:
        inputs = ("SELECT u.id, u.manufacturer_id, li.order_id FROM unnest(CAST(:ids AS BIGINT[]), "
                  "CAST(:makers AS BIGINT[])) AS u(id, manufacturer_id) JOIN listings li ON li.id = u.id")
        bids = "l JOIN bids b ON b.listing_id = l.id"
        among, join = "AND b.listing_id = ANY(CAST(:ids AS BIGINT[]))", "JOIN"
        json_type = "json_typeof"
        # A part bid's lines, one row each, in the bid's order, with the line and
        # quantity when they are integers (the casts only then: bounded, they cannot fail).
        elements = f"""
            SELECT b.id AS bid_id, e.n AS k, l.order_id,
                   CASE WHEN json_typeof(e.v -> 'line_id') = 'number' AND (e.v ->> 'line_id') ~ '^-?[0-9]{{1,18}}$'
                        THEN CAST(e.v ->> 'line_id' AS BIGINT) END AS line_id,
                   CASE WHEN json_typeof(e.v -> 'quantity') = 'number' AND (e.v ->> 'quantity') ~ '^-?[0-9]{{1,9}}$'
                        THEN CAST(e.v ->> 'quantity' AS INT) END AS q
            FROM {bids}
            CROSS JOIN LATERAL json_array_elements(CASE WHEN json_typeof(b.lines) = 'array' THEN b.lines
                                                        ELSE CAST('[]' AS JSON) END) WITH ORDINALITY AS e(v, n)
            WHERE b.status = 'active' {among} AND json_typeof(b.lines) = 'array'"""  # noqa: S608
        scores = ("(SELECT * FROM unnest(CAST(:score_ids AS BIGINT[]), CAST(:score_places AS INT[]), "
                  "CAST(:score_texts AS TEXT[]), CAST(:score_active AS BOOLEAN[])) "
                  "AS s(retailer_id, place, score_text, active))")
        # PostgreSQL writes a float8 as the shortest text that reads back as it
        # (as Python's repr does), without repr's ".0" on whole numbers.
        # (A whole number below 1e15 is written without a point or an exponent.)
        km_text = "CASE WHEN km = trunc(km) AND abs(km) < 1e15 THEN CAST(km AS TEXT) || '.0' ELSE CAST(km AS TEXT) END"
        # isoformat(): microseconds only when there are some.
        bid_at_text = ("replace(to_char(bid_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), '.000000', '') "
                       "|| '+00:00'")
        concat, as_json = "string_agg", "CAST('[' || records || ']' AS JSON)"
    else:
        # The batch's listings lead, their bids found by index, and the rest looked
        # up for each bid (CROSS JOIN keeps SQLite's join order: left to itself it
        # scanned the scores for every bid).
        inputs = ("SELECT j.id, j.manufacturer_id, li.order_id FROM (SELECT json_extract(value, '$[0]') AS id, "
                  "json_extract(value, '$[1]') AS manufacturer_id FROM json_each(:listings)) j "
                  "CROSS JOIN listings li ON li.id = j.id")
        bids = "l CROSS JOIN bids b ON b.listing_id = l.id"
        among, join = "", "CROSS JOIN"
        json_type = "json_type"
        # A temporary table (`_sqlite_bidders`), so that each bid finds its bidder by key.
        scores = "temp.settlement_bidders"
        # SQLite writes a REAL to 15 digits; broker_float_text (broker.db) is repr.
        km_text = "broker_float_text(km)"
        # SQLite keeps a UTC time as 'YYYY-MM-DD HH:MM:SS.ffffff'.
        bid_at_text = ("substr(bid_at, 1, 10) || 'T' || substr(bid_at, 12, 8) || "
                       "CASE WHEN substr(bid_at, 21, 6) NOT IN ('', '000000') THEN '.' || substr(bid_at, 21, 6) "
                       "ELSE '' END || '+00:00'")
        concat, as_json = "group_concat", "'[' || records || ']'"
    if pg:
        part = f"(b.lines IS NOT NULL AND {json_type}(b.lines) <> 'null')"
        able_first = "CASE WHEN reason = '' AND able = 1 THEN 0 ELSE 1 END"
        parts = f"""    SELECT x.bid_id,
           SUM(CASE WHEN x.q > 0 AND ol.id IS NOT NULL THEN 1 ELSE 0 END) AS offered,
           SUM(CASE WHEN x.q >= ol.quantity THEN 1 ELSE 0 END) AS filled,
           CASE WHEN MAX(CASE WHEN x.line_id IS NULL OR x.q IS NULL THEN 1 ELSE 0 END) = 1
                  OR COUNT(*) <> COUNT(DISTINCT x.line_id) THEN 1 ELSE 0 END AS unsure,
           MAX(x.lines_text) AS lines_text
    FROM (
        -- The lines' text in the bid's order, the same on each of its rows (as a
        -- window: an aggregate's ORDER BY sorts each group on its own).
        SELECT bid_id, order_id, line_id, q,
               {concat}('{{"line_id": ' || line_id || ', "quantity": ' || q || '}}', ', ')
                   OVER (PARTITION BY bid_id ORDER BY k ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
                   AS lines_text
        FROM ({elements}) e
    ) x
    LEFT JOIN order_lines ol ON ol.id = x.line_id AND ol.order_id = x.order_id
    GROUP BY x.bid_id"""  # noqa: S608
    else:
        # On SQLite a listing with a part bid is the rules' (`decidable_in_sql`):
        # in one process, reading the bids' lines here cost more than it saved.
        # Every bid is then able, and the two orderings are one.
        part, parts = "0", "SELECT NULL AS bid_id, 0 AS offered, 0 AS filled, 0 AS unsure, '' AS lines_text WHERE 0"
        able_first = "CASE WHEN reason = '' THEN 0 ELSE 1 END"
    # Built from the fragments above alone: nothing from outside is written into it.
    # `judged` is materialised: inlined, PostgreSQL would repeat the eligibility
    # test in every window expression that names its reason.
    return f"""
WITH l AS MATERIALIZED (
    SELECT i.id, i.manufacturer_id, i.order_id,
           (SELECT COUNT(*) FROM order_lines ol WHERE ol.order_id = i.order_id) AS n
    FROM ({inputs}) i
),
parts AS MATERIALIZED (
{parts}
),
judged AS MATERIALIZED (
    SELECT b.listing_id, b.id AS bid_id, b.retailer_id, b.store_id, b.exact_distance_km AS km, b.price,
           b.created_at AS bid_at, s.place, s.score_text,
           CASE WHEN NOT s.active THEN 'retailer_inactive'
                WHEN l.manufacturer_id IS NOT NULL AND NOT EXISTS (
                    SELECT 1 FROM dealer_authorisations d
                    WHERE d.manufacturer_id = l.manufacturer_id AND d.retailer_id = b.retailer_id
                      AND d.revoked_at IS NULL) THEN 'not_authorised'
                WHEN NOT (st.is_open AND st.retailer_id = b.retailer_id) THEN 'store_closed'
                WHEN b.cell_distance_km > st.service_radius_km THEN 'outside_service_radius'
                WHEN {part} AND COALESCE(p.offered, 0) = 0 THEN 'no_lines_of_this_order'
                ELSE '' END AS reason,
           CASE WHEN NOT {part} OR COALESCE(p.filled, 0) = l.n THEN 1 ELSE 0 END AS able,
           CASE WHEN {part} AND ({json_type}(b.lines) <> 'array' OR COALESCE(p.unsure, 0) = 1) THEN 1 ELSE 0 END
               AS unsure,
           CASE WHEN {part} THEN '[' || COALESCE(p.lines_text, '') || ']' ELSE 'null' END AS lines_text
    FROM {bids}
    {join} stores st ON st.id = b.store_id
    {join} {scores} s ON s.retailer_id = b.retailer_id
    LEFT JOIN parts p ON p.bid_id = b.id
    WHERE b.status = 'active' {among}
)
INSERT INTO settlement_decisions (listing_id, round, part, run_id, cause, rule, fulfiller_kind, winner_retailer_id,
                                  winner_store_id, winner_distance_km, candidates, decided_at, lines)
SELECT listing_id, :round, 0, :run_id, :cause,
       CASE WHEN eligible = 0 THEN 'no_eligible_bids'
            WHEN able = 1 AND eligible = 1 THEN 'only_eligible_bid'
            WHEN able = 1 THEN 'fewest_shipments'
            WHEN km <> next_km THEN 'nearest'
            WHEN place <> next_place THEN 'fulfilment_score'
            WHEN bid_at <> next_bid_at THEN 'earliest_bid'
            ELSE 'lowest_retailer_id' END,
       CASE WHEN eligible > 0 THEN 'retailer' ELSE 'manufacturer' END,
       CASE WHEN eligible > 0 THEN retailer_id END,
       CASE WHEN eligible > 0 THEN store_id END,
       CASE WHEN eligible > 0 THEN km END,
       {as_json}, :now, NULL
FROM (
    SELECT listing_id, retailer_id, store_id, km, place, bid_at,
           ROW_NUMBER() OVER first_able AS position,
           LEAD(km) OVER first_able AS next_km, LEAD(place) OVER first_able AS next_place,
           LEAD(bid_at) OVER first_able AS next_bid_at,
           SUM(CASE WHEN reason = '' THEN 1 ELSE 0 END) OVER listing AS eligible,
           SUM(CASE WHEN reason = '' THEN able ELSE 0 END) OVER listing AS able,
           MAX(unsure) OVER listing AS unsure,
           {concat}('{{"bid_id": ' || bid_id || ', "retailer_id": ' || retailer_id || ', "store_id": ' || store_id
                    || ', "distance_km": ' || {km_text} || ', "score": ' || score_text
                    || ', "bid_at": "' || {bid_at_text} || '", "eligible": '
                    || CASE WHEN reason = '' THEN 'true' ELSE 'false' END
                    || ', "reason": "' || reason || '", "price": ' || COALESCE(CAST(price AS TEXT), 'null')
                    || ', "lines": ' || lines_text || '}}', ', ')
               OVER (best_first ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS records
    FROM judged
    WINDOW best_first AS (PARTITION BY listing_id
                          ORDER BY CASE WHEN reason = '' THEN 0 ELSE 1 END, km, place, bid_at, retailer_id),
           first_able AS (PARTITION BY listing_id
                          ORDER BY {able_first}, km, place, bid_at, retailer_id),
           listing AS (PARTITION BY listing_id)
) ranked
WHERE position = 1 AND unsure = 0 AND (eligible = 0 OR able > 0)
RETURNING listing_id, rule, fulfiller_kind
"""  # noqa: S608


def _no_bids_sql(pg: bool) -> str:
    among = "l.id = ANY(CAST(:ids AS BIGINT[]))" if pg else "l.id IN (SELECT value FROM json_each(:ids))"
    empty = "CAST('[]' AS JSON)" if pg else "'[]'"
    return f"""
INSERT INTO settlement_decisions (listing_id, round, part, run_id, cause, rule, fulfiller_kind, winner_retailer_id,
                                  winner_store_id, winner_distance_km, candidates, decided_at, lines)
SELECT l.id, :round, 0, :run_id, :cause, 'no_bids', 'manufacturer', NULL, NULL, NULL, {empty}, :now, NULL
FROM listings l
WHERE {among} AND NOT EXISTS (SELECT 1 FROM bids b WHERE b.listing_id = l.id AND b.status = 'active')
RETURNING listing_id, rule, fulfiller_kind
"""  # noqa: S608


@functools.cache
def _statements() -> tuple:
    """The statements `_decide_in_sql` runs on SQLite, built once."""
    return tuple(text(sql).bindparams(bindparam("now", type_=UTCDateTime)) for sql in (_ranking_sql(False),
                                                                                         _no_bids_sql(False)))


# The parameters the statements name, and how psycopg names them.
_PARAMETERS = ("ids", "makers", "score_ids", "score_places", "score_texts", "score_active", "round", "run_id",
               "cause", "now")


@functools.cache
def _pg_statements() -> tuple[str, ...]:
    """The statements `_decide_in_sql` runs on PostgreSQL, built once, for the
    driver's cursor (its placeholders: %(name)s)."""
    named = re.compile(r":(%s)\b" % "|".join(_PARAMETERS))
    return tuple(named.sub(r"%(\1)s", sql) for sql in (_ranking_sql(True), _no_bids_sql(True)))
