from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from broker.db import Base, BigId, UTCDateTime


class OutboxMessage(Base):
    """A message to deliver after the commit that decided it (an email, a callback).

    Written in the same transaction as the change it reports, so it exists if and
    only if the change does. `(topic, dedupe_key)` is unique: two schedulers that
    both decide to warn a retailer write one message.
    """

    __tablename__ = "outbox_messages"
    __table_args__ = (
        UniqueConstraint("topic", "dedupe_key"),
        Index("ix_outbox_messages_sent_at_id", "sent_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    topic: Mapped[str] = mapped_column(String(60))
    dedupe_key: Mapped[str] = mapped_column(String(120))
    recipient_kind: Mapped[str] = mapped_column(String(16))
    recipient_id: Mapped[int | None] = mapped_column(BigId, default=None)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The queue (broker.outbox.queue): not due before this (a dispatcher's
    # lease, a failure's backoff, or HELD until released); None: due now.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The claim the current lease belongs to.
    lease: Mapped[str] = mapped_column(String(16), default="", server_default="")
    # Never to be sent: its recipient's data was erased before it went out.
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Its failures, and whether it is parked, are in job_failures (broker.parking).
