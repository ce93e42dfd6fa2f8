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
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.orm import Session

from broker.accounts.models import DealerAuthorisation, Retailer, Store
from broker.auth import Actor, ActorKind, require
from broker.board.models import Bid, BidStatus, Listing, ListingKind, ListingStatus
from broker.clock import as_utc
from broker.context import Context
from broker.errors import Invalid
from broker.fulfilment.models import Assignment, AssignmentStatus
from broker.orders.models import Delivery, Order, OrderStatus
from broker.payments import services as payments
from broker.payments.models import Payment, PaymentStatus
from broker.payments.provider import PaymentError
from broker.orders.rules import move
from broker.reputation.services import fulfilment_scores
from broker.settlement.models import (
    Cause,
    FulfillerKind,
    RunStatus,
    SettlementDecision,
    SettlementRun,
)
from broker.settlement.rules import Candidate, Choice, choose, eligibility
from broker.settlement.schedule import previous_fire

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
    settled: int = 0
    to_retailers: int = 0
    to_manufacturer: int = 0
    by_rule: dict[str, int] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    decisions: list[dict] = dataclasses.field(default_factory=list)

    def count(self, choice: Choice) -> None:
        self.settled += 1
        if choice.winner is None:
            self.to_manufacturer += 1
        else:
            self.to_retailers += 1
        self.by_rule[choice.rule.value] = self.by_rule.get(choice.rule.value, 0) + 1


def candidates_for(session: Session, listings: Sequence[Listing],
                   exclude: dict[int, set[int]] | None = None, *,
                   now: datetime | None = None) -> dict[int, list[Candidate]]:
    """Every active bid on these listings as a candidate, eligible or not, with
    eligibility judged now (a store may have closed, a dealer been revoked).

    A fixed number of queries whatever the batch size.
    """
    exclude = exclude or {}
    by_listing: dict[int, list[Candidate]] = {listing.id: [] for listing in listings}
    if not listings:
        return by_listing
    ids = list(by_listing)
    bids = list(session.scalars(select(Bid).where(Bid.listing_id.in_(ids), Bid.status == BidStatus.ACTIVE)))
    if not bids:
        return by_listing
    store_ids = {b.store_id for b in bids}
    retailer_ids = {b.retailer_id for b in bids}
    stores = {s.id: s for s in session.scalars(select(Store).where(Store.id.in_(store_ids)))}
    active = {r.id: r.active for r in session.scalars(select(Retailer).where(Retailer.id.in_(retailer_ids)))}
    maker_ids = {listing.manufacturer_id for listing in listings}
    authorised = set(
        session.execute(
            select(DealerAuthorisation.manufacturer_id, DealerAuthorisation.retailer_id).where(
                DealerAuthorisation.manufacturer_id.in_(maker_ids),
                DealerAuthorisation.retailer_id.in_(retailer_ids),
                DealerAuthorisation.revoked_at.is_(None),
            )
        ).tuples()
    )
    # Reviews count once revealed, as of the moment being settled.
    scores = fulfilment_scores(session, retailer_ids, now=now)
    listing_by_id = {listing.id: listing for listing in listings}
    for bid in bids:
        if bid.retailer_id in exclude.get(bid.listing_id, ()):
            continue
        listing = listing_by_id[bid.listing_id]
        store = stores[bid.store_id]
        # Measured when the bid was placed, and again whenever its store moves
        # (accounts.update_store), so it is the distance from where the store is.
        km = bid.distance_km
        reason = eligibility(
            retailer_active=active.get(bid.retailer_id, False),
            authorised=listing.manufacturer_id is None or (listing.manufacturer_id, bid.retailer_id) in authorised,
            store_open=store.is_open and store.retailer_id == bid.retailer_id,
            distance_km=km,
            radius_km=store.service_radius_km,
        )
        by_listing[bid.listing_id].append(
            Candidate(
                bid_id=bid.id, retailer_id=bid.retailer_id, store_id=bid.store_id, distance_km=km,
                score=scores[bid.retailer_id], bid_at=bid.created_at, eligible=not reason,
                reason=reason, price=bid.price,
            )
        )
    return by_listing


def award(session: Session, ctx: Context, listing: Listing, choice: Choice, *, round: int, cause: Cause,
          now: datetime, run_id: int | None = None, payment: Payment | None = None) -> SettlementDecision:
    """Record the decision and hand the order to its fulfiller (in the caller's transaction).

    If the fulfiller's shipping window would outlast the card hold, the payment is
    captured now rather than lost later.
    """
    winner = choice.winner
    # A pickup order's deadline is the customer's collection window, not a shipping one.
    order = session.get(Order, listing.order_id)
    hours = ctx.settings.pickup_within_hours if order.delivery == Delivery.PICKUP else ctx.settings.ship_within_hours
    due_at = now + timedelta(hours=hours)
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
           progress: Callable[[SettlementReport], None] | None = None) -> SettlementReport:
    """Settle every listing due at `as_of` (default: now). Safe to run concurrently
    and to run again: a listing already settled is never settled twice."""
    started = time.perf_counter()
    as_of = as_utc(as_of) if as_of is not None else ctx.now()
    if not (EARLIEST <= as_of <= LATEST):
        raise Invalid.field("as_of", f"must be between {EARLIEST.year} and {LATEST.year}")
    cutoff = as_of - timedelta(hours=ctx.settings.min_board_hours)
    report = SettlementReport(run_id=None, as_of=as_of, dry_run=dry_run)
    if dry_run:
        _plan(ctx, cutoff, report)
        report.seconds = time.perf_counter() - started
        return report

    run_id = _open_run(ctx, as_of, trigger)
    report.run_id = run_id
    pause = ctx.settings.settle_batch_pause_ms / 1000
    try:
        # First pass skips rows other transactions hold, so concurrent runs share
        # the work; the second waits for them, so nothing due is left behind.
        for skip_locked in (True, False):
            after = 0
            while (after := _settle_batch(ctx, cutoff, run_id, report, skip_locked=skip_locked, after=after)):
                if progress:
                    progress(report)
                if pause:
                    time.sleep(pause)
    except Exception as exc:
        report.seconds = time.perf_counter() - started
        _close_run(ctx, run_id, report, error=f"{type(exc).__name__}: {exc}")
        log.exception("settlement run %s failed", run_id)
        raise
    report.seconds = time.perf_counter() - started
    _close_run(ctx, run_id, report)
    log.info(
        "settlement run %s as of %s: %s settled, %s to retailers, %s to manufacturers in %.2fs",
        run_id, as_of.isoformat(), report.settled, report.to_retailers, report.to_manufacturer, report.seconds,
        extra={"event": "settlement.completed", "run_id": run_id, "as_of": as_of.isoformat(),
               "settled": report.settled, "to_retailers": report.to_retailers,
               "to_manufacturer": report.to_manufacturer, "by_rule": report.by_rule,
               "seconds": round(report.seconds, 3)},
    )
    return report


def _due(cutoff: datetime, after: int = 0):
    """Open listings on the board long enough: every order, and the personal
    requests that have offers (one without waits for offers until it expires)."""
    has_offer = exists().where(Bid.listing_id == Listing.id, Bid.status == BidStatus.ACTIVE)
    return (
        select(Listing)
        .where(Listing.status == ListingStatus.OPEN, Listing.listed_at <= cutoff, Listing.id > after,
               or_(Listing.kind == ListingKind.ORDER, has_offer))
        .order_by(Listing.id)
    )


def _settle_batch(ctx: Context, cutoff: datetime, run_id: int, report: SettlementReport, *,
                  skip_locked: bool, after: int) -> int:
    """Settle one batch of listings with ids above `after`; the last id, or 0 when done."""
    with ctx.uow() as uow:
        session = uow.session
        stmt = _due(cutoff, after).limit(ctx.settings.settle_batch_size)
        listings = list(session.scalars(stmt.with_for_update(skip_locked=skip_locked, of=Listing)))
        if not listings:
            return 0
        now = ctx.now()
        order_ids = [l.order_id for l in listings if l.order_id is not None]
        orders = {o.id: o for o in session.scalars(select(Order).where(Order.id.in_(order_ids)).with_for_update())}
        candidates = candidates_for(session, listings, now=now)
        held = {p.order_id: p for p in session.scalars(
            select(Payment).where(Payment.order_id.in_(order_ids), Payment.status == PaymentStatus.AUTHORIZED)
            .with_for_update()
        )}
        batch = SettlementReport(run_id=run_id, as_of=report.as_of, dry_run=False)
        for listing in listings:
            if listing.kind == ListingKind.REQUEST:
                _settle_request(session, ctx, listing, candidates[listing.id], now, run_id, batch)
                continue
            choice = choose(candidates[listing.id])
            award(session, ctx, listing, choice, round=0, cause=Cause.SETTLEMENT, now=now, run_id=run_id,
                  payment=held.get(listing.order_id))
            listing.status = ListingStatus.AWARDED
            listing.closed_at = now
            listing.settlement_run_id = run_id
            move(orders[listing.order_id], OrderStatus.AWARDED, now)
            batch.count(choice)
        session.execute(
            update(SettlementRun)
            .where(SettlementRun.id == run_id)
            .values(settled=SettlementRun.settled + batch.settled,
                    to_retailers=SettlementRun.to_retailers + batch.to_retailers,
                    to_manufacturer=SettlementRun.to_manufacturer + batch.to_manufacturer,
                    heartbeat_at=now)
        )
        uow.commit()
        report.settled += batch.settled
        report.to_retailers += batch.to_retailers
        report.to_manufacturer += batch.to_manufacturer
        for rule, n in batch.by_rule.items():
            report.by_rule[rule] = report.by_rule.get(rule, 0) + n
        return listings[-1].id


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


def _plan(ctx: Context, cutoff: datetime, report: SettlementReport) -> None:
    """What a run would decide now, without writing anything."""
    with ctx.uow() as uow:
        listings = list(uow.session.scalars(_due(cutoff)))
        prefers = _preferences(uow.session, listings)
        for start in range(0, len(listings), ctx.settings.settle_batch_size):
            chunk = listings[start:start + ctx.settings.settle_batch_size]
            candidates = candidates_for(uow.session, chunk, now=ctx.now())
            for listing in chunk:
                choice = choose(candidates[listing.id], prefers.get(listing.id, "nearest"))
                if listing.kind == ListingKind.REQUEST and choice.winner is None:
                    continue
                report.count(choice)
                report.decisions.append({
                    "listing_id": listing.id,
                    "fulfiller": "retailer" if choice.winner else "manufacturer",
                    "retailer_id": choice.winner.retailer_id if choice.winner else None,
                    "distance_km": choice.winner.distance_km if choice.winner else None,
                    "rule": choice.rule.value,
                })


# A run that has not finished a batch for this long is taken to have died.
ABANDONED_AFTER = timedelta(minutes=15)


def _preferences(session: Session, listings: Sequence[Listing]) -> dict[int, str]:
    from broker.personal.models import PersonalRequest

    ids = {l.request_id: l.id for l in listings if l.request_id is not None}
    if not ids:
        return {}
    rows = session.execute(select(PersonalRequest.id, PersonalRequest.prefer).where(PersonalRequest.id.in_(list(ids))))
    return {ids[rid]: prefer for rid, prefer in rows}


def _open_run(ctx: Context, as_of: datetime, trigger: str) -> int:
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
                            heartbeat_at=now, worker=f"{socket.gethostname()}:{os.getpid()}")
        uow.session.add(run)
        uow.commit()
        return run.id


def _close_run(ctx: Context, run_id: int, report: SettlementReport, error: str | None = None) -> None:
    with ctx.uow() as uow:
        run = uow.session.get(SettlementRun, run_id)
        run.status = RunStatus.FAILED if error else RunStatus.COMPLETED
        run.error = error
        run.finished_at = ctx.now()
        uow.commit()


def reroute(session: Session, ctx: Context, listing: Listing, *, cause: Cause, now: datetime) -> SettlementDecision:
    """Give an order whose winner let it go to the next-nearest eligible bidder
    that has not held it yet, else to the manufacturer (caller's transaction)."""
    held = set(
        session.scalars(
            select(Assignment.retailer_id).where(
                Assignment.order_id == listing.order_id, Assignment.retailer_id.is_not(None)
            )
        )
    )
    candidates = candidates_for(session, [listing], exclude={listing.id: held}, now=now)[listing.id]
    last_round = session.scalar(
        select(func.max(SettlementDecision.round)).where(SettlementDecision.listing_id == listing.id)
    )
    payment = session.scalar(select(Payment).where(Payment.order_id == listing.order_id).with_for_update())
    return award(session, ctx, listing, choose(candidates), round=(last_round or 0) + 1,
                 cause=cause, now=now, payment=payment)


def settle_as(ctx: Context, actor: Actor, *, as_of: datetime | None = None) -> SettlementReport:
    """`settle` for an API caller: only the operator may trigger it."""
    require(actor, ActorKind.OPERATOR)
    return settle(ctx, as_of=as_of, trigger="api")


def missed_settlement(ctx: Context, now: datetime) -> datetime | None:
    """The last scheduled settlement time, if no run has completed since it."""
    due = previous_fire(now, cron=ctx.settings.settle_cron, timezone=ctx.settings.timezone)
    if due is None:
        return None
    with ctx.uow() as uow:
        if uow.session.scalar(select(SettlementRun.id).limit(1)) is None:
            return None  # a new install: no scheduler ever ran, so none missed a run
        done = uow.session.scalar(
            select(func.count()).where(SettlementRun.status == RunStatus.COMPLETED, SettlementRun.as_of >= due)
        )
    return None if done else due
