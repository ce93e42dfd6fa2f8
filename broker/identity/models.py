from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String, false, text
from sqlalchemy.orm import Mapped, mapped_column

from broker.accounts.models import Role
from broker.db import Base, BigId, UTCDateTime


class User(Base):
    """A person who signs in to the portal (retailer) or the console (manufacturer).

    A company has as many users as it likes; each user belongs to one company.
    The password is stored only as a salted scrypt hash (`broker.identity.passwords`).
    A user invited by a colleague has no password until they set one through the
    link in their invitation.

    An address is trusted only once its owner followed a link mailed to it
    (`verified_at`). Until then it reserves nothing: several unverified users
    may give one address (a squatter's sign-up must not lock the owner out), and
    only verified addresses are unique.
    """

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "(role = 'manufacturer' AND manufacturer_id IS NOT NULL AND retailer_id IS NULL)"
            " OR (role = 'retailer' AND retailer_id IS NOT NULL AND manufacturer_id IS NULL)",
            name="one_company",
        ),
        Index("uq_users_email_verified", "email", unique=True,
              sqlite_where=text("verified_at IS NOT NULL"), postgresql_where=text("verified_at IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # Stored lower-cased: one verified account per address, however it is typed.
    email: Mapped[str] = mapped_column(String(254), index=True)
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
    # When the owner of `email` followed a link mailed to it; None: the address proves nothing yet.
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    @property
    def company_id(self) -> int:
        return self.manufacturer_id if self.role == Role.MANUFACTURER else self.retailer_id  # type: ignore[return-value]

    @property
    def active(self) -> bool:
        return self.removed_at is None

    @property
    def verified(self) -> bool:
        return self.verified_at is not None


class UserSession(Base):
    """A signed-in browser. The cookie carries a random id; only its SHA-256 is
    stored, so a copy of this table signs nobody in. A session ends when its user
    signs out, changes or resets the password (every other session), or is
    removed; it lapses when idle or old (`broker.identity.sessions`)."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
