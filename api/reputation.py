from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api import schemas as s
from api.auth import access_token, broker_context, current_actor, customer_or_key
from broker.reputation import services

blp = Blueprint("reputation", __name__, url_prefix="/api/v1", description="Reviews and reputation")


# --- views ------------------------------------------------------------------

@blp.route("/orders/<int:order_id>/reviews")
class ReviewsOfOrder(MethodView):
    @customer_or_key
    @blp.arguments(s.ReviewIn)
    @blp.response(201, s.ReviewOut)
    def post(self, data, order_id):
        """Review the other side of a shipped order, once: the customer (`X-Access-Token`)
        rates the fulfiller, the fulfiller (its API key) rates the buyer. Reviews are
        blind until both sides have reviewed or 14 days have passed.

        :raise 401: no credentials. :raise 404: not a party to the order.
        :raise 409: not shipped yet, already reviewed, or the other side's review
            already revealed (14 days after it). :raise 422: rating not 1 to 5.
        """
        ctx, token = broker_context(), access_token()
        if token:
            return services.review_as_customer(ctx, order_id, token, data["rating"], data["comment"])
        return services.review_as_fulfiller(ctx, current_actor(), order_id, data["rating"], data["comment"])

    @customer_or_key
    @blp.response(200, s.OrderReviewsOut)
    def get(self, order_id):
        """The order's reviews as the caller may see them: its own, and the other
        side's once revealed.

        :raise 401: no credentials. :raise 404: not a party to the order.
        """
        return services.reviews_for_order(broker_context(), order_id, actor=current_actor(),
                                          access_token=access_token())


@blp.route("/retailers/<int:retailer_id>/reputation")
class RetailerReputation(MethodView):
    @blp.response(200, s.ReputationOut)
    def get(self, retailer_id):
        """A retailer's reputation (public): score, stars and number of ratings.

        :raise 404: no such retailer.
        """
        return services.reputation_of_retailer(broker_context(), retailer_id)
