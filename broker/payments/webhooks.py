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
from broker.errors import BrokerError, Unavailable
from broker.locks import lock
from broker.orders.models import Order
from broker.orders.services import payment_changed
from broker.payments import services as payments
from broker.payments.models import Payment, WebhookEvent
from broker.payments.provider import PaymentError
from broker.payouts.services import account_updated, transfer_reversed
from broker.personal.services import request_payment_changed

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


# The object's fields the handlers read, and what each must be when present.
_TEXT_FIELDS = ("id", "payment_intent", "charge", "status")
_AMOUNT_FIELDS = ("amount", "amount_reversed")
MAX_REF = 100  # WebhookEvent.event_id and .object_ref
MAX_TYPE = 60  # WebhookEvent.type
MAX_AMOUNT = 10**12


class MalformedEvent(BrokerError):
    """A correctly signed event that is not the shape the handler reads (400):
    nothing is written, so a fixed redelivery is applied."""


def event_parts(event: object) -> tuple[str, str, dict]:
    """(id, type, data.object) of an event, each the shape the handlers need.

    :raise MalformedEvent: not a JSON object with a string `id` and `type` and an
        object `data.object` whose ids are strings and amounts whole numbers.
    """
    if not isinstance(event, dict):
        raise MalformedEvent("the event is not a JSON object")
    event_id, kind, data = event.get("id"), event.get("type"), event.get("data")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_REF:
        raise MalformedEvent(f"the event's id must be a string of 1 to {MAX_REF} characters")
    if not isinstance(kind, str) or not 0 < len(kind) <= MAX_TYPE:
        raise MalformedEvent(f"the event's type must be a string of 1 to {MAX_TYPE} characters")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        raise MalformedEvent("the event's data.object must be a JSON object")
    for name in _TEXT_FIELDS:
        value = obj.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_REF):
            raise MalformedEvent(f"data.object.{name} must be a string of at most {MAX_REF} characters")
    for name in _AMOUNT_FIELDS:
        value = obj.get(name)
        if value is not None and (type(value) is not int or not 0 <= value <= MAX_AMOUNT):
            raise MalformedEvent(f"data.object.{name} must be a whole number of minor units")
    if kind.startswith("charge.dispute.") and not obj.get("id"):
        raise MalformedEvent("a dispute event's data.object needs its id")
    return event_id, kind, obj


def apply_event(ctx: Context, event: dict, *, provider: str = "stripe") -> Received:
    """Store and apply one verified event, exactly once. :raise 400: not the shape of an event."""
    event_id, kind, obj = event_parts(event)
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
                                     object_ref=obj.get("id"),
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
        if order is not None:
            payment_changed(session, ctx, order, payment, changes, now)
        elif payment.request_id is not None:  # a personal request's hold, before it became an order
            request_payment_changed(session, payment, changes, now)
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

    :raise 400: no secret configured, a missing, wrong, stale or tampered
        signature, or a signed body that is not an event Broker can read
        (nothing is written).
    """
    from broker.payments.stripe_provider import WebhookPayloadError, WebhookSignatureError, verify_webhook

    secret = ctx.settings.stripe_webhook_secret
    if not secret:
        raise BrokerError("Stripe webhooks are not configured here (no STRIPE_WEBHOOK_SECRET)")
    try:
        event = verify_webhook(payload, signature, secret)
    except WebhookSignatureError as exc:
        raise BrokerError(f"the webhook signature is not valid: {exc}") from None
    except WebhookPayloadError as exc:
        raise MalformedEvent(f"the event is not one Broker can read: {exc}") from None
    return apply_event(ctx, event, provider="stripe")
