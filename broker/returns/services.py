"""Returns: the customer asks, the fulfiller or the order's manufacturer decides.

* The customer asks (`request_return`) within the store's return window,
  measured from the shipment (a delivered order still counts from its
  shipment), with a reason. The return concerns one assignment: the part that
  fulfiller shipped. The fulfiller's users, and the manufacturer's when it may
  decide too, are emailed.
* The fulfiller, or the order's manufacturer, accepts (`accept_return`): what
  was captured for that assignment and not refunded yet goes back to the card,
  out of the fulfiller's earning and the fee in proportion (the ledger, by
  `payments.record_refunded`). Or it refuses (`refuse_return`) with a note to
  the customer. Either way the customer is emailed.
* A manufacturer decides returns on the orders whose customer it may see
  (`orders.services._manufacturer_sees_customer`): what it sold on its
  storefront, and what it ships itself. A personal request that named its
  product and that a retailer won is that retailer's business alone.

At most one return is open per assignment: checked under the order's lock, and
again by the unique partial index `uq_returns_open_assignment`, so two requests
at once make one return and the other gets a 409, never a 500. After a refusal
the customer may ask again while the window is open.

Lock order, as every writer of an order: the order, then its assignment, the
return, the payment.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from broker import formkeys
from broker.accounts.models import Manufacturer
from broker.auth import Actor, ActorKind, require
from broker.context import Context
from broker.locks import lock
from broker.errors import Conflict, Invalid, NotFound, Unauthenticated, Unavailable
from broker.fulfilment.models import Assignment, AssignmentStatus
from broker.payouts.models import Earning, EarningKind
from broker.notifications import events
from broker.orders.models import Order, OrderStatus
from broker.orders.services import (
    FOR_FULFILLER,
    FOR_MANUFACTURER,
    RETURN_REASON,
    OrderView,
    Party,
    _customer_may,
    _manufacturer_sees_customer,
    _request_born,
    payment_changed,
    returns_of,
)
from broker.pagination import Page, PageRequest, paginate
from broker.payments import services as payments
from broker.payments.models import Payment, PaymentStatus
from broker.payments.provider import PaymentError
from broker.personal.models import PersonalRequest
from broker.privacy.disclosures import Disclosed, disclose_to
from broker.returns.models import Return, ReturnStatus

MAX_REASON = 500
MAX_NOTE = 1000
# Where an order has no manufacturer (a request for no catalog product).
DEFAULT_WINDOW_DAYS = 30


def _text(value: str | None, field: str, limit: int, blank: str) -> str:
    text = (value or "").strip()
    if not text:
        raise Invalid.field(field, blank)
    if len(text) > limit:
        raise Invalid.field(field, f"at most {limit} characters")
    return text


def check_note(note: str | None) -> str:
    """A refusal's note to the customer, as stored: pages check it before they
    ask for confirmation. :raise 422: blank or too long."""
    return _text(note, "note", MAX_NOTE, "tell the customer why, and what they can do")


def _lock_order(session: Session, order_id: int) -> Order | None:
    return session.scalar(lock(select(Order).where(Order.id == order_id).options(selectinload(Order.lines))))


def window_days(session: Session, order: Order) -> int:
    if order.manufacturer_id is None:
        return DEFAULT_WINDOW_DAYS
    days = session.scalar(select(Manufacturer.return_window_days).where(Manufacturer.id == order.manufacturer_id))
    return DEFAULT_WINDOW_DAYS if days is None else days


# Why a customer sends something back, as the order page offers it: the label
# starts the reason the fulfiller reads, the customer's words follow.
REASONS = {"damaged": "Arrived damaged", "wrong_item": "Not what I ordered",
           "not_as_described": "Not as described", "does_not_fit": "Does not fit",
           "changed_mind": "Changed my mind", "other": "Another reason"}


def reason_text(kind: str | None, details: str | None) -> str:
    """One reason from the page's choice and the customer's words (required for
    "other"). :raise 422: no choice, an unknown one, or words over the limit."""
    words = (details or "").strip()
    kind = (kind or "").strip()
    if not kind and words:
        kind = "other"  # words alone (a form without the choice, or an agent) say it all
    label = REASONS.get(kind)
    if label is None:
        raise Invalid.field("reason_kind", "choose why it goes back")
    if kind == "other":
        label = ""
    if kind == "other" and not words:
        raise Invalid.field("reason", "say briefly why it goes back")
    text = f"{label}: {words}" if label and words else (label or words)
    if len(text) > MAX_REASON:
        raise Invalid.field("reason", f"at most {MAX_REASON - len(label) - 2 if label else MAX_REASON} characters")
    return text


def request_return(ctx: Context, order_id: int, access_token: str | None, reason: str,
                   assignment_id: int | None = None, *, once: formkeys.Once | None = None) -> OrderView:
    """The customer asks to return what was shipped, within the store's return
    window from the shipment, with a reason. `assignment_id` names the part, for
    an order shipped in several; by default, the order's shipment.

    :raise 401: no token. :raise 404: wrong token. :raise 409: not shipped,
        refunded, past the window, or a return of that part is open or accepted.
    :raise 422: no reason, or one over 500 characters; a part not of this order.
    With `once`, a repeat of the same form raises `formkeys.AlreadyDone`.
    """
    if not access_token:
        raise Unauthenticated("give the order's X-Access-Token")
    reason = _text(reason, "reason", MAX_REASON, "say briefly why it goes back")
    with ctx.uow() as uow:
        session = uow.session
        formkeys.claim(session, once, now=ctx.now())
        order = _lock_order(session, order_id)
        if not _customer_may(order, access_token):
            raise NotFound(f"no order {order_id}")
        formkeys.record(session, once, {"order_id": order.id})
        if order.status not in (OrderStatus.SHIPPED, OrderStatus.DELIVERED):
            raise Conflict(f"the order is {order.status}; only a shipped order can be returned")
        shipped = list(session.scalars(lock(
            select(Assignment).where(Assignment.order_id == order.id, Assignment.status == AssignmentStatus.SHIPPED)
            .order_by(Assignment.id))))
        if assignment_id is not None:
            shipped = [a for a in shipped if a.id == assignment_id]
            if not shipped:
                raise Invalid.field("assignment_id", f"no part {assignment_id} of this order was shipped")
        if len(shipped) != 1:
            raise Invalid.field("assignment_id", "the order was shipped in parts: say which part goes back")
        assignment = shipped[0]
        now = ctx.now()
        window = window_days(session, order)
        if assignment.shipped_at is None or now > assignment.shipped_at + timedelta(days=window):
            raise Conflict(f"the return window of {window} days has closed")
        earlier = session.scalars(select(Return.status).where(Return.assignment_id == assignment.id)).all()
        if ReturnStatus.REQUESTED in earlier:
            raise Conflict("a return was asked for already; the store will answer it")
        if ReturnStatus.ACCEPTED in earlier:
            raise Conflict("the return was accepted already, and the card refunded")
        ret = Return(order_id=order.id, assignment_id=assignment.id, status=ReturnStatus.REQUESTED,
                     requested_at=now, reason=reason)
        session.add(ret)
        try:
            session.flush()
        except IntegrityError:
            # Another request for the same part committed between our check and
            # this insert (the partial unique index): one return, as asked.
            raise Conflict("a return was asked for already; the store will answer it") from None
        events.return_requested(session, ctx, order, ret, assignment,
                                manufacturer_decides=_manufacturer_decides(session, order, assignment), now=now)
        payment = session.scalar(select(Payment).where(Payment.order_id == order.id))
        returns = returns_of(session, [order.id]).get(order.id, ())
        uow.commit()
        return OrderView(order, Party.CUSTOMER, payment, assignment, True, True, returns=returns)


def _manufacturer_decides(session: Session, order: Order, assignment: Assignment) -> bool:
    """The manufacturer may decide this return besides the fulfiller (it is not
    the fulfiller itself, and it may see this customer)."""
    return (order.manufacturer_id is not None and assignment.fulfiller_kind != "manufacturer"
            and _manufacturer_sees_customer(assignment, order.id in _request_born(session, [order.id])))


def _may_decide(session: Session, actor: Actor, order: Order, assignment: Assignment) -> bool:
    if actor.kind is ActorKind.RETAILER:
        return assignment.fulfiller_kind == "retailer" and assignment.retailer_id == actor.id
    if actor.kind is ActorKind.MANUFACTURER:
        if assignment.fulfiller_kind == "manufacturer" and assignment.manufacturer_id == actor.id:
            return True
        return order.manufacturer_id == actor.id and _manufacturer_decides(session, order, assignment)
    return False


@dataclasses.dataclass(frozen=True)
class Decision:
    order: Order
    ret: Return
    assignment: Assignment


def _open_return(session: Session, actor: Actor, order_id: int, return_id: int | None) -> Decision:
    """The open return on the order that the caller may decide, everything locked.

    :raise 404: the caller decides no return on this order (not its order, or a
        part it does not fulfil): as if there were no order. :raise 409: nothing
        open to decide.
    """
    order = _lock_order(session, order_id)
    if order is None:
        raise NotFound(f"no order {order_id} of yours to decide a return for")
    assignments = {a.id: a for a in session.scalars(lock(
        select(Assignment).where(Assignment.order_id == order.id, Assignment.status == AssignmentStatus.SHIPPED)
        .order_by(Assignment.id)))}
    mine = {a_id for a_id, a in assignments.items() if _may_decide(session, actor, order, a)}
    if not mine:
        raise NotFound(f"no order {order_id} of yours to decide a return for")
    stmt = select(Return).where(Return.order_id == order.id, Return.assignment_id.in_(sorted(mine)),
                                Return.status == ReturnStatus.REQUESTED)
    if return_id is not None:
        stmt = stmt.where(Return.id == return_id)
    open_ = list(session.scalars(lock(stmt.order_by(Return.id))))
    if not open_:
        raise Conflict("no open return request on this order")
    if len(open_) > 1:
        raise Invalid.field("return_id", "more than one part of this order has an open return: say which")
    return Decision(order, open_[0], assignments[open_[0].assignment_id])


def _decided_view(session: Session, ctx: Context, actor: Actor, decision: Decision, payment: Payment | None,
                  what: str, now: datetime) -> OrderView:
    """The answer to a decision: the order as the decider opens it, logged."""
    order, assignment = decision.order, decision.assignment
    fulfiller = (actor.kind is ActorKind.RETAILER
                 or (assignment.fulfiller_kind == "manufacturer" and assignment.manufacturer_id == actor.id))
    purpose = f"{'fulfiller' if fulfiller else 'manufacturer'} {what} the return"
    fields = (FOR_FULFILLER if actor.kind is ActorKind.RETAILER else FOR_MANUFACTURER) + (RETURN_REASON,)
    disclosed = disclose_to(session, party_kind=actor.kind.value, party_id=actor.id, fields=fields, purpose=purpose,
                            now=now, order_ids=[order.id])
    returns = returns_of(session, [order.id], assignment_id=assignment.id if fulfiller else None).get(order.id, ())
    if actor.kind is ActorKind.RETAILER:
        return OrderView(order, Party.FULFILLER, payment, assignment, True, False, disclosed, returns)
    return OrderView(order, Party.FULFILLER if fulfiller else Party.MANUFACTURER, payment, assignment, True, True,
                     disclosed, returns)


def refundable(payment: Payment | None, session: Session | None = None, assignment_id: int | None = None,
               split: bool = False) -> int:
    """What accepting a return refunds: what was captured for the shipment and
    not refunded yet. An order shipped whole: the payment's capture. A part of
    an order shipped in parts (`split`): the part's share, as its earning holds
    it (less what was refunded of it already)."""
    if payment is None or payment.status not in (PaymentStatus.CAPTURED,):
        return 0
    left = max(payment.captured_amount - payment.refunded_amount, 0)
    if not split or session is None:
        return left
    gross = session.scalar(select(Earning.gross).where(Earning.order_id == payment.order_id,
                                                       Earning.kind == EarningKind.SALE,
                                                       Earning.assignment_id == assignment_id))
    return min(max(gross or 0, 0), left)


def accept_return(ctx: Context, actor: Actor, order_id: int, return_id: int | None = None) -> OrderView:
    """Accept the open return: what was captured for that part goes back to the
    card, out of the fulfiller's earning and the fee in proportion, and the
    customer is emailed the amount. A full refund makes the order `refunded`.

    :raise 404: not an order whose return the caller decides. :raise 409: no
        open return, or nothing left to refund. :raise 503: the payment provider
        refused or did not answer (nothing changed; try again).
    """
    require(actor, ActorKind.RETAILER, ActorKind.MANUFACTURER)
    with ctx.uow() as uow:
        session = uow.session
        decision = _open_return(session, actor, order_id, return_id)
        order, ret = decision.order, decision.ret
        payment = session.scalar(lock(select(Payment).where(Payment.order_id == order.id)))
        split = decision.assignment.lines is not None
        amount = refundable(payment, session, decision.assignment.id, split)
        if amount <= 0:
            raise Conflict("nothing is left to refund on this order (it was refunded already): refuse the return "
                           "with a note that says so")
        now = ctx.now()
        try:
            reference = ctx.payments.refund(session, payment.provider_ref, amount=amount,
                                            idempotency_key=f"return-{ret.id}-refund")
        except PaymentError as exc:
            raise Unavailable(f"the payment provider refused the refund: {exc}") from None
        payments.record_refunded(session, payment, payment.refunded_amount + amount, now=now, reference=reference,
                                 assignment_id=decision.assignment.id if split else None)
        payment_changed(session, ctx, order, payment, ["refunded"], now)
        _decide(ret, actor, ReturnStatus.ACCEPTED, now, refund_amount=amount, refund_reference=reference)
        events.return_decided(session, ctx, order, ret, now=now)
        view = _decided_view(session, ctx, actor, decision, payment, "accepted", now)
        uow.commit()
        return view


def refuse_return(ctx: Context, actor: Actor, order_id: int, note: str, return_id: int | None = None) -> OrderView:
    """Refuse the open return, with a note the customer is emailed (why, and what
    they can do). Nothing is refunded; the customer may ask again while the
    window is open.

    :raise 404: not an order whose return the caller decides. :raise 409: no
        open return. :raise 422: no note, or one over 1,000 characters.
    """
    require(actor, ActorKind.RETAILER, ActorKind.MANUFACTURER)
    note = check_note(note)
    with ctx.uow() as uow:
        session = uow.session
        decision = _open_return(session, actor, order_id, return_id)
        now = ctx.now()
        _decide(decision.ret, actor, ReturnStatus.REFUSED, now, note=note)
        events.return_decided(session, ctx, decision.order, decision.ret, now=now)
        payment = session.scalar(select(Payment).where(Payment.order_id == decision.order.id))
        view = _decided_view(session, ctx, actor, decision, payment, "refused", now)
        uow.commit()
        return view


def _decide(ret: Return, actor: Actor, status: ReturnStatus, now: datetime, *, note: str | None = None,
            refund_amount: int | None = None, refund_reference: str | None = None) -> None:
    ret.status = status
    ret.decided_at = now
    ret.decided_by_kind, ret.decided_by_id = actor.kind.value, actor.id
    ret.note = note
    ret.refund_amount, ret.refund_reference = refund_amount, refund_reference


# --- the lists of returns to decide -----------------------------------------------


@dataclasses.dataclass(frozen=True)
class ReturnView:
    """A return with its order's items and what accepting it would refund. The
    reason goes out only with the proof that showing it was logged."""

    ret: Return
    order: Order
    refundable: int
    disclosed: Disclosed


def list_returns(ctx: Context, actor: Actor, page: PageRequest,
                 status: ReturnStatus | None = None) -> Page[ReturnView]:
    """The returns the caller decides, oldest first: a retailer's on what it
    shipped; a manufacturer's on its orders whose customer it may see (those it
    ships, and those its dealers ship). Showing their reasons is logged, one
    row per order. `status` filters (requested: those waiting for an answer).
    """
    require(actor, ActorKind.RETAILER, ActorKind.MANUFACTURER)
    with ctx.uow() as uow:
        session = uow.session
        stmt = (select(Return, Order).join(Order, Order.id == Return.order_id)
                .join(Assignment, Assignment.id == Return.assignment_id)
                .options(selectinload(Order.lines)).order_by(Return.requested_at, Return.id))
        if actor.kind is ActorKind.RETAILER:
            stmt = stmt.where(Assignment.fulfiller_kind == "retailer", Assignment.retailer_id == actor.id)
        else:
            won_by_a_retailer_for_a_requester = (Assignment.fulfiller_kind == "retailer") & Order.id.in_(
                select(PersonalRequest.order_id).where(PersonalRequest.order_id.is_not(None)))
            stmt = stmt.where(Order.manufacturer_id == actor.id, ~won_by_a_retailer_for_a_requester)
        if status is not None:
            stmt = stmt.where(Return.status == status)
        found = paginate(session, stmt, page, rows=True)
        order_ids = sorted({order.id for _, order in found.items})
        paid = {p.order_id: p for p in session.scalars(select(Payment).where(Payment.order_id.in_(order_ids)))}
        disclosed = disclose_to(session, party_kind=actor.kind.value, party_id=actor.id, fields=[RETURN_REASON],
                                purpose="listed the returns to decide", now=ctx.now(), order_ids=order_ids)
        parts = {a.id: a for a in session.scalars(select(Assignment).where(
            Assignment.id.in_(sorted({ret.assignment_id for ret, _ in found.items}))))}
        views = [ReturnView(ret, order, refundable(paid.get(order.id), session, ret.assignment_id,
                                                   parts[ret.assignment_id].lines is not None)
                            if ret.status == ReturnStatus.REQUESTED else 0, disclosed) for ret, order in found.items]
        uow.commit()
        return Page(views, found.total)
