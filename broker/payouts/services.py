"""Connected accounts, earnings and payouts.

A payout run claims earnings in the database (row locks, `SKIP LOCKED` on
PostgreSQL), so a manual and a scheduled payout, or two schedulers, can never pay
one earning twice. Each transfer carries an idempotency key derived from the
earning, so a run that crashed after the provider moved the money, but before
our commit, repeats the same transfer rather than a second one.
"""

from __future__ import annotations

import dataclasses
import logging

from sqlalchemy import exists, func, select, true

from broker.auth import Actor, ActorKind, require
from broker.context import Context
from broker.db import insert_if_absent
from broker.errors import Invalid
from broker.ledger import services as ledger
from broker.pagination import Page, PageRequest, paginate
from broker.payments.models import Payment
from broker.payments.provider import PaymentError
from broker.payouts.models import ConnectedAccount, Earning, EarningKind, EarningStatus, Payout

log = logging.getLogger(__name__)


def _owner(actor: Actor) -> tuple[str, int]:
    require(actor, ActorKind.RETAILER, ActorKind.MANUFACTURER)
    return actor.kind.value, actor.id


@dataclasses.dataclass(frozen=True)
class Onboarding:
    account: ConnectedAccount
    url: str | None


def connect(ctx: Context, actor: Actor, *, email: str, country: str = "US") -> Onboarding:
    """Create (once) the caller's connected account and return a link to finish
    onboarding at the provider (none when the account is ready already)."""
    owner_kind, owner_id = _owner(actor)
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
            base = ctx.settings.public_url.rstrip("/")
            url = ctx.payments.onboarding_link(session, account.account_ref, return_url=f"{base}/",
                                               refresh_url=f"{base}/")
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
    accrued: int
    frozen: int
    paid: int
    account_ready: bool


def earnings_summary(ctx: Context, actor: Actor) -> EarningsSummary:
    owner_kind, owner_id = _owner(actor)
    with ctx.uow() as uow:
        session = uow.session
        totals = {status: 0 for status in EarningStatus}
        for status, amount in session.execute(
            select(Earning.status, func.sum(Earning.amount))
            .where(Earning.owner_kind == owner_kind, Earning.owner_id == owner_id).group_by(Earning.status)
        ):
            totals[EarningStatus(status)] = int(amount)
        ready = bool(session.scalar(select(ConnectedAccount.ready).where(
            ConnectedAccount.owner_kind == owner_kind, ConnectedAccount.owner_id == owner_id,
            ConnectedAccount.provider == ctx.payments.name)))
        return EarningsSummary(totals[EarningStatus.ACCRUED], totals[EarningStatus.FROZEN],
                               totals[EarningStatus.PAID], ready)


@dataclasses.dataclass
class PayoutReport:
    payouts: int = 0
    amount: dict[str, int] = dataclasses.field(default_factory=dict)
    failed: int = 0


def run_payouts(ctx: Context, *, batch_size: int = 50) -> PayoutReport:
    """Pay every accrued earning whose fulfiller has a ready account, one transfer
    per order. Safe to run concurrently with itself."""
    report = PayoutReport()
    seen: set[int] = set()
    while True:
        paid = _pay_batch(ctx, batch_size, seen, report)
        if not paid:
            return report


def _pay_batch(ctx: Context, batch_size: int, seen: set[int], report: PayoutReport) -> int:
    with ctx.uow() as uow:
        session = uow.session
        has_ready_account = exists().where(
            ConnectedAccount.owner_kind == Earning.owner_kind, ConnectedAccount.owner_id == Earning.owner_id,
            ConnectedAccount.provider == ctx.payments.name, ConnectedAccount.ready.is_(True))
        claimed = list(session.scalars(
            select(Earning)
            .where(Earning.status == EarningStatus.ACCRUED, Earning.kind == EarningKind.SALE, has_ready_account,
                   Earning.id.not_in(seen) if seen else true())
            .order_by(Earning.id)
            .limit(batch_size)
            .with_for_update(skip_locked=True, of=Earning)
        ))
        if not claimed:
            return 0
        now = ctx.now()
        for earning in claimed:
            seen.add(earning.id)
            if _pay_one(ctx, session, earning, now, report):
                report.payouts += 1
        uow.commit()
        return len(claimed)


def _pay_one(ctx: Context, session, earning: Earning, now, report: PayoutReport) -> bool:
    account = session.scalar(select(ConnectedAccount).where(
        ConnectedAccount.owner_kind == earning.owner_kind, ConnectedAccount.owner_id == earning.owner_id,
        ConnectedAccount.provider == ctx.payments.name))
    # What the fulfiller owes back from refunds after earlier payouts comes out of
    # this payout; if it owes more than this earning, the earning waits.
    clawbacks = list(session.scalars(
        select(Earning).where(Earning.owner_kind == earning.owner_kind, Earning.owner_id == earning.owner_id,
                              Earning.kind == EarningKind.CLAWBACK, Earning.status == EarningStatus.ACCRUED,
                              Earning.currency == earning.currency)
        .order_by(Earning.id).with_for_update(skip_locked=True)))
    owed_back = -sum(c.amount for c in clawbacks)
    if owed_back > earning.amount:
        return False
    amount = earning.amount - owed_back
    transfer_ref = None
    if amount > 0:
        try:
            transfer_ref = ctx.payments.transfer(
                session, account_ref=account.account_ref, amount=amount, currency=earning.currency,
                transfer_group=f"order-{earning.order_id}", source_ref=_charge_of(session, earning.order_id),
                idempotency_key=f"earning-{earning.id}-payout")
        except PaymentError as exc:
            report.failed += 1
            log.warning("payout of earning %s failed: %s", earning.id, exc,
                        extra={"event": "payout.failed", "earning_id": earning.id})
            return False
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
    report.amount[earning.currency] = report.amount.get(earning.currency, 0) + amount
    return True


def _charge_of(session, order_id: int) -> str | None:
    return session.scalar(select(Payment.charge_ref).where(Payment.order_id == order_id))


def transfer_reversed(session, transfer_ref: str, amount: int, now) -> bool:
    """The provider reversed a transfer: the money is back, and owed again."""
    payout = session.scalar(select(Payout).where(Payout.transfer_ref == transfer_ref).with_for_update())
    if payout is None or payout.status != "paid":
        return False
    payout.status = "reversed"
    ledger.post(session, kind="transfer_reversed", dedupe_key=f"payout-{payout.id}-reversed",
                currency=payout.currency, reference=transfer_ref, now=now,
                lines=[(ledger.CASH, payout.amount), (ledger.payable(payout.owner_kind, payout.owner_id), -payout.amount)])
    for earning in session.scalars(select(Earning).where(Earning.payout_id == payout.id)):
        earning.status = EarningStatus.ACCRUED
        earning.payout_id = None
    return True
