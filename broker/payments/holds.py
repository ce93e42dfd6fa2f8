"""The card hold: one way for everything Broker authorises before it knows who
will fulfil (a storefront order, a personal request's ceiling).

Reserve, ask, record. The caller first commits what is being paid for (the
order, awaiting its payment); `authorize` then asks the provider with no
transaction of the caller's open, so a slow Stripe call holds no SQLite write
lock and no PostgreSQL row lock (the offline provider keeps its charges in the
database, so it writes them in a short transaction of its own; Stripe's
provider touches no table, and its unit of work never begins one); `record`
writes the payment and its authorisation in the caller's next transaction.
When asking or recording fails, `give_up` releases whatever hold was made and
the caller removes its reservation: nothing is charged, nothing half-written.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from broker.errors import PaymentRequired, Unavailable
from broker.payments import services as payments
from broker.payments.models import Payment, PaymentStatus
from broker.payments.provider import Authorization, PaymentError

log = logging.getLogger(__name__)


def remote(ctx) -> bool:
    """Whether the payment provider is a network call (Stripe). The offline
    provider is Broker's own tables: asking it under the caller's transaction
    waits on nothing, and saves two commits (`local = True`)."""
    return not getattr(ctx.payments, "local", False)


def authorize(ctx, *, amount: int, currency: str, idempotency_key: str, description: str,
              metadata: dict[str, str], session: Session | None = None) -> Authorization:
    """Ask the provider for the hold: outside the caller's transaction, or, for a
    local provider (`remote`), in the caller's `session`.

    :raise 402: the provider refused it. :raise 503: the provider is not answering
        (nothing was charged).
    """
    try:
        if session is not None:
            return ctx.payments.authorize(session, amount=amount, currency=currency,
                                          idempotency_key=idempotency_key, description=description,
                                          metadata=metadata)
        with ctx.uow() as uow:
            auth = ctx.payments.authorize(uow.session, amount=amount, currency=currency,
                                          idempotency_key=idempotency_key, description=description,
                                          metadata=metadata)
            uow.commit()
            return auth
    except PaymentError as exc:
        if exc.retryable:
            raise Unavailable("the payment provider is not answering; nothing was charged, try again") from None
        raise PaymentRequired(f"the payment could not be set up: {exc}") from None


def record(session: Session, ctx, auth: Authorization, *, amount: int, currency: str, now: datetime,
           order_id: int | None = None, request_id: int | None = None, tax_amount: int = 0,
           tax_jurisdiction: str = "") -> Payment:
    """The payment as the provider answered, and its authorisation in the ledger
    if the hold is in place already (caller's transaction)."""
    payment = Payment(order_id=order_id, request_id=request_id, provider=ctx.payments.name, provider_ref=auth.ref,
                      test_mode=ctx.payments.test_mode, status=PaymentStatus.PENDING, amount=amount,
                      currency=currency, tax_amount=tax_amount, tax_jurisdiction=tax_jurisdiction, created_at=now)
    session.add(payment)
    session.flush()
    if auth.authorized:
        payments.record_authorized(session, payment, hold_hours=ctx.settings.auth_hold_hours, now=now)
    return payment


def give_up(ctx, auth: Authorization | None, *, idempotency_key: str) -> None:
    """Release a hold that will not be recorded (recording it failed). Best
    effort: a hold nobody captures lapses at the provider anyway."""
    if auth is None:
        return
    try:
        with ctx.uow() as uow:
            ctx.payments.release(uow.session, auth.ref, idempotency_key=idempotency_key)
            uow.commit()
    except Exception:  # noqa: BLE001 (the caller is already failing; say so and go on)
        log.warning("could not release unrecorded hold %s", auth.ref, extra={"event": "payment.release_failed"})


def release_unrecorded(ctx, *, release_key: str, amount: int, currency: str, idempotency_key: str, description: str,
                       metadata: dict[str, str]) -> bool:
    """For a reservation whose process stopped between asking and recording (a
    crash, a kill): ask again with the same idempotency key, so the provider
    answers with the hold it made then (or makes one now), and release it.

    True when nothing is held any more (or the provider refused the hold: there
    was none); False when the provider is not answering, to be tried again."""
    try:
        auth = authorize(ctx, amount=amount, currency=currency, idempotency_key=idempotency_key,
                         description=description, metadata=metadata)
    except PaymentRequired:
        return True
    except Unavailable:
        return False
    give_up(ctx, auth, idempotency_key=release_key)
    return True
