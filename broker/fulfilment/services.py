"""What a fulfiller must ship: assignments, shipments, releases."""

from __future__ import annotations

import dataclasses

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from broker.auth import Actor, ActorKind, require
from broker.board.models import Listing
from broker.context import Context
from broker.errors import Conflict, Invalid, NotFound
from broker.fulfilment.models import Assignment, AssignmentStatus
from broker.orders.models import Order, OrderStatus
from broker.orders.rules import move
from broker.pagination import Page, PageRequest, paginate
from broker.payments.models import Payment, PaymentStatus
from broker.privacy.services import disclose
from broker.settlement.models import Cause
from broker.settlement.services import reroute

VISIBLE = (AssignmentStatus.ACTIVE, AssignmentStatus.SHIPPED)


@dataclasses.dataclass(frozen=True)
class AssignmentView:
    assignment: Assignment
    order: Order


def _owned_by(actor: Actor):
    if actor.kind is ActorKind.RETAILER:
        return Assignment.retailer_id == actor.id
    return (Assignment.fulfiller_kind == "manufacturer") & (Assignment.manufacturer_id == actor.id)


def list_assignments(ctx: Context, actor: Actor, page: PageRequest,
                     status: AssignmentStatus | None = None) -> Page[AssignmentView]:
    """The caller's assignments (to ship, and shipped), each with its ship-to address."""
    require(actor, ActorKind.RETAILER, ActorKind.MANUFACTURER)
    if status is not None and status not in VISIBLE:
        raise Invalid.field("status", "use active or shipped")
    with ctx.uow() as uow:
        session = uow.session
        stmt = (
            select(Assignment, Order)
            .join(Order, Order.id == Assignment.order_id)
            .where(_owned_by(actor), Assignment.status.in_([status] if status else VISIBLE))
            .options(selectinload(Order.lines))
            .order_by(Assignment.due_at, Assignment.id)
        )
        found = paginate(session, stmt, page, rows=True)
        now = ctx.now()
        for assignment, order in found.items:
            disclose(session, order_id=order.id, party_kind=actor.kind.value, party_id=actor.id,
                     fields=["name", "address"], purpose="fulfiller listed what it must ship", now=now)
        uow.commit()
        return Page([AssignmentView(a, o) for a, o in found.items], found.total)


def _lock_mine(session, actor: Actor, assignment_id: int, *, listing: bool) -> tuple[Assignment, Order]:
    """The caller's assignment and its order, locked in the one order every writer
    uses (listing, order, assignment, payment) so that PostgreSQL never deadlocks."""
    order_id = session.scalar(select(Assignment.order_id).where(Assignment.id == assignment_id, _owned_by(actor)))
    if order_id is None:
        raise NotFound(f"no assignment {assignment_id} of yours")
    if listing:
        session.scalar(select(Listing).where(Listing.order_id == order_id).with_for_update())
    order = session.scalar(
        select(Order).where(Order.id == order_id).options(selectinload(Order.lines)).with_for_update()
    )
    assignment = session.scalar(select(Assignment).where(Assignment.id == assignment_id).with_for_update())
    return assignment, order


@dataclasses.dataclass(frozen=True)
class RecordShipment:
    carrier: str
    tracking_number: str


def record_shipment(ctx: Context, actor: Actor, assignment_id: int, cmd: RecordShipment) -> AssignmentView:
    """Shipped: the order becomes `shipped` and the payment is captured.

    :raise 404: not the caller's. :raise 409: not active any more (shipped,
        released, lapsed or cancelled).
    """
    require(actor, ActorKind.RETAILER, ActorKind.MANUFACTURER)
    carrier, tracking = cmd.carrier.strip(), cmd.tracking_number.strip()
    if not carrier:
        raise Invalid.field("carrier", "must not be blank")
    if not tracking:
        raise Invalid.field("tracking_number", "must not be blank")
    with ctx.uow() as uow:
        session = uow.session
        assignment, order = _lock_mine(session, actor, assignment_id, listing=False)
        if assignment.status != AssignmentStatus.ACTIVE:
            raise Conflict(f"assignment {assignment_id} is {assignment.status}; only an active one can ship")
        now = ctx.now()
        move(order, OrderStatus.SHIPPED, now)
        order.shipped_at = now
        assignment.status = AssignmentStatus.SHIPPED
        assignment.shipped_at = now
        assignment.carrier, assignment.tracking_number = carrier, tracking
        payment = session.scalar(select(Payment).where(Payment.order_id == order.id).with_for_update())
        if payment is not None and payment.status == PaymentStatus.AUTHORIZED:
            ctx.payments.capture(session, payment.provider_ref, amount=payment.amount,
                                 idempotency_key=f"order-{order.id}-capture")
            payment.status = PaymentStatus.CAPTURED
            payment.captured_amount = payment.amount
            payment.captured_at = now
        uow.commit()
        return AssignmentView(assignment, order)


def release_assignment(ctx: Context, actor: Actor, assignment_id: int) -> AssignmentView:
    """A retailer gives an order back; it goes to the next-nearest eligible bidder,
    else to the manufacturer, and the release counts in the retailer's record.

    :raise 404: not the caller's. :raise 409: not active, or the caller is the
        manufacturer (the last resort cannot hand an order on).
    """
    require(actor, ActorKind.RETAILER, ActorKind.MANUFACTURER)
    with ctx.uow() as uow:
        session = uow.session
        assignment, order = _lock_mine(session, actor, assignment_id, listing=True)
        if actor.kind is ActorKind.MANUFACTURER:
            raise Conflict("the manufacturer is the last resort and cannot release an order")
        if assignment.status != AssignmentStatus.ACTIVE:
            raise Conflict(f"assignment {assignment_id} is {assignment.status}; only an active one can be released")
        now = ctx.now()
        assignment.status = AssignmentStatus.RELEASED
        assignment.ended_at = now
        session.flush()
        listing = session.scalar(select(Listing).where(Listing.order_id == assignment.order_id))
        reroute(session, ctx, listing, cause=Cause.RELEASE, now=now)
        uow.commit()
        return AssignmentView(assignment, order)
