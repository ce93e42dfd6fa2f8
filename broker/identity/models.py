from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, String, false
from sqlalchemy.orm import Mapped, mapped_column

from broker.accounts.models import Role
from broker.db import Base, BigId, UTCDateTime


class User(Base):
    """A person who signs in to the portal (retailer) or the console (manufacturer).

    A company has as many users as it likes; each user belongs to one company.
    The password is stored only as a salted scrypt hash (`broker.identity.passwords`).
    A user invited by a colleague has no password until they set one through the
    link in their invitation.
    """

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "(role = 'manufacturer' AND manufacturer_id IS NOT NULL AND retailer_id IS NULL)"
            " OR (role = 'retailer' AND retailer_id IS NOT NULL AND manufacturer_id IS NULL)",
            name="one_company",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # Stored lower-cased: one account per address, however it is typed.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    role: Mapped[Role] = mapped_column(String(16))
    manufacturer_id: Mapped[int | None] = mapped_column(ForeignKey("manufacturers.id"), index=True, default=None)
    retailer_id: Mapped[int | None] = mapped_column(ForeignKey("retailers.id"), index=True, default=None)
    # The daily digest of new listings is opt-in (retailers only).
    digest_opt_in: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    @property
    def company_id(self) -> int:
        return self.manufacturer_id if self.role == Role.MANUFACTURER else self.retailer_id  # type: ignore[return-value]

    @property
    def active(self) -> bool:
        return self.removed_at is None
