from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from broker.db import Base, BigId, UTCDateTime


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class SettlementRun(Base):
    __tablename__ = "settlement_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    as_of: Mapped[datetime] = mapped_column(UTCDateTime)
    trigger: Mapped[str] = mapped_column(String(20))
    status: Mapped[RunStatus] = mapped_column(String(10))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Moved forward by every batch, in the batch's own transaction: a run whose
    # heartbeat stops was killed, and its counts are exactly what it committed.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    worker: Mapped[str] = mapped_column(String(120), default="", server_default="")
    settled: Mapped[int] = mapped_column(Integer, default=0)
    to_retailers: Mapped[int] = mapped_column(Integer, default=0)
    to_manufacturer: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # Listings the run could not settle: each is parked (broker.parking) with
    # its error, and the run went on without it.
    parked: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The part of the due listings the run took (SettlementScope.describe(),
    # "shard 2/3"); None: every due listing.
    scope: Mapped[str | None] = mapped_column(Text, default=None)


class Cause(enum.StrEnum):
    SETTLEMENT = "settlement"
    RELEASE = "release"
    LAPSE = "lapse"
    ACCEPTED = "accepted"  # the customer accepted an offer on a personal request
    EXPIRY = "expiry"      # a personal request reached its expiry


class Rule(enum.StrEnum):
    """The rule that decided: the first one that told the candidates apart."""

    NEAREST = "nearest"
    LOWEST_PRICE = "lowest_price"
    CUSTOMER_CHOICE = "customer_choice"
    FULFILMENT_SCORE = "fulfilment_score"
    EARLIEST_BID = "earliest_bid"
    LOWEST_RETAILER_ID = "lowest_retailer_id"
    ONLY_ELIGIBLE_BID = "only_eligible_bid"
    NO_BIDS = "no_bids"
    NO_ELIGIBLE_BIDS = "no_eligible_bids"
    # A plan of several parts: no eligible bidder could fill the whole order,
    # so the fewest bidders that could fill it between them each ship a part.
    FEWEST_SHIPMENTS = "fewest_shipments"


class FulfillerKind(enum.StrEnum):
    RETAILER = "retailer"
    MANUFACTURER = "manufacturer"


class SettlementDecision(Base):
    """Who got (a part of) a listing and why. Round 0 is the settlement; later
    rounds re-route a part that was given back.

    An order settled as a plan of several parts has one decision per part, all
    in one round, numbered by `part` (0, 1, ...); a re-planned part's decisions
    take the next round. `(listing_id, round, part)` is unique, and every plan
    has a part 0, so however many processes race, a listing is awarded once
    per round.
    """

    __tablename__ = "settlement_decisions"
    __table_args__ = (UniqueConstraint("listing_id", "round", "part"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id"))
    round: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("settlement_runs.id"), index=True, default=None)
    cause: Mapped[Cause] = mapped_column(String(12))
    rule: Mapped[Rule] = mapped_column(String(24))
    fulfiller_kind: Mapped[FulfillerKind] = mapped_column(String(12))
    winner_retailer_id: Mapped[int | None] = mapped_column(ForeignKey("retailers.id"), default=None)
    winner_store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"), default=None)
    winner_distance_km: Mapped[float | None] = mapped_column(Float, default=None)
    # [{retailer_id, store_id, bid_id, distance_km, eligible, reason, score, bid_at}]
    candidates: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)
    part: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The order lines this part covers ([{"line_id", "quantity"}]); None: the
    # whole order (every decision before plans, and every one-part plan).
    lines: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=None)
