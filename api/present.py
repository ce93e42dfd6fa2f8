"""Turning the services' views into the dicts the response schemas dump.

Each function decides field by field what a party is shown; nothing personal is
added unless the view says that party may see it.
"""

from __future__ import annotations

from datetime import datetime

from broker.fulfilment.money import part_lines
from broker.accounts import addresses as store_addresses
from broker.accounts.hours import DAYS, Hours, describe, state_at
from broker.accounts.models import Store
from broker.addresses import address_lines, ship_to_address
from broker.board.services import BoardItem
from broker.fulfilment.models import Assignment
from broker.fulfilment.services import AssignmentView
from broker.orders.models import Order
from broker.orders.services import OrderView
from broker.returns.models import Return
from broker.returns.services import ReturnView


def hours(value: Hours | None) -> dict | None:
    if value is None:
        return None
    return {**{day: [{"opens": o, "closes": c} for o, c in value.days.get(day, ())] for day in DAYS},
            "note": value.note}


def open_now(value: Hours | None, timezone: str, now: datetime) -> dict | None:
    state = state_at(value, timezone, now)
    if state is None:
        return None
    return {"open": state.open, "opens_at": state.opens_at, "closes_at": state.closes_at}


def store(s: Store, now: datetime) -> dict:
    """A retailer's own store, in full."""
    week = Hours.from_json(s.hours)
    return {
        "id": s.id, "name": s.name, "lat": s.lat, "lon": s.lon, "area": s.area,
        "service_radius_km": s.service_radius_km, "is_open": s.is_open,
        "address": store_addresses.to_json(store_addresses.of(s)), "hours": hours(week), "hours_text": describe(week),
        "timezone": s.timezone, "open_now": open_now(week, s.timezone, now),
    }


def lines(order: Order) -> list[dict]:
    return [
        {"sku": l.sku, "name": l.name, "quantity": l.quantity, "unit_price": l.unit_price, "line_total": l.line_total}
        for l in order.lines
    ]


def ship_to(order: Order) -> dict:
    return {
        "name": order.customer_name, "line1": order.ship_line1, "line2": order.ship_line2,
        "city_area": order.ship_city_area, "city": order.ship_city, "region": order.ship_region,
        "postal_code": order.ship_postal_code, "country": order.ship_country,
        "formatted": address_lines(ship_to_address(order), name=order.customer_name),
    }


def fulfilment(a: Assignment | None) -> dict | None:
    if a is None:
        return None
    return {
        "assignment_id": a.id, "fulfiller": a.fulfiller_kind, "status": a.status, "due_at": a.due_at,
        "shipped_at": a.shipped_at, "carrier": a.carrier, "tracking_number": a.tracking_number,
    }


def totals(o: Order) -> dict:
    """An order's money, line by line."""
    return {
        "total": o.total, "subtotal": o.subtotal, "shipping": o.shipping, "tax": o.tax,
        "tax_included": o.tax_included, "tax_jurisdiction": o.tax_jurisdiction,
        "shipping_method": None if not o.shipping_method else {
            "code": o.shipping_method, "name": o.shipping_method_name, "ship_within_hours": o.ship_within_hours},
    }
def part(o: Order, a: Assignment) -> dict:
    """One part of an order: who ships it (a retailer or the manufacturer, never
    which retailer), what is in it, and its shipment."""
    by_id = {line.id: line for line in o.lines}
    items = ([{"line_id": l.id, "sku": l.sku, "name": l.name, "quantity": l.quantity} for l in o.lines]
             if a.lines is None else
             [{"line_id": by_id[i["line_id"]].id, "sku": by_id[i["line_id"]].sku, "name": by_id[i["line_id"]].name,
               "quantity": i["quantity"]} for i in a.lines if i["line_id"] in by_id])
    return {**fulfilment(a), "items": items}


def order(view: OrderView) -> dict:
    o = view.order
    out = {
        "id": o.id, "status": o.status, **totals(o), "currency": o.currency, "delivery": o.delivery,
        "area": o.area, "created_at": o.created_at, "items": lines(o),
        "customer": None, "ship_to": None, "fulfilment": fulfilment(view.assignment), "payment": None,
        "return_requested_at": view.returns[-1].requested_at if view.returns else None,
        "returns": [order_return(r) for r in view.returns],
        "delivered_at": o.delivered_at, "delivered_how": o.delivered_how,
        "pickup_store": pickup_store(view.pickup_store, view.locale, view.now) if view.pickup_store else None,
        "parts": [part(o, a) for a in view.parts],
    }
    if view.show_customer:
        out["customer"] = {"name": o.customer_name}
        if view.show_email:
            out["customer"]["email"] = o.customer_email
        # A pickup's store needs the name alone: never the customer's street.
        if not (view.party == "fulfiller" and o.delivery == "pickup"):
            out["ship_to"] = ship_to(o)
    if view.payment is not None:
        p = view.payment
        out["payment"] = {"provider": p.provider, "status": p.status, "test_mode": p.test_mode, "amount": p.amount}
    return out


def order_return(r: Return) -> dict:
    return {
        "id": r.id, "assignment_id": r.assignment_id, "status": r.status, "reason": r.reason,
        "requested_at": r.requested_at, "decided_at": r.decided_at, "decided_by": r.decided_by_kind,
        "note": r.note, "refund_amount": r.refund_amount, "refund_reference": r.refund_reference,
    }


def return_item(view: ReturnView) -> dict:
    """A return to decide; its reason only with the proof the showing was logged."""
    o = view.order
    out = order_return(view.ret)
    if view.disclosed is None:
        out["reason"] = None
    return {**out, "order_id": o.id, "currency": o.currency, "total": o.total, "refundable": view.refundable,
            "items": lines(o)}


def pickup_store(s: Store, locale: str, now: datetime | None) -> dict:
    """Where the customer collects a pickup order: the store's name, address and
    hours, never its owner's details."""
    week = Hours.from_json(s.hours)
    return {"name": s.name, "address": store_addresses.to_json(store_addresses.of(s)), "hours": hours(week),
            "hours_text": describe(week, locale), "timezone": s.timezone,
            "open_now": open_now(week, s.timezone, now) if now is not None else None}


def board_item(item: BoardItem) -> dict:
    listing = item.listing
    bid = item.my_bid
    what: dict = {"items": [{"line_id": l.id, "sku": l.sku, "name": l.name, "quantity": l.quantity}
                            for l in item.items],
                  "price": listing.price, "delivery": item.delivery or "ship"}
    if item.request is not None:
        r = item.request
        what = {"description": r.description, "quantity": r.quantity, "pseudonym": r.pseudonym,
                "buyer_score": round(item.buyer_score, 3), "max_price": listing.price}
    return {
        "id": listing.id, "kind": listing.kind, **what,
        "currency": listing.currency, "distance_km": item.distance_km,
        "store_id": item.store_id, "area": listing.area, "precision": listing.precision,
        "closes_at": item.closes_at,
        **({"shipping_method": item.shipping_method, "ship_within_hours": item.ship_within_hours}
           if item.request is None else {}),
        "my_bid": None if bid is None else {
            "id": bid.id, "store_id": bid.store_id, "distance_km": bid.distance_km, "price": bid.price,
            "created_at": bid.created_at, "items": bid.lines, "standing_bid_id": bid.standing_bid_id,
        },
    }


def assignment(view: AssignmentView) -> dict:
    a, o = view.assignment, view.order
    return {
        "id": a.id, "order_id": o.id, "status": a.status, "fulfiller": a.fulfiller_kind, "store_id": a.store_id,
        "assigned_at": a.assigned_at, "due_at": a.due_at, "shipped_at": a.shipped_at, "carrier": a.carrier,
        "tracking_number": a.tracking_number, **totals(o), "currency": o.currency,
        # What this assignment ships: the order's lines, or for a part of a split order its own.
        "items": [{"sku": l.sku, "name": l.name, "quantity": l.quantity, "unit_price": l.unit_price,
                   "line_total": l.line_total} for l in part_lines(o, a.lines)],
        "delivery": o.delivery,
        # Only with the proof that showing it was logged (privacy.disclose_to);
        # a pickup's store is shown the customer's name, never their street.
        "ship_to": ship_to(o) if view.disclosed is not None and view.disclosed.covers(["address"]) else None,
        "collected_by": {"name": o.customer_name} if (
            o.delivery == "pickup" and view.disclosed is not None and view.disclosed.covers(["name"])) else None,
    }


def personal_request(view) -> dict:
    r = view.request
    p = view.payment
    return {
        "id": r.id, "status": r.status, "pseudonym": r.pseudonym, "description": r.description, "sku": r.sku,
        "quantity": r.quantity, "max_price": r.max_price, "currency": r.currency, "prefer": r.prefer,
        "area": r.area, "expires_at": r.expires_at, "closes_at": view.closes_at, "order_id": r.order_id,
        "offers": [{"bid_id": o.bid.id, "price": o.bid.price, "goods": o.bid.price - o.bid.shipping - o.bid.tax,
                    "shipping": o.bid.shipping, "tax": o.bid.tax, "distance_km": o.distance_km,
                    "retailer": o.retailer_name, "rating": o.rating, "ratings": o.ratings,
                    "rating_text": o.rating_text, "offered_at": o.bid.created_at} for o in view.offers],
        "payment": None if p is None else {"provider": p.provider, "status": p.status, "test_mode": p.test_mode,
                                           "amount": p.amount},
    }
