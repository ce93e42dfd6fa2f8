from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api import schemas as s
from api.auth import allow, broker_context, current_actor
from api.paging import page_request
from broker.auth import ActorKind
from broker.catalog import services

blp = Blueprint("catalog", __name__, url_prefix="/api/v1", description="Products and storefront catalogs")


def _product(p, currency=None):
    return {"sku": p.sku, "name": p.name, "price": p.price, "currency": currency, "description": p.description,
            "image_url": p.image_url, "active": p.active, "in_stock": p.in_stock}


@blp.route("/products")
class Products(MethodView):
    @allow(ActorKind.MANUFACTURER)
    @blp.response(200, s.ProductOut(many=True))
    @blp.paginate()
    def get(self, pagination_parameters):
        """The calling manufacturer's products, active or not."""
        found = services.list_products(broker_context(), current_actor(), page_request(pagination_parameters))
        pagination_parameters.item_count = found.total
        return [_product(v.product, v.currency) for v in found.items]

    @allow(ActorKind.MANUFACTURER)
    @blp.arguments(s.ProductIn)
    @blp.response(201, s.ProductOut)
    def post(self, cmd):
        """Add a product. `price` is in minor units of the store's currency. :raise 409: SKU exists."""
        view = services.add_product(broker_context(), current_actor(), cmd)
        return _product(view.product, view.currency)


# `path`, not `string`: a SKU may contain "/" (e.g. "BOX/2").
@blp.route("/products/<path:sku>")
class ProductBySku(MethodView):
    @allow(ActorKind.MANUFACTURER)
    @blp.arguments(s.ProductPatch)
    @blp.response(200, s.ProductOut)
    def patch(self, changes, sku):
        """Edit a product (`active: false` takes it off sale). :raise 404: not yours."""
        view = services.update_product(broker_context(), current_actor(), sku, changes)
        return _product(view.product, view.currency)


@blp.route("/storefronts/<string:slug>/products")
class StorefrontProducts(MethodView):
    @blp.response(200, s.ProductOut(many=True))
    @blp.paginate()
    def get(self, slug, pagination_parameters):
        """A storefront's catalog: its active products, for anyone. :raise 404: no such store."""
        catalog = services.storefront_catalog(broker_context(), slug, page_request(pagination_parameters))
        pagination_parameters.item_count = catalog.products.total
        return [_product(p, catalog.manufacturer.currency) for p in catalog.products.items]
