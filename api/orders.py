from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api import present, problems
from api import schemas as s
from api.auth import access_token, allow, broker_context, current_actor, customer, customer_or_key
from api.paging import page_request
from broker.auth import ActorKind
from broker.orders import delivered, services
from broker.returns import services as returns

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
        """The customer asks to return a shipped order within the store's return window (`X-Access-Token`).

        The window counts from the shipment, also once the order is delivered.
        The answer is the order, its `returns` now holding this one. A 409 means
        the order has not shipped, is refunded, is past its window, or already
        has a return open or accepted; after a refusal the customer may ask
        again. The fulfiller (and the manufacturer, when it decides returns on
        this order) are emailed.
        """
        return present.order(returns.request_return(broker_context(), order_id, access_token(), data["reason"],
                                                    data.get("assignment_id")))


@blp.route("/orders/<int:order_id>/return/accept")
class AcceptReturn(MethodView):
    @allow(ActorKind.RETAILER, ActorKind.MANUFACTURER)
    @blp.arguments(s.ReturnDecisionIn, required=False)
    @blp.response(200, s.OrderOut)
    def post(self, data, order_id):
        """The fulfiller, or the order's manufacturer, accepts the open return.

        What was captured for the shipment and not refunded yet goes back to the
        card, out of the fulfiller's earning and the fee in proportion; a full
        refund makes the order `refunded`. The customer is emailed the amount.
        The body may be empty. A 404 means the order is not one whose returns
        the caller decides; a 409, that no return is open or nothing is left to
        refund; a 503, that the payment provider did not refund (nothing
        changed, try again).
        """
        return present.order(returns.accept_return(broker_context(), current_actor(), order_id,
                                                   data.get("return_id")))


@blp.route("/orders/<int:order_id>/return/refuse")
class RefuseReturn(MethodView):
    @allow(ActorKind.RETAILER, ActorKind.MANUFACTURER)
    @blp.arguments(s.RefuseReturnIn)
    @blp.response(200, s.OrderOut)
    def post(self, data, order_id):
        """The fulfiller, or the order's manufacturer, refuses the open return with a note.

        The note goes to the customer by email and shows on their order page;
        nothing is refunded, and the customer may ask again while the window is
        open. A 404 means the order is not one whose returns the caller decides;
        a 409, that no return is open; a 422, that the note is missing or over
        1,000 characters.
        """
        return present.order(returns.refuse_return(broker_context(), current_actor(), order_id, data["note"],
                                                   data.get("return_id")))


@blp.route("/orders/<int:order_id>/delivered")
class ConfirmDelivery(MethodView):
    @customer
    @blp.response(200, s.OrderOut)
    def post(self, order_id):
        """The customer says the order arrived (`X-Access-Token`): it becomes `delivered`.

        Saying it again changes nothing. A 409 means the order has not shipped
        yet, or was cancelled or refunded. An order nobody confirms is taken as
        delivered `BROKER_DELIVERED_AFTER_DAYS` after its shipment. Delivery
        opens the reviews, and the customer is invited by email to rate the store.
        """
        return present.order(delivered.confirm_delivery(broker_context(), order_id, access_token()))


@blp.route("/orders/<int:order_id>/cancel")
class CancelOrder(MethodView):
    @customer
    @blp.response(200, s.OrderOut)
    def post(self, order_id):
        """The customer cancels before shipment (`X-Access-Token`); the card hold is released.

        :raise 409: already shipped, or closed.
        """
        return present.order(services.cancel_order(broker_context(), order_id, access_token()))
