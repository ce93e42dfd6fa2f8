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
import gc
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine, exists, func, or_, select, update
from sqlalchemy.orm import Session

from broker import retry
from broker.accounts.models import Manufacturer
from broker.auth import Actor, ActorKind, require
from broker.board.models import Bid, BidStatus, Listing, ListingKind, ListingStatus
from broker.clock import as_utc
from broker.context import Context
from broker.errors import Invalid
from broker.fulfilment.models import Assignment, AssignmentStatus
from broker.notifications import events
from broker.orders.models import Order
from broker.parking import services as parking
from broker.payments.models import Payment, PaymentStatus
from broker.settlement.awarding import (
    Planned,
    _among,
    _core,
    award,
    candidates_for,
    decidable_in_sql,
    decide_in_sql,
    decisions_of,
    order_lines,
    stock_fed,
)
from broker.settlement.models import (
    Cause,
    FulfillerKind,
    RunStatus,
    SettlementDecision,
    SettlementRun,
)
from broker.settlement.rules import Candidate, Choice, Plan, choose, plan
from broker.settlement.schedule import previous_fire
from broker.settlement.scope import SettlementScope, parse_shard
from broker.stock import reserve as stock

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

    def count_rule(self, rule: str, to_retailer: bool, n: int = 1) -> None:
        """`count` for `n` listings decided in the database, by what they came to."""
        self.settled += n
        if to_retailer:
            self.to_retailers += n
        else:
            self.to_manufacturer += n
        self.by_rule[str(rule)] = self.by_rule.get(str(rule), 0) + n


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
        held = {p.order_id: p for p in session.scalars(
            select(Payment).where(_among(Payment.order_id, order_ids, conn), Payment.status == PaymentStatus.AUTHORIZED)
            .with_for_update()
        )}
        batch = SettlementReport(run_id=run_id, as_of=report.as_of, dry_run=False)
        # Most order listings are decided in the database; the rest (splits, stock
        # to draw down, personal requests) by the rules, here.
        in_sql = set(decidable_in_sql(session, ctx, [l for l in listings if l.kind == ListingKind.ORDER], now=now))
        in_db, by_rule = decide_in_sql(session, {l.id: l.manufacturer_id for l in listings if l.id in in_sql},
                                         round=0, cause=Cause.SETTLEMENT, now=now, run_id=run_id,
                                         scores=batches.scores)
        for (rule, kind), n in by_rule.items():
            batch.count_rule(rule, kind == FulfillerKind.RETAILER, n)
        by_sql = set(in_db)
        rest = [l for l in listings if l.id not in by_sql]
        candidates = candidates_for(session, rest, now=now, scores=batches.scores)
        lines = order_lines(session, [l.order_id for l in rest if l.order_id is not None])
        # What each bidder's store may still be awarded, locked: plans in this
        # batch draw it down as they are made, so no store is awarded more than it has.
        # (Nothing to lock or draw down while no store has a fresh feed: asked first,
        # for one row, rather than of every bidding store.)
        available = stock.available(session, ctx, [c for cs in candidates.values() for c in cs],
                                    [line for ls in lines.values() for line in ls], now=now) \
            if stock_fed(session, ctx, now=now) else {}
        planned = []
        for listing in rest:
            if listing.kind == ListingKind.REQUEST:
                _settle_request(session, ctx, session.get_one(Listing, listing.id), candidates[listing.id], now,
                                run_id, batch)
                continue
            mine = lines.get(listing.order_id, [])
            decided = plan(mine, candidates[listing.id], available)
            for key, quantity in decided.uses(mine).items():
                if key in available:
                    available[key] -= quantity
            planned.append(Planned(listing.id, decided, mine))
            batch.count(decided)
        award(session, ctx, planned, decided=in_db, round=0, cause=Cause.SETTLEMENT, now=now, run_id=run_id,
              held=held, orders=orders, close=True)
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
    round = (last_round or 0) + 1
    award(session, ctx, [Planned(listing.id, decided, wanted)], round=round, cause=cause, now=now,
          held={listing.order_id: payment} if payment is not None else None, whole_order=lines is None)
    return decisions_of(session, listing.id, round)


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
