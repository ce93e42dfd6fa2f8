"""What tax was collected where: by jurisdiction, over a period, from the ledger.

The ledger is the record: each capture credits `tax:<jurisdiction>` with the
tax in what was captured, each refund debits it with the tax given back
(broker.payments.services). So the report is what the jurisdiction is owed for
the period, whatever happened to the orders since.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import datetime

from sqlalchemy import case, func, select

from broker.accounts.models import Manufacturer
from broker.auth import Actor, ActorKind, require
from broker.context import Context
from broker.errors import Invalid, NotFound
from broker.ledger.models import LedgerEntry, LedgerTransaction
from broker.ledger.services import TAX_PREFIX
from broker.money import format_amount
from broker.orders.models import Order


@dataclasses.dataclass(frozen=True)
class Row:
    jurisdiction: str
    orders: int  # orders with tax collected or refunded in the period
    collected: int
    refunded: int

    @property
    def net(self) -> int:
        return self.collected - self.refunded


@dataclasses.dataclass(frozen=True)
class TaxReport:
    manufacturer: str
    currency: str
    start: datetime
    end: datetime
    rows: list[Row]

    @property
    def collected(self) -> int:
        return sum(r.collected for r in self.rows)

    @property
    def refunded(self) -> int:
        return sum(r.refunded for r in self.rows)

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["jurisdiction", "period_start", "period_end", "currency", "orders", "collected",
                         "refunded", "net", "collected_text", "refunded_text", "net_text"])
        for r in self.rows:
            writer.writerow([r.jurisdiction, self.start.isoformat(), self.end.isoformat(), self.currency, r.orders,
                             r.collected, r.refunded, r.net, format_amount(r.collected, self.currency),
                             format_amount(r.refunded, self.currency), format_amount(r.net, self.currency)])
        return out.getvalue()


def _report(session, maker: Manufacturer, start: datetime, end: datetime) -> TaxReport:
    if end <= start:
        raise Invalid.field("to", "must be after from")
    jurisdiction = func.substr(LedgerEntry.account, len(TAX_PREFIX) + 1)
    rows = session.execute(
        select(jurisdiction, func.count(func.distinct(LedgerTransaction.order_id)),
               func.coalesce(func.sum(case((LedgerEntry.amount < 0, -LedgerEntry.amount), else_=0)), 0),
               func.coalesce(func.sum(case((LedgerEntry.amount > 0, LedgerEntry.amount), else_=0)), 0))
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .join(Order, Order.id == LedgerTransaction.order_id)
        .where(Order.manufacturer_id == maker.id, LedgerEntry.account.startswith(TAX_PREFIX),
               LedgerEntry.currency == maker.currency,
               LedgerTransaction.created_at >= start, LedgerTransaction.created_at < end)
        .group_by(jurisdiction).order_by(jurisdiction)
    ).all()
    return TaxReport(maker.slug, maker.currency, start, end,
                     [Row(j, int(n), int(collected), int(refunded)) for j, n, collected, refunded in rows])


def tax_report(ctx: Context, actor: Actor, start: datetime, end: datetime) -> TaxReport:
    """The caller's tax collected from `start` up to `end`. :raise 422: an empty period."""
    require(actor, ActorKind.MANUFACTURER)
    with ctx.uow() as uow:
        return _report(uow.session, uow.session.get_one(Manufacturer, actor.id), start, end)


def tax_report_for(ctx: Context, slug: str, start: datetime, end: datetime) -> TaxReport:
    """The operator's view (the command line). :raise 404: no such manufacturer."""
    with ctx.uow() as uow:
        maker = uow.session.scalar(select(Manufacturer).where(Manufacturer.slug == slug))
        if maker is None:
            raise NotFound(f"no manufacturer {slug!r}")
        return _report(uow.session, maker, start, end)
