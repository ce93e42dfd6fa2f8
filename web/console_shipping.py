"""The manufacturer console's shipping methods, tax rates and tax report, under
/console/shipping. Its own blueprint beside web/console.py, with the console's
rules: signed-in manufacturer users only, CSRF on every form, a bad form comes
back with every error beside its field (422), a POST that worked redirects with
a flash message."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for

from broker.accounts.models import Role
from broker.errors import BrokerError, Invalid, NotFound
from broker.money import amount_examples, amount_input, format_amount, parse_amount
from broker.shipping import services as shipping
from broker.storefront import services as storefront
from broker.tax import rules as tax_rules
from broker.tax import services as tax
from broker.tax.report import tax_report
from web.security import check_csrf, ctx, current_user, signed_in

bp = Blueprint("console_shipping", __name__, url_prefix="/console", template_folder="templates")
bp.before_request(check_csrf)
manufacturer_only = signed_in(Role.MANUFACTURER)


def _actor():
    return current_user().actor


@bp.context_processor
def _helpers():
    return {"money": format_amount, "amount_examples": amount_examples}


def _charge(text: str, currency: str, locale: str, field: str, errors: dict, *, optional: bool = False):
    """A charge typed in the store's format; "0" (or empty, where optional) is none."""
    text = (text or "").strip()
    if optional and not text:
        return None
    if text in ("0", "0.00", "0,00"):
        return 0
    try:
        return parse_amount(text, currency, locale)
    except ValueError as exc:
        errors.setdefault(field, []).append(str(exc))
        return None


def _hours(text: str, errors: dict) -> int:
    text = (text or "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 4:
        errors.setdefault("ship_within_hours", []).append("a whole number of hours, e.g. 24")
        return 0
    return int(text)


def _method_form(form, currency: str, locale: str, *, new: bool):
    """The form as the service's command, and the errors only the form can find
    (amounts it cannot read); the service finds the rest."""
    errors: dict[str, list[str]] = {}
    price = _charge(form.get("price", ""), currency, locale, "price", errors)
    per_item = _charge(form.get("per_item", "") or "0", currency, locale, "per_item", errors)
    free_over = _charge(form.get("free_over", ""), currency, locale, "free_over", errors, optional=True)
    hours = _hours(form.get("ship_within_hours", ""), errors)
    countries = [c for c in form.get("countries", "").replace(",", " ").split() if c]
    fields = dict(name=form.get("name", ""), price=price if price is not None else 0,
                  per_item=per_item if per_item is not None else 0, ship_within_hours=hours or 1,
                  countries=countries, default=form.get("default") == "on")
    if new:
        return shipping.NewMethod(code=form.get("code", ""), free_over=free_over, **fields), errors
    return shipping.MethodChanges(free_over=free_over, clear_free_over=free_over is None,
                                  active=form.get("active") == "on", **fields), errors


def _form_of(m, currency: str, locale: str) -> dict:
    return {"code": m.code, "name": m.name, "price": amount_input(m.price, currency, locale) if m.price else "0",
            "per_item": amount_input(m.per_item, currency, locale) if m.per_item else "0",
            "free_over": amount_input(m.free_over, currency, locale) if m.free_over else "",
            "ship_within_hours": str(m.ship_within_hours), "countries": " ".join(m.countries or []),
            "default": "on" if m.is_default else "", "active": "on" if m.active else ""}


def _rates_text(table) -> str:
    return "\n".join(f"{c} {r} {tax_rules.format_rate(rate)}".replace("  ", " ")
                     for (c, r), rate in table.rates.items())


def _parse_rates(text: str) -> tuple[list[tax.RateIn], dict[int, int]]:
    """One rate a line, "DE 19" or "US NY 8.875" (a region's name may have spaces:
    "US New York 8.875"). Returns the rows and each row's line number."""
    rows, lines = [], {}
    for number, line in enumerate((text or "").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        country, rate = parts[0], parts[-1] if len(parts) > 1 else ""
        region = " ".join(parts[1:-1])
        lines[len(rows)] = number
        rows.append(tax.RateIn(country=country, rate=rate, region=region))
    return rows, lines


def _period() -> tuple[datetime, datetime, dict]:
    """The report's period from ?from=&to= (dates, the end included); this month by default."""
    today = ctx().now().date()
    errors: dict[str, list[str]] = {}
    values = {"from": request.args.get("from", today.replace(day=1).isoformat()),
              "to": request.args.get("to", today.isoformat())}
    parsed = {}
    for key, value in values.items():
        try:
            parsed[key] = datetime.fromisoformat(value[:10]).replace(tzinfo=timezone.utc)
        except ValueError:
            errors[key] = ["a date, e.g. 2026-03-01"]
            parsed[key] = datetime.combine(today, datetime.min.time(), timezone.utc)
    if not errors and parsed["to"] < parsed["from"]:
        errors["to"] = ["must not be before the start"]
    return parsed["from"], parsed["to"] + timedelta(days=1), {"values": values, "errors": errors}


def _render(status: int = 200, *, method_form=None, method_errors=None, tax_form=None, tax_errors=None):
    actor = _actor()
    view = shipping.list_methods(ctx(), actor)
    locale = storefront.own_store(ctx(), actor).locale
    table = tax.get_table(ctx(), actor)
    start, end, period = _period()
    report = None if period["errors"] else tax_report(ctx(), actor, start, end)
    if tax_form is None:
        tax_form = {"prices_include_tax": "on" if table.prices_include_tax else "",
                    "shipping_taxed": "on" if table.shipping_taxed else "", "rates": _rates_text(table)}
    return render_template(
        "console/shipping.html", methods=view.methods, currency=view.currency, locale=locale, table=table,
        rate_text=tax_rules.format_rate, form=method_form or {"ship_within_hours": "72", "per_item": "0"},
        errors=method_errors or {}, tax_form=tax_form, tax_errors=tax_errors or {}, report=report,
        period=period), status


@bp.get("/shipping")
@manufacturer_only
def methods():
    return _render()


@bp.post("/shipping/methods")
@manufacturer_only
def method_new():
    view = shipping.list_methods(ctx(), _actor())
    locale = storefront.own_store(ctx(), _actor()).locale
    cmd, errors = _method_form(request.form, view.currency, locale, new=True)
    try:
        if not errors:
            added = shipping.add_method(ctx(), _actor(), cmd)
            flash(f"Added the shipping method {added.method.name} ({added.method.code}).")
            return redirect(url_for("console_shipping.methods"))
        shipping.check_new(cmd)  # every other bad field, beside the amounts that could not be read
    except BrokerError as exc:
        for field, messages in (exc.errors or {"code": [exc.detail]}).items():
            errors.setdefault(field, []).extend(messages)
    return _render(422, method_form=request.form, method_errors=errors)


@bp.route("/shipping/methods/<string:code>", methods=["GET", "POST"])
@manufacturer_only
def method_edit(code: str):
    """:raise 404: not one of the caller's methods."""
    view = shipping.list_methods(ctx(), _actor())
    method = next((m for m in view.methods if m.code == code), None)
    if method is None:
        abort(404)
    locale = storefront.own_store(ctx(), _actor()).locale
    errors: dict[str, list[str]] = {}
    form = _form_of(method, view.currency, locale)
    if request.method == "POST":
        form = request.form
        changes, errors = _method_form(form, view.currency, locale, new=False)
        try:
            if not errors:
                saved = shipping.update_method(ctx(), _actor(), code, changes)
                flash(f"Saved the shipping method {saved.method.name}"
                      f"{'' if saved.method.active else ' (disabled: no longer offered)'}.")
                return redirect(url_for("console_shipping.methods"))
            shipping.check_changes(changes)
        except NotFound:
            abort(404)
        except Invalid as exc:
            for field, messages in exc.errors.items():
                errors.setdefault(field, []).extend(messages)
    return render_template("console/shipping_method.html", method=method, form=form, errors=errors,
                           currency=view.currency, locale=locale), 422 if errors else 200


@bp.post("/shipping/tax")
@manufacturer_only
def tax_rates():
    rows, lines = _parse_rates(request.form.get("rates", ""))
    cmd = tax.SetTaxTable(prices_include_tax=request.form.get("prices_include_tax") == "on",
                          shipping_taxed=request.form.get("shipping_taxed") == "on", rates=rows)
    try:
        table = tax.set_table(ctx(), _actor(), cmd)
    except Invalid as exc:
        errors = []
        for field, messages in exc.errors.items():
            parts = field.split(".")
            where = f"Line {lines[int(parts[1])]}" if len(parts) > 1 and parts[1].isdigit() else "The rates"
            errors.extend(f"{where}: {m}" for m in messages)
        return _render(422, tax_form=request.form, tax_errors={"rates": errors})
    flash(f"Saved {len(table.rates)} tax rate{'' if len(table.rates) == 1 else 's'}; prices "
          f"{'include' if table.prices_include_tax else 'do not include'} tax.")
    return redirect(url_for("console_shipping.methods"))


@bp.get("/shipping/tax-report.csv")
@manufacturer_only
def tax_report_csv():
    start, end, period = _period()
    if period["errors"]:
        return _render(422)
    report = tax_report(ctx(), _actor(), start, end)
    name = f"tax-{report.manufacturer}-{period['values']['from']}-{period['values']['to']}.csv"
    return Response(report.csv(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
