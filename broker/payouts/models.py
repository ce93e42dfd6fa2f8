from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from broker.db import Base, BigId, UTCDateTime


class ConnectedAccount(Base):
    """A fulfiller's account at the payment provider, where its payouts go."""

    __tablename__ = "connected_accounts"
    __table_args__ = (UniqueConstraint("owner_kind", "owner_id", "provider"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    owner_kind: Mapped[str] = mapped_column(String(16))  # retailer or manufacturer
    owner_id: Mapped[int] = mapped_column(BigId)
    provider: Mapped[str] = mapped_column(String(20))
    account_ref: Mapped[str] = mapped_column(String(100), unique=True)
    ready: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class EarningStatus(enum.StrEnum):
    ACCRUED = "accrued"    # owed, waiting for a payout
    FROZEN = "frozen"      # a dispute is open on the order
    PAID = "paid"
    REVERSED = "reversed"  # refunded or lost in a dispute before it was paid


class EarningKind(enum.StrEnum):
    SALE = "sale"          # the captured amount less the platform fee
    CLAWBACK = "clawback"  # negative: refunded after it was paid out; netted from the next payout


class Earning(Base):
    """What a fulfiller earned (or, for a clawback, owes back) on one order."""

    __tablename__ = "earnings"
    __table_args__ = (Index("ix_earnings_status_owner", "status", "owner_kind", "owner_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    kind: Mapped[EarningKind] = mapped_column(String(10), default=EarningKind.SALE)
    owner_kind: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[int] = mapped_column(BigId)
    gross: Mapped[int] = mapped_column(Integer)
    fee: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[EarningStatus] = mapped_column(String(10))
    payout_id: Mapped[int | None] = mapped_column(ForeignKey("payouts.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The part it was earned on, for an order shipped in parts; None: the whole order.
    assignment_id: Mapped[int | None] = mapped_column(ForeignKey("assignments.id"), index=True, default=None)


class Payout(Base):
    """One transfer to a connected account, for one earning (grouped by order)."""

    __tablename__ = "payouts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    owner_kind: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[int] = mapped_column(BigId)
    account_ref: Mapped[str] = mapped_column(String(100))
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    transfer_ref: Mapped[str | None] = mapped_column(String(100), unique=True, default=None)
    status: Mapped[str] = mapped_column(String(10))  # paid, reversed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
