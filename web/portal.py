"""The retailer portal under /portal/: the board near the retailer's stores (a
list and a map), bids, won orders with their packing slips, the scorecard, what
became of its bids, its stores and the manufacturers it deals for.

Each view parses the request, calls a service and renders. A form with bad
input comes back with the errors next to its fields (422); every POST that
succeeds redirects with a flash message. A service's 404 (another retailer's
order, a listing not on this board) or 409 (a listing closed meanwhile) is shown
as a page with that status, never a 500.
"""

from __future__ import annotations

import math
from datetime import datetime

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from broker.accounts import applications
from broker.accounts import hours as opening_hours
from broker.accounts import services as accounts
from broker.accounts.models import Role
from broker.board import services as board_services
from broker.board.models import ListingKind
from broker.board.nearby import nearby
from broker.errors import BrokerError, Invalid
from broker.fulfilment import services as fulfilment
from broker.fulfilment.models import AssignmentStatus
from broker.fulfilment.scorecard import scorecard as retailer_scorecard
from broker.money import CURRENCIES, parse_amount
from broker.pagination import PageRequest
from broker.personal import services as personal
from broker.reputation.rules import MAX_COMMENT
from broker.reputation import services as reputation
from broker.returns import services as returns
from broker.returns.models import ReturnStatus
from broker.settlement.reports import bid_outcomes
from broker.stock import services as stock_services
from web import charts, confirm, formkeys
from web.security import check_csrf, ctx, current_user, signed_in

bp = Blueprint("portal", __name__, url_prefix="/portal", template_folder="templates")
bp.before_request(check_csrf)

BOARD_PAGE_SIZE = 25
ORDERS_PAGE_SIZE = 25
OUTCOMES_PAGE_SIZE = 50
MAX_PAGE = 10_000
MAX_FILTER_KM = 20_000.0  # half the planet: anything more is a typo


@bp.errorhandler(BrokerError)
def _service_error(exc: BrokerError):
    return render_template("app/message.html", title=exc.title, message=exc.detail, status=exc.status), exc.status


def _actor():
    return current_user().actor


def _page(source: MultiDict | None = None) -> int:
    """The page asked for (a query string's, or a form's going back to one); 1 if none or nonsense."""
    raw = (source if source is not None else request.args).get("page") or "1"
    return min(int(raw), MAX_PAGE) if raw.isdigit() and int(raw) >= 1 else 1


def _pages(total: int, size: int) -> int:
    return max(1, math.ceil(total / size))


def _field_errors(exc: BrokerError, default: str) -> dict[str, list[str]]:
    """A service's errors keyed by form field: `location.postal_code` is the
    `postal_code` input, a bare `location` error belongs to it too."""
    if not exc.errors:
        return {default: [exc.detail]}
    errors: dict[str, list[str]] = {}
    for name, messages in exc.errors.items():
        field = name.rsplit(".", 1)[-1]
        if field == "location":
            field = "postal_code"
        errors.setdefault(field, []).extend(messages)
    return errors


# --- the board ----------------------------------------------------------------


def _board_filters(args: MultiDict) -> tuple[board_services.BoardFilter, dict[str, str], dict[str, list[str]]]:
    """The filters from the query string; a bad one is left out and reported."""
    errors: dict[str, list[str]] = {}
    form = {"kind": (args.get("kind") or "").strip(), "max_km": (args.get("max_km") or "").strip()}
    kind = None
    if form["kind"]:
        try:
            kind = ListingKind(form["kind"])
        except ValueError:
            errors["kind"] = ["choose orders or requests"]
    max_km = None
    if form["max_km"]:
        try:
            max_km = float(form["max_km"])
        except ValueError:
            max_km = math.nan
        if not (math.isfinite(max_km) and 0 < max_km <= MAX_FILTER_KM):
            errors["max_km"] = [f"a number of kilometres, more than 0 and at most {MAX_FILTER_KM:g}"]
            max_km = None
    return board_services.BoardFilter(kind=kind, max_distance_km=max_km), form, errors


def _board_args(source: MultiDict) -> dict[str, str]:
    """The board's filters and page, to go back to the same view after a bid."""
    return {k: source.get(k, "") for k in ("kind", "max_km", "page") if source.get(k)}


def _render_board(args: MultiDict, *, listing_errors=None, typed=None, status: int = 200):
    filters, form, errors = _board_filters(args)
    page = _page(args)
    found = nearby(ctx(), _actor(), filters, PageRequest(page, BOARD_PAGE_SIZE))
    map_data = {
        "stores": [{"id": s.id, "name": s.name, "lat": s.lat, "lon": s.lon, "radius_km": s.service_radius_km,
                    "open": s.is_open} for s in found.stores],
        "listings": [
            {"id": item.listing.id, "kind": str(item.listing.kind), "lat": found.points[item.listing.id][0],
             "lon": found.points[item.listing.id][1], "label": _label(item),
             "price": item.listing.price, "currency": item.listing.currency, "area": item.listing.area,
             "distance_km": int(item.distance_km), "bid": item.my_bid is not None}
            for item in found.listings.items
        ],
    }
    if errors and status == 200:
        status = 422
    # Links (pages, after a bid) keep the filters that held.
    query = {k: v for k, v in form.items() if v and k not in errors}
    return render_template(
        "portal/board.html", items=found.listings.items, total=found.listings.total,
        exact=found.listings.exact, page=page,
        # Past the count's limit there are more pages than it says: always one more.
        pages=_pages(found.listings.total, BOARD_PAGE_SIZE) if found.listings.exact else max(
            _pages(found.listings.total, BOARD_PAGE_SIZE), page + 1),
        form=form, errors=errors, map_data=map_data,
        stores=found.stores, listing_errors=listing_errors or {}, typed=typed or {},
        query=query, page_link=lambda n: url_for("portal.board", **query, page=n),
    ), status


def _label(item: board_services.BoardItem) -> str:
    if item.request is not None:
        return f"{item.request.quantity} × {item.request.description}"
    return ", ".join(f"{line.quantity} × {line.name}" for line in item.items)


@bp.get("/")
@signed_in(Role.RETAILER)
def board():
    """The open listings near the retailer's stores, nearest first, as a list and
    on a map; `kind` (order, request) and `max_km` filter, `page` pages.

    :raise 422: a bad filter (shown next to it; the rest of the board still shows).
    """
    return _render_board(request.args)


@bp.post("/board/<int:listing_id>/bid")
@signed_in(Role.RETAILER)
def bid(listing_id: int):
    """Bid on an order (one click) or offer a price on a request.

    :raise 404: not on this retailer's board. :raise 409: closed meanwhile.
    :raise 422: an offer with no price, a bad price, or one over the ceiling.
    """
    raw = (request.form.get("price") or "").strip()
    price = None
    parts = {"shipping": 0, "tax": 0}
    if request.form.get("listing_kind") == ListingKind.REQUEST or raw:
        currency = request.form.get("currency", "")
        try:
            if not raw:
                raise ValueError("an offer needs a price")
            if currency not in CURRENCIES:
                raise ValueError("unknown currency; reload the board")
            price = parse_amount(raw, currency)
        except ValueError as exc:
            return _render_board(request.form, listing_errors={listing_id: {"price": [str(exc)]}},
                                 typed={listing_id: raw}, status=422)
        # What the offer's price holds besides the goods (optional; empty or 0: none).
        for name in parts:
            part = (request.form.get(name) or "").strip()
            try:
                parts[name] = 0 if part in ("", "0") else parse_amount(part, currency)
            except ValueError as exc:
                return _render_board(request.form, listing_errors={listing_id: {"price": [f"{name}: {exc}"]}},
                                     typed={listing_id: raw}, status=422)
    items = None
    if request.form.get("lines_shown"):
        # A multi-line order: the lines ticked are the part bid on (all ticked: the whole order).
        ticked = request.form.getlist("line")
        if not ticked or not all(value.isdigit() for value in ticked):
            return _render_board(request.form, listing_errors={listing_id: {"items": [
                "tick the lines you can fill (at least one)"]}}, status=422)
        # How many of a line (a number beside it, when it has more than one); none given: all of it.
        counts = {value: (request.form.get(f"qty-{value}") or "").strip() for value in ticked}
        if not all(count == "" or count.isdigit() for count in counts.values()):
            return _render_board(request.form, listing_errors={listing_id: {"items": [
                "how many: a whole number, at least 1"]}}, status=422)
        items = tuple(board_services.BidItem(quantity=int(counts[value]) if counts[value] else None,
                                             line_id=int(value)) for value in ticked)
    try:
        _, created = board_services.place_bid(ctx(), _actor(), board_services.PlaceBid(
            listing_id=listing_id, price=price, items=items, **parts))
    except Invalid as exc:
        return _render_board(request.form, listing_errors={listing_id: _field_errors(exc, "price")},
                             typed={listing_id: raw}, status=422)
    if price is not None:
        flash(f"Your offer on listing #{listing_id} stands." if not created else
              f"You made an offer on listing #{listing_id}.")
    else:
        flash(f"You bid on listing #{listing_id}: in stock, will ship at its price." if created else
              f"You had already bid on listing #{listing_id}.")
    return redirect(url_for("portal.board", **_board_args(request.form)) + f"#listing-{listing_id}")


@bp.post("/board/<int:listing_id>/withdraw")
@signed_in(Role.RETAILER)
def withdraw(listing_id: int):
    """:raise 404: no bid of yours on it. :raise 409: the listing is closed."""
    board_services.withdraw_bid(ctx(), _actor(), listing_id)
    flash(f"Your bid on listing #{listing_id} is withdrawn.")
    return redirect(url_for("portal.board", **_board_args(request.form)) + f"#listing-{listing_id}")


# --- won orders -----------------------------------------------------------------


@bp.get("/orders")
@signed_in(Role.RETAILER)
def orders():
    """What the retailer won and must ship (or has shipped), with ship-to addresses.
    `status` is active, shipped, or empty for both."""
    raw = request.args.get("status", "")
    status = AssignmentStatus(raw) if raw in (AssignmentStatus.ACTIVE, AssignmentStatus.SHIPPED) else None
    page = _page()
    found = fulfilment.list_assignments(ctx(), _actor(), PageRequest(page, ORDERS_PAGE_SIZE), status)
    return render_template("portal/orders.html", views=found.items, total=found.total, page=page,
                           pages=_pages(found.total, ORDERS_PAGE_SIZE), status=status or "",
                           page_link=lambda n: url_for("portal.orders", page=n, **({"status": status} if status
                                                                                  else {})))


def _render_order(assignment_id: int, *, errors=None, form=None, status: int = 200):
    view = fulfilment.get_assignment(ctx(), _actor(), assignment_id)
    thread = personal.messages(ctx(), view.order.id, actor=_actor(), token=None)
    return render_template("portal/order.html", view=view, errors=errors or {}, form=form or {},
                           now=ctx().now(), thread=thread), status


@bp.get("/orders/<int:assignment_id>")
@signed_in(Role.RETAILER)
def order(assignment_id: int):
    """One won order: what, where to, by when; ship it, hand it over, or give it back.

    :raise 404: not this retailer's (another retailer's looks like none).
    """
    return _render_order(assignment_id)


@bp.get("/orders/<int:assignment_id>/slip")
@signed_in(Role.RETAILER)
def slip(assignment_id: int):
    """The packing slip, for the printer. :raise 404: not this retailer's."""
    view = fulfilment.get_assignment(ctx(), _actor(), assignment_id, purpose="fulfiller printed a packing slip")
    return render_template("portal/slip.html", view=view, company=current_user().company_name)


@bp.post("/orders/<int:assignment_id>/shipment")
@signed_in(Role.RETAILER)
def ship(assignment_id: int):
    """:raise 404: not yours. :raise 409: not active. :raise 422: blank carrier or tracking number."""
    cmd = fulfilment.RecordShipment(carrier=request.form.get("carrier", ""),
                                    tracking_number=request.form.get("tracking_number", ""))
    try:
        fulfilment.record_shipment(ctx(), _actor(), assignment_id, cmd)
    except Invalid as exc:
        return _render_order(assignment_id, errors=_field_errors(exc, "carrier"), form=request.form, status=422)
    flash(f"Shipment recorded: {cmd.carrier.strip()} {cmd.tracking_number.strip()}. The payment is captured.")
    return redirect(url_for("portal.order", assignment_id=assignment_id))


@bp.post("/orders/<int:assignment_id>/pickup")
@signed_in(Role.RETAILER)
def pickup(assignment_id: int):
    """:raise 404: not yours. :raise 409: not a pickup, not active, or locked. :raise 422: wrong code."""
    try:
        fulfilment.collect_pickup(ctx(), _actor(), assignment_id, request.form.get("code", ""))
    except Invalid as exc:
        return _render_order(assignment_id, errors=_field_errors(exc, "code"), status=422)
    flash("Handed over: the order is delivered and the payment captured.")
    return redirect(url_for("portal.order", assignment_id=assignment_id))


def _return_id(form) -> int | None:
    raw = form.get("return_id", "")
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


def _after_return(assignment_id: int):
    """Back where the decision was started: the returns queue, or the order."""
    if request.form.get("back") == "returns":
        return redirect(url_for("portal.returns_queue"))
    return redirect(url_for("portal.order", assignment_id=assignment_id))


def _cancel_link(assignment_id: int) -> str:
    if request.form.get("back") == "returns":
        return url_for("portal.returns_queue")
    return url_for("portal.order", assignment_id=assignment_id) + "#returns-heading"
@bp.post("/orders/<int:assignment_id>/messages")
@signed_in(Role.RETAILER)
def message(assignment_id: int):
    """Write to the customer through the relay (they are emailed a link, never your text or address).

    :raise 404: not yours. :raise 422: blank or too long."""
    view = fulfilment.get_assignment(ctx(), _actor(), assignment_id, purpose="fulfiller wrote to the customer")
    try:
        personal.send_message(ctx(), view.order.id, request.form.get("body", ""), actor=_actor(), token=None,
                              once=formkeys.sent(f"message:assignment:{assignment_id}"))
    except formkeys.AlreadyDone:
        pass  # a reload or a second click: the first is sent
    except Invalid as exc:
        return _render_order(assignment_id, errors={"body": exc.errors.get("body", [exc.detail])},
                             form=request.form, status=422)
    flash("Message sent: the customer is emailed a link to it.")
    return redirect(url_for("portal.order", assignment_id=assignment_id) + "#messages")


@bp.post("/orders/<int:assignment_id>/return/accept")
@signed_in(Role.RETAILER)
def accept_return(assignment_id: int):
    """Accept the customer's return: the card is refunded what was captured.
    Asks for confirmation first (`confirm=yes` to go ahead).

    :raise 404: not yours. :raise 409: no open return, or nothing left to refund.
    """
    if not confirm.confirmed():
        view = fulfilment.get_assignment(ctx(), _actor(), assignment_id, purpose="fulfiller opened a return")
        return confirm.ask(
            title=f"Accept the return of order #{view.order.id}?",
            lines=["The customer's card is refunded what was captured for what you shipped, and the refund comes "
                   "out of your earning for it. The customer is emailed."],
            button="Accept the return and refund the card", cancel=_cancel_link(assignment_id), danger=False,
            fields={"return_id": request.form.get("return_id", ""), "back": request.form.get("back", "")})
    order_id = fulfilment.get_assignment(ctx(), _actor(), assignment_id, purpose="fulfiller opened a return").order.id
    returns.accept_return(ctx(), _actor(), order_id, _return_id(request.form))
    flash(f"Return of order #{order_id} accepted: the customer's card is refunded, and they are told.")
    return _after_return(assignment_id)


@bp.post("/orders/<int:assignment_id>/return/refuse")
@signed_in(Role.RETAILER)
def refuse_return(assignment_id: int):
    """Refuse the customer's return with a note they are emailed. Asks for
    confirmation first (`confirm=yes` to go ahead).

    :raise 404: not yours. :raise 409: no open return. :raise 422: no note.
    """
    view = fulfilment.get_assignment(ctx(), _actor(), assignment_id, purpose="fulfiller opened a return")
    note = request.form.get("note", "")
    try:
        returns.check_note(note)
    except Invalid as exc:
        return _render_order(assignment_id, errors=_field_errors(exc, "note"), form=request.form, status=422)
    if not confirm.confirmed():
        return confirm.ask(
            title=f"Refuse the return of order #{view.order.id}?",
            lines=["The customer is emailed this note, and nothing is refunded. They may ask again while the "
                   "return window is open."],
            quote=note.strip(), button="Refuse the return", cancel=_cancel_link(assignment_id),
            fields={"return_id": request.form.get("return_id", ""), "note": note,
                    "back": request.form.get("back", "")})
    try:
        returns.refuse_return(ctx(), _actor(), view.order.id, note, _return_id(request.form))
    except Invalid as exc:
        return _render_order(assignment_id, errors=_field_errors(exc, "note"), form=request.form, status=422)
    flash(f"Return of order #{view.order.id} refused: the customer is emailed your note.")
    return _after_return(assignment_id)


@bp.get("/returns")
@signed_in(Role.RETAILER)
def returns_queue():
    """The returns customers asked for on what the retailer shipped, oldest
    first: waiting for an answer (default), or `status=all`."""
    show_all = request.args.get("status") == "all"
    page = _page()
    found = returns.list_returns(ctx(), _actor(), PageRequest(page, ORDERS_PAGE_SIZE),
                                 None if show_all else ReturnStatus.REQUESTED)
    return render_template("portal/returns.html", views=found.items, total=found.total, page=page,
                           show_all=show_all, pages=_pages(found.total, ORDERS_PAGE_SIZE),
                           page_link=lambda n: url_for("portal.returns_queue", page=n,
                                                       **({"status": "all"} if show_all else {})))


@bp.post("/orders/<int:assignment_id>/review")
@signed_in(Role.RETAILER)
def review_customer(assignment_id: int):
    """Rate the customer of a delivered order (1 to 5, an optional comment). The
    review is blind: neither side reads the other's until both have reviewed or
    14 days have passed.

    :raise 404: not yours. :raise 409: not delivered, already reviewed, or the
        time to review has passed. :raise 422: no rating, or a comment too long.
    """
    view = fulfilment.get_assignment(ctx(), _actor(), assignment_id, purpose="fulfiller rated the customer")
    raw = (request.form.get("rating") or "").strip()
    rating = int(raw) if raw in ("1", "2", "3", "4", "5") else 0
    try:
        reputation.review_as_fulfiller(ctx(), _actor(), view.order.id, rating, request.form.get("comment", ""))
    except Invalid as exc:
        errors = _field_errors(exc, "rating")
        if not rating:
            errors["rating"] = ["choose from 1 to 5 stars"]
        if len((request.form.get("comment") or "").strip()) > MAX_COMMENT:  # every error at once
            errors["comment"] = [f"at most {MAX_COMMENT} characters"]
        return _render_order(assignment_id, errors=errors, form=request.form, status=422)
    flash(f"You rated the customer {rating} ★. The customer's review of you shows once you have both reviewed "
          "(now, if they have) or 14 days after the first review.")
    return redirect(url_for("portal.order", assignment_id=assignment_id) + "#review-heading")


@bp.post("/orders/<int:assignment_id>/release")
@signed_in(Role.RETAILER)
def release(assignment_id: int):
    """Give the order back; it goes to the next-nearest bidder, else the manufacturer.

    :raise 404: not yours. :raise 409: not active. :raise 422: not confirmed.
    """
    if request.form.get("confirm") != "yes":
        return _render_order(assignment_id, errors={"confirm": ["tick the box to give this order back"]},
                             status=422)
    fulfilment.release_assignment(ctx(), _actor(), assignment_id)
    flash("You gave the order back: it goes to the next-nearest bidder, else the manufacturer. "
          "A release counts in your record.")
    return redirect(url_for("portal.orders"))


# --- scorecard and outcomes -----------------------------------------------------------


@bp.get("/scorecard")
@signed_in(Role.RETAILER)
def scorecard():
    """Wins, on-time rate, lapses and rating, in all and over the last 12 weeks."""
    card = retailer_scorecard(ctx(), _actor())
    labels = [w.starts.strftime("%b %d") for w in card.weeks]
    on_time = [None if w.record.on_time_rate is None else round(100 * w.record.on_time_rate, 1) for w in card.weeks]
    svg = {
        "wins": charts.bar_chart("chart-wins", "Orders won by week", labels, [w.record.wins for w in card.weeks],
                                 colors=["#0b5cad"], unit="orders"),
        "on_time": charts.line_chart("chart-on-time", "On-time rate by week", labels,
                                     [charts.Series("On time", on_time, "#1a7f37")], fmt=lambda v: f"{v:g}%",
                                     unit="% of the week's orders", top=100),
    }
    return render_template("portal/scorecard.html", card=card, svg=svg)


@bp.get("/outcomes")
@signed_in(Role.RETAILER)
def outcomes():
    """Every bid, newest first, and what became of it: the rule that decided and
    the winner's distance band, never who won."""
    page = _page()
    found = bid_outcomes(ctx(), _actor(), PageRequest(page, OUTCOMES_PAGE_SIZE))
    return render_template("portal/outcomes.html", outcomes=found.items, total=found.total, page=page,
                           pages=_pages(found.total, OUTCOMES_PAGE_SIZE),
                           page_link=lambda n: url_for("portal.outcomes", page=n))


# --- stores ---------------------------------------------------------------------------

ADDRESS_FIELDS = ("line1", "line2", "city", "region", "postal_code", "country")


def _render_stores(*, errors=None, forms=None, status: int = 200):
    """`errors` and `forms` are keyed by form: a store's id, or "new"."""
    found = accounts.list_stores(ctx(), _actor(), PageRequest(1, 500))
    map_data = {"stores": [{"id": s.id, "name": s.name, "lat": s.lat, "lon": s.lon,
                            "radius_km": s.service_radius_km, "open": s.is_open} for s in found.items],
                "listings": []}
    now = ctx().now()
    hours = {s.id: opening_hours.Hours.from_json(s.hours) for s in found.items}
    return render_template(
        "portal/stores.html", stores=found.items, errors=errors or {}, forms=forms or {}, map_data=map_data,
        days=list(zip(opening_hours.DAYS, ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
                                             "Sunday"))),
        hours_text={sid: opening_hours.describe(h) for sid, h in hours.items()},
        day_text=lambda store_id, day: opening_hours.form_text(hours.get(store_id), day),
        open_state={s.id: opening_hours.state_at(hours[s.id], s.timezone, now) for s in found.items},
    ), status


def _radius(form) -> tuple[float | None, dict[str, list[str]]]:
    raw = (form.get("service_radius_km") or "").strip()
    try:
        value = float(raw)
    except ValueError:
        return None, {"service_radius_km": ["a number of kilometres"]}
    if not math.isfinite(value):
        return None, {"service_radius_km": ["a number of kilometres"]}
    return value, {}


def _address(form, store=None) -> dict | None:
    """The address typed in the form; None when nothing is typed, or it is the
    store's as it was (so a store whose street nobody has filled in yet can
    still change its radius)."""
    values = {name: (form.get(name) or "").strip() for name in ADDRESS_FIELDS}
    if not any(values[name] for name in ADDRESS_FIELDS if name != "country"):
        return None  # nothing typed: the address stays as it is
    if store is not None and values == {name: getattr(store, name) or "" for name in ADDRESS_FIELDS}:
        return None
    return values


def _store_details(form, store=None) -> tuple[dict, dict[str, list[str]]]:
    """The address, hours and time zone from the form, for the service (which
    checks them), and the errors of reading the hours."""
    details: dict = {"address": _address(form, store)}
    errors: dict[str, list[str]] = {}
    try:
        details["hours"] = opening_hours.parse_form(form)
    except Invalid as exc:
        errors.update(_store_errors(exc))
    zone = (form.get("timezone") or "").strip() or None
    # The field shows the store's zone: sent back unchanged, it is not a choice,
    # so a store that moves still takes the zone of its new place.
    details["timezone"] = None if store is not None and zone == store.timezone else zone
    return details, errors


def _store_errors(exc: BrokerError) -> dict[str, list[str]]:
    """A service's errors keyed by the stores form's fields: `address.city` is
    `city`, `hours.tue` is `hours_tue`, a location's problem is the postal code's."""
    if not exc.errors:
        return {"name": [exc.detail]}
    errors: dict[str, list[str]] = {}
    for name, messages in exc.errors.items():
        parts = name.split(".")
        if parts[0] == "hours":
            field = f"hours_{parts[1]}" if len(parts) > 1 else "hours_mon"
        elif parts[0] in ("address", "location"):
            field = parts[1] if len(parts) > 1 and parts[1] in ADDRESS_FIELDS else "postal_code"
        else:
            field = parts[-1]
        errors.setdefault(field, []).extend(messages)
    return errors


@bp.get("/stores")
@signed_in(Role.RETAILER)
def stores():
    """The retailer's stores, each with its address, opening hours and time zone,
    and its service radius on a map."""
    return _render_stores()


@bp.post("/stores")
@signed_in(Role.RETAILER)
def add_store():
    """A store at its address (placed on the map by its postal code).

    :raise 422: every wrong field at once: blank name or street, unknown postal
        code, bad hours or time zone, radius out of range.
    """
    radius, errors = _radius(request.form)
    details, hour_errors = _store_details(request.form)
    errors.update(hour_errors)
    if not errors:
        try:
            store = accounts.add_store(ctx(), _actor(), accounts.NewStore(
                name=request.form.get("name", ""), location=None, service_radius_km=radius, **details))
        except Invalid as exc:
            errors = _store_errors(exc)
        else:
            flash(f"{store.name} is added: the board now covers {store.service_radius_km:g} km around {store.area}.")
            return redirect(url_for("portal.stores") + f"#store-{store.id}")
    return _render_stores(errors={"new": errors}, forms={"new": request.form}, status=422)


@bp.post("/stores/<int:store_id>")
@signed_in(Role.RETAILER)
def update_store(store_id: int):
    """Name, address (a new postal code moves the store), opening hours, time
    zone, radius, open or closed.

    :raise 404: not this retailer's store. :raise 422: bad input, each field's.
    """
    mine = {s.id: s for s in accounts.list_stores(ctx(), _actor(), PageRequest(1, 500)).items}
    radius, errors = _radius(request.form)
    details, hour_errors = _store_details(request.form, mine.get(store_id))
    errors.update(hour_errors)
    if not errors:
        changes = accounts.StoreChanges(name=request.form.get("name", ""), service_radius_km=radius,
                                        is_open=request.form.get("is_open") == "on", **details)
        try:
            store = accounts.update_store(ctx(), _actor(), store_id, changes)
        except Invalid as exc:
            errors = _store_errors(exc)
        else:
            flash(f"{store.name} is saved ({'open' if store.is_open else 'closed'}, "
                  f"{store.service_radius_km:g} km around {store.area}).")
            return redirect(url_for("portal.stores") + f"#store-{store.id}")
    return _render_stores(errors={store_id: errors}, forms={store_id: request.form}, status=422)


# --- manufacturers --------------------------------------------------------------------


@bp.get("/dealers")
@signed_in(Role.RETAILER)
def dealers():
    """Every manufacturer, and where the retailer stands with each: authorised,
    pending, declined or nothing yet. (A manufacturer's invitation comes as a
    link by email, never by matching an address: `/invitations/<token>`.)"""
    return render_template("portal/dealers.html", makers=applications.manufacturers_for(ctx(), _actor()))


@bp.post("/dealers/<int:manufacturer_id>/apply")
@signed_in(Role.RETAILER)
def apply(manufacturer_id: int):
    """Ask to be authorised, with an optional note. :raise 404: no such
    manufacturer. :raise 409: already a dealer."""
    applications.apply(ctx(), current_user(), manufacturer_id, request.form.get("note", ""))
    flash("Your application is sent; you will get an email when the manufacturer decides.")
    return redirect(url_for("portal.dealers"))


# --- stock and standing bids ---------------------------------------------------------


def _render_stock(*, errors=None, form=None, status: int = 200):
    """`errors` keyed by form: a store's id (its CSV), or "standing"."""
    found = accounts.list_stores(ctx(), _actor(), PageRequest(1, 500))
    views = {s.id: stock_services.get_stock(ctx(), _actor(), s.id) for s in found.items}
    rules = stock_services.list_standing_bids(ctx(), _actor())
    makers = [m for m in applications.manufacturers_for(ctx(), _actor()) if m.status == "authorised"]
    return render_template("portal/stock.html", stores=found.items, stock=views, rules=rules, makers=makers,
                           errors=errors or {}, form=form or {},
                           max_age=ctx().settings.stock_max_age_hours), status


@bp.get("/stock")
@signed_in(Role.RETAILER)
def stock():
    """Each store's stock per SKU with its feed's age, a CSV upload per store,
    and the retailer's standing bids."""
    return _render_stock()


@bp.post("/stock/<int:store_id>")
@signed_in(Role.RETAILER)
def upload_stock(store_id: int):
    """A CSV of the store's whole stock (sku and quantity columns).

    :raise 404: not a store of the caller's. :raise 422: no file, not a CSV
        with those columns, or wrong rows (every one named).
    """
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _render_stock(errors={store_id: ["choose a CSV file to upload"]}, status=422)
    try:
        text = upload.stream.read(2_000_001).decode("utf-8")
    except UnicodeDecodeError:
        return _render_stock(errors={store_id: ["the file is not UTF-8 text; save it as CSV (UTF-8)"]}, status=422)
    try:
        view = stock_services.set_stock(ctx(), _actor(), store_id, stock_services.parse_csv(text), snapshot=True)
    except Invalid as exc:
        messages = [m for msgs in (exc.errors or {}).values() for m in msgs] or [str(exc)]
        return _render_stock(errors={store_id: messages}, status=422)
    flash(f"Stock updated: {len(view.items)} SKUs; your standing bids placed {view.standing_bids_placed} bids.")
    return redirect(url_for("portal.stock") + f"#stock-{store_id}")


@bp.post("/standing-bids")
@signed_in(Role.RETAILER)
def add_standing_bid():
    """A standing bid from the form.

    :raise 422: every wrong field at once (distance, store, manufacturers).
    """
    form = request.form
    errors: dict[str, list[str]] = {}
    raw = (form.get("max_distance_km") or "").strip()
    try:
        km = float(raw)
        if not math.isfinite(km):
            raise ValueError
    except ValueError:
        km = None
        errors["max_distance_km"] = ["a distance in kilometres, like 25"]
    store = (form.get("store_id") or "").strip()
    if store and not store.isdigit():
        errors["store_id"] = ["choose one of your stores"]
    if not errors:
        try:
            made = stock_services.create_standing_bid(ctx(), _actor(), stock_services.NewStandingBid(
                max_distance_km=km, store_id=int(store) if store else None,
                manufacturers=tuple(form.getlist("manufacturers")), partial=form.get("partial") == "on"))
        except Invalid as exc:
            errors = {k.split(".")[0]: v for k, v in (exc.errors or {"form": [str(exc)]}).items()}
        else:
            flash(f"Standing bid set: it placed {made.placed} bids on listings open now.")
            return redirect(url_for("portal.stock") + "#standing-bids")
    return _render_stock(errors={"standing": errors}, form=form, status=422)


@bp.post("/standing-bids/<int:rule_id>/remove")
@signed_in(Role.RETAILER)
def remove_standing_bid(rule_id: int):
    """:raise 404: no standing bid of the caller's."""
    stock_services.remove_standing_bid(ctx(), _actor(), rule_id)
    flash("Standing bid removed. The bids it placed stay yours to withdraw on the board.")
    return redirect(url_for("portal.stock") + "#standing-bids")


@bp.app_template_global("portal_time")
def portal_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""
