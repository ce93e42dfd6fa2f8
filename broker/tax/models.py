from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column

from broker.db import Base, BigId, UTCDateTime


class TaxSettings(Base):
    """How a manufacturer's prices relate to tax. No row: the defaults of
    broker/tax/rules.py `default_inclusive` (its currency's custom), shipping taxed."""

    __tablename__ = "tax_settings"

    manufacturer_id: Mapped[int] = mapped_column(ForeignKey("manufacturers.id"), primary_key=True)
    # True (as in the EU, the UK, Japan): catalog prices and shipping charges
    # include the tax, which is shown as "incl. VAT"; False (the US, Canada):
    # tax is added on top.
    prices_include_tax: Mapped[bool] = mapped_column(Boolean)
    # Whether the shipping charge is taxed like the goods where a rate applies.
    shipping_taxed: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TaxRate(Base):
    """One rate of a manufacturer's table: a country's, or a region's within it
    (`region` "" is the whole country). `rate` in thousandths of a percent:
    8.875 % is 8875."""

    __tablename__ = "tax_rates"
    __table_args__ = (UniqueConstraint("manufacturer_id", "country", "region"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    manufacturer_id: Mapped[int] = mapped_column(ForeignKey("manufacturers.id"), index=True)
    country: Mapped[str] = mapped_column(String(2))
    region: Mapped[str] = mapped_column(String(80), default="", server_default="")
    rate: Mapped[int] = mapped_column(Integer)
