from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api import present
from api import schemas as s
from api.auth import allow, broker_context, current_actor
from api.paging import page_request
from broker.auth import ActorKind
from broker.board import services
from broker.board.models import ListingKind

blp = Blueprint("board", __name__, url_prefix="/api/v1", description="The board and bids")


@blp.route("/board")
class Board(MethodView):
    @allow(ActorKind.RETAILER)
    @blp.arguments(s.BoardQuery, location="query")
    @blp.response(200, s.BoardItemOut(many=True), headers={"X-Total-Exact": {
        "description": "`false` when the total in X-Pagination is a lower bound: a board past "
                       "BROKER_BOARD_COUNT_LIMIT listings is counted only that far (its pages are all served).",
        "schema": {"type": "string", "enum": ["true", "false"]}}})
    @blp.paginate()
    def get(self, query, pagination_parameters):
        """Open listings the calling retailer may bid on, nearest first. Nothing about who."""
        filters = services.BoardFilter(
            kind=ListingKind(query["kind"]) if "kind" in query else None,
            max_distance_km=query.get("max_distance_km"),
        )
        found = services.board(broker_context(), current_actor(), filters, page_request(pagination_parameters))
        pagination_parameters.item_count = found.total
        return [present.board_item(item) for item in found.items], {"X-Total-Exact": str(found.exact).lower()}


@blp.route("/board/<int:listing_id>/bids")
class Bids(MethodView):
    @allow(ActorKind.RETAILER)
    @blp.arguments(s.BidIn)
    @blp.response(201, s.BidOut)
    @blp.alt_response(200, schema=s.BidOut, description="You had already bid: the same bid.")
    def post(self, data, listing_id):
        """Bid: in stock, will ship at the listing's price. `{}` for an order; name a
        `store_id` to ship from a store other than the nearest covering one.

        :raise 404: not on your board. :raise 409: closed. :raise 422: bad store or price.
        """
        bid, created = services.place_bid(broker_context(), current_actor(),
                                          services.PlaceBid(listing_id=listing_id, **data))
        return bid, (201 if created else 200)

    @allow(ActorKind.RETAILER)
    @blp.response(204)
    def delete(self, listing_id):
        """Withdraw your bid while the listing is open."""
        services.withdraw_bid(broker_context(), current_actor(), listing_id)
