from __future__ import annotations

import enum
from datetime import datetime

from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from broker.db import Base, BigId, UTCDateTime


class ListingKind(enum.StrEnum):
    ORDER = "order"
    REQUEST = "request"


class ListingStatus(enum.StrEnum):
    OPEN = "open"
    AWARDED = "awarded"
    CLOSED = "closed"  # taken off the board without an award (order cancelled)


class Listing(Base):
    """What retailers see on the board: where (coarse), what, and for how much.

    No name, email or street: the board is built from this table alone. Its
    position, `lat`/`lon`, is the centre of the ship-to point's grid cell
    (`approximate_point`, about 2 km wide): everything a retailer is shown
    before the award (distances, which stores cover it, the order of the board)
    is computed from it, so no number of stores, bids or withdrawals locates
    the customer more precisely than the cell. The exact point is kept apart,
    in `exact_lat`/`exact_lon`, for settlement's ranking alone (through each
    bid's `exact_distance_km`).
    """

    __tablename__ = "listings"
    __table_args__ = (
        # The board: open listings near a store (bounding box on lat, then lon).
        # On PostgreSQL it also carries what the board filters and counts by, so
        # counting a city's listings is an index-only scan (no heap visits).
        Index("ix_listings_status_lat_lon", "status", "lat", "lon",
              postgresql_include=["manufacturer_id", "kind", "id"]),
        # Settlement: open listings that have been on the board long enough.
        Index("ix_listings_status_listed_at", "status", "listed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[ListingKind] = mapped_column(String(10))
    # None for a personal request that names no catalog product: any retailer in
    # range may offer, not only one manufacturer's dealers.
    manufacturer_id: Mapped[int | None] = mapped_column(ForeignKey("manufacturers.id"), index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), unique=True, default=None)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("personal_requests.id"), unique=True, default=None)
    status: Mapped[ListingStatus] = mapped_column(String(10))
    lat: Mapped[float] = mapped_column(Float)  # the cell's centre
    lon: Mapped[float] = mapped_column(Float)
    # The ship-to point itself: read only to measure a bid's exact distance.
    exact_lat: Mapped[float] = mapped_column(Float)
    exact_lon: Mapped[float] = mapped_column(Float)
    area: Mapped[str] = mapped_column(String(120))
    # How precisely the ship-to point is known (broker.geo.Precision):
    # coordinates, a postal code's centre or a city's. Shown to retailers: a
    # city's centre can be kilometres from the door.
    precision: Mapped[str] = mapped_column(String(12), default="postal_code", server_default="postal_code")
    price: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    listed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    settlement_run_id: Mapped[int | None] = mapped_column(ForeignKey("settlement_runs.id"), default=None)


class BidStatus(enum.StrEnum):
    ACTIVE = "active"
    WITHDRAWN = "withdrawn"


class Bid(Base):
    """A retailer's "in stock, will ship": one per retailer and listing.

    Its distances are from the bidding store, measured when the bid is placed
    and again whenever the store moves:
    * `distance_km`: what the retailer was shown, from the listing's cell, in
      whole kilometres (`shown_distance_km`); the only one a retailer ever sees;
    * `cell_distance_km`: from the cell's centre, to the metre: whether the
      store covers the listing (its service radius), at bidding and settlement;
    * `exact_distance_km`: from the ship-to point itself: settlement's ranking.
    """

    __tablename__ = "bids"
    __table_args__ = (
        UniqueConstraint("listing_id", "retailer_id"),
        Index("ix_bids_retailer_id_status", "retailer_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id"))
    retailer_id: Mapped[int] = mapped_column(ForeignKey("retailers.id"))
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    distance_km: Mapped[float] = mapped_column(Float)
    cell_distance_km: Mapped[float] = mapped_column(Float)
    exact_distance_km: Mapped[float] = mapped_column(Float)
    price: Mapped[int | None] = mapped_column(Integer, default=None)
    # An offer on a personal request says what its price holds: the goods are
    # price - shipping - tax (the price is what the customer pays in all).
    shipping: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tax: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    status: Mapped[BidStatus] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The part of an order the bid covers: [{"line_id", "quantity"}], each line
    # once, 1 to its ordered quantity. None: the whole order (and every offer on
    # a personal request).
    lines: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=None)
    # Placed by this standing bid of the retailer's (broker.stock), not by hand.
    standing_bid_id: Mapped[int | None] = mapped_column(ForeignKey("standing_bids.id"), default=None)
