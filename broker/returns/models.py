from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from broker.db import Base, BigId, UTCDateTime


class ReturnStatus(enum.StrEnum):
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    REFUSED = "refused"


class Return(Base):
    """A customer's request to send back what one assignment shipped, and what
    became of it.

    Each fulfiller handles its own: the return names the assignment it concerns
    (an order split into parts has one per part). At most one is open
    (`requested`) per assignment, by a unique partial index, so two requests at
    once make one; after a refusal the customer may ask again within the window.
    """

    __tablename__ = "returns"
    __table_args__ = (
        Index("uq_returns_open_assignment", "assignment_id", unique=True,
              postgresql_where=text("status = 'requested'"), sqlite_where=text("status = 'requested'")),
        Index("ix_returns_status_requested_at", "status", "requested_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id"), index=True)
    status: Mapped[ReturnStatus] = mapped_column(String(10))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The customer's words: personal, cleared ("erased") with the rest of their data.
    reason: Mapped[str] = mapped_column(String(500))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Who decided: the fulfiller ("retailer" or "manufacturer") or the order's
    # manufacturer, and its id.
    decided_by_kind: Mapped[str | None] = mapped_column(String(12), default=None)
    decided_by_id: Mapped[int | None] = mapped_column(BigId, default=None)
    # To the customer; required when refusing. Personal as the reason is (it answers it).
    note: Mapped[str | None] = mapped_column(String(1000), default=None)
    # What the card was refunded when it was accepted (minor units of the order's
    # currency), and the provider's reference for the refund.
    refund_amount: Mapped[int | None] = mapped_column(Integer, default=None)
    refund_reference: Mapped[str | None] = mapped_column(String(100), default=None)
