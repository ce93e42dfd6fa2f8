from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from broker.db import Base, BigId, UTCDateTime


class Disclosure(Base):
    """One row each time a party is shown a customer's personal data, and one when
    that data is erased.

    About an order (`order_id`), or about a personal request that never became
    one (`request_id`): an operator's lookup can find either.
    """

    __tablename__ = "disclosures"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("personal_requests.id"), index=True, default=None)
    # manufacturer, retailer, operator; "broker" for an erasure
    party_kind: Mapped[str] = mapped_column(String(16))
    party_id: Mapped[int | None] = mapped_column(default=None)
    fields: Mapped[list[str]] = mapped_column(JSON)
    purpose: Mapped[str] = mapped_column(String(120))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
