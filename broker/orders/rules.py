"""Order states move only forward."""

from __future__ import annotations

from broker.errors import Conflict
from broker.orders.models import Order, OrderStatus

S = OrderStatus
FORWARD: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.AWAITING_PAYMENT: frozenset({S.OPEN, S.PAYMENT_FAILED, S.CANCELLED}),
    S.OPEN: frozenset({S.AWARDED, S.CANCELLED}),
    S.AWARDED: frozenset({S.SHIPPED, S.CANCELLED}),
    S.SHIPPED: frozenset({S.DELIVERED, S.REFUNDED}),
    S.DELIVERED: frozenset({S.REFUNDED}),
    S.CANCELLED: frozenset(),
    # A declined card can be retried on the same payment: a later authorisation
    # still puts the order on the board.
    S.PAYMENT_FAILED: frozenset({S.OPEN, S.CANCELLED}),
    S.REFUNDED: frozenset(),
}

CANCELLABLE = frozenset({S.AWAITING_PAYMENT, S.OPEN, S.AWARDED})


def can_move(current: OrderStatus, target: OrderStatus) -> bool:
    return target in FORWARD[OrderStatus(current)]


def check_move(order_id: int, current: OrderStatus, target: OrderStatus) -> None:
    """:raise Conflict: the move would not be forward from where the order is.

    For callers that move many orders with one UPDATE (settlement) and so hold
    their states, not the orders."""
    if not can_move(current, target):
        raise Conflict(f"order {order_id} is {current}; it cannot become {target}")


def move(order: Order, target: OrderStatus, now) -> None:
    """:raise Conflict: the move would not be forward from where the order is."""
    check_move(order.id, order.status, target)
    order.status = target
    order.updated_at = now
