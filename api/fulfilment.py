from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api import present
from api import schemas as s
from api.auth import allow, broker_context, current_actor
from api.paging import page_request
from broker.auth import ActorKind
from broker.fulfilment import services
from broker.fulfilment.models import AssignmentStatus

blp = Blueprint("fulfilment", __name__, url_prefix="/api/v1", description="What fulfillers must ship")


@blp.route("/assignments")
class Assignments(MethodView):
    @allow(ActorKind.RETAILER, ActorKind.MANUFACTURER)
    @blp.arguments(s.AssignmentQuery, location="query")
    @blp.response(200, s.AssignmentOut(many=True))
    @blp.paginate()
    def get(self, query, pagination_parameters):
        """What the caller (retailer or manufacturer) must ship or has shipped, with ship-to addresses."""
        status = AssignmentStatus(query["status"]) if "status" in query else None
        found = services.list_assignments(broker_context(), current_actor(), page_request(pagination_parameters),
                                          status)
        pagination_parameters.item_count = found.total
        return [present.assignment(view) for view in found.items]


@blp.route("/assignments/<int:assignment_id>/shipment")
class Shipment(MethodView):
    @allow(ActorKind.RETAILER, ActorKind.MANUFACTURER)
    @blp.arguments(s.ShipmentIn)
    @blp.response(200, s.AssignmentOut)
    def post(self, data, assignment_id):
        """Record the shipment; the payment is captured. :raise 409: not active."""
        view = services.record_shipment(broker_context(), current_actor(), assignment_id,
                                        services.RecordShipment(**data))
        return present.assignment(view)


@blp.route("/assignments/<int:assignment_id>/pickup")
class Pickup(MethodView):
    @allow(ActorKind.RETAILER, ActorKind.MANUFACTURER)
    @blp.arguments(s.PickupIn)
    @blp.response(200, s.AssignmentOut)
    def post(self, data, assignment_id):
        """The customer collected a pickup order: give the code they show. A wrong code
        is refused (422) and tries are limited (then 409); the payment is captured."""
        view = services.collect_pickup(broker_context(), current_actor(), assignment_id, data["code"])
        return present.assignment(view)


@blp.route("/assignments/<int:assignment_id>/release")
class Release(MethodView):
    @allow(ActorKind.RETAILER, ActorKind.MANUFACTURER)
    @blp.response(200, s.AssignmentOut)
    def post(self, assignment_id):
        """Give the order back: it goes to the next-nearest eligible bidder, else the manufacturer."""
        return present.assignment(services.release_assignment(broker_context(), current_actor(), assignment_id))
