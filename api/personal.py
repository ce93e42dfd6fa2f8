from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api import present, problems
from api import schemas as s
from api.auth import access_token, broker_context, current_actor, customer, customer_or_key
from broker.personal import services

blp = Blueprint("personal", __name__, url_prefix="/api/v1", description="Personal requests and the contact relay")


@blp.route("/requests")
class Requests(MethodView):
    @blp.arguments(s.RequestIn)
    @blp.response(201, s.RequestCreated)
    @blp.alt_response(429, response=problems.response_name(429))  # web.security.RATE_LIMITS
    def post(self, data):
        """Post a personal request: anonymous, the ceiling authorised on the card now.

        The `access_token` is the customer's (or its agent's) key to the request
        and, once awarded, to its order. A `callback_url` gets signed notices of
        offers and of the award.
        """
        cmd = services.PostRequest(
            description=data["description"], quantity=data["quantity"], max_price=data["max_price"],
            currency=data["currency"], location=data["location"], ship_to=services.ShipTo(**data["ship_to"]),
            sku=data.get("sku"), manufacturer=data.get("manufacturer"), prefer=data["prefer"],
            expires_at=data.get("expires_at"), callback_url=data.get("callback_url"), contact=data.get("contact"),
        )
        posted = services.post_request(broker_context(), cmd)
        view = services.RequestView(posted.request, [], posted.payment, None)
        out = present.personal_request(view)
        out["access_token"] = posted.access_token
        out["payment"]["client_secret"] = posted.client_secret
        return out


@blp.route("/requests/<int:request_id>")
class RequestById(MethodView):
    @customer
    @blp.response(200, s.RequestOut)
    def get(self, request_id):
        """The request and its offers: price, distance, retailer and rating (`X-Access-Token`)."""
        return present.personal_request(services.get_request(broker_context(), request_id, access_token()))


@blp.route("/requests/<int:request_id>/accept")
class Accept(MethodView):
    @customer
    @blp.arguments(s.AcceptIn)
    @blp.response(200, s.RequestOut)
    def post(self, data, request_id):
        """Accept an offer now: it becomes an order (`order_id`), captured at the offer's price on shipment."""
        view = services.accept_offer(broker_context(), request_id, access_token(), data["bid_id"])
        return present.personal_request(view)


@blp.route("/requests/<int:request_id>/cancel")
class Cancel(MethodView):
    @customer
    @blp.response(200, s.RequestOut)
    def post(self, request_id):
        """Withdraw an open request; the hold is released."""
        return present.personal_request(services.cancel_request(broker_context(), request_id, access_token()))


def _message(m, me, fulfillers):
    return {"id": m.id, "sender": m.sender, "body": m.body, "created_at": m.created_at, "mine": m.sender == me,
            "assignment_id": m.assignment_id, "fulfiller": fulfillers.get(m.assignment_id)}


@blp.route("/orders/<int:order_id>/messages")
class Messages(MethodView):
    @customer_or_key
    @blp.response(200, s.MessageOut(many=True))
    def get(self, order_id):
        """The relay. A fulfiller (its key) reads its own thread with the customer: the messages of its
        assignment, never those written to a fulfiller the order had before. The customer
        (`X-Access-Token`) reads all their threads on the order, each message with its `assignment_id`
        and who the thread is with (`fulfiller`)."""
        thread = services.messages(broker_context(), order_id, actor=current_actor(), token=access_token())
        return [_message(m, thread.me, thread.fulfillers) for m in thread.messages]

    @customer_or_key
    @blp.arguments(s.MessageIn)
    @blp.response(201, s.MessageOut)
    def post(self, data, order_id):
        """Write to the other side through Broker: neither sees the other's email. The message goes to
        the thread of the order's current fulfiller.

        :raise 409: the customer writes while no one has the order (before the award, or after a cancel).
        """
        ctx, actor, token = broker_context(), current_actor(), access_token()
        thread = services.send_message(ctx, order_id, data["body"], actor=actor, token=token)
        [message] = thread.messages
        return _message(message, thread.me, thread.fulfillers)
