"""Stock per store and SKU, standing bids, and a manufacturer's view of its dealers' stock."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api.paging import page_request
from api import examples as ex
from api import schemas as s
from api.auth import allow, broker_context, current_actor
from broker.auth import ActorKind
from broker.stock import services

blp = Blueprint("stock", __name__, url_prefix="/api/v1",
                description="A store's stock per SKU, standing bids that bid from it, and where a manufacturer's "
                            "products are in stock.")


def _stock(view: services.StockView) -> dict:
    return {"store_id": view.store_id, "updated_at": view.updated_at, "age_hours": view.age_hours,
            "fresh": view.fresh, "standing_bids_placed": view.standing_bids_placed,
            "items": [{"sku": i.sku, "quantity": i.quantity, "reserved": i.reserved, "available": i.available}
                      for i in view.items]}


def _items(data) -> list[services.StockItem]:
    return [services.StockItem(i["sku"], i["quantity"]) for i in data["items"]]


@blp.route("/stores/<int:store_id>/stock")
class Stock(MethodView):
    @allow(ActorKind.RETAILER)
    @blp.response(200, s.StockOut, example=ex.STOCK, description="The store's stock and its feed's age.")
    def get(self, store_id):
        """Read a store's stock.

        Per SKU: on the shelf, reserved by awards, still available; and the feed's age.

        :raise 404: Not a store of yours.
        """
        return _stock(services.get_stock(broker_context(), current_actor(), store_id))

    @allow(ActorKind.RETAILER)
    @blp.arguments(s.StockIn, example=ex.STOCK_IN)
    @blp.response(200, s.StockOut, example=ex.STOCK,
                  description="The stock as it is now, and how many standing bids it placed.")
    def put(self, data, store_id):
        """Replace a store's stock.

        The whole stock, as a snapshot: a SKU it does not name is out of stock. The feed is
        fresh from now (for BROKER_STOCK_MAX_AGE_HOURS), and your standing bids bid at once
        on open listings now in stock.

        :raise 404: Not a store of yours.
        :raise 422: A SKU named twice, a blank one, or a quantity that is not 0 to 1,000,000.
        """
        return _stock(services.set_stock(broker_context(), current_actor(), store_id, _items(data), snapshot=True))

    @allow(ActorKind.RETAILER)
    @blp.arguments(s.StockIn, example=ex.STOCK_IN)
    @blp.response(200, s.StockOut, example=ex.STOCK,
                  description="The stock as it is now, and how many standing bids it placed.")
    def patch(self, data, store_id):
        """Change a store's stock.

        Sets the SKUs it names and leaves the others as they are; the feed is fresh from now.

        :raise 404: Not a store of yours.
        :raise 422: As for the snapshot.
        """
        return _stock(services.set_stock(broker_context(), current_actor(), store_id, _items(data), snapshot=False))


@blp.route("/dealer-stock")
class DealerStock(MethodView):
    @allow(ActorKind.MANUFACTURER)
    @blp.arguments(s.DealerStockQuery, location="query")
    @blp.response(200, s.DealerStockOut(many=True), example=ex.DEALER_STOCK,
                  description="A page of your products in your dealers' stores, by SKU, then dealer.")
    @blp.paginate()
    def get(self, query, pagination_parameters):
        """Where your products are in stock.

        Per dealer store and SKU of your catalog, with the feed's age; `fresh` false: the
        feed is older than BROKER_STOCK_MAX_AGE_HOURS and no longer counts.
        """
        found = services.dealer_stock(broker_context(), current_actor(), page_request(pagination_parameters),
                                      query.get("sku"))
        pagination_parameters.item_count = found.total
        return [vars(row) for row in found.items]


def _rule(view: services.StandingBidView) -> dict:
    r = view.rule
    return {"id": r.id, "store_id": r.store_id, "manufacturers": list(view.manufacturer_slugs),
            "max_distance_km": r.max_distance_km, "partial": r.partial, "created_at": r.created_at,
            "placed": view.placed}


@blp.route("/standing-bids")
class StandingBids(MethodView):
    @allow(ActorKind.RETAILER)
    @blp.response(200, s.StandingBidOut(many=True), example=[ex.STANDING_BID],
                  description="Your standing bids still in force.")
    def get(self):
        """List your standing bids."""
        return [_rule(view) for view in services.list_standing_bids(broker_context(), current_actor())]

    @allow(ActorKind.RETAILER)
    @blp.arguments(s.StandingBidIn, example=ex.STANDING_BID_IN)
    @blp.response(201, s.StandingBidOut, example=ex.STANDING_BID,
                  description="The standing bid, and how many bids it placed at once.")
    def post(self, data):
        """Set a standing bid.

        Bids for you on every order listing of these manufacturers within `max_distance_km`
        of your store whose lines are in stock there (by your stock feed), or on the lines in
        stock if `partial`: at once on the listings open now, and then whenever a listing is
        posted or your stock changes. Its bids are like any other: on your board, withdrawable,
        and told their outcome.

        :raise 422: A distance not over 0 and at most 1,000; a store not yours; a manufacturer you
            are not a dealer of; more than 50 standing bids.
        """
        cmd = services.NewStandingBid(max_distance_km=data["max_distance_km"], store_id=data.get("store_id"),
                                      manufacturers=tuple(data.get("manufacturers", ())),
                                      partial=data.get("partial", False))
        return _rule(services.create_standing_bid(broker_context(), current_actor(), cmd)), 201


@blp.route("/standing-bids/<int:rule_id>")
class StandingBid(MethodView):
    @allow(ActorKind.RETAILER)
    @blp.response(204, description="Removed: it bids no more. The bids it placed stay yours to withdraw.")
    def delete(self, rule_id):
        """Remove a standing bid.

        :raise 404: No standing bid of yours with that id.
        """
        services.remove_standing_bid(broker_context(), current_actor(), rule_id)
