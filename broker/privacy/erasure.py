"""Erasure: the customer's data taken out of an order or a personal request, at
their request (`erase_order`, `erase_request`) or when it is due
(`broker.privacy.retention`).

What erasure does, to an order or a personal request and everything about it
(`anonymise_order`, `anonymise_request`):

* names become "erased"; the order's email becomes a non-deliverable placeholder
  (`erased-order-<id>@erased.invalid`, RFC 2606), the request's contact and
  callback URL are cleared; street lines are cleared; the postal code keeps its
  coarse area (`coarse_postal_code`); coordinates are rounded to 0.1 degree
  (about 11 km), on the order, the request and their listing, so distances and
  areas in reports stay meaningful;
* the contact relay's message bodies, the customer's return reasons (and the
  store's notes answering them), both sides' review comments and the tracking
  number are cleared; ratings stay (they are
  the fulfiller's reputation), and the buyer key (a hash anyone can compute from
  the email) is dropped, so the buyer record no longer links to the address;
* the outbox (emails to the customer, relay emails to the fulfiller, callbacks to
  the customer's agent) loses addresses, URLs and text; an email not sent yet is
  cancelled, so nothing goes to the placeholder; the provider's webhook events
  about the payment lose billing and shipping details;
* money records stay as they are: payments, the ledger, earnings, payouts, the
  order's lines and totals; `broker ledger check` balances before and after.

The row keeps `erased_at`, and one disclosure row (party "broker") says what was
erased and why, so the customer's link still works and says so.

Nothing here logs anything about a customer but ids.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.board.models import Listing
from broker.context import Context
from broker.errors import Conflict
from broker.fulfilment.models import Assignment
from broker.orders.models import Order, OrderStatus
from broker.orders.rules import CANCELLABLE
from broker.orders.services import cancel_order
from broker.outbox import queue as outbox_queue
from broker.outbox.models import OutboxMessage
from broker.payments.models import Payment, WebhookEvent
from broker.personal.models import Message, PersonalRequest, RequestStatus
from broker.personal.services import cancel_request
from broker.privacy.models import Disclosure
from broker.privacy.records import order_for, outbox_about, payment_of, payment_refs, recipient, request_for
from broker.returns.models import Return
from broker.reputation.models import Review

log = logging.getLogger(__name__)

ERASED = "erased"
PLACEHOLDER_DOMAIN = "erased.invalid"  # RFC 2606: can never be delivered
COORDINATE_DECIMALS = 1  # 0.1 degree: about 11 km of latitude
# Keys of a provider event that hold the payer's details (Stripe's names).
PERSONAL_KEYS = frozenset({"billing_details", "shipping", "receipt_email", "email", "name", "phone", "address",
                           "customer_details", "customer_email", "customer_name"})
FOR_CUSTOMER_ERASURE = "erased at the customer's request"


def _record_erasure(session: Session, *, order_id: int | None, request_id: int | None, fields: list[str],
                    purpose: str, now: datetime) -> None:
    """The erasure's own row in the customer's log (party "broker"): what was erased and why."""
    session.add(Disclosure(order_id=order_id, request_id=request_id, party_kind="broker", party_id=None,
                           fields=sorted(fields), purpose=purpose, at=now))


def placeholder_email(order_id: int) -> str:
    return f"erased-order-{order_id}@{PLACEHOLDER_DOMAIN}"


def request_placeholder(request_id: int) -> str:
    """Where the request's emails are recorded as sent to, once erased (the request keeps no contact)."""
    return f"erased-request-{request_id}@{PLACEHOLDER_DOMAIN}"


def coarse_postal_code(code: str) -> str:
    """The area a postal code names, not the street: a US ZIP's first three digits
    (its sectional centre), the first two characters of a shorter code."""
    code = (code or "").strip().upper()
    return code[:3] if len(code) >= 5 else code[:2]


def coarse_coordinate(value: float) -> float:
    return round(value, COORDINATE_DECIMALS)



@dataclasses.dataclass(frozen=True)
class Erasure:
    kind: str  # order or request
    id: int
    status: str
    erased_at: datetime
    order_id: int | None = None


def erase_order(ctx: Context, order_id: int, token: str | None) -> Erasure:
    """The customer erases their data from this order. An order in flight (not
    shipped yet) is cancelled first, and its card hold released, by the same
    service as the cancel button; a shipped one is anonymised as it is. Erasing
    again changes nothing.

    :raise 401: no token. :raise 404: not this order's token.
    :raise 503: the payment provider could not release the hold (nothing erased; try again).
    """
    with ctx.uow() as uow:
        order = order_for(uow.session, order_id, token)
        in_flight = order.erased_at is None and order.status in CANCELLABLE | {OrderStatus.PAYMENT_FAILED}
    if in_flight:
        try:
            cancel_order(ctx, order_id, token)
        except Conflict:
            pass  # it shipped in the meantime: anonymised as a shipped order
    with ctx.uow() as uow:
        session = uow.session
        # Lock order: listing, order, as every writer does.
        session.scalar(select(Listing).where(Listing.order_id == order_id).with_for_update())
        order = order_for(session, order_id, token, lock=True)
        now = ctx.now()
        if order.erased_at is None:
            anonymise_order(session, order, now, FOR_CUSTOMER_ERASURE)
        uow.commit()
        log.info("order %s erased at the customer's request", order.id,
                 extra={"event": "privacy.erased", "order_id": order.id})
        return Erasure("order", order.id, order.status, order.erased_at, order.id)


def erase_request(ctx: Context, request_id: int, token: str | None) -> Erasure:
    """The customer erases their data from this personal request: an open one is
    withdrawn first (the hold released); an awarded one's order is erased too
    (cancelled first if it has not shipped). Erasing again changes nothing.

    :raise 401: no token. :raise 404: not this request's token. :raise 503: as `erase_order`.
    """
    with ctx.uow() as uow:
        request = request_for(uow.session, request_id, token)
        open_ = request.erased_at is None and request.status in (RequestStatus.OPEN, RequestStatus.AWAITING_PAYMENT)
    if open_:
        try:
            cancel_request(ctx, request_id, token)
        except Conflict:
            pass  # awarded in the meantime: its order is erased below
    with ctx.uow() as uow:
        order_id = request_for(uow.session, request_id, token).order_id
    if order_id is not None:
        erase_order(ctx, order_id, token)  # the order's token is the request's; erases the request too
    with ctx.uow() as uow:
        session = uow.session
        session.scalar(select(Listing).where(Listing.request_id == request_id).with_for_update())
        request = request_for(session, request_id, token, lock=True)
        if request.erased_at is None:
            anonymise_request(session, request, ctx.now(), FOR_CUSTOMER_ERASURE)
        uow.commit()
        log.info("request %s erased at the customer's request", request.id,
                 extra={"event": "privacy.erased", "request_id": request.id})
        return Erasure("request", request.id, request.status, request.erased_at, request.order_id)


def anonymise_order(session: Session, order: Order, now: datetime, purpose: str) -> None:
    """Anonymise the order and everything about it, in the caller's transaction
    (the order locked). Also the personal request it came from, if any."""
    messages = list(session.scalars(select(Message).where(Message.order_id == order.id)))
    reviews = list(session.scalars(select(Review).where(Review.order_id == order.id)))
    returns = list(session.scalars(select(Return).where(Return.order_id == order.id).with_for_update()))
    request = session.scalar(select(PersonalRequest).where(PersonalRequest.order_id == order.id))
    personal = [order.customer_name, order.customer_email, order.ship_line1, order.ship_line2, order.ship_city_area,
                *(m.body for m in messages), *(r.comment for r in reviews),
                *(r.reason for r in returns), *(r.note or "" for r in returns)]
    emails = {order.customer_email.strip().lower()}
    if request is not None:
        personal += [request.ship_name, request.ship_line1, request.ship_line2, request.ship_city_area,
                     request.contact_email or "",
                     request.callback_url or ""]
        emails.add((request.contact_email or "").strip().lower())
    placeholder = placeholder_email(order.id)

    order.customer_name = ERASED
    order.customer_email = placeholder
    order.ship_line1 = ""
    order.ship_line2 = ""
    order.ship_city_area = ""  # a district or bairro: finer than the city that stays
    order.ship_postal_code = coarse_postal_code(order.ship_postal_code)
    order.ship_lat = coarse_coordinate(order.ship_lat)
    order.ship_lon = coarse_coordinate(order.ship_lon)
    for ret in returns:
        # The customer's reason, and the store's note answering it.
        ret.reason = ERASED
        if ret.note is not None:
            ret.note = ERASED
    order.erased_at = now
    for listing in session.scalars(select(Listing).where(Listing.order_id == order.id)):
        _coarsen_listing(listing)
    for message in messages:
        message.body = ""
    for review in reviews:
        review.comment = ""
        review.subject_buyer_key = None
    for assignment in session.scalars(select(Assignment).where(Assignment.order_id == order.id)):
        # A tracking number finds the parcel, and with it where it went and who signed.
        assignment.tracking_number = None
    _scrub_outbox(session, outbox_about(session, order=order, request=request, message_ids=[m.id for m in messages]),
                  emails=emails, personal=personal, placeholder=placeholder, relay={m.id for m in messages}, now=now)
    _scrub_webhooks(session, payment_of(session, order_id=order.id), personal)
    _record_erasure(session, order_id=order.id, request_id=request.id if request else None,
                    fields=["name", "email", "address", "messages", "reviews"], purpose=purpose, now=now)
    if request is not None and request.erased_at is None:
        anonymise_request(session, request, now, purpose, audit=False)


def _coarsen_listing(listing: Listing) -> None:
    """The listing's cell and its exact point both to about 11 km, as the order's ship-to."""
    listing.lat, listing.lon = coarse_coordinate(listing.lat), coarse_coordinate(listing.lon)
    listing.exact_lat, listing.exact_lon = coarse_coordinate(listing.exact_lat), coarse_coordinate(listing.exact_lon)


def anonymise_request(session: Session, request: PersonalRequest, now: datetime, purpose: str, *,
                   audit: bool = True) -> None:
    """Anonymise the request, in the caller's transaction (the request locked).
    Its order, if any, is erased by `anonymise_order`."""
    personal = [request.ship_name, request.ship_line1, request.ship_line2, request.ship_city_area,
                request.contact_email or "", request.callback_url or ""]
    emails = {(request.contact_email or "").strip().lower()}
    request.contact_email = None
    request.callback_url = None
    request.buyer_key = None
    request.ship_name = ERASED
    request.ship_line1 = ""
    request.ship_line2 = ""
    request.ship_city_area = ""
    request.ship_postal_code = coarse_postal_code(request.ship_postal_code)
    request.lat = coarse_coordinate(request.lat)
    request.lon = coarse_coordinate(request.lon)
    request.erased_at = now
    for listing in session.scalars(select(Listing).where(Listing.request_id == request.id)):
        _coarsen_listing(listing)
    _scrub_outbox(session, outbox_about(session, request=request), emails=emails, personal=personal,
                  placeholder=request_placeholder(request.id), relay=set(), now=now)
    _scrub_webhooks(session, payment_of(session, order_id=request.order_id, request_id=request.id), personal)
    if audit:
        _record_erasure(session, order_id=request.order_id, request_id=request.id,
                        fields=["name", "email", "address", "callback_url"], purpose=purpose, now=now)


def _redact(text: str, personal: Iterable[str]) -> str:
    for value in sorted({p for p in personal if p and len(p.strip()) >= 3}, key=len, reverse=True):
        text = text.replace(value, "[erased]")
    return text


def _scrub_outbox(session: Session, found: list[OutboxMessage], *, emails: set[str], personal: list[str],
                  placeholder: str, relay: set[int], now: datetime) -> None:
    """Emails to the customer lose address and text; relay emails (whose text is
    the customer's message) lose their text; callbacks lose their URL; anything
    else about the order loses whatever personal value it quotes. What was not
    sent yet is cancelled: nothing goes to a placeholder or an erased URL."""
    emails = {e for e in emails if e}
    relay_keys = {f"message-{i}" for i in relay}
    for message in found:
        payload = dict(message.payload) if isinstance(message.payload, dict) else {}
        key = message.dedupe_key
        is_relay = any(key == k or key.startswith(f"{k}-") for k in relay_keys)
        stop = True  # not sent yet: never send it
        if message.topic.startswith("callback."):
            payload["url"] = ""
            payload["body"] = _scrub_json(payload.get("body"), personal)
        elif recipient(message) in emails or is_relay:
            if recipient(message) in emails:
                payload["to"] = placeholder
            payload["text"] = ""
            payload["html"] = ""
            payload["unsubscribe_url"] = None
            payload["subject"] = _redact(str(payload.get("subject") or ""), personal)
        else:
            # Someone else's email about the order (an award, a fallback): it goes
            # out as written, less any personal value it quotes.
            stop = False
            scrubbed = {k: _scrub_json(v, personal) for k, v in payload.items()}
            if scrubbed.get("text") != payload.get("text"):
                # The HTML quotes the text escaped, where a scrub would not find it: it goes as text only.
                scrubbed.pop("html", None)
            payload = scrubbed
        message.payload = payload
        if message.sent_at is None and stop:
            outbox_queue.cancel(session, message, now)
        else:
            outbox_queue.scrub_errors(session, message, lambda error: _redact(error, personal))


def _scrub_json(value: Any, personal: list[str]) -> Any:
    """A copy of a JSON value without the payer's details: known personal keys
    emptied, and any string quoting a personal value redacted."""
    if isinstance(value, dict):
        return {k: (None if k in PERSONAL_KEYS and v not in (None, "", [], {}) else _scrub_json(v, personal))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_json(v, personal) for v in value]
    if isinstance(value, str):
        return _redact(value, personal)
    return value


def _scrub_webhooks(session: Session, payment: Payment | None, personal: list[str]) -> None:
    refs = payment_refs(session, payment)
    if not refs:
        return
    for event in session.scalars(select(WebhookEvent).where(WebhookEvent.object_ref.in_(sorted(refs)))):
        event.payload = _scrub_json(event.payload, personal)
