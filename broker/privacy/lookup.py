"""The operator's lookup: a customer's orders and requests by email, each look
written to the customer's disclosure log with the reason.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime

from sqlalchemy import func, select

from broker.accounts.models import Manufacturer
from broker.context import Context
from broker.email_address import email_address
from broker.errors import Invalid
from broker.orders.models import Order
from broker.personal.models import PersonalRequest
from broker.privacy.disclosures import disclose_to

log = logging.getLogger(__name__)

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
