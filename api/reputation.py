from __future__ import annotations

import copy
import functools

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields as f
from marshmallow import validate as v

from api.auth import access_token, broker_context, current_actor
from broker.auth import ActorKind
from broker.errors import Unauthenticated
from broker.reputation import services
from broker.reputation.rules import MAX_COMMENT, MAX_RATING, MIN_RATING

blp = Blueprint("reputation", __name__, url_prefix="/api/v1", description="Reviews and reputation")


# --- schemas ----------------------------------------------------------------

class ReviewIn(ma.Schema):
    rating = f.Integer(required=True, strict=True, validate=v.Range(min=MIN_RATING, max=MAX_RATING))
    # The length is checked by the service, after surrounding space is stripped.
    comment = f.String(load_default="", allow_none=True,
                       metadata={"description": f"Optional; at most {MAX_COMMENT} characters."})


class ReviewOut(ma.Schema):
    order_id = f.Integer()
    author = f.String(metadata={"description": "customer or fulfiller"})
    rating = f.Integer()
    comment = f.String()
    created_at = f.AwareDateTime()


class OrderReviewsOut(ma.Schema):
    order_id = f.Integer()
    party = f.String(metadata={"description": "Which side the caller is: customer or fulfiller."})
    mine = f.Nested(ReviewOut, allow_none=True)
    theirs = f.Nested(ReviewOut, allow_none=True, metadata={
        "description": "The other side's review, once revealed (null until then, whether or not it exists)."})
    reveal_pending = f.Boolean(metadata={
        "description": "Reviews are blind until both sides have reviewed or 14 days after the first review."})


class ReputationOut(ma.Schema):
    score = f.Float(metadata={"description": "From 0 to 1: ratings and shipping record, shrunk toward the mean."})
    stars = f.Float(metadata={"description": "The score on the 1 to 5 scale, to one decimal."})
    ratings = f.Integer(metadata={"description": "How many (revealed) ratings the score includes."})


# --- who may call -----------------------------------------------------------

def customer_or_key(fn):
    """The customer (`X-Access-Token`) or a caller with an API key.

    Checked before the body is parsed, like `api.auth.allow`, so a caller with
    neither gets 401, never a validation error.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not access_token() and current_actor().kind is ActorKind.ANONYMOUS:
            raise Unauthenticated("give the order's X-Access-Token, or an API key")
        return fn(*args, **kwargs)

    apidoc = copy.deepcopy(getattr(fn, "_apidoc", {}))
    manual = apidoc.setdefault("manual_doc", {})
    manual["security"] = [{"accessToken": []}, {"bearer": []}]
    manual["x-roles"] = ["customer", ActorKind.RETAILER.value, ActorKind.MANUFACTURER.value]
    wrapper._apidoc = apidoc
    return wrapper


# --- views ------------------------------------------------------------------

@blp.route("/orders/<int:order_id>/reviews")
class ReviewsOfOrder(MethodView):
    @customer_or_key
    @blp.arguments(ReviewIn)
    @blp.response(201, ReviewOut)
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
    @blp.response(200, OrderReviewsOut)
    def get(self, order_id):
        """The order's reviews as the caller may see them: its own, and the other
        side's once revealed.

        :raise 401: no credentials. :raise 404: not a party to the order.
        """
        return services.reviews_for_order(broker_context(), order_id, actor=current_actor(),
                                          access_token=access_token())


@blp.route("/retailers/<int:retailer_id>/reputation")
class RetailerReputation(MethodView):
    @blp.response(200, ReputationOut)
    def get(self, retailer_id):
        """A retailer's reputation (public): score, stars and number of ratings.

        :raise 404: no such retailer.
        """
        return services.reputation_of_retailer(broker_context(), retailer_id)
