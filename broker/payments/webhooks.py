"""Applying the payment provider's events.

Each event is stored once (its id is unique) and applied in the same
transaction. Where an event could arrive late or out of order, we do not trust
its snapshot: we re-read the payment from the provider and move our record
forward to match, so any order of arrival ends in the same state. Types we do
not handle are recorded and ignored.
"""

from __future__ import annotations

import dataclasses
import logging

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from broker.board.models import Listing
from broker.context import Context
from broker.errors import Invalid, Unavailable
from broker.locks import lock
from broker.orders.models import Order
from broker.orders.services import payment_changed
from broker.payments import services as payments
from broker.payments.models import Payment, WebhookEvent
from broker.payments.provider import PaymentError
from broker.payouts.services import account_updated, transfer_reversed

log = logging.getLogger(__name__)

PAYMENT_INTENT_EVENTS = {
    "payment_intent.amount_capturable_updated", "payment_intent.succeeded", "payment_intent.payment_failed",
    "payment_intent.canceled", "payment_intent.processing", "payment_intent.requires_action",
}
REFUND_EVENTS = {"charge.refunded", "charge.refund.updated", "refund.created", "refund.updated"}


@dataclasses.dataclass(frozen=True)
class Received:
    event_id: str
    type: str
    outcome: str  # applied, ignored, unknown_object, duplicate


def apply_event(ctx: Context, event: dict, *, provider: str = "stripe") -> Received:
    """Store and apply one verified event, exactly once."""
    try:
        event_id, kind, obj = event["id"], event["type"], event["data"]["object"]
    except (KeyError, TypeError):
        raise Invalid("the event has no id, type or data.object") from None
    try:
        with ctx.uow() as uow:
            session = uow.session
            if session.scalar(select(WebhookEvent.id).where(WebhookEvent.event_id == event_id)) is not None:
                return Received(event_id, kind, "duplicate")
            try:
                outcome = _apply(ctx, session, kind, obj)
            except PaymentError as exc:
                # Nothing is stored: the provider retries the event, and we apply it then.
                raise Unavailable(f"could not re-read the payment from the provider: {exc}") from None
            session.add(WebhookEvent(provider=provider, event_id=event_id, type=kind,
                                     object_ref=obj.get("id") if isinstance(obj, dict) else None,
                                     payload=event, outcome=outcome, received_at=ctx.now()))
            uow.commit()
    except IntegrityError:
        # The same event delivered twice at once: the other delivery stored it.
        return Received(event_id, kind, "duplicate")
    log.info("webhook %s %s: %s", kind, event_id, outcome,
             extra={"event": "webhook.received", "type": kind, "event_id": event_id, "outcome": outcome})
    return Received(event_id, kind, outcome)


def _apply(ctx: Context, session, kind: str, obj: dict) -> str:
    now = ctx.now()
    if kind in PAYMENT_INTENT_EVENTS or kind in REFUND_EVENTS:
        ref = obj.get("id") if kind in PAYMENT_INTENT_EVENTS else obj.get("payment_intent")
        charge = obj.get("id") if kind.startswith("charge.refunded") else obj.get("charge")
        found = _payment(session, ref, charge)
        if found is None:
            return "unknown_object"
        order, payment = _lock(session, found)
        state = ctx.payments.retrieve(session, payment.provider_ref)
        changes = payments.sync(session, payment, state, hold_hours=ctx.settings.auth_hold_hours, now=now)
        payment_changed(session, ctx, order, payment, changes, now)
        return "applied" if changes else "no_change"
    if kind in ("charge.dispute.created", "charge.dispute.closed"):
        found = _payment(session, obj.get("payment_intent"), obj.get("charge"))
        if found is None:
            return "unknown_object"
        _, payment = _lock(session, found)
        amount = int(obj.get("amount") or 0)
        if kind == "charge.dispute.created":
            payments.record_dispute_opened(session, payment, amount, obj["id"], now=now)
        else:
            payments.record_dispute_closed(session, payment, amount, obj["id"], won=obj.get("status") == "won",
                                           now=now)
        return "applied"
    if kind == "account.updated":
        from broker.payments.stripe_provider import account_ready

        ready = account_ready(obj)
        return "applied" if account_updated(session, obj.get("id", ""), ready, now) else "unknown_object"
    if kind == "transfer.reversed":
        amount = int(obj.get("amount_reversed") or obj.get("amount") or 0)
        return "applied" if transfer_reversed(session, obj.get("id", ""), amount, now) else "unknown_object"
    return "ignored"


def _payment(session, ref: str | None, charge: str | None) -> Payment | None:
    if not ref and not charge:
        return None
    conditions = []
    if ref:
        conditions.append(Payment.provider_ref == ref)
    if charge:
        conditions.append(Payment.charge_ref == charge)
    return session.scalar(select(Payment).where(or_(*conditions)))


def _lock(session, payment: Payment) -> tuple[Order, Payment]:
    """Lock in the order every writer uses (listing, order, payment: broker.locks),
    so a webhook and a settlement batch never deadlock; re-read the rows once locked."""
    session.scalar(lock(select(Listing.id).where(Listing.order_id == payment.order_id)))
    order = session.scalar(lock(select(Order).where(Order.id == payment.order_id))
                           .execution_options(populate_existing=True))
    payment = session.scalar(lock(select(Payment).where(Payment.id == payment.id))
                             .execution_options(populate_existing=True))
    return order, payment


def receive_stripe(ctx: Context, payload: bytes, signature: str | None) -> Received:
    """Verify a Stripe webhook's signature, then apply it once.

    :raise 400: no secret configured, or a missing, wrong, stale or tampered
        signature (nothing is written).
    """
    from broker.errors import BrokerError
    from broker.payments.stripe_provider import WebhookSignatureError, verify_webhook

    secret = ctx.settings.stripe_webhook_secret
    if not secret:
        raise BrokerError("Stripe webhooks are not configured here (no STRIPE_WEBHOOK_SECRET)")
    try:
        event = verify_webhook(payload, signature, secret)
    except WebhookSignatureError as exc:
        raise BrokerError(f"the webhook signature is not valid: {exc}") from None
    return apply_event(ctx, event, provider="stripe")
