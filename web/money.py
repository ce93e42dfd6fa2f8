"""Money pages of the retailer portal and the manufacturer console: earnings
statements with their CSV download, and setting up the payout account.

A retailer and a manufacturer that ships its own orders earn the same way, so
both read the same service (`broker.payouts.statements`) and render the same
macros (`money/_statement.html`); only the frame around them differs. Views
parse the period, call one service and render.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, stream_with_context, url_for

from broker.accounts.models import Role
from broker.csvfiles import lines as csv_lines
from broker.csvfiles import major_units
from broker.errors import BrokerError, Conflict, Invalid
from broker.ledger import reports as ledger_reports
from broker.money import amount_examples, amount_input, exponent, format_money, parse_amount
from broker.orders import search
from broker.orders import services as orders
from broker.pagination import PageRequest
from broker.payments import refunds
from broker.payouts import onboarding
from broker.payouts import statements
from web.security import check_csrf, ctx, current_user, signed_in

portal_bp = Blueprint("portal_money", __name__, url_prefix="/portal", template_folder="templates")
console_bp = Blueprint("console_money", __name__, url_prefix="/console", template_folder="templates")
portal_bp.before_request(check_csrf)
console_bp.before_request(check_csrf)

LINES_PER_PAGE = 50
STATEMENT_HEADER = ("order", "first movement (local time)", "movements", "currency", "gross", "fee", "net",
                    "status", "paid out on")


def _page_number() -> int:
    raw = request.args.get("page") or "1"
    return min(int(raw), 100_000) if raw.isascii() and raw.isdigit() and 0 < len(raw) < 7 and int(raw) else 1


def _error(exc: BrokerError):
    return render_template("app/message.html", title=exc.title, message=exc.detail), exc.status


portal_bp.errorhandler(BrokerError)(_error)
console_bp.errorhandler(BrokerError)(_error)


@portal_bp.app_template_global("format_money")
def _format_money(amount: int, currency: str, locale: str | None = None) -> str:
    """Minor units in the currency's format for the locale (Babel): "$1,250.00", "1.250,00 €"."""
    return format_money(amount, currency, locale)


@portal_bp.app_template_global("local_time")
def _local_time(value: datetime | None, timezone: str, with_time: bool = True) -> str:
    if value is None:
        return ""
    moment = value.astimezone(ZoneInfo(timezone))
    return moment.strftime("%Y-%m-%d %H:%M") if with_time else moment.strftime("%Y-%m-%d")


def _owner_actor():
    return current_user().actor


def _query() -> tuple[statements.PeriodQuery, dict[str, str]]:
    form = {k: (request.args.get(k) or "").strip()[:20] for k in ("period", "from", "to")}
    return statements.PeriodQuery(form["period"] or None, form["from"], form["to"]), form


def _statement_page(template: str, endpoint: str, extra=None):
    query, form = _query()
    number = _page_number()
    found = statements.statement(ctx(), _owner_actor(), query, PageRequest(number, LINES_PER_PAGE))
    pages = max(1, -(-found.lines.total // LINES_PER_PAGE))
    kept = {k: v for k, v in form.items() if v} if not found.errors else {}
    return render_template(template, statement=found, form=form, errors=found.errors, number=number, pages=pages,
                           query=kept, endpoint=endpoint, kinds=statements.LABELS, **(extra or {})), \
        422 if found.errors else 200


def _statement_csv():
    """The period's statement as CSV, every line, streamed: the same numbers as the page.

    :raise 422: the period is not right."""
    query, _ = _query()
    done = statements.statement_file(ctx(), _owner_actor(), query)
    zone = done.period.timezone

    def rows():
        for line in done.lines:
            exp = exponent(line.currency)
            yield (line.order_id, _local_time(line.at, zone), " ".join(line.movements), line.currency,
                   major_units(line.gross, exp), major_units(line.fee, exp), major_units(line.net, exp),
                   line.status, _local_time(line.paid_at, zone, with_time=False))

    name = f"broker-statement-{done.owner.kind}-{done.owner.id}-{done.period.slug}.csv"
    return Response(stream_with_context(csv_lines(STATEMENT_HEADER, rows())), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


# --- the retailer portal -------------------------------------------------------------


@portal_bp.get("/earnings")
@signed_in(Role.RETAILER)
def portal_earnings():
    """What the retailer earned in a period, order by order, and its payouts."""
    return _statement_page("portal/earnings.html", "portal_money.portal_earnings")


@portal_bp.get("/earnings/statement.csv")
@signed_in(Role.RETAILER)
def portal_statement():
    """:raise 422: the period's dates are not right."""
    return _statement_csv()


@portal_bp.route("/payout-account", methods=["GET", "POST"])
@signed_in(Role.RETAILER)
def portal_payout_account():
    return _payout_account("portal_money.portal_payout_account", "portal_money.portal_earnings")


# --- the manufacturer console --------------------------------------------------------


@console_bp.get("/earnings")
@signed_in(Role.MANUFACTURER)
def console_earnings():
    """What the manufacturer earned shipping its own orders, and the platform's fees on all of them."""
    fees = ledger_reports.manufacturer_fees(ctx(), _owner_actor(), PageRequest(1, 25))
    return _statement_page("console/earnings.html", "console_money.console_earnings",
                           {"fees": fees, "order_link": lambda n: url_for("console.order_detail", order_id=n)})


@console_bp.get("/earnings/statement.csv")
@signed_in(Role.MANUFACTURER)
def console_statement():
    """:raise 422: the period's dates are not right."""
    return _statement_csv()


@console_bp.route("/payout-account", methods=["GET", "POST"])
@signed_in(Role.MANUFACTURER)
def console_payout_account():
    return _payout_account("console_money.console_payout_account", "console_money.console_earnings")


# --- the payout account, both ------------------------------------------------------


def _payout_account(here: str, earnings: str):
    """GET: the account's state (read again from the provider when coming back from
    its onboarding). POST: make the account if need be and go to the provider's
    onboarding; a ready account goes back to the earnings."""
    actor = _owner_actor()
    if request.method == "POST":
        started = onboarding.start(ctx(), actor, email=current_user().email)
        if started.url is None:
            flash("Your payout account is ready: payouts go to it.")
            return redirect(url_for(earnings))
        return redirect(started.url)
    state = onboarding.status(ctx(), actor)
    return render_template("money/payout_account.html", state=state, here=here, earnings=earnings)


@portal_bp.route("/payout-account/offline/<ref>", methods=["GET", "POST"])
@signed_in(Role.RETAILER)
def portal_offline_onboarding(ref: str):
    return _offline_onboarding(ref, "portal_money.portal_payout_account")


@console_bp.route("/payout-account/offline/<ref>", methods=["GET", "POST"])
@signed_in(Role.MANUFACTURER)
def console_offline_onboarding(ref: str):
    return _offline_onboarding(ref, "console_money.console_payout_account")


def _offline_onboarding(ref: str, back: str):
    """The offline provider's stand-in for Stripe's onboarding: a page that says
    it is test mode and, on confirming, makes the account ready.

    :raise 404: not the caller's account, or not an offline one."""
    if len(ref) > 40:
        abort(404)
    actor = _owner_actor()
    if request.method == "POST":
        onboarding.complete_offline(ctx(), actor, ref)
        flash("Payout account set up (test mode): your earnings will be paid out to it.")
        return redirect(url_for(back))
    state = onboarding.offline_account(ctx(), actor, ref)
    return render_template("money/offline_onboarding.html", state=state, ref=ref)


# --- refunds and cancellations from the console's order page -----------------------------


def _refund_form(order_id: int, *, typed: str | None = None, errors=None, confirm: int | None = None,
                 status: int = 200):
    terms = refunds.refundable(ctx(), _owner_actor(), order_id)
    if typed is None:
        typed = amount_input(terms.left, terms.currency, terms.locale) if terms.left else ""
    return render_template("console/refund.html", terms=terms, typed=typed, errors=errors or {}, confirm=confirm,
                           examples=amount_examples(terms.currency, terms.locale)), status


@console_bp.get("/orders/<int:order_id>/refund")
@signed_in(Role.MANUFACTURER)
def refund_form(order_id: int):
    """How much to refund, in the store's format. :raise 404: not the caller's order."""
    return _refund_form(order_id)


@console_bp.post("/orders/<int:order_id>/refund")
@signed_in(Role.MANUFACTURER)
def refund(order_id: int):
    """Two steps: the amount typed is read and shown back for confirmation; the
    confirmed form refunds it (`orders.refund_order`: never more than is left of
    what was captured, out of the fulfiller's earning and the fee in proportion).

    :raise 404: not the caller's order. :raise 409: nothing captured to refund.
    :raise 422: not an amount in the store's format, or more than is left (shown beside the field).
    """
    terms = refunds.refundable(ctx(), _owner_actor(), order_id)
    typed = (request.form.get("amount") or "").strip()[:40]
    try:
        amount = parse_amount(typed, terms.currency, terms.locale)
    except ValueError as exc:
        return _refund_form(order_id, typed=typed, errors={"amount": [str(exc)]}, status=422)
    if amount > terms.left:
        message = (f"at most {format_money(terms.left, terms.currency, terms.locale)}: what was captured and not "
                   "refunded yet" if terms.left else "nothing is left to refund")
        return _refund_form(order_id, typed=typed, errors={"amount": [message]}, status=422)
    if request.form.get("confirmed") != "yes":
        return _refund_form(order_id, typed=typed, confirm=amount)
    seen = request.form.get("refunded_before", "")
    try:
        view = orders.refund_order(ctx(), _owner_actor(), order_id, amount,
                                   refunded_before=int(seen) if seen.isascii() and seen.isdigit()
                                   and len(seen) < 12 else -1)
    except Conflict as exc:  # sent twice, or refunded meanwhile: nothing moved, show what is left now
        return _refund_form(order_id, typed=typed, errors={"amount": [exc.detail]}, status=409)
    left = view.payment.captured_amount - view.payment.refunded_amount
    flash(f"Refunded {format_money(amount, terms.currency, terms.locale)} to the customer's card on order "
          f"{order_id}" + (f"; {format_money(left, terms.currency, terms.locale)} could still be refunded."
                           if left else "; the order is refunded in full."))
    return redirect(url_for("console.order_detail", order_id=order_id))


@console_bp.get("/orders/<int:order_id>/cancel")
@signed_in(Role.MANUFACTURER)
def cancel_form(order_id: int):
    """Are you sure? :raise 404: not the caller's order."""
    terms = refunds.refundable(ctx(), _owner_actor(), order_id)
    return render_template("console/cancel.html", terms=terms)


@console_bp.post("/orders/<int:order_id>/cancel")
@signed_in(Role.MANUFACTURER)
def cancel(order_id: int):
    """Cancel before shipment: off the board, the hold released.

    :raise 404: not the caller's order (or a request a retailer won). :raise 409: shipped or closed.
    """
    orders.cancel_for_manufacturer(ctx(), _owner_actor(), order_id)
    flash(f"Order {order_id} is cancelled: it is off the board and the card hold is released.")
    return redirect(url_for("console.order_detail", order_id=order_id))


# --- the orders export ------------------------------------------------------------------

EXPORT_HEADER = ("order", "placed (local time)", "state", "customer", "email", "city", "postal code", "country",
                 "items", "currency", "total", "fulfilled by", "carrier", "tracking number")


@console_bp.get("/orders/export.csv")
@signed_in(Role.MANUFACTURER)
def export_orders():
    """The orders the search finds, every one, as CSV, streamed a batch at a time; each
    batch is written to the customers' disclosure logs before it is sent. Text cells
    that a spreadsheet would run as a formula are written as text (broker/csvfiles.py).

    :raise 422: a search field that is not right (nothing is exported).
    """
    zone = ctx().settings.timezone
    filters, _, errors = search.parse(request.args, zone)
    if errors:
        raise Invalid("the search is not right: " + "; ".join(m for ms in errors.values() for m in ms),
                      errors=errors)
    found = search.export(ctx(), _owner_actor(), filters)

    def rows():
        for row in found:
            o, a = row.order, row.assignment
            exp = exponent(o.currency)
            items = "; ".join(f"{line.quantity} x {line.sku}" for line in o.lines)
            who = (o.customer_name, o.customer_email, o.ship_city, o.ship_postal_code) if row.shows_customer \
                else ("(a personal request)", "", "", "")
            yield (o.id, _local_time(o.created_at, zone), str(o.status), *who, o.ship_country, items, o.currency,
                   major_units(o.total, exp), row.fulfiller_name, a.carrier if a else "",
                   a.tracking_number if a else "")

    stamp = ctx().now().strftime("%Y%m%d-%H%M")
    return Response(stream_with_context(csv_lines(EXPORT_HEADER, rows())), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="orders-{stamp}.csv"'})
