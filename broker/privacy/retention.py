"""The retention job: erase what is past BROKER_PII_RETENTION_DAYS since it was
complete (`run_retention`), in batches, each row by `broker.privacy.erasure`.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload

from broker.accounts.models import Manufacturer
from broker.board.models import Listing
from broker.context import Context
from broker.db import UTCDateTime
from broker.orders.models import Order, OrderStatus
from broker.parking import services as parking
from broker.personal.models import PersonalRequest, RequestStatus
from broker.privacy import erasure
from broker.returns.models import Return

log = logging.getLogger(__name__)

# Where an order has no manufacturer (a request for no catalog product), as in
# `orders.services.request_return`.
DEFAULT_RETURN_WINDOW_DAYS = 30
RETENTION_BATCH = 200
FOR_RETENTION = "erased: the retention period ended"


@dataclasses.dataclass
class RetentionReport:
    orders: int = 0
    requests: int = 0
    failed: int = 0  # orders or requests that could not be erased this run (broker.parking)
    parked: int = 0  # those that failed too often: they wait for the operator


RETENTION_JOB = "retention"


def run_retention(ctx: Context, *, batch_size: int = RETENTION_BATCH) -> RetentionReport:
    """The daily job: erase what is past BROKER_PII_RETENTION_DAYS since it was complete.

    Complete means nothing more can happen to it that needs the customer's data:

    * an order cancelled (from `cancelled_at`) or refunded (from its last change);
    * an order shipped or collected (delivered), once the store's return window
      has closed and any return asked for has been settled (from the later of the
      two): a return needs the address;
    * a personal request that expired or was withdrawn (from `closed_at`). An
      awarded request is erased with its order, on the order's clock.

    Orders still waiting for a payment (`awaiting_payment`, `payment_failed`) are
    not complete: they are left alone (a checkout abandoned for good should be
    cancelled first, and is then erased on the cancelled clock).

    In batches, each its own transaction; rows are claimed with `FOR UPDATE SKIP
    LOCKED` on PostgreSQL (listing first, then the order or request, the lock
    order every writer uses), so two schedulers share the work and erase each
    row once; anything erased already is skipped, so running again does nothing.
    A batch that fails is erased one row at a time, and a row that cannot be
    erased is recorded and parked after a few runs (broker.parking).
    """
    report = RetentionReport()
    now = ctx.now()
    days = ctx.settings.pii_retention_days
    cutoff = now - timedelta(days=days)
    after = 0
    while (after := _retention_orders(ctx, cutoff, now, days, after, batch_size, report)) > 0:
        pass
    after = 0
    while (after := _retention_requests(ctx, cutoff, now, after, batch_size, report)) > 0:
        pass
    if report.orders or report.requests:
        log.info("retention: %s orders and %s requests erased", report.orders, report.requests,
                 extra={"event": "retention.run", "orders": report.orders, "requests": report.requests})
    return report


def _order_complete_at(order: Order, window_days: int | None, last_return: datetime | None) -> datetime | None:
    """`last_return`: the latest moment a return of the order was asked for or decided."""
    if order.status == OrderStatus.CANCELLED:
        return order.cancelled_at or order.updated_at
    if order.status == OrderStatus.REFUNDED:
        return order.updated_at
    if order.status in (OrderStatus.SHIPPED, OrderStatus.DELIVERED) and order.shipped_at is not None:
        window = DEFAULT_RETURN_WINDOW_DAYS if window_days is None else window_days
        done = order.shipped_at + timedelta(days=window)
        if last_return is not None:
            done = max(done, last_return)
        return done
    return None


def _retention_orders(ctx: Context, cutoff: datetime, now: datetime, days: float, after: int, batch_size: int,
                      report: RetentionReport) -> int:
    """One batch of orders with ids above `after`; the last id looked at, or 0 when done."""
    # Necessary, not sufficient: the exact clock (return windows) is checked per row.
    maybe_due = or_(
        (Order.status == OrderStatus.CANCELLED) & (func.coalesce(Order.cancelled_at, Order.updated_at) <= cutoff),
        (Order.status == OrderStatus.REFUNDED) & (Order.updated_at <= cutoff),
        Order.status.in_([OrderStatus.SHIPPED, OrderStatus.DELIVERED]) & (Order.shipped_at <= cutoff),
    )
    with ctx.uow() as uow:
        ids = list(uow.session.scalars(
            select(Order.id).where(Order.id > after, Order.erased_at.is_(None), maybe_due,
                                   parking.may_try(RETENTION_JOB, "order", Order.id, now))
            .order_by(Order.id).limit(batch_size)))
    if not ids:
        return 0
    rows = parking.in_batches(ctx, RETENTION_JOB, "order", ids,
                              lambda batch: _erase_due_orders(ctx, batch, maybe_due, now, days, report))
    report.failed, report.parked = report.failed + rows.failed, report.parked + rows.parked
    return ids[-1]


def _erase_due_orders(ctx: Context, ids: list[int], maybe_due, now: datetime, days: float,
                      report: RetentionReport) -> None:
    erased = 0
    with ctx.uow() as uow:
        session = uow.session
        listings = {
            listing.order_id: listing for listing in session.scalars(
                select(Listing).where(Listing.order_id.in_(ids)).order_by(Listing.id)
                .with_for_update(skip_locked=True))
        }
        claimed = session.execute(
            select(Order, Manufacturer.return_window_days)
            .outerjoin(Manufacturer, Manufacturer.id == Order.manufacturer_id)
            .where(Order.id.in_(ids), Order.erased_at.is_(None), maybe_due)
            .options(selectinload(Order.lines))
            .order_by(Order.id).with_for_update(skip_locked=True, of=Order)
        ).all()
        has_listing = set(session.scalars(select(Listing.order_id).where(Listing.order_id.in_(ids))))
        last_return = dict(session.execute(
            select(Return.order_id, func.max(func.coalesce(Return.decided_at, Return.requested_at),
                                             type_=UTCDateTime()))
            .where(Return.order_id.in_(ids)).group_by(Return.order_id)).tuples().all())
        for order, window in claimed:
            if order.id in has_listing and order.id not in listings:
                continue  # its listing is held by another transaction: next run
            complete_at = _order_complete_at(order, window, last_return.get(order.id))
            if complete_at is None or complete_at + timedelta(days=days) > now:
                continue
            erasure.anonymise_order(session, order, now, FOR_RETENTION)
            erased += 1
        uow.commit()
    report.orders += erased


def _retention_requests(ctx: Context, cutoff: datetime, now: datetime, after: int, batch_size: int,
                        report: RetentionReport) -> int:
    due = (PersonalRequest.status.in_([RequestStatus.EXPIRED, RequestStatus.CANCELLED])
           & PersonalRequest.erased_at.is_(None) & (PersonalRequest.closed_at <= cutoff))
    with ctx.uow() as uow:
        ids = list(uow.session.scalars(
            select(PersonalRequest.id).where(PersonalRequest.id > after, due,
                                             parking.may_try(RETENTION_JOB, "request", PersonalRequest.id, now))
            .order_by(PersonalRequest.id).limit(batch_size)))
    if not ids:
        return 0
    rows = parking.in_batches(ctx, RETENTION_JOB, "request", ids,
                              lambda batch: _erase_due_requests(ctx, batch, due, now, report))
    report.failed, report.parked = report.failed + rows.failed, report.parked + rows.parked
    return ids[-1]


def _erase_due_requests(ctx: Context, ids: list[int], due, now: datetime, report: RetentionReport) -> None:
    erased = 0
    with ctx.uow() as uow:
        session = uow.session
        listings = {listing.request_id for listing in session.scalars(
            select(Listing).where(Listing.request_id.in_(ids)).order_by(Listing.id)
            .with_for_update(skip_locked=True))}
        has_listing = set(session.scalars(select(Listing.request_id).where(Listing.request_id.in_(ids))))
        claimed = session.scalars(select(PersonalRequest).where(PersonalRequest.id.in_(ids), due)
                                  .order_by(PersonalRequest.id).with_for_update(skip_locked=True)).all()
        for request in claimed:
            if request.id in has_listing and request.id not in listings:
                continue
            erasure.anonymise_request(session, request, now, FOR_RETENTION)
            erased += 1
        uow.commit()
    report.requests += erased
