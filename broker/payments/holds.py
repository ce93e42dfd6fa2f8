"""The card hold: one block for everything Broker authorises before it knows who
will fulfil (a storefront order, a personal request's ceiling)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from broker.errors import PaymentRequired, Unavailable
from broker.payments import services as payments
from broker.payments.models import Payment, PaymentStatus
from broker.payments.provider import Authorization, PaymentError


def hold_card(session: Session, ctx, *, amount: int, currency: str, idempotency_key: str, description: str,
              metadata: dict[str, str], now: datetime, order_id: int | None = None, request_id: int | None = None,
              tax_amount: int = 0, tax_jurisdiction: str = "") -> tuple[Payment, Authorization]:
    """Ask the provider to hold `amount` and record the payment (and, if it is held
    at once, its authorisation in the ledger), in the caller's transaction.

    :raise 402: the provider refused it. :raise 503: the provider is not answering
        (nothing was charged; the caller's transaction rolls back).
    """
    try:
        auth = ctx.payments.authorize(session, amount=amount, currency=currency, idempotency_key=idempotency_key,
                                      description=description, metadata=metadata)
    except PaymentError as exc:
        if exc.retryable:
            raise Unavailable("the payment provider is not answering; nothing was charged, try again") from None
        raise PaymentRequired(f"the payment could not be set up: {exc}") from None
    payment = Payment(order_id=order_id, request_id=request_id, provider=ctx.payments.name, provider_ref=auth.ref,
                      test_mode=ctx.payments.test_mode, status=PaymentStatus.PENDING, amount=amount,
                      currency=currency, tax_amount=tax_amount, tax_jurisdiction=tax_jurisdiction, created_at=now)
    session.add(payment)
    session.flush()
    if auth.authorized:
        payments.record_authorized(session, payment, hold_hours=ctx.settings.auth_hold_hours, now=now)
    return payment, auth
