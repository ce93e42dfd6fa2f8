from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api import present
from api import examples as ex
from api import schemas as s
from api.auth import access_token, broker_context, current_actor, customer, customer_or_key
from broker.personal import services

blp = Blueprint("personal", __name__, url_prefix="/api/v1",
                description="Personal requests (\"I want this, here, for at most this much\"), posted anonymously "
                            "and answered by retailers' offers; and the relay between a customer and the fulfiller "
                            "of their order.")


@blp.route("/requests")
class Requests(MethodView):
    @blp.arguments(s.RequestIn, example=ex.REQUEST_IN)
    @blp.response(201, s.RequestCreated, example=ex.REQUEST_CREATED,
                  description="The request, with the customer's `access_token`: shown once.")
    def post(self, data):
        """Post a personal request.

        What you want, where, and the most you will pay (`max_price`, held on the card now).
        Retailers near `location` see it on their board under a pseudonym, with a coarse
        area: never a name, email or street. Name a catalog product with `manufacturer` and
        `sku` to reach that manufacturer's dealers only.

        The `access_token` is the customer's (or its agent's) key to the request and, once
        awarded, to its order. A `callback_url` gets signed notices of offers and of the
        award.

        :raise 402: The payment could not be set up (the card was declined); nothing was charged.
        :raise 422: A field is invalid: no description and no `sku`, a `sku` not for sale at `manufacturer`,
            a currency that is not the store's, an `expires_at` too soon or too far, a `callback_url` Broker
            will not call.
        :raise 503: The payment provider did not answer; nothing was charged, try again.
        """
        cmd = services.PostRequest(
            description=data["description"], quantity=data["quantity"], max_price=data["max_price"],
            currency=data["currency"], location=data["location"], ship_to=services.ShipTo(**data["ship_to"]),
            sku=data.get("sku"), manufacturer=data.get("manufacturer"), prefer=data["prefer"],
            expires_at=data.get("expires_at"), callback_url=data.get("callback_url"), contact=data.get("contact"),
        )
        posted = services.post_request(broker_context(), cmd)
        view = services.RequestView(posted.request, [], posted.payment, None, closes_at=posted.closes_at)
        out = present.personal_request(view)
        out["access_token"] = posted.access_token
        out["payment"]["client_secret"] = posted.client_secret
        return out


@blp.route("/requests/<int:request_id>")
class RequestById(MethodView):
    @customer
    @blp.response(200, s.RequestOut, example=ex.REQUEST_WITH_OFFERS, description="The request and its offers.")
    def get(self, request_id):
        """Read a personal request.

        With its offers: price, the retailer's distance to your place, its name and rating.

        :raise 404: No such request, or the token is not this request's.
        """
        return present.personal_request(services.get_request(broker_context(), request_id, access_token()))


@blp.route("/requests/<int:request_id>/accept")
class Accept(MethodView):
    @customer
    @blp.arguments(s.AcceptIn, example=ex.ACCEPT_IN)
    @blp.response(200, s.RequestOut, example=ex.REQUEST_AWARDED,
                  description="The request, `awarded`, with its `order_id`.")
    def post(self, data, request_id):
        """Accept an offer.

        Now, instead of waiting for settlement: it becomes an order (`order_id`), charged at
        the offer's price when it ships. The request's token opens the order too.

        :raise 404: No such request, the token is not this request's, or it has no offer with this `bid_id`.
        :raise 409: The request is not open any more.
        :raise 422: This offer can no longer be accepted (withdrawn, or its store closed or out of range).
        """
        view = services.accept_offer(broker_context(), request_id, access_token(), data["bid_id"])
        return present.personal_request(view)


@blp.route("/requests/<int:request_id>/cancel")
class Cancel(MethodView):
    @customer
    @blp.response(200, s.RequestOut, example=ex.REQUEST_CANCELLED,
                  description="The request, `cancelled`, its hold `released`.")
    def post(self, request_id):
        """Withdraw a personal request.

        While it is open: it leaves the board and the hold on the card is released.

        :raise 404: No such request, or the token is not this request's.
        :raise 409: The request is not open any more (awarded, expired or cancelled).
        :raise 503: The payment provider could not release the hold; nothing changed, try again.
        """
        return present.personal_request(services.cancel_request(broker_context(), request_id, access_token()))


def _message(m, me, fulfillers):
    return {"id": m.id, "sender": m.sender, "body": m.body, "created_at": m.created_at, "mine": m.sender == me,
            "assignment_id": m.assignment_id, "fulfiller": fulfillers.get(m.assignment_id)}


@blp.route("/orders/<int:order_id>/messages")
class Messages(MethodView):
    @customer_or_key
    @blp.response(200, s.MessageOut(many=True), example=ex.MESSAGES, description="The messages, oldest first.")
    def get(self, order_id):
        """Read the messages on an order.

        The relay between the customer and the fulfiller: neither sees the other's email. A
        fulfiller (its key) reads its own thread with the customer, never what was written
        to a fulfiller the order had before. The customer (`X-Access-Token`) reads all their
        threads on the order, each message with its `assignment_id` and who the thread is
        with (`fulfiller`).

        :raise 404: No such order, or the caller is no party to it now.
        """
        thread = services.messages(broker_context(), order_id, actor=current_actor(), token=access_token())
        return [_message(m, thread.me, thread.fulfillers) for m in thread.messages]

    @customer_or_key
    @blp.arguments(s.MessageIn, example=ex.MESSAGE_IN)
    @blp.response(201, s.MessageOut, example=ex.MESSAGE, description="The message, sent.")
    def post(self, data, order_id):
        """Write a message on an order.

        To the other side, through Broker: neither sees the other's email. The message goes
        to the thread of the order's current fulfiller.

        :raise 404: No such order, or the caller is no party to it now.
        :raise 409: No one is fulfilling the order now (before the award, or after a cancellation): there is
            no one to write to.
        :raise 422: An empty message, or one longer than 2000 characters.
        """
        ctx, actor, token = broker_context(), current_actor(), access_token()
        thread = services.send_message(ctx, order_id, data["body"], actor=actor, token=token)
        [message] = thread.messages
        return _message(message, thread.me, thread.fulfillers)
