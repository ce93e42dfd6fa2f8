"""Explaining settlement: to a retailer, what became of its bids; to a
manufacturer (or the operator), what each settlement run did.

A retailer is told whether it won and, if not, the rule that decided and the
winner's distance band: never who won, never who the customer is.
"""

from __future__ import annotations

import dataclasses
import enum
from datetime import datetime

from sqlalchemy import case, func, select, true
from sqlalchemy.exc import SQLAlchemyError

from broker.accounts.models import Retailer
from broker.auth import Actor, ActorKind, require
from broker.board.models import Bid, BidStatus, Listing, ListingStatus
from broker.context import Context
from broker.errors import NotFound
from broker.fulfilment.models import Assignment, AssignmentStatus
from broker.pagination import Page, PageRequest, paginate
from broker.parking.services import count_parked
from broker.personal.models import PersonalRequest, RequestStatus
from broker.settlement.labels import describe
from broker.settlement.models import Cause, RunStatus, SettlementDecision, SettlementRun
from broker.settlement.rules import distance_band
from broker.settlement.scope import is_shard


class Outcome(enum.StrEnum):
    """What became of a bid, as its retailer is told."""

    PENDING = "pending"  # the listing is open and the bid stands
    WITHDRAWN = "withdrawn"  # the retailer withdrew it (and did not bid again)
    WON = "won"  # it won, and the order is the retailer's to ship (or shipped)
    LAPSED = "lapsed"  # it won, but the order was not shipped in time and went on
    RELEASED = "released"  # it won, and the retailer gave the order back
    LOST = "lost"  # another bidder or the manufacturer got it (`rule`, `my_eligibility` say why)
    CUSTOMER_CHOSE_ANOTHER = "customer_chose_another"  # a request whose customer accepted another offer
    EXPIRED = "expired"  # a request that expired without an award
    CANCELLED = "cancelled"  # the order or request was cancelled (before or after the award)


@dataclasses.dataclass(frozen=True)
class BidOutcome:
    listing_id: int
    kind: str
    area: str
    price: int
    currency: str
    bid_at: datetime
    # As the board showed it: from the listing's cell, in whole kilometres.
    my_distance_km: float
    outcome: Outcome
    decided_at: datetime | None = None
    rule: str | None = None
    winner: str | None = None  # "you", "another retailer" or "the manufacturer"
    # From the winner's shown distance (the cell's, never the exact point's).
    winner_distance_band: str | None = None
    my_eligibility: str | None = None  # "" when eligible, else why not
    won_round: int | None = None
    # The outcome in words (broker.settlement.labels), filled from the fields above.
    label: str = ""
    reason: str = ""

    def __post_init__(self) -> None:
        text = describe(str(self.outcome), kind=str(self.kind), rule=self.rule, winner=self.winner,
                        winner_distance_band=self.winner_distance_band, my_eligibility=self.my_eligibility,
                        won_round=self.won_round)
        object.__setattr__(self, "label", text.label)
        object.__setattr__(self, "reason", text.reason)


# An assignment's end, as the outcome of the bid that won it.
_WON_AS = {AssignmentStatus.ACTIVE: Outcome.WON, AssignmentStatus.SHIPPED: Outcome.WON,
           AssignmentStatus.LAPSED: Outcome.LAPSED, AssignmentStatus.RELEASED: Outcome.RELEASED,
           AssignmentStatus.CANCELLED: Outcome.CANCELLED}


def bid_outcomes(ctx: Context, actor: Actor, page: PageRequest) -> Page[BidOutcome]:
    """Every listing the retailer bid on, newest first, with what became of it.

    Everything distance-like it is told is what it could see before the award:
    its own shown distance, and the band of the winner's."""
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
        everyone = [d for ds in decisions.values() for d in ds]
        ended = dict(session.execute(select(Assignment.decision_id, Assignment.status).where(
            Assignment.decision_id.in_([d.id for d in everyone if d.winner_retailer_id == actor.id])))
            .tuples().all()) if everyone else {}
        winners = {(d.listing_id, d.winner_retailer_id) for d in everyone if d.winner_retailer_id is not None}
        shown = {(listing_id, retailer_id): km for listing_id, retailer_id, km in session.execute(
            select(Bid.listing_id, Bid.retailer_id, Bid.distance_km).where(
                Bid.listing_id.in_({listing_id for listing_id, _ in winners}),
                Bid.retailer_id.in_({retailer_id for _, retailer_id in winners})))
            if (listing_id, retailer_id) in winners} if winners else {}
        expired = set(session.scalars(select(PersonalRequest.id).where(
            PersonalRequest.id.in_([listing.request_id for _, listing in found.items if listing.request_id]),
            PersonalRequest.status == RequestStatus.EXPIRED)))
        return Page([_outcome(actor.id, bid, listing, decisions.get(listing.id, []), ended, shown,
                              listing.request_id in expired) for bid, listing in found.items], found.total)


def _outcome(me: int, bid: Bid, listing: Listing, decisions: list[SettlementDecision],
             ended: dict[int, AssignmentStatus], shown: dict[tuple[int, int], float],
             expired: bool) -> BidOutcome:
    base = dict(listing_id=listing.id, kind=listing.kind, area=listing.area, price=bid.price or listing.price,
                currency=listing.currency, bid_at=bid.created_at, my_distance_km=bid.distance_km)
    if bid.status == BidStatus.WITHDRAWN:
        return BidOutcome(**base, outcome=Outcome.WITHDRAWN, decided_at=decisions[0].decided_at if decisions else None)
    if listing.status == ListingStatus.OPEN:
        return BidOutcome(**base, outcome=Outcome.PENDING)
    if not decisions:  # taken off the board without an award
        return BidOutcome(**base, outcome=Outcome.EXPIRED if expired else Outcome.CANCELLED)

    def band(decision: SettlementDecision) -> str | None:
        km = shown.get((listing.id, decision.winner_retailer_id))
        return None if km is None else distance_band(km)

    mine = next((d for d in decisions if d.winner_retailer_id == me), None)
    if mine is not None:
        # What became of the order once it was ours: still ours, shipped, or gone on.
        return BidOutcome(**base, outcome=_WON_AS.get(ended.get(mine.id), Outcome.WON), decided_at=mine.decided_at,
                          rule=mine.rule, winner="you", winner_distance_band=band(mine), my_eligibility="",
                          won_round=mine.round)
    # The last round this bid took part in is the one that decided it.
    considered = [(d, record) for d in decisions for record in d.candidates if record["retailer_id"] == me]
    if not considered:
        # A customer who accepts an offer decides among the offers alone: the
        # decision records only the one accepted.
        accepted = next((d for d in decisions if d.cause == Cause.ACCEPTED), None)
        if accepted is not None:
            return BidOutcome(**base, outcome=Outcome.CUSTOMER_CHOSE_ANOTHER, decided_at=accepted.decided_at,
                              rule=accepted.rule, winner="another retailer", winner_distance_band=band(accepted))
        # The bid stood but was not among the candidates of any round (it came
        # after the round that decided): it lost, it was not withdrawn.
        last = decisions[-1]
        return BidOutcome(**base, outcome=Outcome.LOST, decided_at=last.decided_at, rule=last.rule,
                          winner="the manufacturer" if last.winner_retailer_id is None else "another retailer")
    decision, record = considered[-1]
    by_maker = decision.winner_retailer_id is None
    return BidOutcome(
        **base, outcome=Outcome.CUSTOMER_CHOSE_ANOTHER if decision.cause == Cause.ACCEPTED else Outcome.LOST,
        decided_at=decision.decided_at, rule=decision.rule,
        winner="the manufacturer" if by_maker else "another retailer",
        winner_distance_band=None if by_maker else band(decision),
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
        # A listing settled in parts counts once, by its first part (a retailer's,
        # if any retailer has one: the manufacturer's part comes last).
        .where(SettlementDecision.run_id.in_(run_ids), SettlementDecision.part == 0, scope)
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
            .where(*in_run, SettlementDecision.part == 0).group_by(SettlementDecision.rule)
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
