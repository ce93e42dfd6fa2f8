"""Settlement: every due listing goes to its nearest eligible bidder, or to the
manufacturer; and re-routing when a winner gives an order back.

Work is claimed in the database, never in process memory, so any number of
processes may settle at once:

* Listings are settled in batches, each batch one transaction that locks its
  listings, decides them, and commits decisions, assignments and the listings'
  new status together. A process killed mid-batch leaves that batch untouched.
* On PostgreSQL a batch is claimed with `FOR UPDATE SKIP LOCKED`, so concurrent
  runs take disjoint batches; a last pass without SKIP LOCKED waits for rows that
  another transaction held (a bid being placed, another run's batch) so nothing
  due is left behind. On SQLite every transaction takes the single write lock.
* Whatever the locking, a listing is only awarded while it is still `open` and a
  decision is unique per (listing, round): no listing is awarded twice.
* On PostgreSQL one run settles two batches at a time (WORKERS), each on its own
  connection: they are claimed one after the other, so they never overlap.
* A run may take only part of the due listings (a SettlementScope: a hash shard
  of the manufacturers, or named ones), so that schedulers on several hosts
  each settle their own manufacturers; the run records its scope.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import gc
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    Connection,
    Engine,
    Row,
    String,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from broker.accounts.models import DealerAuthorisation, Manufacturer, Retailer, Store
from broker import retry
from broker.auth import Actor, ActorKind, require
from broker.board.models import Bid, BidStatus, Listing, ListingKind, ListingStatus
from broker.clock import as_utc
from broker.context import Context
from broker.db import UTCDateTime
from broker.errors import Invalid
from broker.fulfilment.models import Assignment, AssignmentStatus
from broker.notifications import events
from broker.orders.models import Delivery, Order, OrderLine, OrderStatus
from broker.orders.rules import check_move
from broker.parking import services as parking
from broker.payments import services as payments
from broker.payments.models import Payment, PaymentStatus
from broker.payments.provider import PaymentError
from broker.reputation.services import fulfilment_scores
from broker.settlement.models import (
    Cause,
    FulfillerKind,
    RunStatus,
    SettlementDecision,
    SettlementRun,
)
from broker.settlement.rules import (
    Candidate,
    Choice,
    Part,
    Plan,
    PlanLine,
    choose,
    eligibility,
    plan,
    records_json,
)
from broker.stock import reserve as stock
from broker.settlement.schedule import previous_fire
from broker.settlement.scope import SettlementScope, parse_shard

log = logging.getLogger(__name__)
# The moments settlement accepts: wide enough for any real use, far from the
# datetime range's edges (subtracting the board time must not overflow).
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(9000, 1, 1, tzinfo=timezone.utc)


@dataclasses.dataclass
class SettlementReport:
    run_id: int | None
    as_of: datetime
    dry_run: bool
    scope: str | None = None  # SettlementScope.describe(); None: every due listing
    settled: int = 0
    to_retailers: int = 0
    to_manufacturer: int = 0
    by_rule: dict[str, int] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    decisions: list[dict] = dataclasses.field(default_factory=list)
    # Listings that could not be settled: parked with their errors (broker.parking)
    # and left out of every run until the operator puts them back.
    parked: list[int] = dataclasses.field(default_factory=list)

    def count(self, choice: Choice | Plan) -> None:
        self.settled += 1
        if not (choice.winners if isinstance(choice, Plan) else choice.winner):
            self.to_manufacturer += 1
        else:
            self.to_retailers += 1
        self.by_rule[choice.rule.value] = self.by_rule.get(choice.rule.value, 0) + 1


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
        import json
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


def _decision_values(listing_id: int, plan: Plan, *, round: int, cause: Cause, run_id: int | None, now: datetime,
                     whole_order: bool) -> list[dict]:
    """The decisions that record a plan, one per part: the one shape both the
    batch path (`_award_orders`) and the one-listing path (`_award_plan`) write."""
    records = [c.as_record() for c in plan.candidates]
    rows = []
    for number, part in enumerate(plan.parts):
        winner = part.candidate
        rows.append(dict(
            listing_id=listing_id, round=round, part=number, run_id=run_id, cause=cause, rule=plan.rule,
            fulfiller_kind=FulfillerKind.RETAILER if winner else FulfillerKind.MANUFACTURER,
            winner_retailer_id=winner.retailer_id if winner else None,
            winner_store_id=winner.store_id if winner else None,
            winner_distance_km=winner.distance_km if winner else None,
            candidates=records, decided_at=now, lines=_part_lines(plan, part, whole_order),
        ))
    return rows


def award(session: Session, ctx: Context, listing: Listing, choice: Choice, *, round: int, cause: Cause,
          now: datetime, run_id: int | None = None, payment: Payment | None = None) -> SettlementDecision:
    """Record the decision and hand the order to its fulfiller (in the caller's transaction).

    If the fulfiller's shipping window would outlast the card hold, the payment is
    captured now rather than lost later.
    """
    winner = choice.winner
    order = session.get(Order, listing.order_id)
    due_at = _due_at(ctx, order.delivery, now, order.ship_within_hours)
    if payment is not None:
        _capture_if_hold_too_short(session, ctx, payment, due_at, now)
    decision = SettlementDecision(
        listing_id=listing.id,
        round=round,
        run_id=run_id,
        cause=cause,
        rule=choice.rule,
        fulfiller_kind=FulfillerKind.RETAILER if winner else FulfillerKind.MANUFACTURER,
        winner_retailer_id=winner.retailer_id if winner else None,
        winner_store_id=winner.store_id if winner else None,
        winner_distance_km=winner.distance_km if winner else None,
        candidates=[c.as_record() for c in choice.candidates],
        decided_at=now,
    )
    session.add(
        Assignment(
            order_id=listing.order_id,
            decision=decision,
            manufacturer_id=listing.manufacturer_id,
            fulfiller_kind=decision.fulfiller_kind,
            retailer_id=decision.winner_retailer_id,
            store_id=decision.winner_store_id,
            status=AssignmentStatus.ACTIVE,
            assigned_at=now,
            due_at=due_at,
        )
    )
    return decision


def _due_at(ctx: Context, delivery: Delivery, now: datetime, ship_within_hours: int | None = None) -> datetime:
    # A pickup order's deadline is the customer's collection window, not a shipping
    # one; a shipped order's is its shipping method's window (Express is shorter),
    # or BROKER_SHIP_WITHIN_HOURS for an order that has none.
    if delivery == Delivery.PICKUP:
        hours = ctx.settings.pickup_within_hours
    else:
        hours = ship_within_hours or ctx.settings.ship_within_hours
    return now + timedelta(hours=hours)


def _award_orders(session: Session, ctx: Context, awards: Sequence[tuple[Row, Plan, list[PlanLine]]],
                  orders: dict[int, Row], held: dict[int, Payment], *, now: datetime, run_id: int) -> None:
    """`_award_plan` for a batch's order listings at once, in a fixed number of
    statements: the decisions (one per part, `_decision_values`) inserted in
    bulk, their assignments made from them by one INSERT ... SELECT, the stock
    they use reserved, the listings and the orders each moved by one UPDATE.

    A run makes tens of thousands of these rows: built and flushed one by one as
    ORM objects, they were most of its time.
    """
    if not awards:
        return
    decisions: list[tuple] = []
    reserving: dict[int, list[tuple[int, str, int]]] = {}  # listing -> [(part, sku, quantity)]
    for listing, decided, lines in awards:
        order = orders[listing.order_id]
        check_move(order.id, order.status, OrderStatus.AWARDED)
        payment = held.get(order.id)
        if payment is not None:
            _capture_if_hold_too_short(session, ctx, payment,
                                       _due_at(ctx, order.delivery, now, order.ship_within_hours), now)
        records = records_json(decided.candidates)
        for values in _decision_values(listing.id, decided, round=0, cause=Cause.SETTLEMENT, run_id=run_id, now=now,
                                       whole_order=True):
            decisions.append(tuple(
                records if name == "candidates" else
                (None if values["lines"] is None else json.dumps(values["lines"])) if name == "lines" else
                values[name].value if isinstance(values[name], enum.Enum) else values[name]
                for name in _DECISION_COLUMNS))
        skus = {line.line_id: line.sku for line in lines}
        for number, part in enumerate(decided.parts):
            if part.candidate is not None and decided.uses(lines):
                reserving.setdefault(listing.id, []).extend(
                    (number, skus[line_id], quantity) for line_id, quantity in part.lines)
    listing_ids = [listing.id for listing, _, _ in awards]
    conn = _core(session)
    # No ids come back: fetching them doubles the insert's time, and the
    # assignments below find their decisions by (listing, round) instead.
    _insert_rows(conn, SettlementDecision.__table__, _DECISION_COLUMNS, decisions)
    decision = SettlementDecision.__table__.c
    # One branch per shipping window in the batch (a store has a few methods).
    windows = sorted({orders[listing.order_id].ship_within_hours for listing, *_ in awards} - {None})
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
        .where(_among(decision.listing_id, listing_ids, conn), decision.round == 0)
        .order_by(decision.id)
    ))
    if reserving:
        made = {(listing_id, part): (assignment_id, store_id) for listing_id, part, assignment_id, store_id in
                conn.execute(select(decision.listing_id, decision.part, Assignment.id, Assignment.store_id)
                             .join(Assignment, Assignment.decision_id == decision.id)
                             .where(_among(decision.listing_id, list(reserving), conn), decision.round == 0))}
        stock.reserve_many(session, [(*made[(listing_id, part)], sku, quantity)
                                     for listing_id, rows in reserving.items() for part, sku, quantity in rows])
    conn.execute(
        update(Listing.__table__).where(_among(Listing.__table__.c.id, listing_ids, conn))
        .values(status=ListingStatus.AWARDED, closed_at=now, settlement_run_id=run_id)
    )
    conn.execute(
        update(Order.__table__).where(_among(Order.__table__.c.id, [listing.order_id for listing, _, _ in awards],
                                             conn))
        .values(status=OrderStatus.AWARDED, updated_at=now)
    )


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


def settle(ctx: Context, *, as_of: datetime | None = None, trigger: str = "manual", dry_run: bool = False,
           progress: Callable[[SettlementReport], None] | None = None,
           scope: SettlementScope | None = None) -> SettlementReport:
    """Settle every listing due at `as_of` (default: now), or only those in `scope`
    (see `settlement_scope`). Safe to run concurrently and to run again: a listing
    already settled is never settled twice."""
    started = time.perf_counter()
    as_of = as_utc(as_of) if as_of is not None else ctx.now()
    if not (EARLIEST <= as_of <= LATEST):
        raise Invalid.field("as_of", f"must be between {EARLIEST.year} and {LATEST.year}")
    cutoff = as_of - timedelta(hours=ctx.settings.min_board_hours)
    report = SettlementReport(run_id=None, as_of=as_of, dry_run=dry_run,
                              scope=scope.describe() if scope is not None else None)
    if dry_run:
        _plan(ctx, cutoff, scope, report)
        report.seconds = time.perf_counter() - started
        return report

    run_id = _open_run(ctx, as_of, trigger, report.scope)
    report.run_id = run_id
    try:
        # First pass skips rows other transactions hold, so concurrent runs share
        # the work; the second waits for them, so nothing due is left behind.
        scores: dict[int, float] = {}
        with _without_cycle_collection():
            for skip_locked in (True, False):
                _run_batches(ctx, _Batches(cutoff, scope, run_id, report, skip_locked, scores, progress))
    except Exception as exc:
        report.seconds = time.perf_counter() - started
        _close_run(ctx, run_id, report, error=f"{type(exc).__name__}: {exc}")
        log.exception("settlement run %s failed", run_id)
        raise
    report.seconds = time.perf_counter() - started
    _close_run(ctx, run_id, report)
    if report.parked:
        log.error("settlement run %s parked %s listings it could not settle: %s (see `broker jobs parked`)",
                  run_id, len(report.parked), ", ".join(map(str, sorted(report.parked))),
                  extra={"event": "settlement.parked", "run_id": run_id, "listings": sorted(report.parked)})
    log.info(
        "settlement run %s (%s) as of %s: %s settled, %s to retailers, %s to manufacturers in %.2fs",
        run_id, report.scope or "everything", as_of.isoformat(), report.settled, report.to_retailers,
        report.to_manufacturer, report.seconds,
        extra={"event": "settlement.completed", "run_id": run_id, "as_of": as_of.isoformat(),
               "scope": report.scope, "settled": report.settled, "to_retailers": report.to_retailers,
               "to_manufacturer": report.to_manufacturer, "by_rule": report.by_rule,
               "parked": len(report.parked), "seconds": round(report.seconds, 3)},
    )
    return report


@contextlib.contextmanager
def _without_cycle_collection():
    """Pause Python's cycle collector. A batch makes a few hundred thousand
    short-lived objects (rows, candidates, records), none in a cycle, that
    reference counting frees; the collector, counting allocations, would walk
    them and the rest of the heap every few thousand, for a fifth of a run's
    time. Collection resumes (and finds the run's few cycles) when the run ends."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# On PostgreSQL a run settles this many batches at a time, each in its own
# transaction on its own connection: while one batch's rows are being written
# (the database server's work) the next one is being decided (this process's).
# SQLite has a single writer, so there a run settles one batch at a time.
WORKERS = 2


@dataclasses.dataclass
class _Batches:
    """One pass of a run over the due listings, shared by the run's workers."""

    cutoff: datetime
    scope: SettlementScope | None
    run_id: int
    report: SettlementReport
    skip_locked: bool
    # Bidders' fulfilment scores, read once per run as its batches first meet
    # them: a retailer bids in most batches, and reading its record in each took
    # a fifth of a run's time. (A score moves only when an order ships, lapses or
    # is released, or a review is revealed: rarely in the seconds a run takes.)
    scores: dict[int, float]
    progress: Callable[[SettlementReport], None] | None = None
    # Each batch is claimed after the last listing claimed so far, under `lock`,
    # so the workers take disjoint batches whether or not rows are skipped.
    after: int = 0
    done: bool = False
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


def _run_batches(ctx: Context, batches: _Batches) -> None:
    """Settle batches until none is left: on PostgreSQL with WORKERS threads; the
    first error stops them all and is raised."""
    pause = ctx.settings.settle_batch_pause_ms / 1000

    def work() -> None:
        try:
            while _settle_next_batch(ctx, batches):
                if batches.progress:
                    with batches.lock:
                        batches.progress(batches.report)
                if pause:
                    time.sleep(pause)
        except BaseException:
            batches.done = True
            raise

    if _workers(ctx) == 1:
        work()
        return
    with ThreadPoolExecutor(WORKERS, thread_name_prefix=f"settle-{batches.run_id}") as pool:
        futures = [pool.submit(work) for _ in range(WORKERS)]
        try:
            for future in futures:
                future.result()
        except BaseException:  # an interrupt, too: the workers stop after their batch
            batches.done = True
            raise


def _workers(ctx: Context) -> int:
    with ctx.uow() as uow:
        bind = uow.session.get_bind()
    # Sessions bound to one connection rather than an engine (a test's rolled-back
    # transaction) cannot work side by side.
    return WORKERS if isinstance(bind, Engine) and bind.dialect.name == "postgresql" else 1


def _due(cutoff: datetime, after: int = 0, scope: SettlementScope | None = None):
    """Open listings on the board long enough, in the scope if one is given:
    every order, and the personal requests that have offers (one without waits
    for offers until it expires).

    Only the columns settlement needs: a run reads tens of thousands of listings,
    and loads as ORM objects only the few personal requests it awards."""
    has_offer = exists().where(Bid.listing_id == Listing.id, Bid.status == BidStatus.ACTIVE)
    stmt = (
        select(Listing.id, Listing.kind, Listing.manufacturer_id, Listing.order_id, Listing.request_id)
        .where(Listing.status == ListingStatus.OPEN, Listing.listed_at <= cutoff, Listing.id > after,
               or_(Listing.kind == ListingKind.ORDER, has_offer))
        .order_by(Listing.id)
    )
    # A listing that could not be settled waits for the operator, not in every batch.
    stmt = stmt.where(Listing.id.not_in(parking.parked(JOB, "listing")))
    if scope is not None and scope.shard is not None:
        k, n = scope.shard
        # A request naming no catalog product has no manufacturer: shard 1 takes it.
        stmt = stmt.where(func.coalesce(Listing.manufacturer_id, 0) % n == k - 1)
    elif scope is not None:
        stmt = stmt.where(_among(Listing.manufacturer_id, sorted(scope.manufacturer_ids or ())))
    return stmt


JOB = "settlement"


def _settle_next_batch(ctx: Context, batches: _Batches) -> bool:
    """Claim and settle the next batch of listings; False when there are none left.

    A batch that fails is settled again, then (if it fails again) one listing at
    a time: a listing that cannot be settled alone is parked with its error and
    named in the run's report, and the rest of its batch, and the run, go on.
    """
    claimed: list[int] = []
    try:
        return _settle_batch(ctx, batches, claimed=claimed)
    except Exception as exc:  # which listing it was, settling them one at a time will tell
        if not claimed:
            raise  # nothing was claimed: the database, not a listing, is the trouble
        log.warning("settlement run %s: a batch of %s listings failed (%s); settling them again",
                    batches.run_id, len(claimed), parking.describe(exc),
                    extra={"event": "settlement.batch_failed", "run_id": batches.run_id, "listings": len(claimed)})
    try:
        # A lost race (a deadlock with a bid or a webhook) passes on a second go.
        retry.run(_settle_batch, ctx, batches, only=claimed)
        return True
    except Exception as exc:  # one of them, at least, cannot be settled
        log.warning("settlement run %s: the batch failed again (%s); settling its listings one at a time",
                    batches.run_id, parking.describe(exc), extra={"event": "settlement.batch_failed_again",
                                                                  "run_id": batches.run_id})
    rows = parking.each(ctx, JOB, "listing", claimed, lambda listing_id: _settle_batch(ctx, batches,
                                                                                          only=[listing_id]),
                        max_attempts=1)
    with batches.lock:
        batches.report.parked.extend(rows.parked_ids)
    return True


def _settle_batch(ctx: Context, batches: _Batches, *, claimed: list[int] | None = None,
                  only: list[int] | None = None) -> bool:
    """Claim and settle the next batch of listings (or the listings `only` names,
    if they are still due), in one transaction; False when there are none left.
    `claimed` gets the batch's listing ids as soon as they are locked."""
    with ctx.uow() as uow:
        session = uow.session
        if only is not None:
            stmt = _due(batches.cutoff, 0, batches.scope).where(Listing.id.in_(only))
            listings = _core(session).execute(stmt.with_for_update(of=Listing)).all()
            if not listings:
                return True  # settled meanwhile, by another run
        else:
            with batches.lock:
                if batches.done:
                    return False
                stmt = _due(batches.cutoff, batches.after, batches.scope).limit(ctx.settings.settle_batch_size)
                listings = _core(session).execute(
                    stmt.with_for_update(skip_locked=batches.skip_locked, of=Listing)).all()
                if not listings:
                    batches.done = True
                    return False
                batches.after = listings[-1].id
            if claimed is not None:
                claimed.extend(listing.id for listing in listings)
        run_id, report = batches.run_id, batches.report
        now = ctx.now()
        order_ids = [l.order_id for l in listings if l.order_id is not None]
        conn = _core(session)
        orders = {o.id: o for o in conn.execute(
            select(Order.id, Order.status, Order.delivery, Order.ship_within_hours)
            .where(_among(Order.id, order_ids, conn)).with_for_update()
        )}
        candidates = candidates_for(session, listings, now=now, scores=batches.scores)
        held = {p.order_id: p for p in session.scalars(
            select(Payment).where(_among(Payment.order_id, order_ids, conn), Payment.status == PaymentStatus.AUTHORIZED)
            .with_for_update()
        )}
        batch = SettlementReport(run_id=run_id, as_of=report.as_of, dry_run=False)
        lines = order_lines(session, order_ids)
        # What each bidder's store may still be awarded, locked: plans in this
        # batch draw it down as they are made, so no store is awarded more than it has.
        available = stock.available(session, ctx, [c for cs in candidates.values() for c in cs],
                                    [line for ls in lines.values() for line in ls], now=now)
        awards = []
        for listing in listings:
            if listing.kind == ListingKind.REQUEST:
                _settle_request(session, ctx, session.get_one(Listing, listing.id), candidates[listing.id], now,
                                run_id, batch)
                continue
            mine = lines.get(listing.order_id, [])
            decided = plan(mine, candidates[listing.id], available)
            for key, quantity in decided.uses(mine).items():
                if key in available:
                    available[key] -= quantity
            awards.append((listing, decided, mine))
            batch.count(decided)
        _award_orders(session, ctx, awards, orders, held, now=now, run_id=run_id)
        session.execute(
            update(SettlementRun)
            .where(SettlementRun.id == run_id)
            .values(settled=SettlementRun.settled + batch.settled,
                    to_retailers=SettlementRun.to_retailers + batch.to_retailers,
                    to_manufacturer=SettlementRun.to_manufacturer + batch.to_manufacturer,
                    heartbeat_at=now)
        )
        uow.commit()
        with batches.lock:
            report.settled += batch.settled
            report.to_retailers += batch.to_retailers
            report.to_manufacturer += batch.to_manufacturer
            for rule, n in batch.by_rule.items():
                report.by_rule[rule] = report.by_rule.get(rule, 0) + n
        return True


def _settle_request(session: Session, ctx: Context, listing: Listing, candidates: list[Candidate], now: datetime,
                    run_id: int, batch: SettlementReport) -> bool:
    """Award a personal request to its best eligible offer by its preference; with
    none eligible it stays open (its expiry decides). True if awarded."""
    from broker.personal.models import PersonalRequest
    from broker.personal.services import award_request

    request = session.scalar(select(PersonalRequest).where(PersonalRequest.id == listing.request_id)
                             .with_for_update())
    choice = choose(candidates, request.prefer)
    if choice.winner is None:
        return False
    award_request(session, ctx, listing, request, choice, cause=Cause.SETTLEMENT, now=now, run_id=run_id)
    batch.count(choice)
    return True


def _plan(ctx: Context, cutoff: datetime, scope: SettlementScope | None, report: SettlementReport) -> None:
    """What a run would decide now, without writing anything."""
    with ctx.uow() as uow:
        listings = uow.session.execute(_due(cutoff, scope=scope)).all()
        prefers = _preferences(uow.session, listings)
        scores: dict[int, float] = {}  # as in a run
        for start in range(0, len(listings), ctx.settings.settle_batch_size):
            chunk = listings[start:start + ctx.settings.settle_batch_size]
            candidates = candidates_for(uow.session, chunk, now=ctx.now(), scores=scores)
            lines = order_lines(uow.session, [l.order_id for l in chunk if l.order_id is not None])
            available = stock.available(uow.session, ctx, [c for cs in candidates.values() for c in cs],
                                        [line for ls in lines.values() for line in ls], now=ctx.now())
            for listing in chunk:
                if listing.kind == ListingKind.REQUEST:
                    choice = choose(candidates[listing.id], prefers.get(listing.id, "nearest"))
                    if choice.winner is None:
                        continue
                    winners: tuple[Candidate, ...] = (choice.winner,)
                    rule = choice.rule
                    report.count(choice)
                else:
                    mine = lines.get(listing.order_id, [])
                    decided = plan(mine, candidates[listing.id], available)
                    for key, quantity in decided.uses(mine).items():
                        if key in available:
                            available[key] -= quantity
                    winners, rule = decided.winners, decided.rule
                    report.count(decided)
                first = winners[0] if winners else None
                report.decisions.append({
                    "listing_id": listing.id,
                    "fulfiller": "retailer" if first else "manufacturer",
                    "retailer_id": first.retailer_id if first else None,
                    "distance_km": first.distance_km if first else None,
                    "rule": rule.value,
                    "parts": max(len(winners), 1),
                })


# A run that has not finished a batch for this long is taken to have died.
ABANDONED_AFTER = timedelta(minutes=15)


def _preferences(session: Session, listings: Sequence) -> dict[int, str]:
    from broker.personal.models import PersonalRequest

    ids = {l.request_id: l.id for l in listings if l.request_id is not None}
    if not ids:
        return {}
    rows = session.execute(select(PersonalRequest.id, PersonalRequest.prefer).where(PersonalRequest.id.in_(list(ids))))
    return {ids[rid]: prefer for rid, prefer in rows}


def _open_run(ctx: Context, as_of: datetime, trigger: str, scope: str | None) -> int:
    with ctx.uow() as uow:
        now = ctx.now()
        # Runs killed mid-way stay "running" with a stale heartbeat: say so, so that
        # a failure is visible rather than a run that seems to go on for ever.
        stale = now - ABANDONED_AFTER
        uow.session.execute(
            update(SettlementRun)
            .where(SettlementRun.status == RunStatus.RUNNING,
                   func.coalesce(SettlementRun.heartbeat_at, SettlementRun.started_at) < stale)
            .values(status=RunStatus.FAILED, finished_at=now,
                    error="abandoned: the process stopped before finishing (its committed batches stand)")
        )
        run = SettlementRun(as_of=as_of, trigger=trigger, status=RunStatus.RUNNING, started_at=now,
                            heartbeat_at=now, worker=f"{socket.gethostname()}:{os.getpid()}", scope=scope)
        uow.session.add(run)
        uow.commit()
        return run.id


def _close_run(ctx: Context, run_id: int, report: SettlementReport, error: str | None = None) -> None:
    """Finish the run, and with it write its summary emails (a failed run's
    committed batches were awarded too, so their winners hear of it)."""
    with ctx.uow() as uow:
        run = uow.session.get(SettlementRun, run_id)
        run.status = RunStatus.FAILED if error else RunStatus.COMPLETED
        run.error = error
        run.finished_at = ctx.now()
        run.parked = len(report.parked)
        events.run_finished_emails(uow.session, ctx, run_id)
        uow.commit()


def reroute(session: Session, ctx: Context, listing: Listing, *, cause: Cause, now: datetime,
            lines: Sequence[dict] | None = None) -> list[SettlementDecision]:
    """Re-plan a part whose winner let it go (`lines`, as its assignment holds
    them; None: the whole order), alone: it goes to the next-nearest eligible
    bidders that have not given this order back, split as few ways as they
    must, else to the manufacturer (caller's transaction). The order's other
    parts are not touched."""
    gave_back = set(
        session.scalars(
            select(Assignment.retailer_id).where(
                Assignment.order_id == listing.order_id, Assignment.retailer_id.is_not(None),
                Assignment.status.in_([AssignmentStatus.RELEASED, AssignmentStatus.LAPSED]),
            )
        )
    )
    candidates = candidates_for(session, [listing], exclude={listing.id: gave_back}, now=now)[listing.id]
    last_round = session.scalar(
        select(func.max(SettlementDecision.round)).where(SettlementDecision.listing_id == listing.id)
    )
    payment = session.scalar(select(Payment).where(Payment.order_id == listing.order_id).with_for_update())
    everything = order_lines(session, [listing.order_id]).get(listing.order_id, [])
    if lines is None:
        wanted = everything
    else:
        quantities = {int(line["line_id"]): int(line["quantity"]) for line in lines}
        wanted = [line._replace(quantity=quantities[line.line_id]) for line in everything
                  if line.line_id in quantities]
    available = stock.available(session, ctx, candidates, wanted, now=now)
    decided = plan(wanted, candidates, available)
    return _award_plan(session, ctx, listing, decided, wanted, round=(last_round or 0) + 1, cause=cause, now=now,
                       payment=payment, whole_order=lines is None)


def _award_plan(session: Session, ctx: Context, listing: Listing, decided: Plan, lines: Sequence[PlanLine], *,
                round: int, cause: Cause, now: datetime, payment: Payment | None, whole_order: bool,
                run_id: int | None = None) -> list[SettlementDecision]:
    """Record a plan and hand each part to its fulfiller, reserving the stock it
    uses (in the caller's transaction)."""
    order = session.get(Order, listing.order_id)
    due_at = _due_at(ctx, order.delivery, now, order.ship_within_hours)
    if payment is not None:
        _capture_if_hold_too_short(session, ctx, payment, due_at, now)
    skus = {line.line_id: line.sku for line in lines}
    decisions = []
    for values in _decision_values(listing.id, decided, round=round, cause=cause, run_id=run_id, now=now,
                                   whole_order=whole_order):
        decision = SettlementDecision(**values)
        assignment = Assignment(
            order_id=listing.order_id, decision=decision, manufacturer_id=listing.manufacturer_id,
            fulfiller_kind=decision.fulfiller_kind, retailer_id=decision.winner_retailer_id,
            store_id=decision.winner_store_id, status=AssignmentStatus.ACTIVE, assigned_at=now, due_at=due_at,
            lines=values["lines"],
        )
        session.add(assignment)
        decisions.append(decision)
        if decision.winner_store_id is not None:
            session.flush()
            part = decided.parts[values["part"]]
            stock.reserve(session, assignment.id, decision.winner_store_id,
                          [(skus[line_id], quantity) for line_id, quantity in part.lines], now=now)
    return decisions


def settle_as(ctx: Context, actor: Actor, *, as_of: datetime | None = None) -> SettlementReport:
    """`settle` for an API caller: only the operator may trigger it."""
    require(actor, ActorKind.OPERATOR)
    return settle(ctx, as_of=as_of, trigger="api")


def settlement_scope(ctx: Context, *, shard: str | None = None,
                     manufacturers: Iterable[str] = ()) -> SettlementScope | None:
    """The scope for `settle` from what an operator wrote: a shard "K/N", or
    manufacturers' slugs; neither: None, every due listing.

    :raise 422: a shard that is not K/N with 1 <= K <= N, both a shard and
        manufacturers, or a slug that is no manufacturer's.
    """
    slugs = sorted({slug.strip().lower() for slug in manufacturers})
    if shard and slugs:
        raise Invalid("settle a shard or named manufacturers, not both")
    if shard:
        try:
            return SettlementScope(shard=parse_shard(shard))
        except ValueError as exc:
            raise Invalid.field("shard", str(exc)) from None
    if not slugs:
        return None
    with ctx.uow() as uow:
        ids = dict(uow.session.execute(
            select(Manufacturer.slug, Manufacturer.id).where(Manufacturer.slug.in_(slugs))).tuples().all())
    unknown = [slug for slug in slugs if slug not in ids]
    if unknown:
        named = ", ".join(map(repr, unknown))
        raise Invalid.field("manufacturer", f"no manufacturer has the slug {named}" if len(unknown) == 1
                            else f"no manufacturers have the slugs {named}")
    return SettlementScope(manufacturer_ids=frozenset(ids.values()), manufacturer_slugs=tuple(slugs))


def missed_settlement(ctx: Context, now: datetime, scope: SettlementScope | None = None) -> datetime | None:
    """The last scheduled settlement time, if no run covering `scope` has
    completed since it: a run of the same scope, or one of every listing (which
    covers every shard). Without a scope only a run of every listing counts."""
    due = previous_fire(now, cron=ctx.settings.settle_cron, timezone=ctx.settings.timezone)
    if due is None:
        return None
    covering = SettlementRun.scope.is_(None)
    if scope is not None:
        covering = or_(covering, SettlementRun.scope == scope.describe())
    with ctx.uow() as uow:
        if uow.session.scalar(select(SettlementRun.id).limit(1)) is None:
            return None  # a new install: no scheduler ever ran, so none missed a run
        done = uow.session.scalar(
            select(func.count()).where(SettlementRun.status == RunStatus.COMPLETED, SettlementRun.as_of >= due,
                                       covering)
        )
    return None if done else due
