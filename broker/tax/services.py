"""A manufacturer's tax table (reading and replacing it) and the tax of a sale."""

from __future__ import annotations

import dataclasses

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from broker.accounts.models import Manufacturer
from broker.addresses.formats import country_format, match_region
from broker.auth import Actor, ActorKind, require
from broker.context import Context
from broker.errors import Invalid
from broker.geo.countries import is_country
from broker.locks import lock
from broker.tax import rules
from broker.tax.models import TaxRate, TaxSettings

MAX_RATES = 500


@dataclasses.dataclass(frozen=True)
class RateIn:
    country: str
    rate: str  # a percentage as a decimal string, "8.875"
    region: str = ""


@dataclasses.dataclass(frozen=True)
class SetTaxTable:
    prices_include_tax: bool
    rates: list[RateIn]
    shipping_taxed: bool = True


@dataclasses.dataclass(frozen=True)
class TaxTable:
    prices_include_tax: bool
    shipping_taxed: bool
    # (country, region) → rate in thousandths of a percent, sorted.
    rates: dict[tuple[str, str], int]
    currency: str
    provider: str = "table"


def table_of(session: Session, manufacturer_id: int, currency: str) -> TaxTable:
    """The manufacturer's table, with the defaults where it has set nothing (caller's session)."""
    settings = session.get(TaxSettings, manufacturer_id)
    rates = {(r.country, r.region): r.rate for r in session.scalars(
        select(TaxRate).where(TaxRate.manufacturer_id == manufacturer_id)
        .order_by(TaxRate.country, TaxRate.region))}
    if settings is None:
        return TaxTable(rules.default_inclusive(currency), True, rates, currency)
    return TaxTable(settings.prices_include_tax, settings.shipping_taxed, rates, currency)


def get_table(ctx: Context, actor: Actor) -> TaxTable:
    require(actor, ActorKind.MANUFACTURER)
    with ctx.uow() as uow:
        currency = uow.session.scalar(select(Manufacturer.currency).where(Manufacturer.id == actor.id))
        table = table_of(uow.session, actor.id, currency)
        return dataclasses.replace(table, provider=ctx.settings.tax_provider)


def check_table(cmd: SetTaxTable) -> dict[tuple[str, str], int]:
    """The rates as (country, region) → rate. :raise 422: every bad row, by index."""
    errors: dict[str, list[str]] = {}
    if not isinstance(cmd.prices_include_tax, bool):
        errors["prices_include_tax"] = ["must be true or false"]
    if not isinstance(cmd.shipping_taxed, bool):
        errors["shipping_taxed"] = ["must be true or false"]
    if len(cmd.rates) > MAX_RATES:
        errors["rates"] = [f"at most {MAX_RATES} rates"]
        cmd = dataclasses.replace(cmd, rates=[])
    found: dict[tuple[str, str], int] = {}
    for i, row in enumerate(cmd.rates):
        country = (row.country or "").strip().upper()
        if not is_country(country):
            errors.setdefault(f"rates.{i}.country", []).append("an ISO 3166-1 alpha-2 country code, e.g. DE")
            continue
        region = ""
        if (row.region or "").strip():
            fmt = country_format(country)
            region = match_region(fmt, row.region) or ""
            if not region:
                errors.setdefault(f"rates.{i}.region", []).append(
                    f"{row.region.strip()[:80]!r} is not a region of {country} (use its code, e.g. NY for New York)")
                continue
        try:
            rate = rules.parse_rate(row.rate)
        except ValueError as exc:
            errors.setdefault(f"rates.{i}.rate", []).append(str(exc))
            continue
        if (country, region) in found:
            errors.setdefault(f"rates.{i}", []).append(
                f"{rules.jurisdiction(country, region)} is given twice")
            continue
        found[(country, region)] = rate
    if errors:
        raise Invalid("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()), errors=errors)
    return found


def set_table(ctx: Context, actor: Actor, cmd: SetTaxTable) -> TaxTable:
    """Replace the manufacturer's whole table. Orders placed keep their tax.
    :raise 422: bad rows (nothing is changed)."""
    require(actor, ActorKind.MANUFACTURER)
    rates = check_table(cmd)
    with ctx.uow() as uow:
        session = uow.session
        maker = session.scalar(lock(select(Manufacturer).where(Manufacturer.id == actor.id)))
        settings = session.get(TaxSettings, actor.id)
        if settings is None:
            settings = TaxSettings(manufacturer_id=actor.id, prices_include_tax=cmd.prices_include_tax,
                                   shipping_taxed=cmd.shipping_taxed, updated_at=ctx.now())
            session.add(settings)
        settings.prices_include_tax = cmd.prices_include_tax
        settings.shipping_taxed = cmd.shipping_taxed
        settings.updated_at = ctx.now()
        session.execute(delete(TaxRate).where(TaxRate.manufacturer_id == actor.id))
        session.add_all([TaxRate(manufacturer_id=actor.id, country=c, region=r, rate=rate)
                         for (c, r), rate in sorted(rates.items())])
        session.flush()
        table = table_of(session, actor.id, maker.currency)
        uow.after_commit(lambda: ctx.storefront_changed(actor.id))
        uow.commit()
        return dataclasses.replace(table, provider=ctx.settings.tax_provider)
