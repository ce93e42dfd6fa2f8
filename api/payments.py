from __future__ import annotations

import dataclasses

from flask import Blueprint as FlaskBlueprint
from flask import jsonify, request
from flask.views import MethodView
from flask_smorest import Blueprint

from api import present
from api import examples as ex
from api import schemas as s
from api.auth import allow, broker_context, current_actor
from api.paging import page_request
from broker.auth import ActorKind
from broker.orders import services as orders
from broker.payments import webhooks
from broker.payouts import services as payouts

blp = Blueprint("payments", __name__, url_prefix="/api/v1",
                description="Money: refunds, payout accounts, earnings and payouts. Amounts are integers in minor "
                            "units.")
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
    @blp.arguments(s.RefundIn, example=ex.REFUND_IN)
    @blp.response(200, s.OrderOut, example=ex.ORDER_REFUNDED_IN_PART,
                  description="The order; `refunded` once all of it is.")
    def post(self, data, order_id):
        """Refund an order.

        A shipped order (a return, a goodwill gesture), in full or `amount` of it; the card is
        credited, and the refund comes out of the fulfiller's earning and the fee in
        proportion.

        :raise 404: None of your orders has this id.
        :raise 409: Nothing was captured to refund: cancel an order that has not shipped.
        :raise 422: `amount` is more than is left to refund.
        :raise 503: The payment provider refused the refund; nothing changed, try again.
        """
        view = orders.refund_order(broker_context(), current_actor(), order_id, data.get("amount"))
        return present.order(view)


@blp.route("/connect")
class Connect(MethodView):
    @allow(ActorKind.RETAILER, ActorKind.MANUFACTURER)
    @blp.arguments(s.ConnectIn, example=ex.CONNECT_IN)
    @blp.response(200, s.ConnectOut, example=ex.CONNECTED,
                  description="The account, and where to finish onboarding at the provider.")
    def post(self, data):
        """Connect a payout account.

        Earnings are paid out to it (Stripe Connect, or the offline provider's own). The
        answer says where to finish onboarding at the provider.

        :raise 422: The email or country is invalid.
        """
        done = payouts.connect(broker_context(), current_actor(), email=data["email"],
                               country=data.get("country", "US"))
        return {"account_ref": done.account.account_ref, "provider": done.account.provider,
                "ready": done.account.ready, "onboarding_url": done.url}


@blp.route("/earnings")
class Earnings(MethodView):
    @allow(ActorKind.RETAILER, ActorKind.MANUFACTURER)
    @blp.response(200, s.EarningOut(many=True), example=ex.EARNINGS, description="Your earnings, a page of them.")
    @blp.paginate()
    def get(self, pagination_parameters):
        """List your earnings.

        What you earned per fulfilled order (less Broker's fee), and whether it was paid out.
        """
        found = payouts.list_earnings(broker_context(), current_actor(), page_request(pagination_parameters))
        pagination_parameters.item_count = found.total
        return found.items


@blp.route("/earnings/summary")
class EarningsSummary(MethodView):
    @allow(ActorKind.RETAILER, ActorKind.MANUFACTURER)
    @blp.response(200, s.EarningsSummaryOut, example=ex.EARNINGS_SUMMARY, description="Your totals.")
    def get(self):
        """Read your earnings' totals.

        Accrued (waiting for a payout), frozen (disputed) and paid, per currency; and whether
        payouts can flow to your account. Amounts in different currencies are never added:
        the top-level `currency`, `accrued`, `frozen` and `paid` are there only while all your
        earnings are in one currency.
        """
        summary = payouts.earnings_summary(broker_context(), current_actor())
        answer = {"by_currency": [dataclasses.asdict(b) for b in summary.by_currency],
                  "account_ready": summary.account_ready}
        if summary.single is not None:
            answer.update(dataclasses.asdict(summary.single))
        elif not summary.by_currency:
            answer.update(accrued=0, frozen=0, paid=0)
        return answer


@blp.route("/payouts")
class Payouts(MethodView):
    @allow(ActorKind.OPERATOR)
    @blp.response(201, s.PayoutRunOut, example=ex.PAYOUTS, description="What was paid out.")
    def post(self):
        """Pay out now.

        Every accrued earning whose fulfiller has a ready account, one transfer per order.
        Safe beside the scheduled payout: an earning is paid once.
        """
        report = payouts.run_payouts(broker_context())
        return dataclasses.asdict(report)
