"""Explaining settlement: to a retailer, what became of its bids; to a
manufacturer (or the operator), what each settlement run did.

A retailer is told whether it won and, if not, the rule that decided and the
winner's distance band: never who won, never who the customer is.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from sqlalchemy import case, func, select, true
from sqlalchemy.exc import SQLAlchemyError

from broker.accounts.models import Retailer
from broker.auth import Actor, ActorKind, require
from broker.board.models import Bid, BidStatus, Listing, ListingStatus
from broker.context import Context
from broker.errors import NotFound
from broker.pagination import Page, PageRequest, paginate
from broker.parking.services import count_parked
from broker.settlement.models import RunStatus, SettlementDecision, SettlementRun
from broker.settlement.rules import distance_band
from broker.settlement.scope import is_shard


@dataclasses.dataclass(frozen=True)
class BidOutcome:
    listing_id: int
    kind: str
    area: str
    price: int
    currency: str
    bid_at: datetime
    my_distance_km: float
    # pending, withdrawn, won, lost, cancelled
    outcome: str
    decided_at: datetime | None = None
    rule: str | None = None
    winner: str | None = None  # "another retailer" or "the manufacturer"
    winner_distance_band: str | None = None
    my_eligibility: str | None = None  # "" when eligible, else why not
    won_round: int | None = None


def bid_outcomes(ctx: Context, actor: Actor, page: PageRequest) -> Page[BidOutcome]:
    """Every listing the retailer bid on, newest first, with what became of it."""
    require(actor, ActorKind.RETAILER)
    with ctx.uow() as uow:
        session = uow.session
        stmt = (
            select(Bid, Listing)
            .join(Listing, Listing.id == Bid.listing_id)
            .where(Bid.retailer_id == actor.id)
            .order_by(Bid.created_at.desc(), Bid.id.desc())
        )
        found = paginate(session, stmt, page, rows=True)
        listing_ids = [listing.id for _, listing in found.items]
        decisions: dict[int, list[SettlementDecision]] = {}
        for d in session.scalars(
            select(SettlementDecision).where(SettlementDecision.listing_id.in_(listing_ids))
            .order_by(SettlementDecision.round)
        ):
            decisions.setdefault(d.listing_id, []).append(d)
        return Page([_outcome(actor.id, bid, listing, decisions.get(listing.id, []))
                     for bid, listing in found.items], found.total)


def _outcome(me: int, bid: Bid, listing: Listing, decisions: list[SettlementDecision]) -> BidOutcome:
    base = dict(listing_id=listing.id, kind=listing.kind, area=listing.area, price=bid.price or listing.price,
                currency=listing.currency, bid_at=bid.created_at, my_distance_km=bid.distance_km)
    if listing.status == ListingStatus.OPEN:
        return BidOutcome(**base, outcome="pending" if bid.status == BidStatus.ACTIVE else "withdrawn")
    if listing.status == ListingStatus.CLOSED or not decisions:
        return BidOutcome(**base, outcome="cancelled")
    mine = [d for d in decisions if d.winner_retailer_id == me]
    first = decisions[0]
    if mine:
        return BidOutcome(**base, outcome="won", decided_at=mine[0].decided_at, rule=mine[0].rule,
                          winner="you", winner_distance_band=distance_band(mine[0].winner_distance_km),
                          my_eligibility="", won_round=mine[0].round)
    record = next((c for c in first.candidates if c["retailer_id"] == me), None)
    if record is None:  # withdrawn before settlement
        return BidOutcome(**base, outcome="withdrawn", decided_at=first.decided_at)
    by_maker = first.winner_retailer_id is None
    return BidOutcome(
        **base, outcome="lost", decided_at=first.decided_at, rule=first.rule,
        winner="the manufacturer" if by_maker else "another retailer",
        winner_distance_band=None if by_maker else distance_band(first.winner_distance_km),
        my_eligibility=record["reason"],
    )


@dataclasses.dataclass(frozen=True)
class RunSummary:
    run: SettlementRun
    settled: int
    to_retailers: int
    to_manufacturer: int
    # What the run took, as the caller may be told (see `_run_scope`).
    scope: str
    # Listings it could not settle and parked (broker.parking); told to the operator only.
    parked: int | None = None

    @property
    def seconds(self) -> float | None:
        if self.run.finished_at is None:
            return None
        return (self.run.finished_at - self.run.started_at).total_seconds()


@dataclasses.dataclass(frozen=True)
class RetailerShare:
    retailer_id: int
    name: str
    listings: int
    average_distance_km: float


@dataclasses.dataclass(frozen=True)
class RunReport:
    summary: RunSummary
    by_rule: dict[str, int]
    retailers: list[RetailerShare]


def _scope(actor: Actor):
    """Decisions the caller may count: a manufacturer's own listings; everything for the operator."""
    require(actor, ActorKind.MANUFACTURER, ActorKind.OPERATOR)
    if actor.kind is ActorKind.OPERATOR:
        return true()
    return Listing.manufacturer_id == actor.id


def _run_scope(actor: Actor, scope: str | None) -> str:
    """A run's recorded scope for the caller. A manufacturer sees a shard as it
    is, but not which other manufacturers the operator settled by hand."""
    if scope is None:
        return "everything"
    if actor.kind is ActorKind.OPERATOR or is_shard(scope):
        return scope
    return "chosen manufacturers"


def _parked(actor: Actor, run: SettlementRun) -> int | None:
    return run.parked if actor.kind is ActorKind.OPERATOR else None


def list_runs(ctx: Context, actor: Actor, page: PageRequest) -> Page[RunSummary]:
    """Settlement runs, newest first, counted over the caller's own listings."""
    scope = _scope(actor)
    with ctx.uow() as uow:
        session = uow.session
        found = paginate(session, select(SettlementRun).order_by(SettlementRun.id.desc()), page)
        counts = _counts(session, [r.id for r in found.items], scope)
        return Page([RunSummary(r, *counts.get(r.id, (0, 0, 0)), scope=_run_scope(actor, r.scope),
                                parked=_parked(actor, r)) for r in found.items], found.total)


def _counts(session, run_ids: list[int], scope) -> dict[int, tuple[int, int, int]]:
    retailer = case((SettlementDecision.winner_retailer_id.is_not(None), 1), else_=0)
    rows = session.execute(
        select(SettlementDecision.run_id, func.count(), func.sum(retailer))
        .join(Listing, Listing.id == SettlementDecision.listing_id)
        .where(SettlementDecision.run_id.in_(run_ids), scope)
        .group_by(SettlementDecision.run_id)
    )
    return {run_id: (n, int(r or 0), n - int(r or 0)) for run_id, n, r in rows}


def run_report(ctx: Context, actor: Actor, run_id: int) -> RunReport:
    """One run: how many of the caller's listings, to whom, by which rule, how long.

    :raise 404: no such run.
    """
    scope = _scope(actor)
    with ctx.uow() as uow:
        session = uow.session
        run = session.get(SettlementRun, run_id)
        if run is None:
            raise NotFound(f"no settlement run {run_id}")
        settled, to_retailers, to_maker = _counts(session, [run.id], scope).get(run.id, (0, 0, 0))
        in_run = (SettlementDecision.run_id == run.id, scope)
        by_rule = {rule: n for rule, n in session.execute(
            select(SettlementDecision.rule, func.count())
            .join(Listing, Listing.id == SettlementDecision.listing_id)
            .where(*in_run).group_by(SettlementDecision.rule)
        )}
        shares = [
            RetailerShare(rid, name, n, round(float(avg), 3))
            for rid, name, n, avg in session.execute(
                select(SettlementDecision.winner_retailer_id, Retailer.name, func.count(),
                       func.avg(SettlementDecision.winner_distance_km))
                .join(Listing, Listing.id == SettlementDecision.listing_id)
                .join(Retailer, Retailer.id == SettlementDecision.winner_retailer_id)
                .where(*in_run)
                .group_by(SettlementDecision.winner_retailer_id, Retailer.name)
                .order_by(func.count().desc(), SettlementDecision.winner_retailer_id)
            )
        ]
        return RunReport(RunSummary(run, settled, to_retailers, to_maker, _run_scope(actor, run.scope),
                                    _parked(actor, run)), by_rule, shares)


@dataclasses.dataclass(frozen=True)
class Health:
    database: bool
    last_completed: SettlementRun | None
    last_failed: SettlementRun | None
    # Rows the scheduled jobs parked, by job (broker.parking); empty: none.
    parked: dict[str, int] = dataclasses.field(default_factory=dict)


def health(ctx: Context) -> Health:
    """For /healthz: can we reach the database, how is settlement doing, and how
    many rows the jobs have parked."""
    try:
        with ctx.uow() as uow:
            s = uow.session
            last_ok = s.scalar(select(SettlementRun).where(SettlementRun.status == RunStatus.COMPLETED)
                               .order_by(SettlementRun.finished_at.desc()).limit(1))
            last_bad = s.scalar(select(SettlementRun).where(SettlementRun.status == RunStatus.FAILED)
                                .order_by(SettlementRun.finished_at.desc()).limit(1))
        return Health(True, last_ok, last_bad, count_parked(ctx))
    except SQLAlchemyError:  # the health check reports the database down; it does not raise
        return Health(False, None, None)
