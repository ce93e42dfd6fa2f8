"""A manufacturer's revenue by week, from the ledger: what its orders brought in,
split by who fulfilled them (retailers, or the manufacturer itself).

Per week (Monday 00:00 to Monday 00:00 UTC, as the dashboard's other charts)
and per currency (amounts in different currencies are never added together):

* gross: captured from customers' cards (the `capture` postings' cash);
* refunds: given back to cards (the `refund` postings' cash);
* fees: Broker's platform fee, net of what refunds and lost disputes gave back
  (the fee account's postings on the earnings, refunds and reversals);
* net: gross less refunds less fees.

Each movement counts in the week it was posted, so a refund made this week
lowers this week, and last week's numbers never change. An order counts for
whoever earns on it (its earning's owner), or, before it has an earning (a
hold captured early, then released), whoever has it now.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime

from sqlalchemy import case, func, literal, select
from sqlalchemy.orm import Session

from broker.fulfilment.models import Assignment
from broker.ledger import services as ledger
from broker.ledger.models import LedgerEntry, LedgerTransaction
from broker.orders.models import Order
from broker.payouts.models import Earning, EarningKind

FULFILLERS = ("retailer", "manufacturer")


@dataclasses.dataclass(frozen=True)
class Figures:
    gross: int = 0
    refunds: int = 0
    fees: int = 0

    @property
    def net(self) -> int:
        return self.gross - self.refunds - self.fees

    def __add__(self, other: Figures) -> Figures:
        return Figures(self.gross + other.gross, self.refunds + other.refunds, self.fees + other.fees)


@dataclasses.dataclass(frozen=True)
class CurrencyRevenue:
    currency: str
    # weeks[i][fulfiller] for each week of `Revenue.weeks`; fulfiller is retailer or manufacturer
    weeks: list[dict[str, Figures]]

    def week_total(self, i: int) -> Figures:
        return sum(self.weeks[i].values(), Figures())

    def total(self, fulfiller: str | None = None) -> Figures:
        return sum((w.get(fulfiller, Figures()) if fulfiller else sum(w.values(), Figures()) for w in self.weeks),
                   Figures())


@dataclasses.dataclass(frozen=True)
class Revenue:
    weeks: list[date]
    by_currency: list[CurrencyRevenue]  # by currency code

    def currency(self, code: str) -> CurrencyRevenue | None:
        return next((c for c in self.by_currency if c.currency == code), None)


def revenue(session: Session, manufacturer_id: int, starts: list[date], bounds: list[datetime]) -> Revenue:
    """The weeks starting on `starts` (bounded by `bounds`, one more than the weeks)."""
    txn = LedgerTransaction
    week = case(*[(txn.created_at < bounds[i + 1], i) for i in range(len(starts))]).label("week")
    earner = (select(Earning.owner_kind).where(Earning.order_id == txn.order_id, Earning.kind == EarningKind.SALE)
              .limit(1).scalar_subquery())
    holder = (select(Assignment.fulfiller_kind).where(Assignment.order_id == txn.order_id)
              .order_by(Assignment.id.desc()).limit(1).scalar_subquery())
    fulfiller = func.coalesce(earner, holder, literal("manufacturer")).label("fulfiller")
    inner = (
        select(week, fulfiller, txn.currency, txn.kind, LedgerEntry.account, LedgerEntry.amount)
        .join(LedgerEntry, LedgerEntry.transaction_id == txn.id)
        .join(Order, Order.id == txn.order_id)
        .where(Order.manufacturer_id == manufacturer_id, txn.created_at >= bounds[0], txn.created_at < bounds[-1],
               txn.kind.in_(["capture", "refund", "earning", "earning_reversed"]),
               LedgerEntry.account.in_([ledger.CASH, ledger.FEES]))
        .subquery()
    )
    rows = session.execute(
        select(inner.c.week, inner.c.fulfiller, inner.c.currency, inner.c.kind, inner.c.account,
               func.sum(inner.c.amount))
        .group_by(inner.c.week, inner.c.fulfiller, inner.c.currency, inner.c.kind, inner.c.account)
    )
    found: dict[str, list[dict[str, Figures]]] = {}
    for index, who, currency, kind, account, amount in rows:
        weeks = found.setdefault(currency, [{} for _ in starts])
        who = who if who in FULFILLERS else "manufacturer"
        amount = int(amount or 0)
        if account == ledger.CASH and kind == "capture":
            part = Figures(gross=amount)
        elif account == ledger.CASH and kind == "refund":
            part = Figures(refunds=-amount)
        elif account == ledger.FEES:
            part = Figures(fees=-amount)
        else:
            continue
        weeks[int(index)][who] = weeks[int(index)].get(who, Figures()) + part
    return Revenue(starts, [CurrencyRevenue(currency, weeks) for currency, weeks in sorted(found.items())])
