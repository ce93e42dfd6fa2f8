"""The customer's order page, one for a storefront's order and for a personal
request's (`web/storefront.py` under /s/<slug>/o/<id>, `web/requests.py` under
/requests/<id>/order): what it shows, computed once from what the services
returned. Each blueprint loads the order by its own link and says where the
page's actions go."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from flask import request

from broker.accounts import hours as opening_hours
from broker.orders import services as orders
from broker.orders.models import Delivery, OrderStatus
from broker.returns import services as returns
from broker.returns.models import ReturnStatus
from web.i18n import N_, gettext

TIMELINE = [("paid", N_("Paid")), ("open", N_("On the board")), ("awarded", N_("With a store")),
            ("shipped", N_("Shipped")), ("delivered", N_("Delivered"))]
# A pickup is never shipped: a store has it ready, then the customer collects it.
PICKUP_TIMELINE = [("paid", N_("Paid")), ("open", N_("On the board")), ("awarded", N_("Ready for pickup")),
                   ("delivered", N_("Collected"))]
STATUS_WORDS = {"awaiting_payment": N_("waiting for the payment"), "open": N_("on the board"),
                "awarded": N_("with a store"), "shipped": N_("shipped"), "delivered": N_("delivered"),
                "cancelled": N_("cancelled"), "payment_failed": N_("payment failed"), "refunded": N_("refunded")}
PICKUP_STATUS_WORDS = {**STATUS_WORDS, "awarded": N_("ready for pickup"), "shipped": N_("collected"),
                       "delivered": N_("collected")}

# What the order page says after an action succeeded (?done=...): a visible result.
DONE = {"message": N_("Your message is sent. The store is emailed a link to it, never your address."),
        "cancelled": N_("Your order is cancelled and the hold on your card released."),
        "delivered": N_("Thank you: the order is marked as received."),
        "reviewed": N_("Thank you for your rating: it is saved."),
        "return": N_("Your return request is sent. We email you the store's answer.")}

# Words the customer reads that come from broker/ as data, translated where shown.
_FROM_DATA = (N_("sold out"), N_("no longer for sale"), N_("Arrived damaged"), N_("Not what I ordered"),
              N_("Not as described"), N_("Does not fit"), N_("Changed my mind"), N_("Another reason"))


def status_word(status: str, pickup: bool = False) -> str:
    """An order's status as the customer reads it, in the page's language."""
    return gettext((PICKUP_STATUS_WORDS if pickup else STATUS_WORDS).get(status, status))


def done_text(what: str | None) -> str | None:
    """What the page says after `what` succeeded, in the page's language."""
    return gettext(DONE[what]) if what in DONE else None


def reached(status: str) -> set[str]:
    steps = ["awaiting_payment", "open", "awarded", "shipped", "delivered"]
    if status not in steps:
        return {"paid"} if status == "refunded" else set()
    done = set(steps[: steps.index(status) + 1])
    if status != "awaiting_payment":
        done.add("paid")
    return done


def _pickup(part, store, locale: str, now) -> dict:
    week = opening_hours.Hours.from_json(store.hours)
    return {"part": part, "store": store, "hours": opening_hours.describe(week, locale),
            "state": opening_hours.state_at(week, store.timezone, now)}


def values(view: orders.OrderView, *, token: str, now, locale: str, window_days: int,
           order_url: Callable[[str], str | None], **more) -> dict:
    """The template's values (`_order_body.html`) beside the loaded pieces in `more`
    (link, log, reviews, thread, errors)."""
    order = view.order
    shipped_at = order.shipped_at
    return_open = shipped_at is not None and now <= shipped_at + timedelta(days=window_days)
    latest = view.returns[-1] if view.returns else None
    # Ask (again, after a refusal) while the window is open and nothing is pending or accepted.
    can_ask_return = return_open and order.status in (OrderStatus.SHIPPED, OrderStatus.DELIVERED) and (
        latest is None or latest.status == ReturnStatus.REFUSED)
    pickup = order.delivery == Delivery.PICKUP
    done_steps = reached(order.status)
    return dict(
        view=view, locale=locale, window_days=window_days, order_url=order_url,
        return_open=return_open, can_ask_return=can_ask_return,
        # Every store with a part to collect (more than one when the order was split).
        pickups=[_pickup(part, part_store, locale, now) for part, part_store in view.pickup_stores],
        timeline=[(key, gettext(label), key in done_steps) for key, label in (PICKUP_TIMELINE if pickup else TIMELINE)],
        status_text=status_word(order.status, pickup),
        pickup_code=orders.shown_pickup_code(order, token),
        new=request.args.get("new"), done=done_text(request.args.get("done")),
        return_reasons=returns.REASONS,
        can_write=(view.assignment is not None and order.erased_at is None
                   and view.assignment.status in ("active", "shipped")),
        can_cancel=order.status in (OrderStatus.AWAITING_PAYMENT, OrderStatus.OPEN, OrderStatus.AWARDED),
        **{"error": None, "message_error": None, "return_errors": {}, "form": {}, **more},
    )
