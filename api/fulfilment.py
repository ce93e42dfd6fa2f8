from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api import present
from api import examples as ex
from api import schemas as s
from api.auth import allow, broker_context, current_actor
from api.paging import page_request
from broker.auth import ActorKind
from broker.fulfilment import services
from broker.fulfilment.models import AssignmentStatus

blp = Blueprint("fulfilment", __name__, url_prefix="/api/v1",
                description="Fulfilment: what the winning retailer (or the manufacturer) must ship, with the "
                            "address; shipments, pickups, and giving an order back.")


@blp.route("/assignments")
class Assignments(MethodView):
    @allow(ActorKind.RETAILER, ActorKind.MANUFACTURER)
    @blp.arguments(s.AssignmentQuery, location="query")
    @blp.response(200, s.AssignmentOut(many=True), example=[ex.ASSIGNMENT],
                  description="Your assignments, a page of them.")
    @blp.paginate()
    def get(self, query, pagination_parameters):
        """List what you must ship.

        The orders you won (a retailer) or that fell back to you (a manufacturer), to ship or
        shipped, with the ship-to address: showing it is written to the customer's
        disclosure log. Filter by `status` (`active` or `shipped`).
        """
        status = AssignmentStatus(query["status"]) if "status" in query else None
        found = services.list_assignments(broker_context(), current_actor(), page_request(pagination_parameters),
                                          status)
        pagination_parameters.item_count = found.total
        return [present.assignment(view) for view in found.items]


@blp.route("/assignments/<int:assignment_id>/shipment")
class Shipment(MethodView):
    @allow(ActorKind.RETAILER, ActorKind.MANUFACTURER)
    @blp.arguments(s.ShipmentIn, example=ex.SHIPMENT_IN)
    @blp.response(200, s.AssignmentOut, example=ex.ASSIGNMENT_SHIPPED, description="The assignment, `shipped`.")
    def post(self, data, assignment_id):
        """Record a shipment.

        The carrier and tracking number go to the customer; the payment is captured and your
        earning accrues.

        :raise 404: No assignment of yours has this id.
        :raise 409: The assignment is not active (shipped, released, lapsed or cancelled), or the order is a
            pickup (record it with the customer's code).
        :raise 503: The payment could not be captured; nothing was recorded, try again.
        """
        view = services.record_shipment(broker_context(), current_actor(), assignment_id,
                                        services.RecordShipment(**data))
        return present.assignment(view)


@blp.route("/assignments/<int:assignment_id>/pickup")
class Pickup(MethodView):
    @allow(ActorKind.RETAILER, ActorKind.MANUFACTURER)
    @blp.arguments(s.PickupIn, example=ex.PICKUP_IN)
    @blp.response(200, s.AssignmentOut, example=ex.ASSIGNMENT_COLLECTED,
                  description="The assignment, `shipped` (carrier `pickup`).")
    def post(self, data, assignment_id):
        """Record a pickup.

        The customer collected a pickup order in your store: give the code they show. The
        payment is captured.

        :raise 404: No assignment of yours has this id.
        :raise 409: The order is to be shipped, not picked up; the assignment is not active; or too many wrong
            codes were given and the order is locked for pickup.
        :raise 422: That is not the code (`detail` says how many tries are left).
        :raise 503: The payment could not be captured; nothing was recorded, try again.
        """
        view = services.collect_pickup(broker_context(), current_actor(), assignment_id, data["code"])
        return present.assignment(view)


@blp.route("/assignments/<int:assignment_id>/release")
class Release(MethodView):
    @allow(ActorKind.RETAILER, ActorKind.MANUFACTURER)
    @blp.response(200, s.AssignmentOut, example=ex.ASSIGNMENT_RELEASED,
                  description="The assignment, `released`; the ship-to is no longer yours to see.")
    def post(self, assignment_id):
        """Give an order back.

        It goes to the next-nearest eligible bidder, else to the manufacturer.

        :raise 404: No assignment of yours has this id.
        :raise 409: The assignment is not active, or the caller is the manufacturer (the last resort cannot
            give an order back).
        """
        return present.assignment(services.release_assignment(broker_context(), current_actor(), assignment_id))
