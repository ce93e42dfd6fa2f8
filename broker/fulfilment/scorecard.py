"""A retailer's scorecard: what it won, how it shipped, how it is rated, in all
and week by week.

Weeks start on Monday at midnight in the operator's time zone (BROKER_TIMEZONE),
the same clock the settlement runs by. An order counts in the week it was won:
"of what you won that week, how much shipped on time", so a week's figures do
not move once its orders are done.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, literal_column, null, select
from sqlalchemy.orm import Session

from broker.auth import Actor, ActorKind, require
from broker.context import Context
from broker.fulfilment.models import Assignment, AssignmentStatus
from broker.reputation.rules import NO_RATINGS, Ratings, Reputation
from broker.reputation.services import fulfiller_reputations, retailer_ratings_by

WEEKS = 12


@dataclasses.dataclass(frozen=True)
class Record:
    """Counts of a retailer's assignments (each award of an order is one win)."""

    wins: int = 0
    active: int = 0
    on_time: int = 0
    late: int = 0
    lapsed: int = 0
    released: int = 0

    @property
    def shipped(self) -> int:
        return self.on_time + self.late

    @property
    def on_time_rate(self) -> float | None:
        """Shipped by the due time, out of the orders that had to ship by then
        (shipped or lapsed); None before any. A release is the retailer's own
        choice, counted apart; an order still to ship is not judged yet."""
        due = self.on_time + self.late + self.lapsed
        return self.on_time / due if due else None


@dataclasses.dataclass(frozen=True)
class Week:
    starts: date
    record: Record
    ratings: Ratings

    @property
    def average_rating(self) -> float | None:
        return self.ratings.stars / self.ratings.count if self.ratings.count else None


@dataclasses.dataclass(frozen=True)
class Scorecard:
    total: Record
    reputation: Reputation
    weeks: list[Week]  # oldest first; the last is the week in progress


def week_starts(now: datetime, zone: str, weeks: int = WEEKS) -> list[datetime]:
    """The starts (UTC) of the last `weeks` weeks, oldest first, this week last."""
    tz = ZoneInfo(zone)
    today = now.astimezone(tz).date()
    monday = today - timedelta(days=today.weekday())
    # Each start is made from its own local date, so a week that crosses a DST
    # change still starts at local midnight.
    return [datetime.combine(monday - timedelta(weeks=n), time(0), tz).astimezone(UTC)
            for n in range(weeks - 1, -1, -1)]


def week_of(starts: list[datetime]):
    """`column` -> the index of the week it falls in (0: the oldest), or NULL
    before the first. The week numbers are SQL literals, not parameters, so the
    expression groups the same on every database."""

    def bucket(column):
        return case(*[(column >= start, literal_column(str(i)))
                      for i, start in reversed(list(enumerate(starts)))], else_=null())

    return bucket


def _counts(columns):
    """Wins, active, on time, late, lapsed, released, summed over `columns`
    (the assignments table, or a subquery with its status, shipped_at and due_at)."""
    status = columns.status
    shipped = status == AssignmentStatus.SHIPPED

    def count(condition):
        return func.sum(case((condition, 1), else_=0))

    return (
        func.count(),
        count(status == AssignmentStatus.ACTIVE),
        count(shipped & (columns.shipped_at <= columns.due_at)),
        count(shipped & (columns.shipped_at > columns.due_at)),
        count(status == AssignmentStatus.LAPSED),
        count(status == AssignmentStatus.RELEASED),
    )


def _record(row) -> Record:
    return Record(*(int(n or 0) for n in row))


def _weekly_records(session: Session, retailer_id: int, starts: list[datetime]) -> dict[int, Record]:
    won = (
        select(week_of(starts)(Assignment.assigned_at).label("week"), Assignment.status, Assignment.shipped_at,
               Assignment.due_at)
        .where(Assignment.retailer_id == retailer_id, Assignment.assigned_at >= starts[0])
        .subquery()
    )
    rows = session.execute(select(won.c.week, *_counts(won.c)).group_by(won.c.week))
    return {int(week): _record(counts) for week, *counts in rows if week is not None}


def scorecard(ctx: Context, actor: Actor, *, weeks: int = WEEKS) -> Scorecard:
    """The calling retailer's scorecard, in a fixed number of queries."""
    require(actor, ActorKind.RETAILER)
    now = ctx.now()
    starts = week_starts(now, ctx.settings.timezone, weeks)
    with ctx.uow() as uow:
        session = uow.session
        total = _record(session.execute(
            select(*_counts(Assignment)).where(Assignment.retailer_id == actor.id)).one())
        records = _weekly_records(session, actor.id, starts)
        ratings = {int(k): v for k, v in retailer_ratings_by(session, actor.id, week_of(starts), now).items()}
        reputation = fulfiller_reputations(session, [actor.id], now=now)[actor.id]
    tz = ZoneInfo(ctx.settings.timezone)
    return Scorecard(
        total=total,
        reputation=reputation,
        weeks=[Week(start.astimezone(tz).date(), records.get(i, Record()), ratings.get(i, NO_RATINGS))
               for i, start in enumerate(starts)],
    )
