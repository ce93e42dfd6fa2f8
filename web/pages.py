"""Plain server-rendered pages: the home page, a storefront catalog, the API docs."""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, redirect, render_template, request, url_for

from broker.addresses import PostalAddress, address_form, address_lines, countries, ship_to_address
from broker.fulfilment.money import part_lines
from broker.money import format_amount
from broker.reports import home_summary
from broker.settlement.reports import health

bp = Blueprint("pages", __name__, template_folder="templates")


@bp.app_template_filter("money")
def _money(amount: int, currency: str) -> str:
    return format_amount(amount, currency)


@bp.app_template_filter("ship_to_lines")
def _ship_to_lines(row, country_line: bool = True) -> list[str]:
    """An order's (or a request's) ship-to as lines in its country's format, the
    recipient's name first (broker.addresses: one formatter everywhere)."""
    name = getattr(row, "customer_name", None) or getattr(row, "ship_name", "") or ""
    return address_lines(ship_to_address(row), name=name, country_line=country_line)


@bp.app_template_filter("store_lines")
def _store_lines(store) -> list[str]:
    """A store's street address in its country's format; empty while it has no street."""
    if not (store.line1 or "").strip():
        return []
    return address_lines(PostalAddress(country=store.country or "", line1=store.line1 or "",
                                       line2=store.line2 or "", city=store.city or "", region=store.region or "",
                                       postal_code=store.postal_code or ""))
@bp.app_template_filter("part_lines")
def _part_lines(order, assignment) -> list:
    """What an assignment ships of the order: all of it, or its part's lines."""
    return part_lines(order, assignment.lines if assignment is not None else None)


@bp.app_template_global("address_format")
def _address_format(country: str, region: str | None = None):
    """A country's address form (broker.addresses.address_form), for the
    `address_fields` macro; the US's for a code that is not a country."""
    return address_form(country or "US", region=region) or address_form("US")


@bp.app_template_global("country_choices")
def _country_choices(locale: str = "en") -> list[tuple[str, str]]:
    return countries(locale)


@bp.get("/")
def home():
    ctx = current_app.extensions["broker"]
    claim = getattr(request, "store_claim", None)
    if claim is not None:  # a store's verified domain (web/hosts.py): its shop is the home page
        return redirect(url_for("store.catalog", slug=claim.slug))
    return render_template("home.html", summary=home_summary(ctx), settings=ctx.settings)


@bp.get("/healthz")
def healthz():
    """Up (200) when the database answers; says when settlement last completed and
    failed, and how many rows the scheduled jobs have parked."""
    ctx = current_app.extensions["broker"]
    found = health(ctx)

    def run(r):
        return None if r is None else {"id": r.id, "as_of": r.as_of.isoformat(),
                                       "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                                       "error": r.error}

    body = {"status": "ok" if found.database else "unavailable", "database": "ok" if found.database else "down",
            "last_settlement": run(found.last_completed), "last_failed_settlement": run(found.last_failed),
            # Rows the jobs could not get through: they wait for `broker jobs parked` / `retry`.
            "parked_rows": sum(found.parked.values()), "parked_by_job": found.parked}
    return jsonify(body), 200 if found.database else 503


@bp.get("/api/v1/docs")
def api_docs():
    """The API reference: Swagger UI, served from Broker, drawing /api/v1/openapi.json.

    Under the same strict Content-Security-Policy as the portal and the console
    (web/security.py): scripts and styles from Broker only, nothing inline, not framed.
    """
    g.app_page = True
    return render_template("api_reference.html", spec_url=url_for("api-docs.openapi_json"))
