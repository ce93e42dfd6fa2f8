"""The customer's own data, through the API: download it, erase it.

Customer-only (the order's or request's `X-Access-Token`): no API key acts for a
customer here, not even the manufacturer's or the fulfiller's.
"""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields as f

from api.auth import access_token, broker_context, customer
from broker.privacy import services

blp = Blueprint("privacy", __name__, url_prefix="/api/v1", description="The customer's data: download and erasure")


class CustomerDataOut(ma.Schema):
    kind = f.String(metadata={"description": "order or request: what the access token was for"})
    exported_at = f.String(metadata={"description": "ISO 8601"})
    order = f.Dict(allow_none=True, metadata={
        "description": "the order: customer, ship-to, lines, payment (state and amounts; no card data exists), "
                       "fulfilment, messages, reviews, the disclosure log, emails sent (subject and time)"})
    request = f.Dict(allow_none=True, metadata={
        "description": "the personal request: contact, callback URL, ship-to, payment, callbacks, emails"})


class ErasedOut(ma.Schema):
    kind = f.String()
    id = f.Integer()
    status = f.String(metadata={"description": "after erasure: an order in flight is cancelled first"})
    erased_at = f.AwareDateTime()
    order_id = f.Integer(allow_none=True)


def _erased(e: services.Erasure) -> dict:
    return {"kind": e.kind, "id": e.id, "status": e.status, "erased_at": e.erased_at, "order_id": e.order_id}


@blp.route("/orders/<int:order_id>/data")
class OrderData(MethodView):
    @customer
    @blp.response(200, CustomerDataOut)
    def get(self, order_id):
        """Everything Broker holds about the customer for this order, as JSON (`X-Access-Token`).

        :raise 401: no token. :raise 404: not this order's token.
        """
        return services.export_order(broker_context(), order_id, access_token())


@blp.route("/orders/<int:order_id>/erase")
class EraseOrder(MethodView):
    @customer
    @blp.response(200, ErasedOut)
    def post(self, order_id):
        """Erase the customer's personal data from this order (`X-Access-Token`).

        An order not shipped yet is cancelled first and its card hold released; a
        shipped one is anonymised as it is. Money records stay. Erasing again
        changes nothing.

        :raise 404: not this order's token. :raise 503: the payment provider could
            not release the hold; nothing was erased, try again.
        """
        return _erased(services.erase_order(broker_context(), order_id, access_token()))


@blp.route("/requests/<int:request_id>/data")
class RequestData(MethodView):
    @customer
    @blp.response(200, CustomerDataOut)
    def get(self, request_id):
        """Everything Broker holds about the customer for this personal request (and its order), as JSON.

        :raise 401: no token. :raise 404: not this request's token.
        """
        return services.export_request(broker_context(), request_id, access_token())


@blp.route("/requests/<int:request_id>/erase")
class EraseRequest(MethodView):
    @customer
    @blp.response(200, ErasedOut)
    def post(self, request_id):
        """Erase the customer's personal data from this request (`X-Access-Token`).

        An open request is withdrawn first (the hold released); an awarded one's
        order is erased too, cancelled first if it has not shipped.

        :raise 404: not this request's token. :raise 503: as for orders.
        """
        return _erased(services.erase_request(broker_context(), request_id, access_token()))
