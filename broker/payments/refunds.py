"""What a manufacturer may still refund or cancel on an order, for the console's
confirmation pages (the refund and the cancel themselves are
`orders.refund_order` and `orders.cancel_for_manufacturer`)."""

from __future__ import annotations

import dataclasses

from sqlalchemy import select

from broker.accounts.models import Manufacturer
from broker.auth import Actor, ActorKind, require
from broker.context import Context
from broker.errors import NotFound
from broker.orders.models import Order, OrderStatus
from broker.orders.rules import CANCELLABLE
from broker.payments.models import Payment, PaymentStatus
from broker.personal.models import PersonalRequest


@dataclasses.dataclass(frozen=True)
class Refundable:
    order_id: int
    status: str
    currency: str
    locale: str  # how the store writes money
    total: int
    captured: int
    refunded: int
    test_mode: bool
    may_cancel: bool

    @property
    def left(self) -> int:
        """What can still go back to the card: never more than was captured."""
        return max(0, self.captured - self.refunded)

    @property
    def may_refund(self) -> bool:
        return self.left > 0


def refundable(ctx: Context, actor: Actor, order_id: int) -> Refundable:
    """:raise 404: not one of the caller's orders."""
    require(actor, ActorKind.MANUFACTURER)
    with ctx.uow() as uow:
        session = uow.session
        order = session.scalar(select(Order).where(Order.id == order_id, Order.manufacturer_id == actor.id))
        if order is None:
            raise NotFound(f"no order {order_id}")
        payment = session.scalar(select(Payment).where(Payment.order_id == order.id))
        locale = session.scalar(select(Manufacturer.locale).where(Manufacturer.id == actor.id)) or "en_US"
        request_born = session.scalar(select(PersonalRequest.id).where(PersonalRequest.order_id == order.id))
        captured = payment.captured_amount if payment and payment.status in (
            PaymentStatus.CAPTURED, PaymentStatus.REFUNDED) else 0
        return Refundable(order.id, str(order.status), order.currency, locale, order.total, captured,
                          payment.refunded_amount if payment else 0, bool(payment and payment.test_mode),
                          request_born is None and order.status in CANCELLABLE | {OrderStatus.PAYMENT_FAILED})
