"""The customer's download: everything Broker holds about them for an order or a
personal request, as JSON-able data. Nothing here logs anything about a customer.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from broker.accounts.models import Manufacturer, Retailer
from broker.addresses import address_lines, ship_to_address
from broker.context import Context
from broker.fulfilment.models import Assignment
from broker.orders.models import Order
from broker.payments.models import Payment
from broker.personal.models import Message, PersonalRequest
from broker.privacy.erasure import request_placeholder
from broker.privacy.models import Disclosure
from broker.privacy.records import order_for, outbox_about, payment_of, recipient, request_for
from broker.reputation.models import Author, Review
from broker.reputation.rules import is_revealed
from broker.returns.models import Return


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
        order = order_for(session, order_id, token)
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
        request = request_for(session, request_id, token)
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
              for m in outbox_about(session, order=order, message_ids=[m.id for m in messages])
              if m.topic.startswith("email.") and recipient(m) == email]
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
        "payment": _payment_data(payment_of(session, order_id=order.id)),
        "fulfilment": fulfilment,
        "messages": [{"from": "you" if m.sender == "customer" else "the fulfiller", "body": m.body,
                      "at": _iso(m.created_at)} for m in messages],
        "reviews": review_data,
        "disclosures": _disclosure_data(disclosures),
        "emails": emails,
    }


def _request_data(session: Session, request: PersonalRequest) -> dict[str, Any]:
    outbox = outbox_about(session, request=request)
    contact = (request.contact_email or request_placeholder(request.id)).strip().lower()
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
        "payment": _payment_data(payment_of(session, order_id=request.order_id, request_id=request.id)),
        "emails": [{"subject": m.payload.get("subject"), "written_at": _iso(m.created_at),
                    "sent_at": _iso(m.sent_at)}
                   for m in outbox if m.topic.startswith("email.") and recipient(m) == contact],
        "callbacks": [{"event": m.topic.removeprefix("callback."), "written_at": _iso(m.created_at),
                       "sent_at": _iso(m.sent_at)} for m in outbox if m.topic.startswith("callback.")],
        "disclosures": _disclosure_data(disclosures),
    }
