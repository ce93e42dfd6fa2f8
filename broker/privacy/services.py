"""The customer's privacy: the disclosure log, their data (download and erasure),
the retention job that erases it when nobody needs it any more, and the
operator's lookup.

What erasure does, to an order or a personal request and everything about it
(`_erase_order`, `_erase_request`):

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
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, or_, select
from sqlalchemy.orm import Session, selectinload

from broker.accounts.models import Manufacturer, Retailer
from broker.addresses import address_lines, ship_to_address
from broker.auth import digest, same
from broker.db import UTCDateTime
from broker.board.models import Listing
from broker.context import Context
from broker.email_address import email_address
from broker.errors import Conflict, Invalid, NotFound, Unauthenticated
from broker.fulfilment.models import Assignment
from broker.ledger.models import LedgerTransaction
from broker.orders.models import Order, OrderStatus
from broker.orders.rules import CANCELLABLE
from broker.outbox import queue as outbox_queue
from broker.outbox.models import OutboxMessage
from broker.parking import services as parking
from broker.payments.models import Payment, WebhookEvent
from broker.personal.models import Message, PersonalRequest, RequestStatus
from broker.privacy.models import Disclosure
from broker.reputation.models import Author, Review
from broker.reputation.rules import is_revealed
from broker.returns.models import Return

log = logging.getLogger(__name__)

ERASED = "erased"
PLACEHOLDER_DOMAIN = "erased.invalid"  # RFC 2606: can never be delivered
COORDINATE_DECIMALS = 1  # 0.1 degree: about 11 km of latitude
# Where an order has no manufacturer (a request for no catalog product), as in
# `orders.services.request_return`.
DEFAULT_RETURN_WINDOW_DAYS = 30
RETENTION_BATCH = 200
# Keys of a provider event that hold the payer's details (Stripe's names).
PERSONAL_KEYS = frozenset({"billing_details", "shipping", "receipt_email", "email", "name", "phone", "address",
                           "customer_details", "customer_email", "customer_name"})
FOR_CUSTOMER_ERASURE = "erased at the customer's request"
FOR_RETENTION = "erased: the retention period ended"


_ISSUED = object()  # only disclose_to makes a Disclosed


class UnloggedDisclosure(RuntimeError):
    """A view was about to show a customer's details to another party without a
    disclosure-log row: a bug, refused rather than answered."""


@dataclasses.dataclass(frozen=True)
class Disclosed:
    """The proof, carried by a view, that showing these fields to this party was
    written to the disclosure log. The views that carry a customer's details to
    anyone but the customer (`orders.services.OrderView`,
    `fulfilment.services.AssignmentView`) show them only with one, and only
    `disclose_to` makes one: no answer can carry them unlogged."""

    party_kind: str
    party_id: int | None
    fields: frozenset[str]
    issued: object = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.issued is not _ISSUED:
            raise UnloggedDisclosure("a Disclosed comes from privacy.services.disclose_to only")

    def covers(self, fields: Iterable[str]) -> bool:
        return set(fields) <= self.fields


def disclose_to(session: Session, *, party_kind: str, party_id: int | None, fields: Iterable[str], purpose: str,
                now: datetime, order_ids: Iterable[int] = (), request_ids: Iterable[int] = ()) -> Disclosed:
    """The one place a showing of a customer's personal data to anyone but the
    customer is logged: one row per order or request shown (who, which fields,
    when, why), in the caller's transaction and one statement however many.
    Returns the `Disclosed` the view that shows them must carry."""
    fields = sorted(set(fields))
    rows = [dict(order_id=order_id, request_id=None, party_kind=party_kind, party_id=party_id, fields=fields,
                 purpose=purpose, at=now) for order_id in order_ids]
    rows += [dict(order_id=None, request_id=request_id, party_kind=party_kind, party_id=party_id, fields=fields,
                  purpose=purpose, at=now) for request_id in request_ids]
    if rows:
        session.execute(insert(Disclosure), rows)
    return Disclosed(party_kind, party_id, frozenset(fields), issued=_ISSUED)


def _record_erasure(session: Session, *, order_id: int | None, request_id: int | None, fields: list[str],
                    purpose: str, now: datetime) -> None:
    """The erasure's own row in the customer's log (party "broker"): what was erased and why."""
    session.add(Disclosure(order_id=order_id, request_id=request_id, party_kind="broker", party_id=None,
                           fields=sorted(fields), purpose=purpose, at=now))


def placeholder_email(order_id: int) -> str:
    return f"erased-order-{order_id}@{PLACEHOLDER_DOMAIN}"


def _request_placeholder(request_id: int) -> str:
    """Where the request's emails are recorded as sent to, once erased (the request keeps no contact)."""
    return f"erased-request-{request_id}@{PLACEHOLDER_DOMAIN}"


def coarse_postal_code(code: str) -> str:
    """The area a postal code names, not the street: a US ZIP's first three digits
    (its sectional centre), the first two characters of a shorter code."""
    code = (code or "").strip().upper()
    return code[:3] if len(code) >= 5 else code[:2]


def coarse_coordinate(value: float) -> float:
    return round(value, COORDINATE_DECIMALS)


# --- finding the customer's things ----------------------------------------------


def _order_for(session: Session, order_id: int, token: str | None, *, lock: bool = False) -> Order:
    if not token:
        raise Unauthenticated("give the order's X-Access-Token")
    stmt = select(Order).where(Order.id == order_id).options(selectinload(Order.lines))
    order = session.scalar(stmt.with_for_update() if lock else stmt)
    if order is None or not same(order.access_token_hash, digest(token)):
        raise NotFound(f"no order {order_id}")
    return order


def _request_for(session: Session, request_id: int, token: str | None, *, lock: bool = False) -> PersonalRequest:
    if not token:
        raise Unauthenticated("give the request's X-Access-Token")
    stmt = select(PersonalRequest).where(PersonalRequest.id == request_id)
    request = session.scalar(stmt.with_for_update() if lock else stmt)
    if request is None or not same(request.access_token_hash, digest(token)):
        raise NotFound(f"no request {request_id}")
    return request


def _payment_of(session: Session, *, order_id: int | None = None, request_id: int | None = None) -> Payment | None:
    if order_id is not None:
        found = session.scalar(select(Payment).where(Payment.order_id == order_id))
        if found is not None:
            return found
    if request_id is not None:
        return session.scalar(select(Payment).where(Payment.request_id == request_id))
    return None


def _outbox_about(session: Session, *, order: Order | None = None, request: PersonalRequest | None = None,
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


def _to(message: OutboxMessage) -> str:
    payload = message.payload if isinstance(message.payload, dict) else {}
    to = payload.get("to")
    return to.strip().lower() if isinstance(to, str) else ""


def _payment_refs(session: Session, payment: Payment | None) -> set[str]:
    """The provider's ids for the payment: the intent, the charge, and its refunds
    (kept as ledger references)."""
    if payment is None:
        return set()
    refs = {payment.provider_ref, payment.charge_ref}
    if payment.order_id is not None:
        refs |= set(session.scalars(select(LedgerTransaction.reference)
                                    .where(LedgerTransaction.order_id == payment.order_id)))
    return {ref for ref in refs if ref}


# --- the customer's download --------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def export_order(ctx: Context, order_id: int, token: str | None) -> dict[str, Any]:
    """Everything Broker holds about the customer for this order, as JSON-able data:
    the order, its lines and ship-to, the payment's state and amounts, who ships
    it, the messages, the reviews, the disclosure log and the emails sent to them
    (and the personal request it came from, if any).

    :raise 401: no token. :raise 404: not this order's token.
    """
    with ctx.uow() as uow:
        session = uow.session
        order = _order_for(session, order_id, token)
        request = session.scalar(select(PersonalRequest).where(PersonalRequest.order_id == order.id))
        return {
            "kind": "order", "exported_at": _iso(ctx.now()),
            "order": _order_data(session, order, ctx.now()),
            "request": _request_data(session, request) if request is not None else None,
        }


def export_request(ctx: Context, request_id: int, token: str | None) -> dict[str, Any]:
    """Everything Broker holds about the customer for this personal request (and the
    order it became, if it was awarded). :raise 401: no token. :raise 404: not this request's token."""
    with ctx.uow() as uow:
        session = uow.session
        request = _request_for(session, request_id, token)
        order = session.scalar(select(Order).where(Order.id == request.order_id)
                               .options(selectinload(Order.lines))) if request.order_id else None
        return {
            "kind": "request", "exported_at": _iso(ctx.now()),
            "request": _request_data(session, request),
            "order": _order_data(session, order, ctx.now()) if order is not None else None,
        }


def _payment_data(payment: Payment | None) -> dict | None:
    if payment is None:
        return None
    return {
        "provider": payment.provider, "test_mode": payment.test_mode, "status": payment.status,
        "currency": payment.currency, "authorised_amount": payment.amount,
        "captured_amount": payment.captured_amount, "refunded_amount": payment.refunded_amount,
        "disputed": payment.disputed, "created_at": _iso(payment.created_at),
        "authorised_at": _iso(payment.authorized_at), "captured_at": _iso(payment.captured_at),
        "released_at": _iso(payment.released_at),
        "card": "Broker never sees or stores card details; the payment provider holds them.",
    }


def _disclosure_data(rows: Iterable[Disclosure]) -> list[dict]:
    return [{"at": _iso(d.at), "party": d.party_kind, "fields": list(d.fields), "purpose": d.purpose} for d in rows]


def _order_data(session: Session, order: Order, now: datetime) -> dict[str, Any]:
    maker = session.get(Manufacturer, order.manufacturer_id) if order.manufacturer_id else None
    assignments = list(session.scalars(select(Assignment).where(Assignment.order_id == order.id)
                                       .order_by(Assignment.id)))
    current = assignments[-1] if assignments else None
    fulfilment = []
    for a in assignments:
        # Only the current fulfiller is named, as on the order page: one that gave
        # the order back is none of the customer's business, nor they of its.
        name = None
        if a is current:
            if a.retailer_id is not None:
                name = session.scalar(select(Retailer.name).where(Retailer.id == a.retailer_id))
            elif maker is not None:
                name = maker.name
        fulfilment.append({"fulfiller": a.fulfiller_kind, "name": name, "status": a.status,
                           "assigned_at": _iso(a.assigned_at), "shipped_at": _iso(a.shipped_at),
                           "carrier": a.carrier, "tracking_number": a.tracking_number})
    messages = list(session.scalars(select(Message).where(Message.order_id == order.id).order_by(Message.id)))
    reviews = {Author(r.author): r for r in session.scalars(select(Review).where(Review.order_id == order.id))}
    revealed = is_revealed(first_review_at=min((r.created_at for r in reviews.values()), default=None),
                           both_reviewed=len(reviews) == 2, now=now)
    review_data = []
    for author, review in sorted(reviews.items()):
        if author == Author.FULFILLER and not revealed:
            continue  # blind until both have reviewed or 14 days have passed
        review_data.append({"by": "you" if author == Author.CUSTOMER else "the fulfiller",
                            "rating": review.rating, "comment": review.comment,
                            "created_at": _iso(review.created_at)})
    email = order.customer_email.strip().lower()
    emails = [{"subject": m.payload.get("subject"), "written_at": _iso(m.created_at), "sent_at": _iso(m.sent_at)}
              for m in _outbox_about(session, order=order, message_ids=[m.id for m in messages])
              if m.topic.startswith("email.") and _to(m) == email]
    disclosures = session.scalars(select(Disclosure).where(Disclosure.order_id == order.id)
                                  .order_by(Disclosure.at, Disclosure.id))
    return {
        "id": order.id, "store": {"name": maker.name, "slug": maker.slug} if maker else None,
        "status": order.status, "delivery": order.delivery, "currency": order.currency, "total": order.total,
        "created_at": _iso(order.created_at), "shipped_at": _iso(order.shipped_at),
        "cancelled_at": _iso(order.cancelled_at), "erased_at": _iso(order.erased_at),
        "customer": {"name": order.customer_name, "email": order.customer_email},
        "ship_to": {"line1": order.ship_line1, "line2": order.ship_line2, "city_area": order.ship_city_area,
                    "city": order.ship_city, "region": order.ship_region, "postal_code": order.ship_postal_code,
                    "country": order.ship_country, "lat": order.ship_lat, "lon": order.ship_lon,
                    "precision": order.location_precision, "area": order.area,
                    "formatted": address_lines(ship_to_address(order), name=order.customer_name)},
        "lines": [{"sku": line.sku, "name": line.name, "quantity": line.quantity, "unit_price": line.unit_price,
                   "line_total": line.line_total} for line in order.lines],
        "delivered_at": _iso(order.delivered_at), "delivered_how": order.delivered_how,
        "returns": [{"status": r.status, "requested_at": _iso(r.requested_at), "reason": r.reason,
                     "decided_at": _iso(r.decided_at), "note": r.note, "refund_amount": r.refund_amount}
                    for r in session.scalars(select(Return).where(Return.order_id == order.id).order_by(Return.id))],
        "payment": _payment_data(_payment_of(session, order_id=order.id)),
        "fulfilment": fulfilment,
        "messages": [{"from": "you" if m.sender == "customer" else "the fulfiller", "body": m.body,
                      "at": _iso(m.created_at)} for m in messages],
        "reviews": review_data,
        "disclosures": _disclosure_data(disclosures),
        "emails": emails,
    }


def _request_data(session: Session, request: PersonalRequest) -> dict[str, Any]:
    outbox = _outbox_about(session, request=request)
    contact = (request.contact_email or _request_placeholder(request.id)).strip().lower()
    disclosures = session.scalars(select(Disclosure).where(Disclosure.request_id == request.id,
                                                           Disclosure.order_id.is_(None))
                                  .order_by(Disclosure.at, Disclosure.id))
    return {
        "id": request.id, "pseudonym": request.pseudonym, "status": request.status,
        "description": request.description, "sku": request.sku, "quantity": request.quantity,
        "max_price": request.max_price, "currency": request.currency, "prefer": request.prefer,
        "created_at": _iso(request.created_at), "expires_at": _iso(request.expires_at),
        "closed_at": _iso(request.closed_at), "erased_at": _iso(request.erased_at), "order_id": request.order_id,
        "contact_email": request.contact_email, "callback_url": request.callback_url,
        "ship_to": {"name": request.ship_name, "line1": request.ship_line1, "line2": request.ship_line2,
                    "city_area": request.ship_city_area, "city": request.ship_city, "region": request.ship_region,
                    "postal_code": request.ship_postal_code, "country": request.ship_country, "lat": request.lat,
                    "lon": request.lon, "precision": request.location_precision, "area": request.area,
                    "formatted": address_lines(ship_to_address(request), name=request.ship_name)},
        "payment": _payment_data(_payment_of(session, order_id=request.order_id, request_id=request.id)),
        "emails": [{"subject": m.payload.get("subject"), "written_at": _iso(m.created_at),
                    "sent_at": _iso(m.sent_at)}
                   for m in outbox if m.topic.startswith("email.") and _to(m) == contact],
        "callbacks": [{"event": m.topic.removeprefix("callback."), "written_at": _iso(m.created_at),
                       "sent_at": _iso(m.sent_at)} for m in outbox if m.topic.startswith("callback.")],
        "disclosures": _disclosure_data(disclosures),
    }


# --- erasure -------------------------------------------------------------------


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
    from broker.orders.services import cancel_order  # imports this module (disclose)

    with ctx.uow() as uow:
        order = _order_for(uow.session, order_id, token)
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
        order = _order_for(session, order_id, token, lock=True)
        now = ctx.now()
        if order.erased_at is None:
            _erase_order(session, order, now, FOR_CUSTOMER_ERASURE)
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
    from broker.personal.services import cancel_request  # imports orders.services, which imports this module

    with ctx.uow() as uow:
        request = _request_for(uow.session, request_id, token)
        open_ = request.erased_at is None and request.status in (RequestStatus.OPEN, RequestStatus.AWAITING_PAYMENT)
    if open_:
        try:
            cancel_request(ctx, request_id, token)
        except Conflict:
            pass  # awarded in the meantime: its order is erased below
    with ctx.uow() as uow:
        order_id = _request_for(uow.session, request_id, token).order_id
    if order_id is not None:
        erase_order(ctx, order_id, token)  # the order's token is the request's; erases the request too
    with ctx.uow() as uow:
        session = uow.session
        session.scalar(select(Listing).where(Listing.request_id == request_id).with_for_update())
        request = _request_for(session, request_id, token, lock=True)
        if request.erased_at is None:
            _erase_request(session, request, ctx.now(), FOR_CUSTOMER_ERASURE)
        uow.commit()
        log.info("request %s erased at the customer's request", request.id,
                 extra={"event": "privacy.erased", "request_id": request.id})
        return Erasure("request", request.id, request.status, request.erased_at, request.order_id)


def _erase_order(session: Session, order: Order, now: datetime, purpose: str) -> None:
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
    _scrub_outbox(session, _outbox_about(session, order=order, request=request, message_ids=[m.id for m in messages]),
                  emails=emails, personal=personal, placeholder=placeholder, relay={m.id for m in messages}, now=now)
    _scrub_webhooks(session, _payment_of(session, order_id=order.id), personal)
    _record_erasure(session, order_id=order.id, request_id=request.id if request else None,
                    fields=["name", "email", "address", "messages", "reviews"], purpose=purpose, now=now)
    if request is not None and request.erased_at is None:
        _erase_request(session, request, now, purpose, audit=False)


def _coarsen_listing(listing: Listing) -> None:
    """The listing's cell and its exact point both to about 11 km, as the order's ship-to."""
    listing.lat, listing.lon = coarse_coordinate(listing.lat), coarse_coordinate(listing.lon)
    listing.exact_lat, listing.exact_lon = coarse_coordinate(listing.exact_lat), coarse_coordinate(listing.exact_lon)


def _erase_request(session: Session, request: PersonalRequest, now: datetime, purpose: str, *,
                   audit: bool = True) -> None:
    """Anonymise the request, in the caller's transaction (the request locked).
    Its order, if any, is erased by `_erase_order`."""
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
    _scrub_outbox(session, _outbox_about(session, request=request), emails=emails, personal=personal,
                  placeholder=_request_placeholder(request.id), relay=set(), now=now)
    _scrub_webhooks(session, _payment_of(session, order_id=request.order_id, request_id=request.id), personal)
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
        elif _to(message) in emails or is_relay:
            if _to(message) in emails:
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
    refs = _payment_refs(session, payment)
    if not refs:
        return
    for event in session.scalars(select(WebhookEvent).where(WebhookEvent.object_ref.in_(sorted(refs)))):
        event.payload = _scrub_json(event.payload, personal)


# --- retention -----------------------------------------------------------------


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
            _erase_order(session, order, now, FOR_RETENTION)
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
            _erase_request(session, request, now, FOR_RETENTION)
            erased += 1
        uow.commit()
    report.requests += erased


# --- the operator's lookup -----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CustomerRecord:
    kind: str  # order or request
    id: int
    status: str
    created_at: datetime
    name: str
    area: str
    store: str | None  # the storefront's slug
    order_id: int | None = None  # a request's order


def find_customer(ctx: Context, email: str, reason: str) -> list[CustomerRecord]:
    """The orders and personal requests of a customer, by email, for an operator
    answering that customer (or the law). Each is written to the disclosure log
    with the reason, so the customer sees who looked and why.

    :raise 422: no reason, or not an email address.
    """
    reason = (reason or "").strip()
    if not reason:
        raise Invalid.field("reason", "say why you look this customer up; the customer will see it")
    if len(reason) > 120:
        raise Invalid.field("reason", "at most 120 characters")
    address = email_address(email).lower()
    with ctx.uow() as uow:
        session = uow.session
        now = ctx.now()
        found: list[CustomerRecord] = []
        rows = session.execute(
            select(Order, Manufacturer.slug).outerjoin(Manufacturer, Manufacturer.id == Order.manufacturer_id)
            .where(func.lower(Order.customer_email) == address).order_by(Order.id)
        ).all()
        for order, slug in rows:
            found.append(CustomerRecord("order", order.id, order.status, order.created_at, order.customer_name,
                                        order.area, slug))
        requests = list(session.scalars(select(PersonalRequest)
                                        .where(func.lower(PersonalRequest.contact_email) == address)
                                        .order_by(PersonalRequest.id)))
        for request in requests:
            found.append(CustomerRecord("request", request.id, request.status, request.created_at,
                                        request.ship_name, request.area, None, request.order_id))
        disclose_to(session, party_kind="operator", party_id=None, fields=["email", "name"], purpose=reason, now=now,
                    order_ids=[order.id for order, _ in rows], request_ids=[r.id for r in requests])
        uow.commit()
        log.info("operator looked up a customer: %s orders, %s requests", len(rows), len(found) - len(rows),
                 extra={"event": "privacy.lookup", "records": len(found)})
        return found
