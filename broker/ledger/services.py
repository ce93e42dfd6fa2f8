"""The double-entry ledger: every movement of money as entries that sum to zero.

Accounts (one set per currency; debits positive, credits negative):

    holds:cards            card holds in place (memo: no money has moved yet)
    holds:customers        the other side of a hold
    cash:provider          our balance at the payment provider
    clearing:sales         captured money waiting to be split into fee and earning
    revenue:fees           the platform's fee
    payable:<kind>:<id>    what a fulfiller is owed (credit) or owes back (debit)
    tax:<jurisdiction>     tax collected and owed to a jurisdiction ("tax:US-NY",
                           "tax:DE"): a liability, never a fulfiller's or the fee
    disputes:open          money the provider withdrew while a dispute is open
    losses:disputes        disputes we lost

Postings are keyed (`dedupe_key`), so writing the same movement twice (a replayed
webhook, a retried job) is a no-op, and every write happens in the caller's
transaction, beside the state change it accounts for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from broker.db import insert_if_absent
from broker.ledger.models import LedgerEntry, LedgerTransaction

HOLDS_CARDS = "holds:cards"
HOLDS_CUSTOMERS = "holds:customers"
CASH = "cash:provider"
SALES = "clearing:sales"
FEES = "revenue:fees"
DISPUTES_OPEN = "disputes:open"
DISPUTES_LOST = "losses:disputes"


TAX_PREFIX = "tax:"


def tax_account(jurisdiction: str) -> str:
    return f"{TAX_PREFIX}{jurisdiction or 'unknown'}"


def payable(owner_kind: str, owner_id: int) -> str:
    return f"payable:{owner_kind}:{owner_id}"


class Unbalanced(ValueError):
    pass


def post(session: Session, *, kind: str, dedupe_key: str, currency: str, lines: Sequence[tuple[str, int]],
         now: datetime, order_id: int | None = None, reference: str | None = None) -> bool:
    """Write one balanced transaction unless one with this key exists. True if written."""
    lines = [(account, amount) for account, amount in lines if amount]
    if sum(amount for _, amount in lines) != 0:
        raise Unbalanced(f"{kind} {dedupe_key}: entries sum to {sum(a for _, a in lines)}, not 0")
    # ON CONFLICT, not a look first: two transactions posting the same movement
    # at once (a webhook and a retried job) would both see no posting.
    txn_id = insert_if_absent(session, LedgerTransaction, dict(
        kind=kind, dedupe_key=dedupe_key, currency=currency, order_id=order_id, reference=reference,
        created_at=now), unique=["dedupe_key"])
    if txn_id is None:
        return False
    session.add_all([LedgerEntry(transaction_id=txn_id, account=account, amount=amount, currency=currency)
                     for account, amount in lines])
    session.flush()
    return True


def balance(session: Session, account: str, currency: str) -> int:
    """Debits minus credits: a payable account that owes the fulfiller money is negative."""
    return int(session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0))
        .where(LedgerEntry.account == account, LedgerEntry.currency == currency)
    ))


def balances(session: Session, prefix: str = "") -> dict[tuple[str, str], int]:
    rows = session.execute(
        select(LedgerEntry.account, LedgerEntry.currency, func.sum(LedgerEntry.amount))
        .where(LedgerEntry.account.startswith(prefix))
        .group_by(LedgerEntry.account, LedgerEntry.currency)
        .order_by(LedgerEntry.account, LedgerEntry.currency)
    )
    return {(account, currency): int(total) for account, currency, total in rows}


@dataclasses.dataclass
class LedgerCheck:
    transactions: int
    entries: int
    # Transactions whose entries do not sum to zero, and currencies whose whole do not.
    unbalanced_transactions: list[int]
    unbalanced_currencies: dict[str, int]
    # Where the ledger and the recorded payments disagree: (what, ledger, recorded).
    mismatches: list[tuple[str, int, int]]

    @property
    def ok(self) -> bool:
        return not (self.unbalanced_transactions or self.unbalanced_currencies or self.mismatches)


def check(session: Session) -> LedgerCheck:
    """Prove the ledger balances, and reconcile it against the payments, earnings
    and payouts it accounts for (which follow the provider's events)."""
    from broker.payments.models import Payment, PaymentStatus
    from broker.payouts.models import Earning, EarningStatus, Payout

    unbalanced = list(session.scalars(
        select(LedgerEntry.transaction_id).group_by(LedgerEntry.transaction_id)
        .having(func.sum(LedgerEntry.amount) != 0)
    ))
    by_currency = {
        currency: int(total)
        for currency, total in session.execute(
            select(LedgerEntry.currency, func.sum(LedgerEntry.amount)).group_by(LedgerEntry.currency)
        )
        if total
    }
    mismatches: list[tuple[str, int, int]] = []

    def compare(what: str, ledger_amount: int, recorded: int) -> None:
        if ledger_amount != recorded:
            mismatches.append((what, ledger_amount, recorded))

    held = session.scalar(select(func.coalesce(func.sum(Payment.amount), 0))
                          .where(Payment.status == PaymentStatus.AUTHORIZED)) or 0
    compare("card holds in place", _sum(session, HOLDS_CARDS), int(held))
    captured = session.scalar(select(func.coalesce(func.sum(Payment.captured_amount), 0))) or 0
    refunded = session.scalar(select(func.coalesce(func.sum(Payment.refunded_amount), 0))) or 0
    paid_out = session.scalar(select(func.coalesce(func.sum(Payout.amount), 0))
                              .where(Payout.status == "paid")) or 0
    withdrawn = _disputed(session)
    compare("cash at the provider", _sum(session, CASH),
            int(captured) - int(refunded) - int(paid_out) - withdrawn)
    owed = session.scalar(select(func.coalesce(func.sum(Earning.amount), 0))
                          .where(Earning.status.in_([EarningStatus.ACCRUED, EarningStatus.FROZEN]))) or 0
    compare("owed to fulfillers", -_sum_prefix(session, "payable:"), int(owed))
    tax_owed = 0
    for payment in session.scalars(select(Payment).where(Payment.tax_amount > 0, Payment.captured_amount > 0)):
        tax_owed += payment_tax_kept(payment)
    compare("tax collected", -_sum_prefix(session, TAX_PREFIX), tax_owed)
    return LedgerCheck(
        transactions=session.scalar(select(func.count()).select_from(LedgerTransaction)) or 0,
        entries=session.scalar(select(func.count()).select_from(LedgerEntry)) or 0,
        unbalanced_transactions=unbalanced,
        unbalanced_currencies=by_currency,
        mismatches=mismatches,
    )


def tax_part(tax_amount: int, amount: int, part: int) -> int:
    """The tax in `part` of a payment of `amount` that holds `tax_amount` of tax
    (rounded down: all of it when `part` is the whole)."""
    return part * tax_amount // amount if amount and tax_amount else 0


def captured_tax(payment) -> int:
    base = payment.tax_base or payment.amount
    return tax_part(payment.tax_amount, base, min(payment.captured_amount, base))


def refunded_tax(payment, refunded: int) -> int:
    """The tax in the first `refunded` of what was captured: refunds give tax back
    in proportion, all of it with the last of the money."""
    return tax_part(captured_tax(payment), payment.captured_amount, refunded)


def payment_tax_kept(payment) -> int:
    return captured_tax(payment) - refunded_tax(payment, payment.refunded_amount)


def _disputed(session: Session) -> int:
    """What the provider's dispute events withdrew and did not give back: open
    disputes and lost ones (won ones returned the money)."""
    from broker.payments.models import WebhookEvent

    final: dict[str, tuple[str, int]] = {}
    for kind, payload in session.execute(
        select(WebhookEvent.type, WebhookEvent.payload)
        .where(WebhookEvent.type.in_(["charge.dispute.created", "charge.dispute.closed"]),
               WebhookEvent.outcome == "applied")
        .order_by(WebhookEvent.id)
    ):
        obj = payload["data"]["object"]
        status = "open" if kind == "charge.dispute.created" else obj.get("status", "lost")
        if final.get(obj["id"], ("", 0))[0] in ("won", "lost"):
            continue  # closed stays closed, whatever arrives after
        final[obj["id"]] = (status, int(obj.get("amount") or 0))
    return sum(amount for status, amount in final.values() if status != "won")


def _sum(session: Session, account: str) -> int:
    return int(session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0))
                              .where(LedgerEntry.account == account)))


def _sum_prefix(session: Session, prefix: str) -> int:
    return int(session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0))
                              .where(LedgerEntry.account.startswith(prefix))))
