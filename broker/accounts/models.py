from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from broker.db import Base, BigId, UTCDateTime


class Manufacturer(Base):
    __tablename__ = "manufacturers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    currency: Mapped[str] = mapped_column(String(3))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    area: Mapped[str] = mapped_column(String(120))
    # Overrides BROKER_PLATFORM_FEE_BPS for this manufacturer's orders.
    fee_bps: Mapped[int | None] = mapped_column(Integer, default=None)
    # The storefront's look: its brand, not Broker's.
    logo_url: Mapped[str | None] = mapped_column(String(500), default=None)
    color_primary: Mapped[str] = mapped_column(String(7), default="#1d4ed8", server_default="#1d4ed8")
    color_accent: Mapped[str] = mapped_column(String(7), default="#f59e0b", server_default="#f59e0b")
    locale: Mapped[str] = mapped_column(String(16), default="en_US", server_default="en_US")
    # The store's own domain (normalised: lowercase, punycode, no trailing dot; one
    # store per domain). Requests for it serve this store once it is verified:
    # Broker fetched http://<domain>/.well-known/broker-domain/<domain_token> and
    # got the token back, so the name points at Broker (broker/storefront/domains.py).
    custom_domain: Mapped[str | None] = mapped_column(String(253), unique=True, default=None)
    domain_token: Mapped[str | None] = mapped_column(String(64), default=None)
    domain_claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    domain_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Origins allowed to frame the store (Content-Security-Policy frame-ancestors).
    frame_origins: Mapped[list[str]] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    return_window_days: Mapped[int] = mapped_column(Integer, default=30, server_default="30")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Retailer(Base):
    __tablename__ = "retailers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    stores: Mapped[list[Store]] = relationship(back_populates="retailer", order_by="Store.id")


class Store(Base):
    """A place a retailer ships from. A retailer has one or more."""

    __tablename__ = "stores"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    retailer_id: Mapped[int] = mapped_column(ForeignKey("retailers.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    area: Mapped[str] = mapped_column(String(120))
    service_radius_km: Mapped[float] = mapped_column(Float)
    is_open: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Its postal address, for customers who pick up (broker/accounts/addresses.py);
    # "" where not known (a store made from a bare postal code has only that and
    # its country until the retailer completes it).
    line1: Mapped[str] = mapped_column(String(200), default="", server_default="")
    line2: Mapped[str] = mapped_column(String(200), default="", server_default="")
    city: Mapped[str] = mapped_column(String(120), default="", server_default="")
    region: Mapped[str] = mapped_column(String(60), default="", server_default="")
    postal_code: Mapped[str] = mapped_column(String(20), default="", server_default="")
    country: Mapped[str] = mapped_column(String(2), default="", server_default="")
    # Opening hours as broker/accounts/hours.py stores them; None: not given.
    hours: Mapped[dict | None] = mapped_column(JSON, default=None)
    # IANA name: its hours are on this wall clock.
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")

    retailer: Mapped[Retailer] = relationship(back_populates="stores")


class DealerAuthorisation(Base):
    """A manufacturer authorises a retailer as a dealer; revoking keeps the row."""

    __tablename__ = "dealer_authorisations"
    __table_args__ = (UniqueConstraint("manufacturer_id", "retailer_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    manufacturer_id: Mapped[int] = mapped_column(ForeignKey("manufacturers.id"))
    retailer_id: Mapped[int] = mapped_column(ForeignKey("retailers.id"), index=True)
    authorised_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class Role(enum.StrEnum):
    MANUFACTURER = "manufacturer"
    RETAILER = "retailer"


class ApiKey(Base):
    """An API key, stored only as its SHA-256 (the key itself is shown once)."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_owner", "role", "manufacturer_id", "retailer_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    role: Mapped[Role] = mapped_column(String(16))
    manufacturer_id: Mapped[int | None] = mapped_column(ForeignKey("manufacturers.id"), default=None)
    retailer_id: Mapped[int | None] = mapped_column(ForeignKey("retailers.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class ApplicationStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"


class DealerApplication(Base):
    """A retailer asks a manufacturer to be authorised as a dealer; the
    manufacturer decides. `invited` marks one approved by accepting a
    manufacturer's invitation (`DealerInvitation`) instead.

    One row per (manufacturer, retailer); asking again after a decline reopens it.
    """

    __tablename__ = "dealer_applications"
    __table_args__ = (UniqueConstraint("manufacturer_id", "retailer_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    manufacturer_id: Mapped[int] = mapped_column(ForeignKey("manufacturers.id"), index=True)
    retailer_id: Mapped[int] = mapped_column(ForeignKey("retailers.id"), index=True)
    status: Mapped[ApplicationStatus] = mapped_column(String(16))
    invited: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    note: Mapped[str] = mapped_column(String(500), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The retailer's user who asked: the manufacturer sees their address, and
    # approves only while it is verified. None for applications made before it was kept.
    applicant_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)


class InvitationStatus(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"


class DealerInvitation(Base):
    """A manufacturer invites an email address to become its dealer.

    The link mailed to the address is the only way to accept it: its token
    proves access to that mailbox. Only the token's SHA-256 is stored; it works
    once (`status`) and until `expires_at`. Nothing matches the address against
    accounts: whoever holds the link accepts for the company they sign in to or
    sign up.
    """

    __tablename__ = "dealer_invitations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    manufacturer_id: Mapped[int] = mapped_column(ForeignKey("manufacturers.id"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[InvitationStatus] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The retailer that accepted or declined it.
    retailer_id: Mapped[int | None] = mapped_column(ForeignKey("retailers.id"), default=None)
