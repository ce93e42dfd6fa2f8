from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api import examples as ex
from api import present
from api import schemas as s
from api.auth import allow, broker_context, current_actor
from api.paging import page_request
from broker.auth import ActorKind
from broker.accounts import services

blp = Blueprint("accounts", __name__, url_prefix="/api/v1",
                description="Accounts: the operator creates manufacturers and retailers; a retailer adds stores; a "
                            "manufacturer authorises retailers as its dealers.")


@blp.route("/manufacturers")
class Manufacturers(MethodView):
    @allow(ActorKind.OPERATOR)
    @blp.arguments(s.ManufacturerIn, example=ex.MANUFACTURER_IN)
    @blp.response(201, s.ManufacturerCreated, example=ex.MANUFACTURER_CREATED,
                  description="The manufacturer, with its API key: shown once.")
    def post(self, cmd):
        """Create a manufacturer and its storefront.

        The storefront is at `/s/<slug>/` and sells in `currency`. The answer carries the
        manufacturer's API key, once: Broker keeps only its hash.

        :raise 409: The slug is taken.
        :raise 422: A field is invalid: a slug that is not lowercase letters, digits and inner hyphens, a
            currency that is not ISO 4217, a location that cannot be found.
        """
        maker, key = services.create_manufacturer(broker_context(), current_actor(), cmd)
        return {"id": maker.id, "slug": maker.slug, "api_key": key}


@blp.route("/retailers")
class Retailers(MethodView):
    @allow(ActorKind.OPERATOR)
    @blp.arguments(s.RetailerIn, example=ex.RETAILER_IN)
    @blp.response(201, s.RetailerCreated, example=ex.RETAILER_CREATED,
                  description="The retailer and its first store, with its API key: shown once.")
    def post(self, cmd):
        """Create a retailer with its first store.

        The answer carries the retailer's API key, once. It sees nothing on the board until a
        manufacturer authorises it as a dealer (`POST /dealers`).
        """
        retailer, store, key = services.create_retailer(broker_context(), current_actor(), cmd)
        return {"id": retailer.id, "store_id": store.id, "api_key": key}


@blp.route("/stores")
class Stores(MethodView):
    @allow(ActorKind.RETAILER)
    @blp.response(200, s.StoreOut(many=True), example=[ex.STORE], description="Your stores, a page of them.")
    @blp.paginate()
    def get(self, pagination_parameters):
        """List your stores.

        Each with its address, opening hours, time zone and whether it is open now.
        """
        ctx = broker_context()
        found = services.list_stores(ctx, current_actor(), page_request(pagination_parameters))
        pagination_parameters.item_count = found.total
        return [present.store(store, ctx.now()) for store in found.items]

    @allow(ActorKind.RETAILER)
    @blp.arguments(s.StoreIn, example=ex.STORE_IN)
    @blp.response(201, s.StoreOut, example=ex.STORE_ADDED, description="The new store.")
    def post(self, cmd):
        """Add a store.

        Another location with its own service radius: your board shows what any open store
        of yours covers, and a bid ships from the nearest one that covers the listing.
        Give its `location`, its `address`, or both: without a location the store is placed
        at the address's postal code.

        :raise 422: A wrong address field, opening hour or time zone, named in `errors`
            (`address.postal_code`, `hours.tue.0.closes`, `timezone`).
        """
        ctx = broker_context()
        return present.store(services.add_store(ctx, current_actor(), cmd), ctx.now())


@blp.route("/stores/<int:store_id>")
class StoreById(MethodView):
    @allow(ActorKind.RETAILER)
    @blp.arguments(s.StorePatch, example=ex.STORE_PATCH)
    @blp.response(200, s.StoreOut, example=ex.STORE_PATCHED, description="The store as it is now.")
    def patch(self, changes, store_id):
        """Change a store.

        Its name, service radius, location, whether it is open, its address, opening hours or
        time zone. Send only what changes; `hours: null` clears the hours.

        :raise 404: No such store among yours.
        :raise 422: A wrong field, named in `errors`.
        """
        ctx = broker_context()
        return present.store(services.update_store(ctx, current_actor(), store_id, changes), ctx.now())


@blp.route("/dealers")
class Dealers(MethodView):
    @allow(ActorKind.MANUFACTURER)
    @blp.response(200, s.DealerOut(many=True), example=[ex.DEALER], description="Your dealers, a page of them.")
    @blp.paginate()
    def get(self, pagination_parameters):
        """List your authorised dealers."""
        found = services.list_dealers(broker_context(), current_actor(), page_request(pagination_parameters))
        pagination_parameters.item_count = found.total
        return found.items

    @allow(ActorKind.MANUFACTURER)
    @blp.arguments(s.DealerIn, example=ex.DEALER_IN)
    @blp.response(201, s.DealerOut, example=ex.DEALER, description="The dealer.")
    def post(self, data):
        """Authorise a retailer as a dealer.

        From now on it sees your orders near its stores on its board, and may bid.

        :raise 422: No retailer has this `retailer_id`.
        """
        return services.authorise_dealer(broker_context(), current_actor(), data["retailer_id"])


@blp.route("/dealers/<int:retailer_id>")
class DealerById(MethodView):
    @allow(ActorKind.MANUFACTURER)
    @blp.response(204, description="Revoked: nothing to show.")
    def delete(self, retailer_id):
        """Revoke a dealer.

        Your orders leave its board, and its open bids on them stop counting.

        :raise 404: This retailer is not one of your dealers.
        """
        services.revoke_dealer(broker_context(), current_actor(), retailer_id)
