from __future__ import annotations

import dataclasses

from flask.views import MethodView
from flask_smorest import Blueprint

from api import examples as ex
from api import schemas as s
from api.auth import allow, broker_context, current_actor
from api.paging import page_request
from broker.auth import ActorKind
from broker.settlement import reports, services

blp = Blueprint("settlement", __name__, url_prefix="/api/v1",
                description="Settlement: once a day each due listing goes to the nearest eligible bidder; its "
                            "runs, their reports, and what became of a retailer's bids.")


def _run(summary: reports.RunSummary) -> dict:
    run = summary.run
    return {"id": run.id, "as_of": run.as_of, "trigger": run.trigger, "status": run.status,
            "started_at": run.started_at, "finished_at": run.finished_at, "seconds": summary.seconds,
            "settled": summary.settled, "to_retailers": summary.to_retailers,
            "to_manufacturer": summary.to_manufacturer, "error": run.error, "scope": summary.scope,
            "parked": summary.parked}


@blp.route("/settlements")
class Settlements(MethodView):
    @allow(ActorKind.MANUFACTURER, ActorKind.OPERATOR)
    @blp.response(200, s.RunOut(many=True), example=[ex.RUN], description="Settlement runs, newest first, a page "
                                                                          "of them.")
    @blp.paginate()
    def get(self, pagination_parameters):
        """List settlement runs.

        Newest first. A manufacturer's counts are over its own listings; the operator's over
        all.
        """
        found = reports.list_runs(broker_context(), current_actor(), page_request(pagination_parameters))
        pagination_parameters.item_count = found.total
        return [_run(summary) for summary in found.items]

    @allow(ActorKind.OPERATOR)
    @blp.arguments(s.SettleIn, example=ex.SETTLE_IN)
    @blp.response(201, s.SettlementOut, example=ex.SETTLEMENT, description="The run's report.")
    def post(self, data):
        """Settle now.

        Every listing due now, or as at `as_of`, goes to its nearest eligible bidder (or, with
        none, to the manufacturer). Safe to repeat, and beside the scheduled run: a listing is
        settled once.

        :raise 422: `as_of` is not a date and time with a time zone, or is outside the years Broker settles.
        """
        report = services.settle_as(broker_context(), current_actor(), as_of=data.get("as_of"))
        return {"id": report.run_id, "as_of": report.as_of, "settled": report.settled,
                "to_retailers": report.to_retailers, "to_manufacturer": report.to_manufacturer,
                "by_rule": report.by_rule, "seconds": report.seconds, "parked": sorted(report.parked)}


@blp.route("/settlements/<int:run_id>")
class SettlementById(MethodView):
    @allow(ActorKind.MANUFACTURER, ActorKind.OPERATOR)
    @blp.response(200, s.RunReportOut, example=ex.RUN_REPORT, description="The run's report.")
    def get(self, run_id):
        """Read a settlement run's report.

        How many listings, to whom, by which rule, how long it took. A manufacturer sees its
        own listings only.

        :raise 404: No settlement run has this id.
        """
        report = reports.run_report(broker_context(), current_actor(), run_id)
        out = _run(report.summary)
        out["by_rule"] = report.by_rule
        out["retailers"] = [dataclasses.asdict(share) for share in report.retailers]
        return out


@blp.route("/bids")
class BidOutcomes(MethodView):
    @allow(ActorKind.RETAILER)
    @blp.response(200, s.BidOutcomeOut(many=True), example=ex.BID_OUTCOMES,
                  description="Your bids and their outcomes, newest first, a page of them.")
    @blp.paginate()
    def get(self, pagination_parameters):
        """List what became of your bids.

        Won, lost (and why), pending or withdrawn. A lost bid names the rule that decided and
        the winner's distance band, never the winner.
        """
        found = reports.bid_outcomes(broker_context(), current_actor(), page_request(pagination_parameters))
        pagination_parameters.item_count = found.total
        return [dataclasses.asdict(outcome) for outcome in found.items]
