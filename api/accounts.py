from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api import present
from api import schemas as s
from api.auth import allow, broker_context, current_actor
from api.paging import page_request
from broker.auth import ActorKind
from broker.accounts import services

blp = Blueprint("accounts", __name__, url_prefix="/api/v1", description="Manufacturers, retailers, stores, dealers")


@blp.route("/manufacturers")
class Manufacturers(MethodView):
    @allow(ActorKind.OPERATOR)
    @blp.arguments(s.ManufacturerIn)
    @blp.response(201, s.ManufacturerCreated)
    def post(self, cmd):
        """Create a manufacturer and its storefront (operator only).

        The response carries the manufacturer's API key, once.
        """
        maker, key = services.create_manufacturer(broker_context(), current_actor(), cmd)
        return {"id": maker.id, "slug": maker.slug, "api_key": key}


@blp.route("/retailers")
class Retailers(MethodView):
    @allow(ActorKind.OPERATOR)
    @blp.arguments(s.RetailerIn)
    @blp.response(201, s.RetailerCreated)
    def post(self, cmd):
        """Create a retailer with its first store (operator only).

        The response carries the retailer's API key, once.
        """
        retailer, store, key = services.create_retailer(broker_context(), current_actor(), cmd)
        return {"id": retailer.id, "store_id": store.id, "api_key": key}


@blp.route("/stores")
class Stores(MethodView):
    @allow(ActorKind.RETAILER)
    @blp.response(200, s.StoreOut(many=True))
    @blp.paginate()
    def get(self, pagination_parameters):
        """The calling retailer's stores, each with its address, opening hours, time
        zone and whether it is open now by its hours."""
        ctx = broker_context()
        found = services.list_stores(ctx, current_actor(), page_request(pagination_parameters))
        pagination_parameters.item_count = found.total
        return [present.store(store, ctx.now()) for store in found.items]

    @allow(ActorKind.RETAILER)
    @blp.arguments(s.StoreIn)
    @blp.response(201, s.StoreOut)
    def post(self, cmd):
        """Add a store (another location and service radius) to the calling retailer.

        Give its `location`, its `address`, or both: without a location the store
        is placed at the address's postal code. A wrong address field, opening
        hour or time zone is a 422 naming the field (`address.postal_code`,
        `hours.tue.0.closes`, `timezone`).
        """
        ctx = broker_context()
        return present.store(services.add_store(ctx, current_actor(), cmd), ctx.now())


@blp.route("/stores/<int:store_id>")
class StoreById(MethodView):
    @allow(ActorKind.RETAILER)
    @blp.arguments(s.StorePatch)
    @blp.response(200, s.StoreOut)
    def patch(self, changes, store_id):
        """Change a store: name, radius, location, open or closed, address, hours,
        time zone. Only the fields given change; `hours: null` clears the hours.

        A store of another retailer is a 404, as one that does not exist. Bad
        input is a 422 naming each wrong field.
        """
        ctx = broker_context()
        return present.store(services.update_store(ctx, current_actor(), store_id, changes), ctx.now())


@blp.route("/dealers")
class Dealers(MethodView):
    @allow(ActorKind.MANUFACTURER)
    @blp.response(200, s.DealerOut(many=True))
    @blp.paginate()
    def get(self, pagination_parameters):
        """The calling manufacturer's authorised dealers."""
        found = services.list_dealers(broker_context(), current_actor(), page_request(pagination_parameters))
        pagination_parameters.item_count = found.total
        return found.items

    @allow(ActorKind.MANUFACTURER)
    @blp.arguments(s.DealerIn)
    @blp.response(201, s.DealerOut)
    def post(self, data):
        """Authorise a retailer as a dealer: it sees this manufacturer's orders near its stores."""
        return services.authorise_dealer(broker_context(), current_actor(), data["retailer_id"])


@blp.route("/dealers/<int:retailer_id>")
class DealerById(MethodView):
    @allow(ActorKind.MANUFACTURER)
    @blp.response(204)
    def delete(self, retailer_id):
        """Revoke a dealer. Its open bids on this manufacturer's orders stop counting."""
        services.revoke_dealer(broker_context(), current_actor(), retailer_id)
