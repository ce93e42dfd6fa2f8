"""The money flows of an order, each written to the ledger beside the state it changes.

Every function here runs in its caller's transaction (the service that owns the
order's state change commits once). Provider calls carry idempotency keys, and
ledger postings carry dedupe keys, so a retry after a crash does the same thing,
once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.accounts.models import Manufacturer
from broker.ledger import services as ledger
from broker.locks import lock
from broker.orders.models import Order
from broker.payments.models import Payment, PaymentStatus
from broker.payments.provider import PaymentProvider, PaymentState
from broker.payouts.models import Earning, EarningKind, EarningStatus

# Capture a hold early when it would lapse within this long of when it is needed
# (the shipping deadline), or of now: the hourly check must reach it in time.
HOLD_MARGIN = timedelta(hours=3)

FORWARD = {
    PaymentStatus.PENDING: {PaymentStatus.AUTHORIZED, PaymentStatus.CAPTURED, PaymentStatus.RELEASED,
                            PaymentStatus.FAILED},
    PaymentStatus.AUTHORIZED: {PaymentStatus.CAPTURED, PaymentStatus.RELEASED},
    PaymentStatus.CAPTURED: {PaymentStatus.REFUNDED},
    PaymentStatus.FAILED: {PaymentStatus.AUTHORIZED, PaymentStatus.CAPTURED, PaymentStatus.RELEASED},
    PaymentStatus.RELEASED: set(),
    PaymentStatus.REFUNDED: set(),
}


def hold_expiry(authorized_at: datetime, hold_hours: float) -> datetime:
    return authorized_at + timedelta(hours=hold_hours)


def record_authorized(session: Session, payment: Payment, *, hold_hours: float, now: datetime) -> bool:
    """The hold is in place. False if the payment is already past that."""
    if PaymentStatus.AUTHORIZED not in FORWARD[PaymentStatus(payment.status)]:
        return False
    payment.status = PaymentStatus.AUTHORIZED
    payment.authorized_at = now
    payment.hold_expires_at = hold_expiry(now, hold_hours)
    ledger.post(session, kind="authorisation", dedupe_key=f"payment-{payment.id}-authorisation",
                currency=payment.currency, order_id=payment.order_id, reference=payment.provider_ref, now=now,
                lines=[(ledger.HOLDS_CARDS, payment.amount), (ledger.HOLDS_CUSTOMERS, -payment.amount)])
    return True


def record_released(session: Session, payment: Payment, *, now: datetime) -> bool:
    if PaymentStatus.RELEASED not in FORWARD[PaymentStatus(payment.status)]:
        return False
    was_held = payment.status == PaymentStatus.AUTHORIZED
    payment.status = PaymentStatus.RELEASED
    if was_held:
        ledger.post(session, kind="release", dedupe_key=f"payment-{payment.id}-release", currency=payment.currency,
                    order_id=payment.order_id, reference=payment.provider_ref, now=now,
                    lines=[(ledger.HOLDS_CUSTOMERS, payment.amount), (ledger.HOLDS_CARDS, -payment.amount)])
    return True


def record_captured(session: Session, payment: Payment, amount: int, *, now: datetime) -> bool:
    """The provider captured `amount` (never more than was authorised): the hold
    becomes cash, waiting to be split into fee and earning."""
    if PaymentStatus.CAPTURED not in FORWARD[PaymentStatus(payment.status)]:
        return False
    was_held = payment.status == PaymentStatus.AUTHORIZED
    payment.status = PaymentStatus.CAPTURED
    payment.captured_amount = min(amount, payment.amount)
    payment.captured_at = now
    # The tax in what was captured is owed to its jurisdiction, not a sale.
    tax = ledger.captured_tax(payment)
    lines = [(ledger.CASH, payment.captured_amount), (ledger.SALES, -(payment.captured_amount - tax)),
             (ledger.tax_account(payment.tax_jurisdiction), -tax)]
    if was_held:
        lines += [(ledger.HOLDS_CUSTOMERS, payment.amount), (ledger.HOLDS_CARDS, -payment.amount)]
    ledger.post(session, kind="capture", dedupe_key=f"payment-{payment.id}-capture", currency=payment.currency,
                order_id=payment.order_id, reference=payment.provider_ref, now=now, lines=lines)
    return True


def capture(session: Session, provider: PaymentProvider, payment: Payment, *, amount: int | None = None,
            now: datetime, reason: str = "shipment") -> None:
    """Capture an authorised payment now (at shipment, or early when the hold would
    lapse first). A payment captured already is left as it is."""
    if payment.status != PaymentStatus.AUTHORIZED:
        return
    amount = payment.amount if amount is None else min(amount, payment.amount)
    state = provider.capture(session, payment.provider_ref, amount=amount,
                             idempotency_key=f"payment-{payment.id}-capture")
    payment.charge_ref = payment.charge_ref or state.charge_ref
    record_captured(session, payment, state.amount_received or amount, now=now)


def release(session: Session, provider: PaymentProvider, payment: Payment, *, now: datetime) -> None:
    """Release a hold (the order was cancelled before capture)."""
    if payment.status not in (PaymentStatus.PENDING, PaymentStatus.AUTHORIZED):
        return
    provider.release(session, payment.provider_ref, idempotency_key=f"payment-{payment.id}-release")
    record_released(session, payment, now=now)


def give_back(session: Session, provider: PaymentProvider, payment: Payment, *, now: datetime) -> None:
    """Undo a payment nothing will be shipped for: release the hold, or refund it
    all if it was captured early (to keep it from lapsing)."""
    if payment.status in (PaymentStatus.PENDING, PaymentStatus.AUTHORIZED, PaymentStatus.FAILED):
        release(session, provider, payment, now=now)
    elif payment.status == PaymentStatus.CAPTURED:
        left = payment.captured_amount - payment.refunded_amount
        ref = provider.refund(session, payment.provider_ref, amount=left,
                              idempotency_key=f"payment-{payment.id}-refund-all")
        record_refunded(session, payment, payment.captured_amount, now=now, reference=ref)


def fee_bps(session: Session, order: Order, default_bps: int) -> int:
    override = session.scalar(select(Manufacturer.fee_bps).where(Manufacturer.id == order.manufacturer_id))
    return default_bps if override is None else override


def accrue_earning(session: Session, order: Order, payment: Payment, *, owner_kind: str, owner_id: int,
                   fee_bps_: int, now: datetime, gross: int | None = None,
                   assignment_id: int | None = None) -> Earning | None:
    """The order (or, with `assignment_id`, that part of it) is fulfilled: its
    fulfiller earns the captured amount, less its tax (owed to the
    jurisdiction) and less the fee; a part earns its `gross` share of that."""
    if payment.status != PaymentStatus.CAPTURED:
        return None
    if gross is None:
        gross = payment.captured_amount - payment.refunded_amount - ledger.payment_tax_kept(payment)
    fee = gross * fee_bps_ // 10_000
    earning = Earning(order_id=order.id, kind=EarningKind.SALE, owner_kind=owner_kind, owner_id=owner_id,
                      gross=gross, fee=fee, amount=gross - fee, currency=payment.currency,
                      status=EarningStatus.FROZEN if payment.disputed else EarningStatus.ACCRUED, created_at=now,
                      assignment_id=assignment_id)
    key = f"order-{order.id}-earning" + (f"-part-{assignment_id}" if assignment_id is not None else "")
    written = ledger.post(session, kind="earning", dedupe_key=key, currency=payment.currency,
                          order_id=order.id, now=now,
                          lines=[(ledger.SALES, gross), (ledger.FEES, -fee),
                                 (ledger.payable(owner_kind, owner_id), -(gross - fee))])
    if not written:
        return None
    session.add(earning)
    return earning


def sale_earning(session: Session, order_id: int, assignment_id: int | None = None) -> Earning | None:
    """The order's sale earning (of the part `assignment_id`, for an order
    shipped in parts; else its first), locked (after its order and payment:
    broker.locks)."""
    stmt = select(Earning).where(Earning.order_id == order_id, Earning.kind == EarningKind.SALE)
    if assignment_id is not None:
        stmt = stmt.where(Earning.assignment_id == assignment_id)
    return session.scalar(lock(stmt.order_by(Earning.id).limit(1)))


def record_refunded(session: Session, payment: Payment, total_refunded: int, *, now: datetime,
                    reference: str | None = None, assignment_id: int | None = None) -> int:
    """The provider says `total_refunded` has been refunded in all; account for what is new.

    The refund comes out of the fulfiller's earning and the fee in proportion
    (for an order shipped in parts, the earning of the part `assignment_id`).
    An earning already paid out becomes a clawback, netted from its next payout.
    """
    delta = min(total_refunded, payment.captured_amount) - payment.refunded_amount
    if delta <= 0 or payment.status not in (PaymentStatus.CAPTURED, PaymentStatus.REFUNDED):
        return 0
    # The tax in the refund goes back out of the tax owed, in proportion; the
    # rest comes out of the sale as before.
    tax_back = ledger.refunded_tax(payment, payment.refunded_amount + delta) - \
        ledger.refunded_tax(payment, payment.refunded_amount)
    tax_line = (ledger.tax_account(payment.tax_jurisdiction), tax_back)
    payment.refunded_amount += delta
    if payment.refunded_amount >= payment.captured_amount:
        payment.status = PaymentStatus.REFUNDED
    key = f"payment-{payment.id}-refund-{payment.refunded_amount}"
    earning = sale_earning(session, payment.order_id, assignment_id)
    if earning is None or earning.gross <= 0:
        ledger.post(session, kind="refund", dedupe_key=key, currency=payment.currency, order_id=payment.order_id,
                    reference=reference, now=now,
                    lines=[(ledger.SALES, delta - tax_back), tax_line, (ledger.CASH, -delta)])
        return delta
    net = delta - tax_back
    fee_part = net * earning.fee // earning.gross if earning.gross else 0
    earn_part = net - fee_part
    account = ledger.payable(earning.owner_kind, earning.owner_id)
    if earning.status == EarningStatus.PAID:
        # Paid out already: the fulfiller owes its part back, netted from its next payout.
        ledger.post(session, kind="refund", dedupe_key=key, currency=payment.currency, order_id=payment.order_id,
                    reference=reference, now=now,
                    lines=[(account, earn_part), (ledger.FEES, fee_part), tax_line, (ledger.CASH, -delta)])
        session.add(Earning(order_id=earning.order_id, kind=EarningKind.CLAWBACK, owner_kind=earning.owner_kind,
                            owner_id=earning.owner_id, gross=-net, fee=-fee_part, amount=-earn_part,
                            currency=earning.currency, status=EarningStatus.ACCRUED, created_at=now,
                            assignment_id=earning.assignment_id))
        return delta
    if earning.status == EarningStatus.REVERSED:
        # Reversed by a lost dispute: the dispute loss already took this money from
        # the earning, so the refund lowers the loss (the same end, in either order).
        lines = [(ledger.DISPUTES_LOST, net), tax_line, (ledger.CASH, -delta)]
    else:
        lines = [(account, earn_part), (ledger.FEES, fee_part), tax_line, (ledger.CASH, -delta)]
    ledger.post(session, kind="refund", dedupe_key=key, currency=payment.currency, order_id=payment.order_id,
                reference=reference, now=now, lines=lines)
    earning.gross -= net
    earning.fee -= fee_part
    earning.amount -= earn_part
    if earning.gross <= 0:
        earning.status = EarningStatus.REVERSED
    return delta


def record_dispute_opened(session: Session, payment: Payment, amount: int, dispute_ref: str, *, now: datetime) -> None:
    """The provider withdrew the disputed amount."""
    ledger.post(session, kind="dispute_opened", dedupe_key=f"dispute-{dispute_ref}-opened",
                currency=payment.currency, order_id=payment.order_id, reference=dispute_ref, now=now,
                lines=[(ledger.DISPUTES_OPEN, amount), (ledger.CASH, -amount)])
    _dispute_effects(session, payment, dispute_ref, now)


def record_dispute_closed(session: Session, payment: Payment, amount: int, dispute_ref: str, *, won: bool,
                          now: datetime) -> None:
    """Won: the money comes back. Lost: it is gone, and so is the fulfiller's earning."""
    ledger.post(session, kind="dispute_won" if won else "dispute_lost", dedupe_key=f"dispute-{dispute_ref}-closed",
                currency=payment.currency, order_id=payment.order_id, reference=dispute_ref, now=now,
                lines=[(ledger.CASH if won else ledger.DISPUTES_LOST, amount), (ledger.DISPUTES_OPEN, -amount)])
    _dispute_effects(session, payment, dispute_ref, now)


def _dispute_effects(session: Session, payment: Payment, dispute_ref: str, now: datetime) -> None:
    """The earning's state follows from which of the dispute's postings exist, so
    the events may arrive in any order (a `closed` before its `created`)."""
    kinds = set(session.scalars(select(ledger.LedgerTransaction.kind).where(
        ledger.LedgerTransaction.dedupe_key.in_([f"dispute-{dispute_ref}-opened", f"dispute-{dispute_ref}-closed"]))))
    opened, won, lost = "dispute_opened" in kinds, "dispute_won" in kinds, "dispute_lost" in kinds
    payment.disputed = opened and not (won or lost)
    # Every part's earning: a customer disputes the one charge for the whole order.
    earnings = session.scalars(lock(select(Earning).where(Earning.order_id == payment.order_id,
                                                          Earning.kind == EarningKind.SALE).order_by(Earning.id)))
    for earning in earnings:
        if earning.status in (EarningStatus.PAID, EarningStatus.REVERSED):
            continue
        if lost:
            # The fulfiller does not earn on money the customer took back.
            ledger.post(session, kind="earning_reversed", dedupe_key=f"dispute-{dispute_ref}-earning-{earning.id}",
                        currency=payment.currency, order_id=payment.order_id, now=now,
                        lines=[(ledger.payable(earning.owner_kind, earning.owner_id), earning.amount),
                               (ledger.FEES, earning.fee), (ledger.DISPUTES_LOST, -earning.gross)])
            earning.status = EarningStatus.REVERSED
        elif payment.disputed:
            earning.status = EarningStatus.FROZEN
        else:
            earning.status = EarningStatus.ACCRUED


def sync(session: Session, payment: Payment, state: PaymentState, *, hold_hours: float, now: datetime) -> list[str]:
    """Bring Broker's record of a payment up to what the provider says now.

    Moves only forward, so it can be called for any event, in any order, any
    number of times. Returns what changed (for the event log).
    """
    changes = []
    if state.charge_ref and not payment.charge_ref:
        payment.charge_ref = state.charge_ref
    if state.status == "authorized" and record_authorized(session, payment, hold_hours=hold_hours, now=now):
        changes.append("authorized")
    if state.status == "captured":
        # Our first news may be that it was captured already: it was authorised too,
        # and the order must still go on the board.
        if payment.status in (PaymentStatus.PENDING, PaymentStatus.FAILED) and \
                record_authorized(session, payment, hold_hours=hold_hours, now=now):
            changes.append("authorized")
        if record_captured(session, payment, state.amount_received, now=now):
            changes.append("captured")
        if state.amount_refunded and record_refunded(session, payment, state.amount_refunded, now=now):
            changes.append("refunded")
    if state.status == "released" and record_released(session, payment, now=now):
        changes.append("released")
    if state.status == "failed" and payment.status == PaymentStatus.PENDING:
        payment.status = PaymentStatus.FAILED
        changes.append("failed")
    return changes
