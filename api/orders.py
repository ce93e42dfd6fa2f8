from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api import present, problems
from api import schemas as s
from api.auth import access_token, allow, broker_context, current_actor, customer, customer_or_key
from api.paging import page_request
from broker.auth import ActorKind
from broker.orders import services

blp = Blueprint("orders", __name__, url_prefix="/api/v1", description="Orders")


@blp.route("/storefronts/<string:slug>/orders")
class StorefrontOrders(MethodView):
    @blp.arguments(s.OrderIn)
    @blp.response(201, s.OrderCreated)
    @blp.alt_response(429, response=problems.response_name(429))  # web.security.RATE_LIMITS
    def post(self, cmd, slug):
        """Place an order. Prices come from the catalog, never from the request.

        With the offline provider the payment is authorised at once and the order
        is `open` (on the board). The `access_token` is the customer's key to the
        order (send it as `X-Access-Token`); it is shown once.
        """
        placed = services.place_order(broker_context(), slug, cmd)
        p = placed.payment
        return {
            "id": placed.order.id, "status": placed.order.status, "total": placed.order.total,
            "currency": placed.order.currency, "access_token": placed.access_token,
            "payment": {"provider": p.provider, "status": p.status, "test_mode": p.test_mode, "amount": p.amount,
                        "client_secret": placed.client_secret},
            **({"pickup_code": placed.pickup_code} if placed.pickup_code else {}),
        }


@blp.route("/orders")
class Orders(MethodView):
    @allow(ActorKind.MANUFACTURER)
    @blp.arguments(s.OrderQuery, location="query")
    @blp.response(200, s.OrderOut(many=True))
    @blp.paginate()
    def get(self, query, pagination_parameters):
        """The calling manufacturer's orders, newest first, by `status` and `fulfiller`."""
        found = services.list_orders(broker_context(), current_actor(), services.OrderFilter(**query),
                                     page_request(pagination_parameters))
        pagination_parameters.item_count = found.total
        return [present.order(view) for view in found.items]


@blp.route("/orders/<int:order_id>")
class OrderById(MethodView):
    @customer_or_key
    @blp.response(200, s.OrderOut)
    def get(self, order_id):
        """The order as the caller may see it: the customer (`X-Access-Token`), its
        manufacturer, or its fulfiller (who sees the ship-to but not the email).

        :raise 401: no credentials. :raise 403: the operator (no party to any order). :raise 404: anyone else.
        """
        return present.order(services.get_order(broker_context(), current_actor(), order_id, access_token()))


@blp.route("/orders/<int:order_id>/return")
class ReturnRequest(MethodView):
    @customer
    @blp.arguments(s.ReturnIn)
    @blp.response(200, s.OrderOut)
    def post(self, data, order_id):
        """The customer asks to return a shipped order within the store's return window (`X-Access-Token`)."""
        return present.order(services.request_return(broker_context(), order_id, access_token(), data["reason"]))


@blp.route("/orders/<int:order_id>/return/accept")
class AcceptReturn(MethodView):
    @allow(ActorKind.RETAILER, ActorKind.MANUFACTURER)
    @blp.response(200, s.OrderOut)
    def post(self, order_id):
        """The fulfiller accepts the return: the order is refunded to the card."""
        return present.order(services.accept_return(broker_context(), current_actor(), order_id))


@blp.route("/orders/<int:order_id>/cancel")
class CancelOrder(MethodView):
    @customer
    @blp.response(200, s.OrderOut)
    def post(self, order_id):
        """The customer cancels before shipment (`X-Access-Token`); the card hold is released.

        :raise 409: already shipped, or closed.
        """
        return present.order(services.cancel_order(broker_context(), order_id, access_token()))
