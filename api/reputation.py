from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api import examples as ex
from api import schemas as s
from api.auth import access_token, broker_context, current_actor, customer_or_key
from broker.reputation import services

blp = Blueprint("reputation", __name__, url_prefix="/api/v1",
                description="Reputation: the customer and the fulfiller rate each other once an order has shipped "
                            "(blind until both have, or 14 days have passed); a retailer's score is public.")


# --- views ------------------------------------------------------------------

@blp.route("/orders/<int:order_id>/reviews")
class ReviewsOfOrder(MethodView):
    @customer_or_key
    @blp.arguments(s.ReviewIn, example=ex.REVIEW_IN)
    @blp.response(201, s.ReviewOut, example=ex.REVIEW, description="Your review.")
    def post(self, data, order_id):
        """Review the other side of an order.

        Once, after it has shipped: the customer (`X-Access-Token`) rates the fulfiller, the
        fulfiller (its API key) rates the buyer. Reviews are blind until both sides have
        reviewed or 14 days have passed.

        :raise 404: No such order, or the caller is no party to it.
        :raise 409: Not shipped yet, already reviewed, or the time to review has passed (the other side's
            review was revealed 14 days after it).
        :raise 422: A rating that is not 1 to 5, or a comment that is too long.
        """
        ctx, token = broker_context(), access_token()
        if token:
            return services.review_as_customer(ctx, order_id, token, data["rating"], data["comment"])
        return services.review_as_fulfiller(ctx, current_actor(), order_id, data["rating"], data["comment"])

    @customer_or_key
    @blp.response(200, s.OrderReviewsOut, example=ex.ORDER_REVIEWS,
                  description="Your review, and the other side's once revealed.")
    def get(self, order_id):
        """Read an order's reviews.

        As the caller may see them: its own, and the other side's once revealed.

        :raise 404: No such order, or the caller is no party to it.
        """
        return services.reviews_for_order(broker_context(), order_id, actor=current_actor(),
                                          access_token=access_token())


@blp.route("/retailers/<int:retailer_id>/reputation")
class RetailerReputation(MethodView):
    @blp.response(200, s.ReputationOut, example=ex.REPUTATION, description="The retailer's reputation.")
    def get(self, retailer_id):
        """Read a retailer's reputation.

        Public: its score, stars and number of ratings.

        :raise 404: No retailer has this id.
        """
        return services.reputation_of_retailer(broker_context(), retailer_id)
