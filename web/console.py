"""The manufacturer console under /console/.

Every page is for a signed-in manufacturer user (`signed_in`: else to the
sign-in page, or 403 for a retailer) and acts as its company
(`current_user().actor`); the services decide what that company may see, so an
order of another manufacturer is a 404 here as it is in the API. Views parse,
call a service and render; a bad form comes back with the error beside its
field and status 422; a POST that worked redirects with a flash message.
"""

from __future__ import annotations

import dataclasses

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from broker.accounts import applications, invitations
from broker.accounts import services as accounts
from broker.accounts.models import Role
from broker.analytics import services as analytics
from broker.catalog import imports
from broker.catalog import services as catalog
from broker.errors import BrokerError, Invalid, NotFound
from broker.fulfilment import services as fulfilment
from broker.fulfilment.models import AssignmentStatus
from broker.money import amount_examples, amount_input, exponent, format_amount, format_money, parse_amount
from broker.orders import search
from broker.orders import services as orders
from broker.orders.models import OrderStatus
from broker.pagination import PageRequest
from broker.personal import services as personal
from broker.returns import services as returns
from broker.returns.models import ReturnStatus
from broker.settlement import reports as settlement_reports
from broker.stock import services as stock_services
from broker.storefront import contrast, domains
from broker.storefront import services as storefront
from web import charts, confirm, formkeys
from web.links import embed_snippet, external_url
from web.security import check_csrf, ctx, current_user, signed_in

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates")
bp.before_request(check_csrf)

manufacturer_only = signed_in(Role.MANUFACTURER)
ORDERS_PER_PAGE = 25
PRODUCTS_PER_PAGE = 50
STATE_COLORS = {
    "awaiting_payment": "#9aa5b1", "open": "#0b5cad", "awarded": "#6f42c1", "shipped": "#0f766e",
    "delivered": "#1a7f37", "cancelled": "#5b6670", "payment_failed": "#b45309", "refunded": "#a4161a",
}


def _actor():
    return current_user().actor


def _page_number() -> int:
    number = request.args.get("page", 1, type=int) or 1
    return min(max(1, number), 100_000)


def _pages(total: int, size: int) -> int:
    return max(1, -(-total // size))


@bp.context_processor
def _helpers():
    return {"money": format_amount, "amount_input": amount_input, "amount_examples": amount_examples,
            "exponent": exponent}


@bp.errorhandler(BrokerError)
def _broker_error(exc: BrokerError):
    """A service refused (404 not yours, 409 too late, 422 a rule): a page that says why."""
    titles = {404: "Not found", 409: "Not possible now", 422: "Not accepted"}
    return render_template("app/message.html", title=titles.get(exc.status, exc.title), message=exc.detail), \
        exc.status


# --- the dashboard ---------------------------------------------------------------


def _week_label(day) -> str:
    return f"{day.day} {day.strftime('%b')}"


@bp.get("/")
@manufacturer_only
def dashboard():
    data = analytics.dashboard(ctx(), _actor())
    labels = [_week_label(w.start) for w in data.weeks]
    states = [s for s, n in data.by_status.items() if n or s in ("open", "awarded", "shipped", "delivered")]
    state_labels = [s.replace("_", " ") for s in states]
    shares = [None if w.retailer_share is None else round(100 * w.retailer_share, 1) for w in data.weeks]
    lapses = [None if w.lapse_rate is None else round(100 * w.lapse_rate, 1) for w in data.weeks]
    distances = [None if w.average_distance_km is None else round(w.average_distance_km, 1) for w in data.weeks]
    svg = {
        "states": charts.bar_chart(
            "chart-states", "Orders by state", state_labels, [data.by_status[s] for s in states],
            colors=[STATE_COLORS[s] for s in states], unit="orders"),
        "fulfilment": charts.stacked_bar_chart(
            "chart-fulfilment", "Who fulfilled your orders, by week", labels,
            [charts.Series("Retailers", [w.to_retailers for w in data.weeks], "#0b5cad"),
             charts.Series("You", [w.to_self for w in data.weeks], "#f59e0b")],
            unit="orders"),
        "lapses": charts.line_chart(
            "chart-lapses", "Lapse rate by week", labels,
            [charts.Series("Lapse rate", lapses, "#a4161a")], fmt=lambda v: f"{v:g}%", unit="% of orders "
            "given to retailers", top=max([10.0, *[v for v in lapses if v is not None]])),
        "distance": charts.line_chart(
            "chart-distance", "Average distance to the customer by week", labels,
            [charts.Series("Average distance", distances, "#0f766e")], fmt=lambda v: f"{v:g} km",
            unit="km from the winning store"),
    }
    svg["revenue"] = _revenue_chart(data, labels)
    return render_template("console/dashboard.html", data=data, svg=svg, states=states, shares=shares,
                           lapses=lapses, distances=distances, labels=labels)


def _revenue_chart(data, labels):
    """Net revenue by week in the store's currency, retailers' orders and the
    manufacturer's own stacked (a week whose refunds outweigh it draws no bar;
    the table beside it has every number)."""
    mine = data.revenue.currency(data.currency) if data.revenue else None
    if mine is None:
        return None
    scale = 10 ** exponent(data.currency)

    def series(name: str, kind: str, color: str):
        return charts.Series(name, [max(0, w.get(kind).net) / scale if w.get(kind) else 0 for w in mine.weeks],
                             color)

    return charts.stacked_bar_chart(
        "chart-revenue", f"Net revenue by week, {data.currency}", labels,
        [series("Retailers' orders", "retailer", "#0b5cad"), series("Your own", "manufacturer", "#f59e0b")],
        fmt=lambda v: format_money(round(v * scale), data.currency, data.locale), unit=data.currency)


# --- orders to ship ----------------------------------------------------------------


def _render_to_ship(errors: dict | None = None, values: dict | None = None, status: int = 200):
    found = fulfilment.list_assignments(ctx(), _actor(), PageRequest(1, 200), status=AssignmentStatus.ACTIVE)
    return render_template("console/to_ship.html", found=found, errors=errors or {}, values=values or {}), status


@bp.get("/to-ship")
@manufacturer_only
def to_ship():
    """The orders nobody bid on (or every bidder let lapse): the manufacturer ships them."""
    return _render_to_ship()


@bp.post("/to-ship/<int:assignment_id>/shipment")
@manufacturer_only
def record_shipment(assignment_id: int):
    """:raise 404: not the caller's. :raise 409: shipped already. :raise 422: blank carrier or tracking."""
    cmd = fulfilment.RecordShipment(request.form.get("carrier", ""), request.form.get("tracking_number", ""))
    try:
        view = fulfilment.record_shipment(ctx(), _actor(), assignment_id, cmd)
    except Invalid as exc:
        return _render_to_ship({assignment_id: exc.errors}, {assignment_id: request.form}, 422)
    flash(f"Order {view.order.id} is shipped ({view.assignment.carrier} {view.assignment.tracking_number}); "
          "the payment is captured.")
    return redirect(url_for("console.to_ship"))


@bp.post("/to-ship/<int:assignment_id>/pickup")
@manufacturer_only
def record_pickup(assignment_id: int):
    """The customer collected a pickup order: checked against their one-time code."""
    try:
        view = fulfilment.collect_pickup(ctx(), _actor(), assignment_id, request.form.get("code", ""))
    except Invalid as exc:
        return _render_to_ship({assignment_id: exc.errors}, {assignment_id: request.form}, 422)
    flash(f"Order {view.order.id} was collected.")
    return redirect(url_for("console.to_ship"))


# --- orders ----------------------------------------------------------------------


@bp.get("/orders")
@manufacturer_only
def order_list():
    """Orders found by number, customer, SKU, state, fulfiller and dates (broker/orders/search.py);
    a bad field is reported beside it (422) and left out of the search."""
    filters, typed, errors = search.parse(request.args, ctx().settings.timezone)
    number = _page_number()
    found = orders.list_orders(ctx(), _actor(), filters, PageRequest(number, ORDERS_PER_PAGE))
    kept = {k: v for k, v in typed.items() if v and k not in errors}
    return render_template("console/orders.html", found=found, number=number,
                           pages=_pages(found.total, ORDERS_PER_PAGE), status=typed["status"],
                           fulfiller=typed["fulfiller"], typed=typed, query=kept, searched=bool(kept),
                           states=list(OrderStatus), errors=errors), 422 if errors else 200


@bp.get("/orders/<int:order_id>")
@manufacturer_only
def order_detail(order_id: int):
    """Opening an order shows the customer's details, and the disclosure log records it.

    :raise 404: not one of the caller's orders.
    """
    return _render_order(order_id)


def _render_order(order_id: int, *, errors: dict | None = None, note: str = "", status: int = 200):
    try:
        view = orders.get_order(ctx(), _actor(), order_id)
    except NotFound:
        abort(404)
    a = view.assignment
    # The relay's thread, while the manufacturer itself fulfils the order.
    thread = personal.messages(ctx(), order_id, actor=_actor(), token=None) if (
        a is not None and a.fulfiller_kind == "manufacturer" and a.status in ("active", "shipped")) else None
    return render_template("console/order.html", view=view, errors=errors or {}, note=note, thread=thread), status


@bp.post("/orders/<int:order_id>/messages")
@manufacturer_only
def message(order_id: int):
    """Write to the customer of an order the manufacturer fulfils, through the relay.

    :raise 404: not an order the caller fulfils now. :raise 422: blank or too long."""
    try:
        personal.send_message(ctx(), order_id, request.form.get("body", ""), actor=_actor(), token=None,
                              once=formkeys.sent(f"message:order:{order_id}"))
    except formkeys.AlreadyDone:
        pass  # a reload or a second click: the first is sent
    except NotFound:
        abort(404)
    except Invalid as exc:
        return _render_order(order_id, errors={"body": exc.errors.get("body", [exc.detail])}, status=422)
    flash("Message sent: the customer is emailed a link to it.")
    return redirect(url_for("console.order_detail", order_id=order_id) + "#messages")


def _return_id() -> int | None:
    raw = request.form.get("return_id", "")
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


def _after_return(order_id: int):
    """Back where the decision was started: the returns queue, or the order."""
    if request.form.get("back") == "returns":
        return redirect(url_for("console.returns_queue"))
    return redirect(url_for("console.order_detail", order_id=order_id))


def _cancel_link(order_id: int) -> str:
    if request.form.get("back") == "returns":
        return url_for("console.returns_queue")
    return url_for("console.order_detail", order_id=order_id) + "#returns-heading"


@bp.post("/orders/<int:order_id>/return/accept")
@manufacturer_only
def accept_return(order_id: int):
    """Accept the customer's return: the card is refunded what was captured.
    Asks for confirmation first (`confirm=yes` to go ahead).

    :raise 404: not an order whose returns the caller decides. :raise 409: no
        open return, or nothing left to refund.
    """
    if not confirm.confirmed():
        return confirm.ask(
            title=f"Accept the return of order {order_id}?",
            lines=["The customer's card is refunded what was captured for the part this return is about and not "
                   "refunded yet; a retailer's earning and the fee are reduced in proportion. The customer is "
                   "emailed."],
            button="Accept the return and refund the card", cancel=_cancel_link(order_id), danger=False,
            fields={"return_id": request.form.get("return_id", ""), "back": request.form.get("back", "")})
    returns.accept_return(ctx(), _actor(), order_id, _return_id())
    flash(f"Return of order {order_id} accepted: the customer's card is refunded, and they are told.")
    return _after_return(order_id)


@bp.post("/orders/<int:order_id>/return/refuse")
@manufacturer_only
def refuse_return(order_id: int):
    """Refuse the customer's return with a note they are emailed. Asks for
    confirmation first (`confirm=yes` to go ahead).

    :raise 404: not an order whose returns the caller decides. :raise 409: no
        open return. :raise 422: no note (shown beside the field).
    """
    note = request.form.get("note", "")
    try:
        returns.check_note(note)
        if not confirm.confirmed():
            return confirm.ask(
                title=f"Refuse the return of order {order_id}?",
                lines=["The customer is emailed this note, and nothing is refunded. They may ask again while the "
                       "return window is open."],
                quote=note.strip(), button="Refuse the return", cancel=_cancel_link(order_id),
                fields={"return_id": request.form.get("return_id", ""), "note": note,
                        "back": request.form.get("back", "")})
        returns.refuse_return(ctx(), _actor(), order_id, note, _return_id())
    except Invalid as exc:
        return _render_order(order_id, errors=exc.errors or {"note": [exc.detail]}, note=note, status=422)
    flash(f"Return of order {order_id} refused: the customer is emailed your note.")
    return _after_return(order_id)


@bp.get("/returns")
@manufacturer_only
def returns_queue():
    """The returns the manufacturer decides, oldest first: waiting for an answer
    (default), or `status=all`."""
    show_all = request.args.get("status") == "all"
    number = _page_number()
    found = returns.list_returns(ctx(), _actor(), PageRequest(number, ORDERS_PER_PAGE),
                                 None if show_all else ReturnStatus.REQUESTED)
    return render_template("console/returns.html", found=found, number=number, show_all=show_all,
                           pages=_pages(found.total, ORDERS_PER_PAGE))


# --- catalog ---------------------------------------------------------------------


def _render_catalog(report: imports.ImportReport | None = None, import_error: str | None = None,
                    status: int = 200):
    number = _page_number()
    found = catalog.list_products(ctx(), _actor(), PageRequest(number, PRODUCTS_PER_PAGE))
    maker = storefront.own_store(ctx(), _actor())
    return render_template("console/catalog.html", found=found, number=number,
                           pages=_pages(found.total, PRODUCTS_PER_PAGE), report=report,
                           import_error=import_error, currency=maker.currency, locale=maker.locale), status


@bp.get("/catalog")
@manufacturer_only
def catalog_list():
    return _render_catalog()


@bp.post("/catalog/import")
@manufacturer_only
def catalog_import():
    """Every valid row is added or updated, every bad row reported (see broker/catalog/imports.py).

    :raise 422: no file, or a file that is not a CSV with our header; nothing changes.
    """
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _render_catalog(import_error="choose a CSV file to import", status=422)
    try:
        report = imports.import_products(ctx(), _actor(), upload.read())
    except Invalid as exc:
        messages = [m for field_messages in exc.errors.values() for m in field_messages]
        return _render_catalog(import_error="; ".join(messages) or exc.detail, status=422)
    if not report.errors:
        flash(f"Imported {report.applied} products: {len(report.added)} added, {len(report.updated)} updated.")
        return redirect(url_for("console.catalog_list"))
    # Some rows were bad: the report is the page (it cannot survive a redirect in a cookie).
    return _render_catalog(report=report, status=200 if report.applied else 422)


def _product_form(form, currency: str, locale: str, *, new: bool):
    """The form's fields as the service's command; a price that is not an amount in
    the store's format (`broker.money.parse_amount`, as the CSV import reads it) is a field error."""
    errors: dict[str, list[str]] = {}
    try:
        price = parse_amount(form.get("price", ""), currency, locale)
    except ValueError as exc:
        errors["price"] = [str(exc)]
        price = None
    fields = {"name": form.get("name", ""), "price": price, "description": form.get("description", ""),
              "image_url": form.get("image_url", ""), "in_stock": form.get("in_stock") == "on"}
    if new:
        return catalog.NewProduct(sku=form.get("sku", ""), **{**fields, "price": price or 0}), errors
    return catalog.ProductChanges(**fields, active=form.get("active") == "on"), errors


@bp.route("/catalog/new", methods=["GET", "POST"])
@manufacturer_only
def product_new():
    maker = storefront.own_store(ctx(), _actor())
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        cmd, errors = _product_form(request.form, maker.currency, maker.locale, new=True)
        try:
            if errors:
                # Report every field at once: the price could not be read, check the rest.
                catalog.check_new(dataclasses.replace(cmd, price=1), https_only=ctx().settings.https)
            else:
                view = catalog.add_product(ctx(), _actor(), cmd)
                flash(f"Added {view.product.name} ({view.product.sku}).")
                return redirect(url_for("console.catalog_list"))
        except BrokerError as exc:
            for field, messages in (exc.errors or {"sku": [exc.detail]}).items():
                errors.setdefault(field, []).extend(messages)
    return render_template("console/product_form.html", new=True, form=request.form, currency=maker.currency,
                           locale=maker.locale, errors=errors, product=None), 422 if errors else 200


@bp.route("/catalog/p/<path:sku>", methods=["GET", "POST"])
@manufacturer_only
def product_edit(sku: str):
    """:raise 404: not one of the caller's SKUs."""
    try:
        view = catalog.get_product(ctx(), _actor(), sku)
    except NotFound:
        abort(404)
    locale = storefront.own_store(ctx(), _actor()).locale
    errors: dict[str, list[str]] = {}
    form = None
    if request.method == "POST":
        form = request.form
        changes, errors = _product_form(form, view.currency, locale, new=False)
        try:
            if errors:
                catalog.check_changes(dataclasses.replace(changes, price=None), https_only=ctx().settings.https)
            else:
                view = catalog.update_product(ctx(), _actor(), sku, changes)
                flash(f"Saved {view.product.name} ({view.product.sku}).")
                return redirect(url_for("console.catalog_list"))
        except Invalid as exc:
            for field, messages in exc.errors.items():
                errors.setdefault(field, []).extend(messages)
    if form is None:
        p = view.product
        form = {"sku": p.sku, "name": p.name, "price": amount_input(p.price, view.currency, locale),
                "description": p.description, "image_url": p.image_url or "",
                "in_stock": "on" if p.in_stock else "", "active": "on" if p.active else ""}
    return render_template("console/product_form.html", new=False, form=form, currency=view.currency,
                           locale=locale, errors=errors, product=view.product), 422 if errors else 200


# --- dealers ---------------------------------------------------------------------


def _render_dealers(errors: dict | None = None, email: str = "", status: int = 200):
    actor = _actor()
    pending = applications.list_applications(ctx(), actor)
    sent = invitations.pending_invitations(ctx(), actor)
    dealers = accounts.list_dealers(ctx(), actor, PageRequest(1, 500))
    return render_template("console/dealers.html", pending=pending, sent=sent, dealers=dealers,
                           errors=errors or {}, email=email), status


@bp.get("/dealers")
@manufacturer_only
def dealers():
    return _render_dealers()


@bp.post("/dealers/applications/<int:application_id>")
@manufacturer_only
def decide_application(application_id: int):
    """Approve or decline a retailer's application. :raise 404: not the caller's.
    :raise 409: decided already, or (approving) the applicant's address is not verified."""
    decision = request.form.get("decision")
    if decision not in ("approve", "decline"):
        abort(400, description="approve or decline")
    applications.decide(ctx(), _actor(), application_id, approve=decision == "approve")
    flash("Approved: the retailer is now your dealer." if decision == "approve" else "Declined.")
    return redirect(url_for("console.dealers"))


@bp.post("/dealers/invite")
@manufacturer_only
def invite_dealer():
    """Mail an address a link to become a dealer. :raise 422: not an email address."""
    email = request.form.get("email", "")
    try:
        sent = invitations.invite(ctx(), _actor(), email)
    except Invalid as exc:
        return _render_dealers(exc.errors or {"email": [exc.detail]}, email, exc.status)
    flash(f"Invited {sent.email}: whoever follows the link we mailed there can accept for their company, "
          f"until {sent.expires_at:%Y-%m-%d}.")
    return redirect(url_for("console.dealers"))


@bp.post("/dealers/<int:retailer_id>/revoke")
@manufacturer_only
def revoke_dealer(retailer_id: int):
    """Asks for confirmation first (`confirm=yes` to go ahead). :raise 404: not one of the caller's dealers."""
    if not confirm.confirmed():
        name = request.form.get("name", "")[:200] or f"retailer {retailer_id}"
        return confirm.ask(
            title=f"Revoke {name}?",
            lines=[f"{name} stops seeing your orders on its board at once, and its open bids on them stop "
                   "counting. Orders it has already won stay its to ship. To work with it again you would have to "
                   "invite it again."],
            button=f"Revoke {name}", cancel=url_for("console.dealers"), fields={"name": request.form.get("name")})
    accounts.revoke_dealer(ctx(), _actor(), retailer_id)
    flash("Revoked: that retailer no longer sees your orders, and its open bids on them stop counting.")
    return redirect(url_for("console.dealers"))


# --- storefront ------------------------------------------------------------------


BRANDING_FIELDS = ("name", "logo_url", "color_primary", "color_accent", "locale", "custom_domain",
                   "frame_origins", "return_window_days")


def _branding_form(maker) -> dict:
    return {"name": maker.name, "logo_url": maker.logo_url or "", "color_primary": maker.color_primary,
            "color_accent": maker.color_accent, "locale": maker.locale, "custom_domain": maker.custom_domain or "",
            "frame_origins": "\n".join(maker.frame_origins or []),
            "return_window_days": str(maker.return_window_days)}


@bp.route("/storefront", methods=["GET", "POST"])
@manufacturer_only
def storefront_look():
    maker = storefront.own_store(ctx(), _actor())
    errors: dict[str, list[str]] = {}
    form = _branding_form(maker)
    if request.method == "POST":
        form = {field: request.form.get(field, "") for field in BRANDING_FIELDS}
        days = form["return_window_days"].strip()
        if not days.isdigit() or len(days) > 4:
            errors["return_window_days"] = ["a whole number of days, 0 to 365"]
        changes = storefront.Branding(
            name=form["name"], logo_url=form["logo_url"], color_primary=form["color_primary"].strip(),
            color_accent=form["color_accent"].strip(), locale=form["locale"].strip(),
            custom_domain=form["custom_domain"],
            frame_origins=form["frame_origins"].replace(",", " ").split(),
            return_window_days=int(days) if not errors else None)
        if not errors:
            try:
                storefront.update_branding(ctx(), _actor(), changes)
            except Invalid as exc:
                errors = exc.errors or {"name": [exc.detail]}
            else:
                flash("Saved the storefront's look.")
                return redirect(url_for("console.storefront_look"))
    return _render_storefront(maker, form, errors)


def _render_storefront(maker, form: dict, errors: dict):
    return render_template("console/storefront.html", maker=maker, form=form, errors=errors,
                           contrast_warnings=contrast.warnings(form.get("color_primary"), form.get("color_accent")),
                           snippet=embed_snippet(maker), broker_host=ctx().settings.public_origin.host,
                           store_url=external_url("store.catalog", store=maker, slug=maker.slug)), \
        422 if errors else 200


@bp.post("/storefront/domain/verify")
@manufacturer_only
def verify_domain():
    """Check that the store's custom domain points at Broker; once it does, the
    domain serves the store. A failed check is said beside the field (422)."""
    try:
        domains.verify_domain(ctx(), _actor())
    except Invalid as exc:
        maker = storefront.own_store(ctx(), _actor())
        return _render_storefront(maker, _branding_form(maker), exc.errors or {"custom_domain": [exc.detail]})
    flash("Verified: your domain now serves your store.")
    return redirect(url_for("console.storefront_look"))


# --- settlements -----------------------------------------------------------------


@bp.get("/stock")
@manufacturer_only
def dealer_stock():
    """Where the manufacturer's products are in stock across its dealers: per
    store and SKU, with each feed's age; `sku` narrows it to one product."""
    sku = (request.args.get("sku") or "").strip()[:64]
    number = _page_number()
    found = stock_services.dealer_stock(ctx(), _actor(), PageRequest(number, STOCK_PAGE), sku or None)
    return render_template("console/stock.html", rows=found.items, total=found.total, sku=sku, number=number,
                           pages=_pages(found.total, STOCK_PAGE), max_age=ctx().settings.stock_max_age_hours)


STOCK_PAGE = 100


@bp.get("/settlements")
@manufacturer_only
def settlements():
    number = _page_number()
    found = settlement_reports.list_runs(ctx(), _actor(), PageRequest(number, 25))
    return render_template("console/settlements.html", found=found, number=number, pages=_pages(found.total, 25))


@bp.get("/settlements/<int:run_id>")
@manufacturer_only
def settlement(run_id: int):
    """One run, counted over the caller's own listings. :raise 404: no such run."""
    try:
        report = settlement_reports.run_report(ctx(), _actor(), run_id)
    except NotFound:
        abort(404)
    return render_template("console/settlement.html", report=report)


# The earnings page and the payout account are in web/money.py (shared with the portal).
