"""Plain server-rendered pages: the home page, a storefront catalog, the API docs."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template

from broker.catalog.services import storefront_catalog
from broker.errors import NotFound
from broker.money import format_amount
from broker.pagination import PageRequest
from broker.reports import home_summary

bp = Blueprint("pages", __name__, template_folder="templates")


@bp.app_template_filter("money")
def _money(amount: int, currency: str) -> str:
    return format_amount(amount, currency)


@bp.get("/")
def home():
    ctx = current_app.extensions["broker"]
    return render_template("home.html", summary=home_summary(ctx), settings=ctx.settings)


@bp.get("/s/<slug>/")
def storefront(slug: str):
    ctx = current_app.extensions["broker"]
    try:
        catalog = storefront_catalog(ctx, slug, PageRequest(1, 100))
    except NotFound:
        abort(404)
    return render_template("storefront.html", catalog=catalog)


@bp.get("/api/v1/docs")
def api_docs():
    spec = current_app.extensions["broker_api"].spec.to_dict()
    return render_template("api_docs.html", spec=spec)
