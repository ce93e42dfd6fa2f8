"""A store's stock per SKU, its feed's age, and its standing bids."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from broker.db import Base, BigId, UTCDateTime


class StockFeed(Base):
    """When a store last said what it has (a snapshot or a change): the feed's
    age. Older than BROKER_STOCK_MAX_AGE_HOURS, the store's stock counts as
    unknown, as if it kept none."""

    __tablename__ = "stock_feeds"

    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), primary_key=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StockLevel(Base):
    """How many of a SKU a store has (`quantity`, as its feed says) and how many
    of those awards have reserved and not shipped yet (`reserved`). What it may
    still be awarded is the difference.

    A snapshot sets `quantity` only: the retailer counts its shelf, where the
    reserved goods still are until they ship."""

    __tablename__ = "stock_levels"
    __table_args__ = (
        CheckConstraint("quantity >= 0", name="quantity_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        Index("ix_stock_levels_sku", "sku"),
    )

    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)
    reserved: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StockReservation(Base):
    """What one award (an assignment) took from a store's stock: given back when
    the assignment is released, lapses or is cancelled, and consumed when it ships."""

    __tablename__ = "stock_reservations"

    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id"), primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)
    # None while held; then "shipped" or "returned".
    ended: Mapped[str | None] = mapped_column(String(10), default=None)


class StandingBid(Base):
    """A retailer's rule: bid from this store (or its nearest covering one) on
    every order listing of these manufacturers (none named: every one it deals
    for) within `max_distance_km`, whose lines are in stock there; `partial`:
    on the lines in stock, when not all are."""

    __tablename__ = "standing_bids"
    __table_args__ = (Index("ix_standing_bids_retailer_id", "retailer_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    retailer_id: Mapped[int] = mapped_column(ForeignKey("retailers.id"))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"), default=None)
    manufacturer_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    max_distance_km: Mapped[float] = mapped_column(Float)
    partial: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    def as_record(self) -> dict[str, Any]:
        return {"id": self.id, "store_id": self.store_id, "manufacturer_ids": list(self.manufacturer_ids or []),
                "max_distance_km": self.max_distance_km, "partial": self.partial}
