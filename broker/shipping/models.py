from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from broker.db import Base, BigId, UTCDateTime


class ShippingMethod(Base):
    """One way a manufacturer's orders are shipped ("standard", "express").

    The charge is `price` per order plus `per_item` for each item, nothing when
    the goods come to `free_over` or more. `countries` empty: it serves every
    country. Exactly one active method of a manufacturer is its default, the one
    an order that names none gets (broker/shipping/services.py keeps that so).
    """

    __tablename__ = "shipping_methods"
    __table_args__ = (UniqueConstraint("manufacturer_id", "code"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    manufacturer_id: Mapped[int] = mapped_column(ForeignKey("manufacturers.id"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(80))
    price: Mapped[int] = mapped_column(Integer)
    per_item: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    free_over: Mapped[int | None] = mapped_column(Integer, default=None)
    ship_within_hours: Mapped[int] = mapped_column(Integer)
    countries: Mapped[list[str]] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
