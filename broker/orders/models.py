from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from broker.db import Base, BigId, UTCDateTime


class OrderStatus(enum.StrEnum):
    AWAITING_PAYMENT = "awaiting_payment"
    OPEN = "open"
    AWARDED = "awarded"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    PAYMENT_FAILED = "payment_failed"
    REFUNDED = "refunded"


class DeliveredHow(enum.StrEnum):
    CUSTOMER = "customer"  # the customer confirmed it
    ASSUMED = "assumed"  # BROKER_DELIVERED_AFTER_DAYS after shipment, unconfirmed
    PICKUP = "pickup"  # handed over in the store against the pickup code


class Delivery(enum.StrEnum):
    SHIP = "ship"
    PICKUP = "pickup"


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (Index("ix_orders_manufacturer_id_status", "manufacturer_id", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # None for an awarded personal request that named no catalog product.
    manufacturer_id: Mapped[int | None] = mapped_column(ForeignKey("manufacturers.id"))
    status: Mapped[OrderStatus] = mapped_column(String(20))
    currency: Mapped[str] = mapped_column(String(3))
    # total = subtotal + shipping, + tax where it is added on top (tax_included
    # False); where prices include tax (the EU's VAT), `tax` is the part of the
    # total that is tax. Rows from before shipping and tax: subtotal = total.
    total: Mapped[int] = mapped_column(Integer)
    subtotal: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    shipping: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tax: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tax_included: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Where the tax is owed ("US-NY", "DE") and at what rate (thousandths of a
    # percent; None when the provider applied several).
    tax_jurisdiction: Mapped[str] = mapped_column(String(40), default="", server_default="")
    tax_rate: Mapped[int | None] = mapped_column(Integer, default=None)
    # The shipping method chosen, as it was at checkout (None: pickup, or an
    # order from before methods); its window is the fulfiller's to ship in.
    shipping_method: Mapped[str | None] = mapped_column(String(32), default=None)
    shipping_method_name: Mapped[str | None] = mapped_column(String(80), default=None)
    ship_within_hours: Mapped[int | None] = mapped_column(Integer, default=None)
    # The language the customer ordered in ("de"): their emails are written in it
    # (None: an API client named none; the store's locale's language, else English).
    language: Mapped[str | None] = mapped_column(String(8), default=None)
    delivery: Mapped[Delivery] = mapped_column(String(10), default=Delivery.SHIP)
    # The customer's personal data: shown only to the customer, the manufacturer
    # and the fulfiller (and each showing is written to the disclosure log).
    customer_name: Mapped[str] = mapped_column(String(200))
    customer_email: Mapped[str] = mapped_column(String(254))
    ship_line1: Mapped[str] = mapped_column(String(200))
    ship_line2: Mapped[str] = mapped_column(String(200), default="")
    ship_city: Mapped[str] = mapped_column(String(120))
    # Where the country's format has them (broker.addresses): a dependent
    # locality (a Brazilian bairro), and a region's code ("CA", "ON", "東京都").
    ship_city_area: Mapped[str] = mapped_column(String(120), default="", server_default="")
    ship_region: Mapped[str] = mapped_column(String(80), default="", server_default="")
    # "" where the country has no postal codes.
    ship_postal_code: Mapped[str] = mapped_column(String(20))
    ship_country: Mapped[str] = mapped_column(String(2))
    ship_lat: Mapped[float] = mapped_column(Float)
    ship_lon: Mapped[float] = mapped_column(Float)
    area: Mapped[str] = mapped_column(String(120))
    # How precisely ship_lat/ship_lon is known (broker.geo.Precision): the
    # customer's coordinates, a postal code's centre, or a city's centre.
    location_precision: Mapped[str] = mapped_column(String(12), default="postal_code", server_default="postal_code")
    access_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    shipped_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Delivered: when, and how Broker knows (DeliveredHow). Returns are in
    # broker/returns (one per assignment).
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    delivered_how: Mapped[str | None] = mapped_column(String(10), default=None)
    # Pick up instead: the one-time code, stored only as a hash, and wrong tries.
    pickup_code_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    pickup_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Set when the customer's personal data was erased (on request, or by the
    # retention job); the order, its lines and its money records stay.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", order_by="OrderLine.id", cascade="all, delete-orphan"
    )


class OrderLine(Base):
    __tablename__ = "order_lines"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id"))
    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    unit_price: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[int] = mapped_column(Integer)
    # Stored: a personal request's winning price is for the whole line and need
    # not divide evenly by the quantity.
    line_total: Mapped[int] = mapped_column(Integer)

    order: Mapped[Order] = relationship(back_populates="lines")
