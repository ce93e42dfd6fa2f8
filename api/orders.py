from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api import present
from api import examples as ex
from api import schemas as s
from api.auth import access_token, allow, broker_context, current_actor, customer, customer_or_key
from api.paging import page_request
from broker.auth import ActorKind
from broker.orders import delivered, services
from broker.returns import services as returns

blp = Blueprint("orders", __name__, url_prefix="/api/v1",
                description="Orders: placed on a storefront, followed by the customer, the manufacturer and the "
                            "fulfiller; cancelled, returned.")


@blp.route("/storefronts/<string:slug>/orders")
class StorefrontOrders(MethodView):
    @blp.arguments(s.OrderIn, example=ex.ORDER_IN)
    @blp.response(201, s.OrderCreated, example=ex.ORDER_CREATED,
                  description="The order, with the customer's `access_token` (and a pickup's `pickup_code`): "
                              "shown once.")
    def post(self, cmd, slug):
        """Place an order.

        Prices come from the catalog, never from the request. The card is authorised, not
        charged: it is captured when the order ships. With the offline provider the payment
        is authorised at once and the order is `open` (on the board); with Stripe it waits in
        `awaiting_payment` until Stripe confirms the card (`client_secret`).

        The `access_token` is the customer's key to the order (send it as `X-Access-Token`);
        it is shown once.

        :raise 402: The payment could not be set up (the card was declined); nothing was charged.
        :raise 404: No storefront has this slug.
        :raise 422: A field is invalid, or an item is not for sale or is sold out (`items.0.sku`).
        :raise 503: The payment provider did not answer; nothing was charged, try again.
        """
        placed = services.place_order(broker_context(), slug, cmd)
        p = placed.payment
        return {
            "id": placed.order.id, "status": placed.order.status, **present.totals(placed.order),
            "currency": placed.order.currency, "access_token": placed.access_token,
            "payment": {"provider": p.provider, "status": p.status, "test_mode": p.test_mode, "amount": p.amount,
                        "client_secret": placed.client_secret},
            **({"pickup_code": placed.pickup_code} if placed.pickup_code else {}),
        }


@blp.route("/orders")
class Orders(MethodView):
    @allow(ActorKind.MANUFACTURER)
    @blp.arguments(s.OrderQuery, location="query")
    @blp.response(200, s.OrderOut(many=True), example=[ex.ORDER_OPEN],
                  description="Your orders, newest first, a page of them.")
    @blp.paginate()
    def get(self, query, pagination_parameters):
        """List your orders.

        Newest first; filter by `status`, and by `fulfiller` (`manufacturer`, `retailer`, or
        one retailer's id).
        """
        found = services.list_orders(broker_context(), current_actor(), services.OrderFilter(**query),
                                     page_request(pagination_parameters))
        pagination_parameters.item_count = found.total
        return [present.order(view) for view in found.items]


@blp.route("/orders/<int:order_id>")
class OrderById(MethodView):
    @customer_or_key
    @blp.response(200, s.OrderOut, example=ex.ORDER_OPEN, description="The order, as this caller may see it.")
    def get(self, order_id):
        """Read an order.

        As the caller may see it: the customer (`X-Access-Token`) and the manufacturer see
        everything; the fulfiller sees the ship-to but not the email, and not the payment.

        :raise 403: The operator's token: the operator is no party to an order.
        :raise 404: No such order, or the caller is no party to it (a retailer that did not win it).
        """
        return present.order(services.get_order(broker_context(), current_actor(), order_id, access_token()))


@blp.route("/orders/<int:order_id>/return")
class ReturnRequest(MethodView):
    @customer
    @blp.arguments(s.ReturnIn, example=ex.RETURN_IN)
    @blp.response(200, s.OrderOut, example=ex.ORDER_RETURN_ASKED,
                  description="The order, with `return_requested_at`.")
    def post(self, data, order_id):
        """Ask to return an order.

        The customer asks to return a shipped order within the store's return window, which
        counts from the shipment, also once the order is delivered. The fulfiller (and the
        manufacturer, when it decides returns on this order) are emailed, and accept it
        (`POST /orders/{order_id}/return/accept`: the card is refunded) or refuse it with a
        note (`POST /orders/{order_id}/return/refuse`). After a refusal the customer may ask
        again while the window is open. The answer is the order, its `returns` holding this one.

        :raise 404: No such order, or the token is not this order's.
        :raise 409: Not shipped yet, refunded, past the return window, or a return is already
            open or accepted.
        :raise 422: No reason given, or one longer than 500 characters.
        """
        return present.order(returns.request_return(broker_context(), order_id, access_token(), data["reason"],
                                                    data.get("assignment_id")))


@blp.route("/orders/<int:order_id>/return/accept")
class AcceptReturn(MethodView):
    @allow(ActorKind.RETAILER, ActorKind.MANUFACTURER)
    @blp.arguments(s.ReturnDecisionIn, required=False, example={})
    @blp.response(200, s.OrderOut, example=ex.ORDER_RETURNED, description="The order, `refunded` when all was refunded.")
    def post(self, data, order_id):
        """Accept a return.

        The fulfiller, or the order's manufacturer, accepts the open return: what was captured
        for the shipment and not refunded yet goes back to the card, out of the fulfiller's
        earning and the fee in proportion; a full refund makes the order `refunded`. The
        customer is emailed the amount. The body may be empty.

        :raise 404: Not an order whose returns the caller decides.
        :raise 409: No return is open, or nothing is left to refund.
        :raise 503: The payment provider refused the refund; nothing changed, try again.
        """
        return present.order(returns.accept_return(broker_context(), current_actor(), order_id,
                                                   data.get("return_id")))


@blp.route("/orders/<int:order_id>/return/refuse")
class RefuseReturn(MethodView):
    @allow(ActorKind.RETAILER, ActorKind.MANUFACTURER)
    @blp.arguments(s.RefuseReturnIn, example=ex.RETURN_REFUSE_IN)
    @blp.response(200, s.OrderOut, example=ex.ORDER_RETURN_REFUSED, description="The order, its return refused.")
    def post(self, data, order_id):
        """Refuse a return.

        The fulfiller, or the order's manufacturer, refuses the open return with a note. The
        note goes to the customer by email and shows on their order page; nothing is
        refunded, and the customer may ask again while the window is open.

        :raise 404: Not an order whose returns the caller decides.
        :raise 409: No return is open.
        :raise 422: The note is missing, or longer than 1,000 characters.
        """
        return present.order(returns.refuse_return(broker_context(), current_actor(), order_id, data["note"],
                                                   data.get("return_id")))


@blp.route("/orders/<int:order_id>/delivered")
class ConfirmDelivery(MethodView):
    @customer
    @blp.response(200, s.OrderOut, example=ex.ORDER_DELIVERED, description="The order, `delivered`.")
    def post(self, order_id):
        """Confirm delivery.

        The customer says the order arrived: it becomes `delivered`. Saying it again changes
        nothing. An order nobody confirms is taken as delivered `BROKER_DELIVERED_AFTER_DAYS`
        after its shipment. Delivery opens the reviews, and the customer is invited by email
        to rate the store.

        :raise 404: No such order, or the token is not this order's.
        :raise 409: The order has not shipped yet, or was cancelled or refunded.
        """
        return present.order(delivered.confirm_delivery(broker_context(), order_id, access_token()))


@blp.route("/orders/<int:order_id>/cancel")
class CancelOrder(MethodView):
    @customer
    @blp.response(200, s.OrderOut, example=ex.ORDER_CANCELLED,
                  description="The order, `cancelled`, its payment `released`.")
    def post(self, order_id):
        """Cancel an order.

        The customer cancels before shipment; the hold on the card is released and the
        order leaves the board, or its fulfiller's list.

        :raise 404: No such order, or the token is not this order's.
        :raise 409: The order has shipped, or is closed already.
        :raise 503: The payment provider could not release the hold; nothing changed, try again.
        """
        return present.order(services.cancel_order(broker_context(), order_id, access_token()))
