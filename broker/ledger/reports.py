"""Read-only views of the ledger for the parties it concerns."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from sqlalchemy import func, select

from broker.auth import Actor, ActorKind, require
from broker.context import Context
from broker.ledger.models import LedgerEntry, LedgerTransaction
from broker.ledger.services import FEES
from broker.orders.models import Order
from broker.pagination import Page, PageRequest, paginate


@dataclasses.dataclass(frozen=True)
class FeeTotal:
    currency: str
    fees: int
    orders: int


@dataclasses.dataclass(frozen=True)
class OrderFee:
    order_id: int
    currency: str
    fee: int  # net of what refunds gave back
    first_at: datetime


@dataclasses.dataclass(frozen=True)
class FeeReport:
    totals: list[FeeTotal]
    orders: Page[OrderFee]


def manufacturer_fees(ctx: Context, actor: Actor, page: PageRequest) -> FeeReport:
    """The platform's fees on the manufacturer's orders, whoever fulfilled them,
    from the ledger's fee account (so net of refunds), per currency and per order."""
    require(actor, ActorKind.MANUFACTURER)
    with ctx.uow() as uow:
        session = uow.session
        mine = (
            select(LedgerTransaction.order_id, LedgerEntry.currency, LedgerEntry.amount, LedgerTransaction.created_at)
            .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
            .join(Order, Order.id == LedgerTransaction.order_id)
            .where(LedgerEntry.account == FEES, Order.manufacturer_id == actor.id)
            .subquery()
        )
        totals = [
            FeeTotal(currency, -int(total), orders)
            for currency, total, orders in session.execute(
                select(mine.c.currency, func.sum(mine.c.amount), func.count(func.distinct(mine.c.order_id)))
                .group_by(mine.c.currency).order_by(mine.c.currency)
            )
        ]
        per_order = (
            select(mine.c.order_id, mine.c.currency, func.sum(mine.c.amount), func.min(mine.c.created_at))
            .group_by(mine.c.order_id, mine.c.currency)
            .order_by(mine.c.order_id.desc())
        )
        found = paginate(session, per_order, page, rows=True)
        return FeeReport(totals, Page([OrderFee(order_id, currency, -int(total), first)
                                       for order_id, currency, total, first in found.items], found.total))

