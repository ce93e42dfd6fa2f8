from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api import schemas as s
from api.auth import broker_context, current_actor
from broker.settlement import services

blp = Blueprint("settlement", __name__, url_prefix="/api/v1", description="Settlement")


@blp.route("/settlements")
class Settlements(MethodView):
    @blp.arguments(s.SettleIn)
    @blp.response(201, s.SettlementOut)
    def post(self, data):
        """Settle every due listing now, or as at `as_of` (operator only). Safe to repeat."""
        report = services.settle_as(broker_context(), current_actor(), as_of=data.get("as_of"))
        return {"id": report.run_id, "as_of": report.as_of, "settled": report.settled,
                "to_retailers": report.to_retailers, "to_manufacturer": report.to_manufacturer,
                "by_rule": report.by_rule, "seconds": report.seconds}
