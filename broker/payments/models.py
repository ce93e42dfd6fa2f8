from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, false, true
from sqlalchemy.orm import Mapped, mapped_column

from broker.db import Base, BigId, UTCDateTime


class PaymentStatus(enum.StrEnum):
    PENDING = "pending"
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    RELEASED = "released"
    FAILED = "failed"
    REFUNDED = "refunded"


class Payment(Base):
    """Broker's view of an order's payment, whichever provider holds it."""

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # A personal request's hold is placed before there is an order (set at the award).
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), unique=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("personal_requests.id"), unique=True, default=None)
    provider: Mapped[str] = mapped_column(String(20))
    provider_ref: Mapped[str] = mapped_column(String(100), unique=True)
    test_mode: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[PaymentStatus] = mapped_column(String(12))
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    captured_amount: Mapped[int] = mapped_column(Integer, default=0)
    # The part of `amount` that is tax, owed to `tax_jurisdiction`: whatever is
    # captured or refunded carries tax in this proportion (broker.tax.ledger).
    tax_amount: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tax_jurisdiction: Mapped[str] = mapped_column(String(40), default="", server_default="")
    # The total `tax_amount` is part of, where that is less than the hold (a
    # personal request's winning offer under its ceiling); None: `amount`.
    tax_base: Mapped[int | None] = mapped_column(Integer, default=None)
    refunded_amount: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    charge_ref: Mapped[str | None] = mapped_column(String(100), default=None)
    disputed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # When the card hold lapses: the payment must be captured before this.
    hold_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    authorized_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    captured_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class OfflineCharge(Base):
    """The offline provider's own record of a card hold: test mode, no real money."""

    __tablename__ = "offline_charges"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ref: Mapped[str] = mapped_column(String(40), unique=True)
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    status: Mapped[str] = mapped_column(String(12))
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    captured_amount: Mapped[int] = mapped_column(Integer, default=0)
    refunded_amount: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WebhookEvent(Base):
    """Every provider event received, once (its id is unique), and what it did."""

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    event_id: Mapped[str] = mapped_column(String(100), unique=True)
    type: Mapped[str] = mapped_column(String(60))
    # Indexed: erasing a customer finds the events about its payment by these refs.
    object_ref: Mapped[str | None] = mapped_column(String(100), index=True, default=None)
    payload: Mapped[dict] = mapped_column(JSON)
    # applied, ignored (a type we do not handle), stale (would move a state backwards)
    outcome: Mapped[str] = mapped_column(String(20))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OfflineAccount(Base):
    """The offline provider's connected accounts, test mode. A new one is ready
    once its owner has been through the simulated onboarding page (as a Stripe
    Express account is once its owner finished Stripe's); the accounts made
    before that page existed were ready at once, and stay so (the column's
    server default)."""

    __tablename__ = "offline_accounts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ref: Mapped[str] = mapped_column(String(40), unique=True)
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    email: Mapped[str] = mapped_column(String(254))
    onboarded: Mapped[bool] = mapped_column(Boolean, default=False, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OfflineTransfer(Base):
    __tablename__ = "offline_transfers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ref: Mapped[str] = mapped_column(String(40), unique=True)
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    account_ref: Mapped[str] = mapped_column(String(40))
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    transfer_group: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OfflineRefund(Base):
    __tablename__ = "offline_refunds"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ref: Mapped[str] = mapped_column(String(40), unique=True)
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    charge_ref: Mapped[str] = mapped_column(String(40))
    amount: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
