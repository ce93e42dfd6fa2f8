from __future__ import annotations

import enum
from datetime import datetime

from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from broker.db import Base, BigId, UTCDateTime
from broker.settlement.models import SettlementDecision


class AssignmentStatus(enum.StrEnum):
    ACTIVE = "active"
    SHIPPED = "shipped"
    RELEASED = "released"
    LAPSED = "lapsed"
    CANCELLED = "cancelled"


class Assignment(Base):
    """Who must ship an order, or a part of it. An order settled whole has at most
    one active assignment; one settled as a plan has one per part, each shipped,
    lapsed, released and returned on its own."""

    __tablename__ = "assignments"
    __table_args__ = (
        Index("ix_assignments_retailer_id_status", "retailer_id", "status"),
        Index("ix_assignments_manufacturer_id_status", "manufacturer_id", "status"),
        Index("ix_assignments_status_due_at", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("settlement_decisions.id"), unique=True)
    manufacturer_id: Mapped[int | None] = mapped_column(ForeignKey("manufacturers.id"))
    fulfiller_kind: Mapped[str] = mapped_column(String(12))
    retailer_id: Mapped[int | None] = mapped_column(ForeignKey("retailers.id"), default=None)
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"), default=None)
    status: Mapped[AssignmentStatus] = mapped_column(String(10))
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    shipped_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    warned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    carrier: Mapped[str | None] = mapped_column(String(60), default=None)
    tracking_number: Mapped[str | None] = mapped_column(String(100), default=None)
    # The order lines of this part ([{"line_id", "quantity"}]); None: the whole order.
    lines: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=None)

    # Set with the decision object, so a settlement batch inserts its decisions and
    # assignments together at the commit rather than flushing once per award.
    decision: Mapped[SettlementDecision] = relationship()
