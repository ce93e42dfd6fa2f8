"""The customer's own data, through the API: download it, erase it.

Customer-only (the order's or request's `X-Access-Token`): no API key acts for a
customer here, not even the manufacturer's or the fulfiller's.
"""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields as f

from api import examples as ex
from api.auth import access_token, broker_context, customer
from broker.privacy import erasure, export

blp = Blueprint("privacy", __name__, url_prefix="/api/v1",
                description="The customer's own data: download everything Broker holds about an order or a "
                            "personal request, or erase it. The customer's token only.")


class CustomerDataOut(ma.Schema):
    kind = f.String(metadata={"description": "order or request: what the access token was for."})
    exported_at = f.String(metadata={"description": "When, as an ISO 8601 date and time."})
    order = f.Dict(allow_none=True, metadata={
        "description": "The order: customer, ship-to, lines, payment (state and amounts, in minor units of its "
                       "currency; no card data exists), fulfilment, messages, reviews, the disclosure log, emails "
                       "sent (subject and time). Null when the token is a request's that has no order yet."})
    request = f.Dict(allow_none=True, metadata={
        "description": "The personal request: contact, callback URL, ship-to, payment (amounts in minor units), "
                       "callbacks, emails. Null for a storefront order."})


class ErasedOut(ma.Schema):
    kind = f.String(metadata={"description": "order or request"})
    id = f.Integer()
    status = f.String(metadata={"description": "After erasure: an order in flight is cancelled first, an open "
                                               "request withdrawn."})
    erased_at = f.AwareDateTime()
    order_id = f.Integer(allow_none=True, metadata={"description": "The order erased with it (a request's, once "
                                                                   "awarded)."})


def _erased(e: erasure.Erasure) -> dict:
    return {"kind": e.kind, "id": e.id, "status": e.status, "erased_at": e.erased_at, "order_id": e.order_id}


@blp.route("/orders/<int:order_id>/data")
class OrderData(MethodView):
    @customer
    @blp.response(200, CustomerDataOut, example=ex.ORDER_DATA, description="Everything held about this order.")
    def get(self, order_id):
        """Download an order's data.

        Everything Broker holds about the customer for this order, as JSON, the disclosure
        log included.

        :raise 404: No such order, or the token is not this order's.
        """
        return export.export_order(broker_context(), order_id, access_token())


@blp.route("/orders/<int:order_id>/erase")
class EraseOrder(MethodView):
    @customer
    @blp.response(200, ErasedOut, example=ex.ORDER_ERASED, description="What was erased, and when.")
    def post(self, order_id):
        """Erase an order's personal data.

        An order not shipped yet is cancelled first and its card hold released; a shipped
        one is anonymised as it is. Money records stay. Erasing again changes nothing.

        :raise 404: No such order, or the token is not this order's.
        :raise 503: The payment provider could not release the hold; nothing was erased, try again.
        """
        return _erased(erasure.erase_order(broker_context(), order_id, access_token()))


@blp.route("/requests/<int:request_id>/data")
class RequestData(MethodView):
    @customer
    @blp.response(200, CustomerDataOut, example=ex.REQUEST_DATA,
                  description="Everything held about this request (and its order).")
    def get(self, request_id):
        """Download a personal request's data.

        Everything Broker holds about the customer for this personal request, and its order
        once awarded, as JSON.

        :raise 404: No such request, or the token is not this request's.
        """
        return export.export_request(broker_context(), request_id, access_token())


@blp.route("/requests/<int:request_id>/erase")
class EraseRequest(MethodView):
    @customer
    @blp.response(200, ErasedOut, example=ex.REQUEST_ERASED, description="What was erased, and when.")
    def post(self, request_id):
        """Erase a personal request's data.

        An open request is withdrawn first (the hold released); an awarded one's order is
        erased too, cancelled first if it has not shipped.

        :raise 404: No such request, or the token is not this request's.
        :raise 503: The payment provider could not release the hold; nothing was erased, try again.
        """
        return _erased(erasure.erase_request(broker_context(), request_id, access_token()))
