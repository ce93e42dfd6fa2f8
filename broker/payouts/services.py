"""Connected accounts, earnings and payouts.

A payout run pays each earning in its own transaction, holding its order's,
payment's and earning's row locks (in the order of `broker.locks`), so a manual
and a scheduled payout, two schedulers, or a refund at the same moment can never
pay one earning twice or pay what was refunded. Each transfer carries an
idempotency key derived from the earning, so a run that crashed after the
provider moved the money, but before our commit, repeats the same transfer
rather than a second one.
"""

from __future__ import annotations

import dataclasses
import logging

from sqlalchemy import exists, select, true

from broker.auth import Actor, ActorKind, require
from broker.context import Context
from broker.db import insert_if_absent
from broker.email_address import email_address
from broker.errors import Invalid
from broker.ledger import services as ledger
from broker.locks import lock
from broker.orders.models import Order
from broker.pagination import Page, PageRequest, paginate
from broker.parking import services as parking
from broker.payments.models import Payment
from broker.payments.provider import PaymentError
from broker.payouts.models import ConnectedAccount, Earning, EarningKind, EarningStatus, Payout
from broker.urls import absolute_url

log = logging.getLogger(__name__)


def _owner(actor: Actor) -> tuple[str, int]:
    require(actor, ActorKind.RETAILER, ActorKind.MANUFACTURER)
    return actor.kind.value, actor.id


@dataclasses.dataclass(frozen=True)
class Onboarding:
    account: ConnectedAccount
    url: str | None


# Where the provider sends the account's owner back after onboarding (and where
# an expired link starts again): the portal's or the console's payout-account
# page, which reads the account's state again.
RETURN_PATHS = {"retailer": "/portal/payout-account", "manufacturer": "/console/payout-account"}


def connect(ctx: Context, actor: Actor, *, email: str, country: str = "US") -> Onboarding:
    """Create (once) the caller's connected account and return a link to finish
    onboarding at the provider (none when the account is ready already)."""
    owner_kind, owner_id = _owner(actor)
    email = email_address(email)
    if len(country) != 2:
        raise Invalid.field("country", "use the two-letter ISO 3166 country code")
    with ctx.uow() as uow:
        session = uow.session
        account = session.scalar(select(ConnectedAccount).where(
            ConnectedAccount.owner_kind == owner_kind, ConnectedAccount.owner_id == owner_id,
            ConnectedAccount.provider == ctx.payments.name))
        now = ctx.now()
        if account is None:
            # The key makes a second request at the same moment get the same
            # account from the provider; ON CONFLICT makes it find the first's row.
            made = ctx.payments.create_account(session, email=email, country=country.upper(),
                                               idempotency_key=f"{owner_kind}-{owner_id}-account")
            insert_if_absent(session, ConnectedAccount, dict(
                owner_kind=owner_kind, owner_id=owner_id, provider=ctx.payments.name, account_ref=made.ref,
                ready=made.ready, created_at=now, updated_at=now), unique=["owner_kind", "owner_id", "provider"])
            account = session.scalar(select(ConnectedAccount).where(
                ConnectedAccount.owner_kind == owner_kind, ConnectedAccount.owner_id == owner_id,
                ConnectedAccount.provider == ctx.payments.name))
        url = None
        if not account.ready:
            back = absolute_url(ctx.settings, RETURN_PATHS[owner_kind])
            url = ctx.payments.onboarding_link(session, account.account_ref, return_url=back, refresh_url=back)
        uow.commit()
        return Onboarding(account, url)


def account_updated(session, account_ref: str, ready: bool, now) -> bool:
    """The provider says an account changed (its webhook). True if we know the account."""
    account = session.scalar(select(ConnectedAccount).where(ConnectedAccount.account_ref == account_ref))
    if account is None:
        return False
    account.ready = ready
    account.updated_at = now
    return True


def list_earnings(ctx: Context, actor: Actor, page: PageRequest) -> Page[Earning]:
    owner_kind, owner_id = _owner(actor)
    with ctx.uow() as uow:
        stmt = (select(Earning).where(Earning.owner_kind == owner_kind, Earning.owner_id == owner_id)
                .order_by(Earning.id.desc()))
        return paginate(uow.session, stmt, page)


@dataclasses.dataclass(frozen=True)
class EarningsSummary:
    """Totals per currency: an amount in one currency is never added to another's."""

    by_currency: list  # of statements.Balance, by currency code
    account_ready: bool

    @property
    def single(self):
        """The one currency's totals when every earning is in one currency (else None)."""
        return self.by_currency[0] if len(self.by_currency) == 1 else None


def earnings_summary(ctx: Context, actor: Actor) -> EarningsSummary:
    from broker.payouts.statements import balances

    owner_kind, owner_id = _owner(actor)
    with ctx.uow() as uow:
        session = uow.session
        ready = bool(session.scalar(select(ConnectedAccount.ready).where(
            ConnectedAccount.owner_kind == owner_kind, ConnectedAccount.owner_id == owner_id,
            ConnectedAccount.provider == ctx.payments.name)))
        return EarningsSummary(balances(session, owner_kind, owner_id), ready)


@dataclasses.dataclass
class PayoutReport:
    payouts: int = 0
    amount: dict[str, int] = dataclasses.field(default_factory=dict)
    failed: int = 0  # earnings whose payout failed this run (tried again next run)
    parked: int = 0  # earnings that failed too often: they wait for the operator


JOB = "payouts"


def run_payouts(ctx: Context, *, batch_size: int = 50) -> PayoutReport:
    """Pay every accrued earning whose fulfiller has a ready account, one transfer
    per order, each earning in its own transaction. Safe to run concurrently
    with itself: the first pass skips orders another transaction holds (another
    run, a refund), the second waits for them. An earning whose payout fails is
    tried again next run, and parked after a few (broker.parking)."""
    report = PayoutReport()
    for skip_locked in (True, False):
        seen: set[int] = set()
        while True:
            ids = _due_earnings(ctx, batch_size, seen)
            if not ids:
                break
            seen.update(ids)
            rows = parking.each(ctx, JOB, "earning", ids, lambda earning_id: _pay(ctx, earning_id, skip_locked,
                                                                                 report))
            report.failed += rows.failed
            report.parked += rows.parked
    return report


def _due_earnings(ctx: Context, batch_size: int, seen: set[int]) -> list[int]:
    now = ctx.now()
    with ctx.uow() as uow:
        return list(uow.session.scalars(
            select(Earning.id)
            .where(Earning.status == EarningStatus.ACCRUED, Earning.kind == EarningKind.SALE, _has_ready_account(ctx),
                   Earning.id.not_in(seen) if seen else true(), parking.may_try(JOB, "earning", Earning.id, now))
            .order_by(Earning.id)
            .limit(batch_size)
        ))


def _has_ready_account(ctx: Context):
    return exists().where(
        ConnectedAccount.owner_kind == Earning.owner_kind, ConnectedAccount.owner_id == Earning.owner_id,
        ConnectedAccount.provider == ctx.payments.name, ConnectedAccount.ready.is_(True))


def _pay(ctx: Context, earning_id: int, skip_locked: bool, report: PayoutReport) -> None:
    """Pay one earning, locking in the order every writer uses (broker.locks):
    its order, its payment, the earning. Nothing if another transaction holds
    the order (on the first pass) or the earning is no longer accrued."""
    with ctx.uow() as uow:
        session = uow.session
        order_id = session.scalar(select(Earning.order_id).where(Earning.id == earning_id))
        if session.scalar(lock(select(Order.id).where(Order.id == order_id), skip_locked=skip_locked)) is None:
            return  # a refund or another run has it: the second pass waits for it
        session.scalar(lock(select(Payment.id).where(Payment.order_id == order_id)))
        earning = session.scalar(lock(select(Earning).where(
            Earning.id == earning_id, Earning.status == EarningStatus.ACCRUED, _has_ready_account(ctx)))
            .execution_options(populate_existing=True))
        if earning is None:
            return  # paid by another run meanwhile, refunded away, or disputed
        paid = _pay_one(ctx, session, earning, ctx.now())
        uow.commit()
    if paid is not None:
        report.payouts += 1
        report.amount[paid[1]] = report.amount.get(paid[1], 0) + paid[0]


def _pay_one(ctx: Context, session, earning: Earning, now) -> tuple[int, str] | None:
    """Transfer what the earning is owed, less what its fulfiller owes back, and
    record it (caller's transaction): (amount, currency), or None if it waits.

    :raise PaymentError: the provider did not move the money (nothing is recorded)."""
    account = session.scalar(select(ConnectedAccount).where(
        ConnectedAccount.owner_kind == earning.owner_kind, ConnectedAccount.owner_id == earning.owner_id,
        ConnectedAccount.provider == ctx.payments.name))
    # What the fulfiller owes back from refunds after earlier payouts comes out of
    # this payout; if it owes more than this earning, the earning waits. Clawbacks
    # are of other orders, whose locks this transaction does not hold: SKIP LOCKED,
    # so it never waits for them (broker.locks); one a refund holds now waits for
    # the next payout.
    clawbacks = list(session.scalars(
        lock(select(Earning).where(Earning.owner_kind == earning.owner_kind, Earning.owner_id == earning.owner_id,
                                   Earning.kind == EarningKind.CLAWBACK, Earning.status == EarningStatus.ACCRUED,
                                   Earning.currency == earning.currency)
             .order_by(Earning.id), skip_locked=True)))
    owed_back = -sum(c.amount for c in clawbacks)
    if owed_back > earning.amount:
        return None
    amount = earning.amount - owed_back
    transfer_ref = None
    if amount > 0:
        try:
            transfer_ref = ctx.payments.transfer(
                session, account_ref=account.account_ref, amount=amount, currency=earning.currency,
                transfer_group=f"order-{earning.order_id}", source_ref=_charge_of(session, earning.order_id),
                idempotency_key=f"earning-{earning.id}-payout")
        except PaymentError as exc:
            log.warning("payout of earning %s failed: %s", earning.id, exc,
                        extra={"event": "payout.failed", "earning_id": earning.id})
            raise
    payout = Payout(owner_kind=earning.owner_kind, owner_id=earning.owner_id, account_ref=account.account_ref,
                    amount=amount, currency=earning.currency, transfer_ref=transfer_ref, status="paid",
                    created_at=now)
    session.add(payout)
    session.flush()
    for paid in [earning, *clawbacks]:
        paid.status = EarningStatus.PAID
        paid.payout_id = payout.id
    ledger.post(session, kind="payout", dedupe_key=f"payout-{payout.id}", currency=earning.currency,
                order_id=earning.order_id, reference=transfer_ref, now=now,
                lines=[(ledger.payable(earning.owner_kind, earning.owner_id), amount), (ledger.CASH, -amount)])
    return amount, earning.currency


def _charge_of(session, order_id: int) -> str | None:
    return session.scalar(select(Payment.charge_ref).where(Payment.order_id == order_id))


def transfer_reversed(session, transfer_ref: str, amount: int, now) -> bool:
    """The provider reversed a transfer: the money is back, and owed again.

    Locks as every writer does (broker.locks): the orders of the payout's
    earnings, the earnings, then the payout."""
    payout_id = session.scalar(select(Payout.id).where(Payout.transfer_ref == transfer_ref))
    if payout_id is None:
        return False
    order_ids = sorted(set(session.scalars(select(Earning.order_id).where(Earning.payout_id == payout_id))))
    if order_ids:
        session.scalars(lock(select(Order.id).where(Order.id.in_(order_ids)).order_by(Order.id))).all()
        session.scalars(lock(select(Earning.id).where(Earning.payout_id == payout_id).order_by(Earning.id))).all()
    payout = session.scalar(lock(select(Payout).where(Payout.id == payout_id))
                            .execution_options(populate_existing=True))
    if payout.status != "paid":
        return False
    payout.status = "reversed"
    ledger.post(session, kind="transfer_reversed", dedupe_key=f"payout-{payout.id}-reversed",
                currency=payout.currency, reference=transfer_ref, now=now,
                lines=[(ledger.CASH, payout.amount), (ledger.payable(payout.owner_kind, payout.owner_id), -payout.amount)])
    for earning in session.scalars(select(Earning).where(Earning.payout_id == payout.id)):
        earning.status = EarningStatus.ACCRUED
        earning.payout_id = None
    return True
