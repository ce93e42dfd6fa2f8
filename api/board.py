from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api import present
from api import examples as ex
from api import schemas as s
from api.auth import allow, broker_context, current_actor
from api.paging import page_request
from broker.auth import ActorKind
from broker.board import services
from broker.board.models import ListingKind

blp = Blueprint("board", __name__, url_prefix="/api/v1",
                description="The board: open orders and personal requests near a retailer's stores, and its bids. "
                            "Nothing on it says who the customer is.")


@blp.route("/board")
class Board(MethodView):
    @allow(ActorKind.RETAILER)
    @blp.arguments(s.BoardQuery, location="query")
    @blp.response(200, s.BoardItemOut(many=True), example=ex.BOARD,
                  description="Listings you may bid on, nearest first, a page of them.", headers={"X-Total-Exact": {
        "description": "`false` when the total in X-Pagination is a lower bound: a board past "
                       "BROKER_BOARD_COUNT_LIMIT listings is counted only that far (its pages are all served).",
        "schema": {"type": "string", "enum": ["true", "false"]}}})
    @blp.paginate()
    def get(self, query, pagination_parameters):
        """Read your board.

        The open listings you may bid on, nearest first: orders of the manufacturers you are
        a dealer of, and personal requests, within the radius of one of your open stores.
        Each shows what is wanted, the price (or a request's ceiling), a coarse area and your
        distance to it in whole kilometres, and your bid if you made one: never who, nor
        where exactly. Filter by `kind` (`order` or `request`) and `max_distance_km`.
        """
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
    @blp.arguments(s.BidIn(), examples=ex.BID_IN_EXAMPLES)
    @blp.response(201, s.BidOut, example=ex.BID, description="Your bid, new.")
    @blp.alt_response(200, schema=s.BidOut, example=ex.BID,
                      description="You had bid already (a repeat, or two at once): the same bid, unchanged, or "
                                  "with its improved `price` on a request.")
    def post(self, data, listing_id):
        """Bid on a listing.

        A bid says: in stock, and I will ship it at the listing's price. On an order send
        `{}` for all of it, or `items` (`[{"sku" or "line_id", "quantity"}]`) for the lines you
        can fill (a bid again with other items resizes it); a `store_id` ships from a store
        other than your nearest covering one. On
        a personal request send your `price`, at most its `max_price`. Safe to repeat: one bid
        per listing and retailer, and a repeat answers 200 with it. A lower `price` improves
        an offer. Settlement gives each order to the nearest bidder.

        :raise 404: No such listing on your board.
        :raise 409: The listing is closed for bids.
        :raise 422: A `store_id` that is not one of your open stores or does not cover the listing; a
            `price` on an order; `items` that are not lines of the order, name one twice, or ask for
            none or more than was ordered (every one wrong is named); `items` on a request; no `price`, or one above the ceiling or above your current offer, on a
            request.
        """
        items = data.pop("items", data.pop("lines", None))
        if items is not None:
            items = tuple(services.BidItem(quantity=i["quantity"], sku=i.get("sku"), line_id=i.get("line_id"))
                          for i in items)
        bid, created = services.place_bid(broker_context(), current_actor(),
                                          services.PlaceBid(listing_id=listing_id, items=items, **data))
        return bid, (201 if created else 200)

    @allow(ActorKind.RETAILER)
    @blp.response(204, description="Withdrawn: nothing to show.")
    def delete(self, listing_id):
        """Withdraw your bid.

        While the listing is open: the bid no longer counts at settlement.

        :raise 404: You have no bid on this listing.
        :raise 409: The listing is closed; its bids can no longer be withdrawn.
        """
        services.withdraw_bid(broker_context(), current_actor(), listing_id)
