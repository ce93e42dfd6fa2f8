from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from broker.db import Base, BigId, UTCDateTime


class EmailOptOut(Base):
    """An address that unsubscribed from one kind of optional email.

    Keyed by the SHA-256 of the lower-cased address, so the list of who opted
    out of what holds no addresses itself and survives a customer's erasure.
    """

    __tablename__ = "email_opt_outs"
    __table_args__ = (UniqueConstraint("address_hash", "topic"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    address_hash: Mapped[str] = mapped_column(String(64))
    topic: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
