"""Shipping methods and tax rates: a manufacturer keeps them; a storefront's
methods are public (a client shows them at checkout)."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api import examples as ex
from api.auth import allow, broker_context, current_actor
from api.schemas import MethodIn, MethodOut, MethodPatch, OfferedOut, OfferedQuery, TaxTableIn, TaxTableOut
from broker.auth import ActorKind
from broker.shipping import services
from broker.tax import rules as tax_rules
from broker.tax import services as tax

blp = Blueprint("shipping", __name__, url_prefix="/api/v1",
                description="Shipping methods and tax rates: what an order costs delivered.")

def _method(m, currency: str) -> dict:
    return {"code": m.code, "name": m.name, "price": m.price, "per_item": m.per_item, "free_over": m.free_over,
            "currency": currency, "ship_within_hours": m.ship_within_hours, "countries": list(m.countries or []),
            "default": m.is_default, "active": m.active}


def _table(t) -> dict:
    return {"prices_include_tax": t.prices_include_tax, "shipping_taxed": t.shipping_taxed, "provider": t.provider,
            "currency": t.currency,
            "rates": [{"country": c, "region": r, "rate": tax_rules.format_rate(rate),
                       "jurisdiction": tax_rules.jurisdiction(c, r)} for (c, r), rate in t.rates.items()]}


@blp.route("/shipping-methods")
class ShippingMethods(MethodView):
    @allow(ActorKind.MANUFACTURER)
    @blp.response(200, MethodOut(many=True), example=ex.SHIPPING_METHODS,
                  description="Your shipping methods, active or not, oldest first.")
    def get(self):
        """List your shipping methods."""
        view = services.list_methods(broker_context(), current_actor())
        return [_method(m, view.currency) for m in view.methods]

    @allow(ActorKind.MANUFACTURER)
    @blp.arguments(MethodIn, example=ex.SHIPPING_METHOD_IN)
    @blp.response(201, MethodOut, example=ex.SHIPPING_METHOD, description="The method, offered at checkout.")
    def post(self, cmd):
        """Add a shipping method.

        The charge is `price` per order plus `per_item` per item, nothing when the goods
        come to `free_over` or more. Your first method becomes the default.

        :raise 409: A method with this code exists already.
        :raise 422: A field is invalid (each is named).
        """
        view = services.add_method(broker_context(), current_actor(), cmd)
        return _method(view.method, view.currency)


@blp.route("/shipping-methods/<string:code>")
class ShippingMethodByCode(MethodView):
    @allow(ActorKind.MANUFACTURER)
    @blp.arguments(MethodPatch, example=ex.SHIPPING_METHOD_PATCH)
    @blp.response(200, MethodOut, example=ex.SHIPPING_METHOD_PATCHED, description="The method as it is now.")
    def patch(self, changes, code):
        """Edit or disable a shipping method.

        Send only what changes; `active: false` disables it. Orders already placed keep the
        method, charge and window they were placed with.

        :raise 404: None of your methods has this code.
        :raise 422: A field is invalid.
        """
        view = services.update_method(broker_context(), current_actor(), code, changes)
        return _method(view.method, view.currency)


@blp.route("/storefronts/<string:slug>/shipping-methods")
class StorefrontShippingMethods(MethodView):
    @blp.arguments(OfferedQuery, location="query")
    @blp.response(200, OfferedOut(many=True), example=ex.SHIPPING_OFFERED,
                  description="The methods that ship there, the default first, each with its charge.")
    def get(self, query, slug):
        """Read a storefront's shipping methods for a destination.

        What the checkout offers: pass the cart's `subtotal` and `items` to get each
        method's charge for it. An empty list: the store does not ship there (a store
        with no methods at all ships everywhere, free).

        :raise 404: No storefront has this slug.
        """
        found = services.offered(broker_context(), slug, query["country"].strip(), goods=query["subtotal"],
                                 items=query["items"])
        return [{"code": o.method.code, "name": o.method.name, "charge": o.charge, "currency": o.currency,
                 "ship_within_hours": o.method.ship_within_hours, "default": o.method.is_default} for o in found]


@blp.route("/tax-rates")
class TaxRates(MethodView):
    @allow(ActorKind.MANUFACTURER)
    @blp.response(200, TaxTableOut, example=ex.TAX_TABLE, description="Your tax table.")
    def get(self):
        """Read your tax rates.

        With no table set, prices include tax unless the store sells in USD or CAD, and
        there are no rates (no tax is charged).
        """
        return _table(tax.get_table(broker_context(), current_actor()))

    @allow(ActorKind.MANUFACTURER)
    @blp.arguments(TaxTableIn, example=ex.TAX_TABLE_IN)
    @blp.response(200, TaxTableOut, example=ex.TAX_TABLE, description="Your tax table, as it is now.")
    def put(self, cmd):
        """Replace your tax rates.

        The whole table: rates by country, and by region where they differ (a region's rate
        wins over its country's). Orders already placed keep their tax.

        :raise 422: A row is invalid (each is named by its index); nothing was changed.
        """
        return _table(tax.set_table(broker_context(), current_actor(), cmd))
