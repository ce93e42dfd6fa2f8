from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from broker.db import Base, BigId, UTCDateTime


class Author(enum.StrEnum):
    CUSTOMER = "customer"
    FULFILLER = "fulfiller"


class SubjectKind(enum.StrEnum):
    RETAILER = "retailer"
    MANUFACTURER = "manufacturer"
    BUYER = "buyer"


class Review(Base):
    """One side's rating of the other for one order; at most one per side, never edited.

    A customer's review is of the fulfiller (`subject_id` is the retailer's or the
    manufacturer's id); a fulfiller's review is of the buyer, who has no account, so
    it is keyed by `subject_buyer_key` (a hash of the customer's email, never shown).
    """

    __tablename__ = "reviews"
    __table_args__ = (
        UniqueConstraint("order_id", "author"),
        Index("ix_reviews_subject_kind_subject_id", "subject_kind", "subject_id"),
        Index("ix_reviews_subject_buyer_key", "subject_buyer_key"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    author: Mapped[Author] = mapped_column(String(10))
    subject_kind: Mapped[SubjectKind] = mapped_column(String(12))
    subject_id: Mapped[int | None] = mapped_column(BigId, default=None)
    subject_buyer_key: Mapped[str | None] = mapped_column(String(64), default=None)
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
