from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api import examples as ex
from api import present
from api import schemas as s
from api.auth import allow, broker_context, current_actor
from api.paging import page_request
from broker.auth import ActorKind
from broker.returns import services
from broker.returns.models import ReturnStatus

blp = Blueprint("returns", __name__, url_prefix="/api/v1", description="Returns: what customers asked to send back, for the fulfiller that shipped it and the order's manufacturer to accept (the card is refunded) or refuse with a note.")


@blp.route("/returns")
class Returns(MethodView):
    @allow(ActorKind.RETAILER, ActorKind.MANUFACTURER)
    @blp.arguments(s.ReturnQuery, location="query")
    @blp.response(200, s.ReturnOut(many=True), example=[ex.RETURN_ITEM], description="A page of returns.")
    @blp.paginate()
    def get(self, query, pagination_parameters):
        """List the returns you decide.

        Oldest first; `status=requested` for those waiting for an answer. A retailer sees the returns of what it shipped; a manufacturer, those on
        its orders whose customer it may see (what it ships, and what its
        dealers ship from its storefront). Each carries the customer's reason,
        the order's items and, while open, what accepting it would refund.
        Showing a reason is written to the customer's disclosure log.
        """
        status = ReturnStatus(query["status"]) if "status" in query else None
        found = services.list_returns(broker_context(), current_actor(), page_request(pagination_parameters),
                                      status)
        pagination_parameters.item_count = found.total
        return [present.return_item(view) for view in found.items]
