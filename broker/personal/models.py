from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from broker.db import Base, BigId, UTCDateTime


class RequestStatus(enum.StrEnum):
    AWAITING_PAYMENT = "awaiting_payment"
    OPEN = "open"
    AWARDED = "awarded"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Prefer(enum.StrEnum):
    NEAREST = "nearest"
    LOWEST_PRICE = "lowest_price"


class PersonalRequest(Base):
    """A customer's "I want this, here, for at most that". Retailers see the
    pseudonym, the coarse area and the buyer score; never who.

    `max_price` is the ceiling for the whole request (all of `quantity`), in
    minor units; it is what the card hold is for, and the capture is the winning
    price, never more.
    """

    __tablename__ = "personal_requests"
    __table_args__ = (Index("ix_personal_requests_status_expires_at", "status", "expires_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(24), unique=True)
    description: Mapped[str] = mapped_column(Text)
    manufacturer_id: Mapped[int | None] = mapped_column(ForeignKey("manufacturers.id"), default=None)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id"), default=None)
    sku: Mapped[str | None] = mapped_column(String(64), default=None)
    quantity: Mapped[int] = mapped_column(Integer)
    max_price: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    prefer: Mapped[Prefer] = mapped_column(String(12))
    status: Mapped[RequestStatus] = mapped_column(String(16))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    area: Mapped[str] = mapped_column(String(120))
    # How precisely lat/lon is known (broker.geo.Precision).
    location_precision: Mapped[str] = mapped_column(String(12), default="postal_code", server_default="postal_code")
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    access_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    buyer_key: Mapped[str | None] = mapped_column(String(64), index=True, default=None)
    # Personal data: shown to the winner only (and the customer).
    contact_email: Mapped[str | None] = mapped_column(String(254), default=None)
    # The language the request was posted in: its emails are written in it (None: English).
    language: Mapped[str | None] = mapped_column(String(8), default=None)
    callback_url: Mapped[str | None] = mapped_column(String(500), default=None)
    ship_name: Mapped[str] = mapped_column(String(200))
    ship_line1: Mapped[str] = mapped_column(String(200))
    ship_line2: Mapped[str] = mapped_column(String(200), default="")
    ship_city: Mapped[str] = mapped_column(String(120))
    ship_city_area: Mapped[str] = mapped_column(String(120), default="", server_default="")
    ship_region: Mapped[str] = mapped_column(String(80), default="", server_default="")
    ship_postal_code: Mapped[str] = mapped_column(String(20))
    ship_country: Mapped[str] = mapped_column(String(2))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), unique=True, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Set when the customer's personal data was erased (on request, or by the retention job).
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class Message(Base):
    """The contact relay: the winner and the customer talk through Broker, and
    neither sees the other's email.

    Each message belongs to one assignment: a thread between the customer and
    that fulfiller. A fulfiller reads only its own assignment's thread, so the
    next one after a release or a lapse starts with an empty thread; the
    customer reads all of theirs.
    """

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    # None only for messages a customer wrote, before threads were kept per
    # assignment, on an order that never had a fulfiller: nobody else read them.
    assignment_id: Mapped[int | None] = mapped_column(ForeignKey("assignments.id"), index=True, default=None)
    sender: Mapped[str] = mapped_column(String(12))  # customer or fulfiller
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
