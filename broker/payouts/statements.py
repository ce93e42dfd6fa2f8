"""Earnings statements: what a fulfiller (a retailer, or a manufacturer shipping
its own orders) earned in a period, order by order, and what was paid out.

Everything here is read from the ledger (`broker.ledger.services`), which is
written once and never changed, so a statement for a closed period says the
same thing every time it is asked for: a refund made next week is a line of
next week's statement (negative), not a change to this week's. Per order and
period:

* net: what the fulfiller's payable account was credited (an earning),
  less what refunds or a lost dispute took back;
* fee: the platform's fee on the same movements (refunds give part of it back);
* gross: net + fee, the customer's money the fulfiller earned on.

The status (accrued, frozen, paid, reversed) is the order's earning's now.
Periods are whole days on the fulfiller's own clock: a retailer's first store's
time zone, a manufacturer's `BROKER_TIMEZONE`. Weeks start on Monday.
Amounts are never added across currencies: totals are per currency.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from broker.accounts.models import Manufacturer, Retailer, Store
from broker.auth import Actor, ActorKind, require
from broker.context import Context
from broker.errors import Invalid
from broker.ledger import services as ledger
from broker.ledger.models import LedgerEntry, LedgerTransaction
from broker.pagination import Page, PageRequest, paginate
from broker.payouts.models import ConnectedAccount, Earning, EarningKind, EarningStatus, Payout

# The ledger movements that change what a fulfiller earned on an order.
EARNING_KINDS = ("earning", "refund", "earning_reversed")
# A custom period may span at most this many days (a year and a day: a leap year).
MAX_DAYS = 366


class PeriodKind(enum.StrEnum):
    THIS_WEEK = "this-week"
    LAST_WEEK = "last-week"
    THIS_MONTH = "this-month"
    LAST_MONTH = "last-month"
    CUSTOM = "custom"


LABELS = {PeriodKind.THIS_WEEK: "This week", PeriodKind.LAST_WEEK: "Last week",
          PeriodKind.THIS_MONTH: "This month", PeriodKind.LAST_MONTH: "Last month",
          PeriodKind.CUSTOM: "Dates"}


@dataclasses.dataclass(frozen=True)
class Period:
    kind: PeriodKind
    first: date  # the first day, on the owner's clock
    last: date   # the last day, included
    timezone: str

    @property
    def starts_at(self) -> datetime:
        return datetime.combine(self.first, time(0), ZoneInfo(self.timezone)).astimezone(UTC)

    @property
    def ends_at(self) -> datetime:
        """The first moment after the period (the next day's midnight, local)."""
        return datetime.combine(self.last + timedelta(days=1), time(0), ZoneInfo(self.timezone)).astimezone(UTC)

    @property
    def label(self) -> str:
        if self.first == self.last:
            return self.first.isoformat()
        return f"{self.first.isoformat()} to {self.last.isoformat()}"

    @property
    def slug(self) -> str:
        return f"{self.first.isoformat()}_{self.last.isoformat()}"


def _parse_day(text: str, field: str, errors: dict[str, list[str]]) -> date | None:
    text = (text or "").strip()
    if not text:
        errors[field] = ["enter a date, as YYYY-MM-DD"]
        return None
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        errors[field] = [f"{text[:20]!r} is not a date; write it as YYYY-MM-DD"]
        return None


def period(kind: str | None, today: date, timezone: str, *, first: str = "", last: str = "") -> Period:
    """The period asked for, as whole days on the owner's clock (`today` is its date now).

    :raise 422: an unknown kind, or custom dates that are not dates, end before
        they start, or span more than `MAX_DAYS` (every error at once, by field).
    """
    try:
        chosen = PeriodKind(kind or PeriodKind.THIS_WEEK)
    except ValueError:
        raise Invalid.field("period", "choose this week, last week, this month, last month or dates") from None
    monday = today - timedelta(days=today.weekday())
    month = today.replace(day=1)
    if chosen is PeriodKind.THIS_WEEK:
        return Period(chosen, monday, monday + timedelta(days=6), timezone)
    if chosen is PeriodKind.LAST_WEEK:
        return Period(chosen, monday - timedelta(weeks=1), monday - timedelta(days=1), timezone)
    if chosen is PeriodKind.THIS_MONTH:
        following = (month + timedelta(days=32)).replace(day=1)
        return Period(chosen, month, following - timedelta(days=1), timezone)
    if chosen is PeriodKind.LAST_MONTH:
        previous = (month - timedelta(days=1)).replace(day=1)
        return Period(chosen, previous, month - timedelta(days=1), timezone)
    errors: dict[str, list[str]] = {}
    start, end = _parse_day(first, "from", errors), _parse_day(last, "to", errors)
    if start and end:
        if end < start:
            errors["to"] = ["must be on or after the first day"]
        elif (end - start).days + 1 > MAX_DAYS:
            errors["to"] = [f"a period is at most {MAX_DAYS} days"]
    if errors:
        raise Invalid("the dates are not right", errors=errors)
    return Period(chosen, start, end, timezone)


@dataclasses.dataclass(frozen=True)
class Owner:
    kind: str  # retailer or manufacturer
    id: int
    name: str
    timezone: str
    locale: str

    @property
    def account(self) -> str:
        return ledger.payable(self.kind, self.id)


def owner_of(ctx: Context, session: Session, actor: Actor) -> Owner:
    """Who earns: the retailer (its first store's clock), or the manufacturer
    shipping its own orders (Broker's clock, its store's locale)."""
    require(actor, ActorKind.RETAILER, ActorKind.MANUFACTURER)
    if actor.kind is ActorKind.RETAILER:
        name = session.scalar(select(Retailer.name).where(Retailer.id == actor.id)) or ""
        zone = session.scalar(select(Store.timezone).where(Store.retailer_id == actor.id).order_by(Store.id).limit(1))
        return Owner("retailer", actor.id, name, _zone(zone, ctx.settings.timezone), "en_US")
    maker = session.scalar(select(Manufacturer).where(Manufacturer.id == actor.id))
    return Owner("manufacturer", actor.id, maker.name if maker else "", _zone(None, ctx.settings.timezone),
                 maker.locale if maker else "en_US")


def _zone(name: str | None, default: str) -> str:
    for candidate in (name, default):
        if candidate:
            try:
                ZoneInfo(candidate)
                return candidate
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return "UTC"


@dataclasses.dataclass(frozen=True)
class Line:
    order_id: int
    currency: str
    at: datetime        # the first movement in the period
    gross: int
    fee: int
    net: int
    movements: tuple[str, ...]  # earning, refund, earning_reversed: what happened in the period
    status: str                 # the order's earning now (accrued, frozen, paid, reversed)
    paid_at: datetime | None    # when its payout was made, if it was
    payout_id: int | None


@dataclasses.dataclass(frozen=True)
class Totals:
    currency: str
    orders: int
    gross: int
    fee: int
    net: int


@dataclasses.dataclass(frozen=True)
class PaidEarning:
    earning_id: int
    order_id: int
    kind: str    # sale, or a clawback netted from it
    amount: int


@dataclasses.dataclass(frozen=True)
class PayoutLine:
    id: int
    at: datetime
    amount: int
    currency: str
    status: str  # paid, reversed
    reference: str | None
    earnings: tuple[PaidEarning, ...]


@dataclasses.dataclass(frozen=True)
class Balance:
    """All-time, per currency: what is owed, frozen by disputes, and paid."""

    currency: str
    accrued: int
    frozen: int
    paid: int


@dataclasses.dataclass(frozen=True)
class Statement:
    owner: Owner
    period: Period
    lines: Page[Line]
    totals: list[Totals]
    payouts: list[PayoutLine]
    balances: list[Balance]
    account_ready: bool
    account_exists: bool
    errors: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # a period that was not right


def _movements(owner: Owner, period: Period):
    """The ledger transactions of the period that moved the owner's payable account."""
    return (
        select(LedgerTransaction.id)
        .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
        .where(LedgerEntry.account == owner.account, LedgerTransaction.kind.in_(EARNING_KINDS),
               LedgerTransaction.created_at >= period.starts_at, LedgerTransaction.created_at < period.ends_at,
               LedgerTransaction.order_id.is_not(None))
    )


def _per_order(owner: Owner, period: Period):
    payable = func.sum(case((LedgerEntry.account == owner.account, LedgerEntry.amount), else_=0))
    fees = func.sum(case((LedgerEntry.account == ledger.FEES, LedgerEntry.amount), else_=0))
    return (
        select(LedgerTransaction.order_id, LedgerTransaction.currency, payable.label("payable"),
               fees.label("fees"), func.min(LedgerTransaction.created_at).label("first_at"))
        .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
        .where(LedgerTransaction.id.in_(_movements(owner, period)),
               LedgerEntry.account.in_([owner.account, ledger.FEES]))
        .group_by(LedgerTransaction.order_id, LedgerTransaction.currency)
    )


def _lines(session: Session, owner: Owner, chosen: Period, rows) -> list[Line]:
    """Lines from rows of `_per_order`, with each order's earning status and payout."""
    rows = [tuple(row) for row in rows]
    order_ids = [row[0] for row in rows]
    if not order_ids:
        return []
    earnings = {e.order_id: e for e in session.scalars(select(Earning).where(
        Earning.order_id.in_(order_ids), Earning.kind == EarningKind.SALE, Earning.owner_kind == owner.kind,
        Earning.owner_id == owner.id))}
    paid_at = dict(session.execute(select(Payout.id, Payout.created_at).where(
        Payout.id.in_([e.payout_id for e in earnings.values() if e.payout_id]))).all())
    kinds: dict[int, set[str]] = {}
    for order_id, kind in session.execute(
        select(LedgerTransaction.order_id, LedgerTransaction.kind).where(
            LedgerTransaction.id.in_(_movements(owner, chosen)), LedgerTransaction.order_id.in_(order_ids))
        .distinct()
    ):
        kinds.setdefault(order_id, set()).add(kind)
    found = []
    for order_id, currency, payable, fees, first_at in rows:
        net, fee = -int(payable or 0), -int(fees or 0)
        earning = earnings.get(order_id)
        payout_id = earning.payout_id if earning else None
        found.append(Line(order_id, currency, first_at, net + fee, fee, net, tuple(sorted(kinds.get(order_id, ()))),
                          str(earning.status) if earning else str(EarningStatus.REVERSED),
                          paid_at.get(payout_id) if payout_id else None, payout_id))
    return found


@dataclasses.dataclass(frozen=True)
class PeriodQuery:
    """A period as asked for: a kind (this-week, last-week, this-month,
    last-month, custom) and, for custom, the first and last days as typed."""

    kind: str | None = None
    first: str = ""
    last: str = ""


def _resolve(ctx: Context, owner: Owner, query: PeriodQuery) -> Period:
    today = ctx.now().astimezone(ZoneInfo(owner.timezone)).date()
    return period(query.kind, today, owner.timezone, first=query.first, last=query.last)


def statement(ctx: Context, actor: Actor, query: PeriodQuery, page: PageRequest) -> Statement:
    """The caller's statement for the period: a page of its orders, its totals per
    currency, the payouts made in the period with the earnings each paid, its
    all-time balances per currency, and whether payouts can flow. A period that
    is not right is reported in `errors` (by field), and this week shown."""
    with ctx.uow() as uow:
        session = uow.session
        owner = owner_of(ctx, session, actor)
        errors: dict[str, list[str]] = {}
        try:
            chosen = _resolve(ctx, owner, query)
        except Invalid as exc:
            errors = exc.errors or {"period": [exc.detail]}
            chosen = _resolve(ctx, owner, PeriodQuery())
        per_order = _per_order(owner, chosen).subquery()
        found = paginate(session, select(per_order).order_by(per_order.c.first_at.desc(),
                                                              per_order.c.order_id.desc()), page, rows=True)
        lines = _lines(session, owner, chosen, found.items)
        totals = [Totals(currency, orders, -int(payable) - int(fees), -int(fees), -int(payable))
                  for currency, orders, payable, fees in session.execute(
                      select(per_order.c.currency, func.count(), func.sum(per_order.c.payable),
                             func.sum(per_order.c.fees))
                      .group_by(per_order.c.currency).order_by(per_order.c.currency))]
        account = session.scalar(select(ConnectedAccount).where(
            ConnectedAccount.owner_kind == owner.kind, ConnectedAccount.owner_id == owner.id,
            ConnectedAccount.provider == ctx.payments.name))
        return Statement(owner, chosen, Page(lines, found.total), totals, _payouts(session, owner, chosen),
                         balances(session, owner.kind, owner.id), bool(account and account.ready),
                         account is not None, errors)


@dataclasses.dataclass(frozen=True)
class StatementFile:
    owner: Owner
    period: Period
    lines: Iterator[Line]  # every line, oldest first, read in batches as it is consumed


def statement_file(ctx: Context, actor: Actor, query: PeriodQuery, *, batch: int = 500) -> StatementFile:
    """Every line of the period, for the CSV download: the same numbers as the page.

    :raise 422: the period is not right (before anything is read)."""
    with ctx.uow() as uow:
        owner = owner_of(ctx, uow.session, actor)
    chosen = _resolve(ctx, owner, query)

    def read() -> Iterator[Line]:
        with ctx.uow() as uow:
            session = uow.session
            per_order = _per_order(owner, chosen).subquery()
            stmt = select(per_order).order_by(per_order.c.first_at, per_order.c.order_id)
            offset = 0
            while True:
                rows = session.execute(stmt.limit(batch).offset(offset)).all()
                if not rows:
                    return
                yield from _lines(session, owner, chosen, rows)
                offset += batch

    return StatementFile(owner, chosen, read())


def _payouts(session: Session, owner: Owner, chosen: Period) -> list[PayoutLine]:
    payouts = list(session.scalars(select(Payout).where(
        Payout.owner_kind == owner.kind, Payout.owner_id == owner.id, Payout.created_at >= chosen.starts_at,
        Payout.created_at < chosen.ends_at).order_by(Payout.created_at.desc(), Payout.id.desc())))
    paid: dict[int, list[PaidEarning]] = {}
    for e in session.scalars(select(Earning).where(Earning.payout_id.in_([p.id for p in payouts]))
                             .order_by(Earning.id)):
        paid.setdefault(e.payout_id, []).append(PaidEarning(e.id, e.order_id, str(e.kind), e.amount))
    return [PayoutLine(p.id, p.created_at, p.amount, p.currency, p.status, p.transfer_ref,
                       tuple(paid.get(p.id, ()))) for p in payouts]


def balances(session: Session, owner_kind: str, owner_id: int) -> list[Balance]:
    """What the owner is owed, has frozen and was paid, per currency (never summed across)."""
    sums: dict[str, dict[str, int]] = {}
    for currency, status, amount in session.execute(
        select(Earning.currency, Earning.status, func.sum(Earning.amount))
        .where(Earning.owner_kind == owner_kind, Earning.owner_id == owner_id)
        .group_by(Earning.currency, Earning.status)
    ):
        sums.setdefault(currency, {})[str(status)] = int(amount or 0)
    return [Balance(currency, by.get(EarningStatus.ACCRUED, 0), by.get(EarningStatus.FROZEN, 0),
                    by.get(EarningStatus.PAID, 0)) for currency, by in sorted(sums.items())]
