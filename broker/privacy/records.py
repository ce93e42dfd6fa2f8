"""Finding a customer's things: their order or request by its access token, its
payment, and every outbox message about it (for the download and for erasure).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from broker.auth import digest, same
from broker.errors import NotFound, Unauthenticated
from broker.ledger.models import LedgerTransaction
from broker.orders.models import Order
from broker.outbox.models import OutboxMessage
from broker.payments.models import Payment
from broker.personal.models import PersonalRequest


def order_for(session: Session, order_id: int, token: str | None, *, lock: bool = False) -> Order:
    if not token:
        raise Unauthenticated("give the order's X-Access-Token")
    stmt = select(Order).where(Order.id == order_id).options(selectinload(Order.lines))
    order = session.scalar(stmt.with_for_update() if lock else stmt)
    if order is None or not same(order.access_token_hash, digest(token)):
        raise NotFound(f"no order {order_id}")
    return order


def request_for(session: Session, request_id: int, token: str | None, *, lock: bool = False) -> PersonalRequest:
    if not token:
        raise Unauthenticated("give the request's X-Access-Token")
    stmt = select(PersonalRequest).where(PersonalRequest.id == request_id)
    request = session.scalar(stmt.with_for_update() if lock else stmt)
    if request is None or not same(request.access_token_hash, digest(token)):
        raise NotFound(f"no request {request_id}")
    return request


def payment_of(session: Session, *, order_id: int | None = None, request_id: int | None = None) -> Payment | None:
    if order_id is not None:
        found = session.scalar(select(Payment).where(Payment.order_id == order_id))
        if found is not None:
            return found
    if request_id is not None:
        return session.scalar(select(Payment).where(Payment.request_id == request_id))
    return None


def outbox_about(session: Session, *, order: Order | None = None, request: PersonalRequest | None = None,
                  message_ids: Iterable[int] = ()) -> list[OutboxMessage]:
    """Every outbox message about the order or request, by the dedupe keys their
    writers use: `order-<id>[-...]`, `message-<id>[-...]` (the relay),
    `request-<id>-...` (offers, callbacks), and callbacks to the request's agent.

    A new kind of email about an order must keep to these keys to be found here
    (tests/integration/test_privacy.py scans the whole database after an erasure).
    """
    clauses = []
    if order is not None:
        clauses += [OutboxMessage.dedupe_key == f"order-{order.id}",
                    OutboxMessage.dedupe_key.startswith(f"order-{order.id}-", autoescape=True)]
    for message_id in message_ids:
        clauses += [OutboxMessage.dedupe_key == f"message-{message_id}",
                    OutboxMessage.dedupe_key.startswith(f"message-{message_id}-", autoescape=True)]
    if request is not None:
        clauses += [OutboxMessage.dedupe_key.startswith(f"request-{request.id}-", autoescape=True),
                    (OutboxMessage.recipient_kind == "agent") & (OutboxMessage.recipient_id == request.id)]
    if not clauses:
        return []
    return list(session.scalars(select(OutboxMessage).where(or_(*clauses)).order_by(OutboxMessage.id)))


def recipient(message: OutboxMessage) -> str:
    payload = message.payload if isinstance(message.payload, dict) else {}
    to = payload.get("to")
    return to.strip().lower() if isinstance(to, str) else ""


def payment_refs(session: Session, payment: Payment | None) -> set[str]:
    """The provider's ids for the payment: the intent, the charge, and its refunds
    (kept as ledger references)."""
    if payment is None:
        return set()
    refs = {payment.provider_ref, payment.charge_ref}
    if payment.order_id is not None:
        refs |= set(session.scalars(select(LedgerTransaction.reference)
                                    .where(LedgerTransaction.order_id == payment.order_id)))
    return {ref for ref in refs if ref}
