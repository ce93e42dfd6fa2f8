"""The manufacturer's dashboard: its orders by state, and week by week who
fulfilled them, how often retailers let an order lapse, and how far orders travel.

Definitions (each week runs Monday 00:00 to Monday 00:00 UTC, and an
assignment counts in the week it was made):

* fulfilled by retailers / by itself: the assignments that are fulfilling an
  order (active or shipped), by who holds them. An order re-routed after a lapse
  counts once, for whoever has it now.
* lapse rate: of the assignments given to retailers that week (cancelled ones
  aside: the customer cancelled, nobody failed), the share that lapsed.
* average distance: from the winning store to the customer, over the orders
  retailers are fulfilling. The manufacturer ships from wherever it ships, which
  Broker does not know, so its own orders have no distance.

Weeks are bucketed by a CASE over the week boundaries computed here, so the
grouping happens in SQL on SQLite and PostgreSQL alike (their date functions
differ); the whole dashboard is five queries whatever the number of orders.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import case, func, select

from broker.accounts.models import ApplicationStatus, DealerApplication, DealerAuthorisation, Manufacturer
from broker.analytics.revenue import Revenue, revenue
from broker.auth import Actor, ActorKind, require
from broker.context import Context
from broker.fulfilment.models import Assignment, AssignmentStatus
from broker.orders.models import Order, OrderStatus
from broker.settlement.models import SettlementDecision

WEEKS = 12
FULFILLING = (AssignmentStatus.ACTIVE, AssignmentStatus.SHIPPED)


@dataclasses.dataclass(frozen=True)
class WeekStats:
    start: date
    to_retailers: int = 0
    to_self: int = 0
    retailer_assignments: int = 0  # given to retailers that week, cancelled ones aside
    lapsed: int = 0
    distance_total_km: float = 0.0
    distance_count: int = 0

    @property
    def fulfilled(self) -> int:
        return self.to_retailers + self.to_self

    @property
    def retailer_share(self) -> float | None:
        return self.to_retailers / self.fulfilled if self.fulfilled else None

    @property
    def lapse_rate(self) -> float | None:
        return self.lapsed / self.retailer_assignments if self.retailer_assignments else None

    @property
    def average_distance_km(self) -> float | None:
        return self.distance_total_km / self.distance_count if self.distance_count else None


@dataclasses.dataclass(frozen=True)
class Dashboard:
    by_status: dict[str, int]  # every state, in the order an order moves through them
    weeks: list[WeekStats]     # oldest first, the current week last
    to_ship: int               # fallback orders the manufacturer must ship now
    dealers: int
    pending_applications: int
    # Gross, refunds, fees and net by week, fulfiller and currency (broker/analytics/revenue.py).
    revenue: Revenue | None = None
    currency: str = "USD"  # the store's
    locale: str = "en_US"  # how the store writes money

    @property
    def orders(self) -> int:
        return sum(self.by_status.values())

    @property
    def to_retailers(self) -> int:
        return sum(w.to_retailers for w in self.weeks)

    @property
    def fulfilled(self) -> int:
        return sum(w.fulfilled for w in self.weeks)

    @property
    def retailer_share(self) -> float | None:
        return self.to_retailers / self.fulfilled if self.fulfilled else None


def week_starts(now: datetime, weeks: int = WEEKS) -> list[date]:
    """The Mondays starting the last `weeks` weeks, the current one last."""
    this_monday = now.astimezone(UTC).date() - timedelta(days=now.astimezone(UTC).weekday())
    return [this_monday - timedelta(weeks=n) for n in range(weeks - 1, -1, -1)]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def dashboard(ctx: Context, actor: Actor, weeks: int = WEEKS) -> Dashboard:
    require(actor, ActorKind.MANUFACTURER)
    starts = week_starts(ctx.now(), weeks)
    bounds = [_midnight(day) for day in starts] + [_midnight(starts[-1] + timedelta(weeks=1))]
    with ctx.uow() as uow:
        session = uow.session
        counted = dict.fromkeys((s.value for s in OrderStatus), 0)
        for status, n in session.execute(
            select(Order.status, func.count()).where(Order.manufacturer_id == actor.id).group_by(Order.status)
        ):
            counted[status] = n

        # Week index 0..weeks-1 by a CASE over the boundaries; grouped in an outer
        # query so PostgreSQL sees one expression (not the same CASE twice with
        # different parameters).
        week = case(*[(Assignment.assigned_at < bounds[i + 1], i) for i in range(weeks)]).label("week")
        inner = (
            select(week, Assignment.fulfiller_kind, Assignment.status,
                   SettlementDecision.winner_distance_km.label("distance"))
            .join(SettlementDecision, SettlementDecision.id == Assignment.decision_id)
            .where(Assignment.manufacturer_id == actor.id, Assignment.assigned_at >= bounds[0],
                   Assignment.assigned_at < bounds[-1])
            .subquery()
        )
        rows = session.execute(
            select(inner.c.week, inner.c.fulfiller_kind, inner.c.status, func.count(),
                   func.sum(inner.c.distance), func.count(inner.c.distance))
            .group_by(inner.c.week, inner.c.fulfiller_kind, inner.c.status)
        )
        stats = [{"to_retailers": 0, "to_self": 0, "retailer_assignments": 0, "lapsed": 0,
                  "distance_total_km": 0.0, "distance_count": 0} for _ in starts]
        for index, kind, status, n, distance_sum, distance_n in rows:
            into = stats[int(index)]
            fulfilling = status in FULFILLING
            if kind == "manufacturer":
                into["to_self"] += n if fulfilling else 0
                continue
            if status != AssignmentStatus.CANCELLED:
                into["retailer_assignments"] += n
            if status == AssignmentStatus.LAPSED:
                into["lapsed"] += n
            if fulfilling:
                into["to_retailers"] += n
                into["distance_total_km"] += float(distance_sum or 0)
                into["distance_count"] += distance_n

        to_ship = session.scalar(select(func.count()).select_from(Assignment).where(
            Assignment.manufacturer_id == actor.id, Assignment.fulfiller_kind == "manufacturer",
            Assignment.status == AssignmentStatus.ACTIVE)) or 0
        dealers = session.scalar(select(func.count()).select_from(DealerAuthorisation).where(
            DealerAuthorisation.manufacturer_id == actor.id, DealerAuthorisation.revoked_at.is_(None))) or 0
        pending = session.scalar(select(func.count()).select_from(DealerApplication).where(
            DealerApplication.manufacturer_id == actor.id, DealerApplication.status == ApplicationStatus.PENDING,
            DealerApplication.invited.is_(False))) or 0
        money = revenue(session, actor.id, starts, bounds)
        store = session.scalar(select(Manufacturer).where(Manufacturer.id == actor.id))
    return Dashboard(counted, [WeekStats(day, **s) for day, s in zip(starts, stats)], to_ship, dealers, pending,
                     money, store.currency if store else "USD", store.locale if store else "en_US")
