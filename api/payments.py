from __future__ import annotations

import dataclasses

from flask import Blueprint as FlaskBlueprint
from flask import jsonify, request
from flask.views import MethodView
from flask_smorest import Blueprint

from api import present
from api import schemas as s
from api.auth import allow, broker_context, current_actor
from api.paging import page_request
from broker.auth import ActorKind
from broker.orders import services as orders
from broker.payments import webhooks
from broker.payouts import services as payouts

blp = Blueprint("payments", __name__, url_prefix="/api/v1", description="Refunds, connected accounts, earnings")
hooks = FlaskBlueprint("webhooks", __name__, url_prefix="/webhooks")


@hooks.post("/stripe")
def stripe_webhook():
    """Stripe's events: signature checked, each event applied once. Answers fast:
    the work is a few rows in one transaction."""
    received = webhooks.receive_stripe(broker_context(), request.get_data(cache=False),
                                       request.headers.get("Stripe-Signature"))
    return jsonify({"received": received.event_id, "outcome": received.outcome})


@blp.route("/orders/<int:order_id>/refund")
class Refund(MethodView):
    @allow(ActorKind.MANUFACTURER)
    @blp.arguments(s.RefundIn)
    @blp.response(200, s.OrderOut)
    def post(self, data, order_id):
        """Refund a shipped order (a return), in full or `amount` of it; the card is credited.

        :raise 409: nothing captured to refund. :raise 422: more than is left.
        """
        view = orders.refund_order(broker_context(), current_actor(), order_id, data.get("amount"))
        return present.order(view)


@blp.route("/connect")
class Connect(MethodView):
    @allow(ActorKind.RETAILER, ActorKind.MANUFACTURER)
    @blp.arguments(s.ConnectIn)
    @blp.response(200, s.ConnectOut)
    def post(self, data):
        """Connect a payout account: returns where to finish onboarding at the provider."""
        done = payouts.connect(broker_context(), current_actor(), email=data["email"],
                               country=data.get("country", "US"))
        return {"account_ref": done.account.account_ref, "provider": done.account.provider,
                "ready": done.account.ready, "onboarding_url": done.url}


@blp.route("/earnings")
class Earnings(MethodView):
    @allow(ActorKind.RETAILER, ActorKind.MANUFACTURER)
    @blp.response(200, s.EarningOut(many=True))
    @blp.paginate()
    def get(self, pagination_parameters):
        """What the caller earned per fulfilled order (less the platform fee), and whether it was paid."""
        found = payouts.list_earnings(broker_context(), current_actor(), page_request(pagination_parameters))
        pagination_parameters.item_count = found.total
        return found.items


@blp.route("/earnings/summary")
class EarningsSummary(MethodView):
    @allow(ActorKind.RETAILER, ActorKind.MANUFACTURER)
    @blp.response(200, s.EarningsSummaryOut)
    def get(self):
        """Totals: accrued (waiting for a payout), frozen (disputed), paid; and whether payouts can flow."""
        return payouts.earnings_summary(broker_context(), current_actor())


@blp.route("/payouts")
class Payouts(MethodView):
    @allow(ActorKind.OPERATOR)
    @blp.response(201, s.PayoutRunOut)
    def post(self):
        """Pay out every accrued earning now (operator). Safe beside the scheduled payout."""
        report = payouts.run_payouts(broker_context())
        return dataclasses.asdict(report)
