from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api import examples as ex
from api import schemas as s
from api.auth import allow, broker_context, current_actor
from api.paging import page_request
from broker.auth import ActorKind
from broker.catalog import services

blp = Blueprint("catalog", __name__, url_prefix="/api/v1",
                description="The catalog: a manufacturer's products, and each storefront's catalog for anyone.")


def _product(p, currency=None):
    return {"sku": p.sku, "name": p.name, "price": p.price, "currency": currency, "description": p.description,
            "image_url": p.image_url, "active": p.active, "in_stock": p.in_stock}


@blp.route("/products")
class Products(MethodView):
    @allow(ActorKind.MANUFACTURER)
    @blp.response(200, s.ProductOut(many=True), example=[ex.PRODUCT, ex.LIGHTS],
                  description="Your products, active or not, a page of them.")
    @blp.paginate()
    def get(self, pagination_parameters):
        """List your products."""
        found = services.list_products(broker_context(), current_actor(), page_request(pagination_parameters))
        pagination_parameters.item_count = found.total
        return [_product(v.product, v.currency) for v in found.items]

    @allow(ActorKind.MANUFACTURER)
    @blp.arguments(s.ProductIn, example=ex.PRODUCT_IN)
    @blp.response(201, s.ProductOut, example=ex.PRODUCT, description="The product, on sale.")
    def post(self, cmd):
        """Add a product.

        `price` is in minor units of the store's currency: `7900` is 79.00 USD.

        :raise 409: A product with this SKU exists already.
        """
        view = services.add_product(broker_context(), current_actor(), cmd)
        return _product(view.product, view.currency)


# `path`, not `string`: a SKU may contain "/" (e.g. "BOX/2").
@blp.route("/products/<path:sku>")
class ProductBySku(MethodView):
    @allow(ActorKind.MANUFACTURER)
    @blp.arguments(s.ProductPatch, example=ex.PRODUCT_PATCH)
    @blp.response(200, s.ProductOut, example=ex.PRODUCT_PATCHED, description="The product as it is now.")
    def patch(self, changes, sku):
        """Edit a product.

        Send only what changes. `active: false` takes it off sale; `in_stock: false` shows it
        as sold out. Orders already placed keep their prices.

        :raise 404: None of your products has this SKU.
        """
        view = services.update_product(broker_context(), current_actor(), sku, changes)
        return _product(view.product, view.currency)


@blp.route("/storefronts/<string:slug>/products")
class StorefrontProducts(MethodView):
    @blp.response(200, s.ProductOut(many=True), example=[ex.PRODUCT, ex.LIGHTS],
                  description="The storefront's products on sale, a page of them.")
    @blp.paginate()
    def get(self, slug, pagination_parameters):
        """Read a storefront's catalog.

        Its active products, with prices in the store's currency.

        :raise 404: No storefront has this slug.
        """
        catalog = services.storefront_catalog(broker_context(), slug, page_request(pagination_parameters))
        pagination_parameters.item_count = catalog.products.total
        return [_product(p, catalog.manufacturer.currency) for p in catalog.products.items]
