"""What a fulfiller must ship: assignments, shipments, releases."""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from broker.auth import Actor, ActorKind, require
from broker.board.models import Listing
from broker.context import Context
from broker.errors import Conflict, Invalid, NotFound, Unavailable
from broker.fulfilment.models import Assignment, AssignmentStatus
from broker.auth import same
from broker.locks import lock
from broker.notifications import events
from broker.orders.delivered import mark_delivered
from broker.orders.models import DeliveredHow, Delivery, Order, OrderStatus
from broker.orders.services import RETURN_REASON, pickup_digest, returns_of
from broker.orders.rules import move
from broker.pagination import Page, PageRequest, paginate
from broker.parking import services as parking
from broker.payments import services as payments
from broker.ledger import services as ledger
from broker.payments.models import Payment, PaymentStatus
from broker.payments.provider import PaymentError
from broker.personal.models import PersonalRequest, RequestStatus
from broker.privacy.disclosures import Disclosed, disclose_to
from broker.reputation.models import Author
from broker.reputation.services import OrderReviews, order_reviews
from broker.settlement.models import Cause
from broker.payouts.models import Earning, EarningKind
from broker.settlement.services import reroute
from broker.stock import reserve as stock
from broker.fulfilment import money

log = logging.getLogger(__name__)
VISIBLE = (AssignmentStatus.ACTIVE, AssignmentStatus.SHIPPED)


# What a fulfiller is shown of the customer to ship an order: never the email.
SHIP_TO = ("name", "address")
# ... and of a pickup's: the name alone, never the street.
PICKUP_SHOWS = ("name",)


@dataclasses.dataclass(frozen=True)
class AssignmentView:
    """An assignment and its order. The ship-to (the customer's name and address)
    goes out with it only when `disclosed` says the showing was logged
    (`privacy.disclosures.disclose_to`); without, it is the order's items alone."""

    assignment: Assignment
    order: Order
    disclosed: Disclosed | None = None
    # Returns of this assignment (opening one shows them, reasons and all).
    returns: tuple = ()
    # Once delivered: the reviews of the order as its fulfiller sees them (its
    # own, and the customer's once revealed); None before.
    reviews: OrderReviews | None = None


def shown_fields(order: Order) -> tuple[str, ...]:
    """What the fulfiller needs of the customer: a name and address to ship to;
    for a pickup, the name alone (the customer comes to the store)."""
    return PICKUP_SHOWS if order.delivery == Delivery.PICKUP else SHIP_TO


def _shown(session, actor: Actor, orders: list[Order], purpose: str, now) -> dict[int, Disclosed]:
    """The fulfiller is shown these orders' ship-to (a pickup's name): logged, one row each."""
    proofs: dict[int, Disclosed] = {}
    for fields in (SHIP_TO, PICKUP_SHOWS):
        ids = [order.id for order in orders if shown_fields(order) == fields]
        if ids:
            proof = disclose_to(session, party_kind=actor.kind.value, party_id=actor.id, fields=fields,
                                purpose=purpose, now=now, order_ids=ids)
            proofs.update(dict.fromkeys(ids, proof))
    return proofs


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
        disclosed = _shown(session, actor, [order for _, order in found.items], "fulfiller listed what it must ship",
                           ctx.now())
        uow.commit()
        return Page([AssignmentView(a, o, disclosed.get(o.id)) for a, o in found.items], found.total)


def get_assignment(ctx: Context, actor: Actor, assignment_id: int, *,
                   purpose: str = "fulfiller opened an order it must ship") -> AssignmentView:
    """One of the caller's assignments (to ship, or shipped) with its ship-to address.

    Showing the address is a disclosure, logged like the list's.

    :raise 404: not the caller's, or no longer the caller's to ship (released,
        lapsed, cancelled): another fulfiller's order looks exactly like none.
    """
    require(actor, ActorKind.RETAILER, ActorKind.MANUFACTURER)
    with ctx.uow() as uow:
        session = uow.session
        found = session.execute(
            select(Assignment, Order)
            .join(Order, Order.id == Assignment.order_id)
            .where(Assignment.id == assignment_id, _owned_by(actor), Assignment.status.in_(VISIBLE))
            .options(selectinload(Order.lines))
        ).first()
        if found is None:
            raise NotFound(f"no assignment {assignment_id} of yours")
        assignment, order = found
        returns = returns_of(session, [order.id], assignment_id=assignment.id).get(order.id, ())
        disclosed = disclose_to(session, party_kind=actor.kind.value, party_id=actor.id,
                                fields=shown_fields(order) + ((RETURN_REASON,) if returns else ()), purpose=purpose,
                                now=ctx.now(), order_ids=[order.id])
        reviews = order_reviews(session, order.id, Author.FULFILLER, now=ctx.now()) \
            if assignment.status == AssignmentStatus.SHIPPED and order.status == OrderStatus.DELIVERED else None
        uow.commit()
        return AssignmentView(assignment, order, disclosed, returns, reviews)


def _lock_mine(session, actor: Actor, assignment_id: int, *, listing: bool) -> tuple[Assignment, Order]:
    """The caller's assignment and its order, locked in the one order every writer
    uses (listing, order, assignment, payment) so that PostgreSQL never deadlocks."""
    order_id = session.scalar(select(Assignment.order_id).where(Assignment.id == assignment_id, _owned_by(actor)))
    if order_id is None:
        raise NotFound(f"no assignment {assignment_id} of yours")
    if listing:
        session.scalar(lock(select(Listing).where(Listing.order_id == order_id)))
    order = session.scalar(lock(select(Order).where(Order.id == order_id).options(selectinload(Order.lines))))
    assignment = session.scalar(lock(select(Assignment).where(Assignment.id == assignment_id)))
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
        if order.delivery == Delivery.PICKUP:
            raise Conflict("this order is picked up in store: record it with the customer's pickup code")
        now = ctx.now()
        assignment.status = AssignmentStatus.SHIPPED
        assignment.shipped_at = now
        assignment.carrier, assignment.tracking_number = carrier, tracking
        if _last_part(session, order, assignment):
            move(order, OrderStatus.SHIPPED, now)
            order.shipped_at = now
        _capture_and_earn(ctx, session, order, assignment, now)
        stock.consume(session, [assignment.id])  # stock rows last (broker.locks)
        events.order_shipped(session, ctx, order, assignment, now)
        disclosed = _shown(session, actor, [order], "fulfiller recorded the shipment", now)[order.id]
        uow.commit()
        return AssignmentView(assignment, order, disclosed)


def _last_part(session, order: Order, assignment: Assignment) -> bool:
    """Whether no other part of the order is still to ship (an order settled
    whole has one part)."""
    return session.scalar(select(Assignment.id).where(
        Assignment.order_id == order.id, Assignment.id != assignment.id,
        Assignment.status == AssignmentStatus.ACTIVE).limit(1)) is None


def _owner(assignment: Assignment) -> tuple[str, int]:
    return ("retailer", assignment.retailer_id) if assignment.retailer_id else \
        ("manufacturer", assignment.manufacturer_id)


def _capture_and_earn(ctx: Context, session, order: Order, assignment: Assignment, now) -> None:
    """Fulfilled: capture the payment (the order's total: for a personal request the
    winning price, not the ceiling) and accrue the fulfiller's earning.

    An order shipped in parts is captured once, when its last part ships, for
    what its parts shipped (which by then is all of it): the customer is never
    charged for a part still on a shelf. Each part then earns its share
    (`money.part_shares`). A hold captured early (it would have lapsed) pays
    each part as it ships."""
    payment = session.scalar(lock(select(Payment).where(Payment.order_id == order.id)))
    if payment is None:
        return
    split = assignment.lines is not None or session.scalar(select(Assignment.id).where(
        Assignment.order_id == order.id, Assignment.lines.is_not(None)).limit(1)) is not None
    fee = payments.fee_bps(session, order, ctx.settings.platform_fee_bps)
    if not split:
        _capture(ctx, session, payment, order.total, now)
        owner = _owner(assignment)
        payments.accrue_earning(session, order, payment, owner_kind=owner[0], owner_id=owner[1], fee_bps_=fee,
                                now=now)
        return
    last = _last_part(session, order, assignment)
    if last:
        # Every part has shipped (a part given back was handed on, at worst to
        # the manufacturer, never dropped): what shipped is the whole order.
        _capture(ctx, session, payment, order.total, now)
    if payment.status != PaymentStatus.CAPTURED:
        return  # the other parts are still to ship: the money waits for them
    shipped = list(session.scalars(select(Assignment).where(
        Assignment.order_id == order.id, Assignment.status == AssignmentStatus.SHIPPED).order_by(Assignment.id)))
    earned = set(session.scalars(select(Earning.assignment_id).where(
        Earning.order_id == order.id, Earning.kind == EarningKind.SALE, Earning.assignment_id.is_not(None))))
    # The fulfillers earn on the goods and the shipping: the tax is the jurisdiction's.
    kept_tax = ledger.payment_tax_kept(payment)
    shares = money.part_shares(order, shipped, total=order.total - order.tax,
                               captured=payment.captured_amount - payment.refunded_amount - kept_tax if last else None)
    for part in shipped:
        if part.id in earned:
            continue
        owner = _owner(part)
        payments.accrue_earning(session, order, payment, owner_kind=owner[0], owner_id=owner[1], fee_bps_=fee,
                                now=now, gross=shares[part.id], assignment_id=part.id)


def _capture(ctx: Context, session, payment: Payment, amount: int, now) -> None:
    try:
        payments.capture(session, ctx.payments, payment, amount=amount, now=now)
    except PaymentError as exc:
        raise Unavailable(f"the payment could not be captured ({exc}); nothing was recorded, try again") from None


MAX_PICKUP_ATTEMPTS = 5


def collect_pickup(ctx: Context, actor: Actor, assignment_id: int, code: str) -> AssignmentView:
    """The customer collected a pickup order: the store checks the one-time code.
    The order is delivered and the payment captured.

    :raise 404: not the caller's. :raise 409: not a pickup, not active, or too
        many wrong codes (the customer must contact the store). :raise 422: wrong code.
    """
    require(actor, ActorKind.RETAILER, ActorKind.MANUFACTURER)
    with ctx.uow() as uow:
        session = uow.session
        assignment, order = _lock_mine(session, actor, assignment_id, listing=False)
        if order.delivery != Delivery.PICKUP:
            raise Conflict("this order is to be shipped, not picked up")
        if assignment.status != AssignmentStatus.ACTIVE:
            raise Conflict(f"assignment {assignment_id} is {assignment.status}")
        if order.pickup_attempts >= MAX_PICKUP_ATTEMPTS:
            raise Conflict("too many wrong codes; the customer's order is locked for pickup, contact the customer")
        now = ctx.now()
        if not same(order.pickup_code_hash or "", pickup_digest(order.access_token_hash, (code or "").strip())):
            order.pickup_attempts += 1
            left = MAX_PICKUP_ATTEMPTS - order.pickup_attempts
            uow.commit()  # the wrong try counts even though the call fails
            raise Invalid.field("code", f"that is not the code; {left} tries left")
        assignment.status = AssignmentStatus.SHIPPED
        assignment.shipped_at = now
        assignment.carrier, assignment.tracking_number = "pickup", "collected in store"
        last = _last_part(session, order, assignment)
        if last:
            move(order, OrderStatus.SHIPPED, now)
            order.shipped_at = now
        _capture_and_earn(ctx, session, order, assignment, now)
        stock.consume(session, [assignment.id])  # stock rows last (broker.locks)
        if last:
            mark_delivered(session, ctx, order, DeliveredHow.PICKUP, now)
        disclosed = _shown(session, actor, [order], "fulfiller handed a pickup order over", now)[order.id]
        uow.commit()
        return AssignmentView(assignment, order, disclosed)


def release_assignment(ctx: Context, actor: Actor, assignment_id: int) -> AssignmentView:
    """A retailer gives an order back; it goes to the next-nearest eligible bidder,
    else to the manufacturer, and the release counts in the retailer's record.
    The answer carries the order's items, not the ship-to: it is no longer theirs.

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
        # The part given back is re-planned alone; the order's other parts stay where they are.
        for decision in reroute(session, ctx, listing, cause=Cause.RELEASE, now=now, lines=assignment.lines):
            events.awarded(session, ctx, decision, now)
        stock.give_back(session, [assignment.id])  # stock rows last (broker.locks)
        uow.commit()
        # Given back: where it goes is none of this retailer's business any more.
        return AssignmentView(assignment, order)


@dataclasses.dataclass
class LapseReport:
    captured_early: int = 0
    pickups_expired: int = 0
    warned: int = 0
    lapsed: int = 0
    to_retailers: int = 0
    to_manufacturer: int = 0
    failed: int = 0  # rows that failed this run: tried again next run (broker.parking)
    parked: int = 0  # rows that failed too often: they wait for the operator


JOB = "deadlines"


def check_deadlines(ctx: Context) -> LapseReport:
    """The hourly job: capture holds about to lapse, warn winners whose window
    closes soon, and take orders from winners whose window has closed (they go to
    the next-nearest eligible bidder, else the manufacturer). Each payment and
    assignment in its own transaction; one that fails is recorded and the rest go
    on (broker.parking). Safe to run in several schedulers at once."""
    report = LapseReport()
    rows = parking.RowsReport()
    report.captured_early = capture_expiring_holds(ctx, rows)
    report.warned = _warn_due_soon(ctx, rows)
    now = ctx.now()
    with ctx.uow() as uow:
        overdue = dict(uow.session.execute(
            select(Assignment.id, Order.delivery).join(Order, Order.id == Assignment.order_id)
            .where(Assignment.status == AssignmentStatus.ACTIVE, Assignment.due_at < now,
                   # The manufacturer, the last resort, never lapses; any uncollected pickup expires.
                   or_(Assignment.fulfiller_kind == "retailer", Order.delivery == Delivery.PICKUP),
                   parking.may_try(JOB, "assignment", Assignment.id, now))
            .order_by(Assignment.id)
        ).tuples().all())

    def overdue_one(assignment_id: int) -> None:
        if overdue[assignment_id] == Delivery.PICKUP:
            _pickup_expired(ctx, assignment_id, report)
        else:
            _lapse_one(ctx, assignment_id, report)

    rows.add(parking.each(ctx, JOB, "assignment", list(overdue), overdue_one))
    report.failed, report.parked = rows.failed, rows.parked
    return report


def _pickup_expired(ctx: Context, assignment_id: int, report: LapseReport) -> None:
    """Nobody came for a pickup order in its window: cancelled and refunded. The
    store did nothing wrong, so nothing counts against it."""
    with ctx.uow() as uow:
        session = uow.session
        order_id = session.scalar(select(Assignment.order_id).where(Assignment.id == assignment_id))
        session.scalar(lock(select(Listing).where(Listing.order_id == order_id)))
        order = session.scalar(lock(select(Order).where(Order.id == order_id)))
        assignment = session.scalar(lock(select(Assignment).where(Assignment.id == assignment_id)))
        now = ctx.now()
        if assignment.status != AssignmentStatus.ACTIVE or assignment.due_at >= now:
            return
        move(order, OrderStatus.CANCELLED, now)
        order.cancelled_at = now
        events.order_closed(session, order, now)
        # Every part of it: the customer did not come for the order.
        parts = list(session.scalars(lock(select(Assignment).where(
            Assignment.order_id == order_id, Assignment.status == AssignmentStatus.ACTIVE).order_by(Assignment.id))))
        for part in parts:
            part.status = AssignmentStatus.CANCELLED
            part.ended_at = now
        payment = session.scalar(lock(select(Payment).where(Payment.order_id == order_id)))
        if payment is not None:
            payments.give_back(session, ctx.payments, payment, now=now)
        stock.give_back(session, [part.id for part in parts])  # stock rows last (broker.locks)
        uow.commit()
        report.pickups_expired += 1


def _lapse_one(ctx: Context, assignment_id: int, report: LapseReport) -> None:
    # One transaction per assignment: a crash loses at most the one in hand, and
    # a second scheduler doing the same finds it no longer active and moves on.
    with ctx.uow() as uow:
        session = uow.session
        order_id = session.scalar(select(Assignment.order_id).where(Assignment.id == assignment_id))
        listing = session.scalar(lock(select(Listing).where(Listing.order_id == order_id)))
        session.scalar(lock(select(Order).where(Order.id == order_id)))
        assignment = session.scalar(lock(select(Assignment).where(Assignment.id == assignment_id)))
        now = ctx.now()
        if assignment.status != AssignmentStatus.ACTIVE or assignment.due_at >= now:
            return
        assignment.status = AssignmentStatus.LAPSED
        assignment.ended_at = now
        session.flush()
        decisions = reroute(session, ctx, listing, cause=Cause.LAPSE, now=now, lines=assignment.lines)
        stock.give_back(session, [assignment.id])  # stock rows last (broker.locks)
        events.lapsed(session, ctx, assignment, now)
        for decision in decisions:
            events.awarded(session, ctx, decision, now)
        uow.commit()
        report.lapsed += 1
        if all(decision.winner_retailer_id is None for decision in decisions):
            report.to_manufacturer += 1
        else:
            report.to_retailers += 1
        log.info("assignment %s lapsed; order %s re-routed by %s", assignment.id, order_id, decisions[0].rule,
                 extra={"event": "assignment.lapsed", "assignment_id": assignment.id, "order_id": order_id,
                        "rule": str(decisions[0].rule)})


def _warn_due_soon(ctx: Context, rows: parking.RowsReport) -> int:
    now = ctx.now()
    horizon = now + timedelta(hours=ctx.settings.lapse_warning_hours)
    with ctx.uow() as uow:
        due = list(uow.session.scalars(
            select(Assignment.id).join(Order, Order.id == Assignment.order_id)
            .where(Assignment.status == AssignmentStatus.ACTIVE, Assignment.fulfiller_kind == "retailer",
                   Assignment.warned_at.is_(None), Assignment.due_at <= horizon, Assignment.due_at >= now,
                   Order.delivery == Delivery.SHIP, parking.may_try(JOB, "warning", Assignment.id, now))
            .order_by(Assignment.id)
        ))
    warned = []

    def warn(assignment_id: int) -> None:
        with ctx.uow() as uow:
            # Another scheduler warning it now holds it: it is that one's to warn.
            assignment = uow.session.scalar(lock(select(Assignment).where(
                Assignment.id == assignment_id, Assignment.status == AssignmentStatus.ACTIVE,
                Assignment.warned_at.is_(None)), skip_locked=True))
            if assignment is None:
                return
            assignment.warned_at = now
            events.deadline_warning(uow.session, ctx, assignment, now)
            uow.commit()
        warned.append(assignment_id)

    rows.add(parking.each(ctx, JOB, "warning", due, warn))
    return len(warned)


def capture_expiring_holds(ctx: Context, rows: parking.RowsReport | None = None) -> int:
    """Capture every hold that would lapse before the next checks can reach it,
    while its order is still in flight. The order keeps its money; the card is
    charged a little early, never lost. A capture the provider refuses is tried
    again next hour, and parked after a few (broker.parking)."""
    now = ctx.now()
    with ctx.uow() as uow:
        ids = list(uow.session.scalars(
            select(Payment.id)
            .outerjoin(Order, Order.id == Payment.order_id)
            .outerjoin(PersonalRequest, PersonalRequest.id == Payment.request_id)
            .where(Payment.status == PaymentStatus.AUTHORIZED, Payment.hold_expires_at <= now + payments.HOLD_MARGIN,
                   _in_flight(), parking.may_try(JOB, "payment", Payment.id, now))
            .order_by(Payment.id)
        ))
    captured = []
    done = parking.each(ctx, JOB, "payment", ids, lambda payment_id: _capture_early(ctx, payment_id, captured))
    if rows is not None:
        rows.add(done)
    return len(captured)


def _in_flight():
    return or_(
        Order.status.in_([OrderStatus.OPEN, OrderStatus.AWARDED]),
        # A personal request still collecting offers: its ceiling is captured, and
        # whatever the winning price leaves is refunded at the award.
        PersonalRequest.status == RequestStatus.OPEN,
    )


def _capture_early(ctx: Context, payment_id: int, captured: list[int]) -> None:
    with ctx.uow() as uow:
        session = uow.session
        order_id, request_id = session.execute(
            select(Payment.order_id, Payment.request_id).where(Payment.id == payment_id)).one()
        # Lock order (broker.locks): the order, or before the award the request's
        # listing and the request; then the payment.
        if order_id is not None:
            session.scalar(lock(select(Order.id).where(Order.id == order_id)))
        elif request_id is not None:
            session.scalar(lock(select(Listing.id).where(Listing.request_id == request_id)))
            session.scalar(lock(select(PersonalRequest.id).where(PersonalRequest.id == request_id)))
        payment = session.scalar(lock(select(Payment).where(Payment.id == payment_id))
                                 .execution_options(populate_existing=True))
        still = session.scalar(select(Payment.id).outerjoin(Order, Order.id == Payment.order_id)
                               .outerjoin(PersonalRequest, PersonalRequest.id == Payment.request_id)
                               .where(Payment.id == payment_id, _in_flight()))
        if payment.status != PaymentStatus.AUTHORIZED or still is None:
            return
        try:
            payments.capture(session, ctx.payments, payment, now=ctx.now(), reason="hold_expiry")
        except PaymentError as exc:
            log.error("early capture of payment %s failed: %s", payment.id, exc,
                      extra={"event": "payment.early_capture_failed", "payment_id": payment.id})
            raise
        uow.commit()
    captured.append(payment_id)
    log.info("captured payment %s early: its hold would have lapsed", payment_id,
             extra={"event": "payment.captured_early", "payment_id": payment_id})
