"""Delivered: the last step of an order that arrived.

A shipped order becomes `delivered` when its customer says it arrived
(`confirm_delivery`), or, failing that, BROKER_DELIVERED_AFTER_DAYS after the
shipment (`assume_deliveries`, the hourly `delivered` job); a pickup order when
the store hands it over (`fulfilment.collect_pickup`). Each records when, and
how (`DeliveredHow`), and releases the invitation to rate the store
(`events.order_delivered`). A refunded or cancelled order is never delivered:
the state machine moves only forward.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from broker.context import Context
from broker.errors import Conflict, NotFound, Unauthenticated
from broker.locks import lock
from broker.notifications import events
from broker.orders.models import DeliveredHow, Delivery, Order, OrderStatus
from broker.orders.rules import move
from broker.orders.services import OrderView, Party, _customer_may, returns_of
from broker.parking import services as parking
from broker.payments.models import Payment

log = logging.getLogger(__name__)
JOB = "delivered"
BATCH = 200


def mark_delivered(session: Session, ctx: Context, order: Order, how: DeliveredHow, now: datetime) -> None:
    """In the caller's transaction, the order locked. :raise 409: not shipped."""
    move(order, OrderStatus.DELIVERED, now)
    order.delivered_at = now
    order.delivered_how = how
    events.order_delivered(session, ctx, order, now)


def confirm_delivery(ctx: Context, order_id: int, access_token: str | None) -> OrderView:
    """The customer says the order arrived. Saying it again changes nothing.

    :raise 401: no token. :raise 404: wrong token. :raise 409: not shipped yet,
        or cancelled or refunded.
    """
    if not access_token:
        raise Unauthenticated("give the order's X-Access-Token")
    with ctx.uow() as uow:
        session = uow.session
        order = session.scalar(lock(select(Order).where(Order.id == order_id).options(selectinload(Order.lines))))
        if not _customer_may(order, access_token):
            raise NotFound(f"no order {order_id}")
        if order.status == OrderStatus.SHIPPED:
            mark_delivered(session, ctx, order, DeliveredHow.CUSTOMER, ctx.now())
        elif order.status != OrderStatus.DELIVERED:
            raise Conflict(f"the order is {order.status}; it can be confirmed once it has shipped")
        payment = session.scalar(select(Payment).where(Payment.order_id == order.id))
        returns = returns_of(session, [order.id]).get(order.id, ())
        uow.commit()
        return OrderView(order, Party.CUSTOMER, payment, None, True, True, returns=returns)


@dataclasses.dataclass
class DeliveredReport:
    assumed: int = 0
    failed: int = 0
    parked: int = 0


def assume_deliveries(ctx: Context, *, batch_size: int = BATCH) -> DeliveredReport:
    """The hourly job: shipped orders whose customer has not confirmed them
    BROKER_DELIVERED_AFTER_DAYS after shipment are taken as delivered.

    Each order in its own transaction, claimed in the database (`FOR UPDATE SKIP
    LOCKED` on PostgreSQL; SQLite's one writer) and checked again once locked,
    so two schedulers deliver each order once. An order that fails is recorded,
    tried again with backoff and parked after a few failures (broker.parking);
    the others go on.
    """
    report = DeliveredReport()
    now = ctx.now()
    cutoff = now - timedelta(days=ctx.settings.delivered_after_days)
    after = 0
    while True:
        with ctx.uow() as uow:
            ids = list(uow.session.scalars(
                select(Order.id).where(Order.id > after, Order.status == OrderStatus.SHIPPED,
                                       Order.delivery == Delivery.SHIP, Order.shipped_at <= cutoff)
                .order_by(Order.id).limit(batch_size)))
        if not ids:
            break
        after = ids[-1]
        assumed = []
        rows = parking.each(ctx, JOB, "order", ids,
                            lambda order_id: assumed.append(_assume_one(ctx, order_id, cutoff)))
        report.assumed += sum(assumed)
        report.failed += rows.failed
        report.parked += rows.parked
    if report.assumed or report.failed:
        log.info("delivered: %s orders assumed delivered, %s failed", report.assumed, report.failed,
                 extra={"event": "delivered.run", "assumed": report.assumed, "failed": report.failed})
    return report


def _assume_one(ctx: Context, order_id: int, cutoff: datetime) -> int:
    with ctx.uow() as uow:
        session = uow.session
        order = session.scalar(lock(select(Order).where(Order.id == order_id).options(selectinload(Order.lines)),
                                    skip_locked=True))
        # Locked by another scheduler (it does this one), or moved on since it was listed.
        if order is None or order.status != OrderStatus.SHIPPED or order.shipped_at is None \
                or order.shipped_at > cutoff:
            return 0
        mark_delivered(session, ctx, order, DeliveredHow.ASSUMED, ctx.now())
        uow.commit()
        return 1
