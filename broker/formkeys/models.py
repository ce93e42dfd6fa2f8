"""One row per form key used: which form it was, and what its POST created."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from broker.db import Base, BigId, UTCDateTime


class FormKey(Base):
    """A one-time form key, by its hash (the key itself is the browser's secret:
    it unseals `sealed`). `scope` says which form it was used on (`checkout:acme`,
    `review:order:5`); `sealed` is what the POST created, encrypted with a key
    derived from the form key, so a stolen table reveals no order's token."""

    __tablename__ = "form_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(120))
    sealed: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
