"""What a cart costs delivered somewhere: goods, the shipping charge, tax, total.

`price` reads the store's methods and tax table in the caller's session and
asks the tax provider, which may call out over the network: callers price
before they write anything, so no write lock (SQLite's database lock, a
PostgreSQL row lock) is held while the provider answers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.accounts.models import Manufacturer
from broker.errors import Invalid, NotFound, Unavailable
from broker.geo.countries import in_country
from broker.money import MAX_AMOUNT, format_amount
from broker.orders.models import Delivery
from broker.shipping import rules as shipping_rules
from broker.shipping.services import active_methods
from broker.tax.provider import TaxError, TaxLine, TaxProvider, TaxRequest
from broker.tax.services import TaxTable, table_of


@dataclasses.dataclass(frozen=True)
class PricedLine:
    sku: str
    unit_price: int
    quantity: int

    @property
    def total(self) -> int:
        return self.unit_price * self.quantity


@dataclasses.dataclass(frozen=True)
class Destination:
    country: str
    region: str = ""
    postal_code: str = ""
    city: str = ""
    line1: str = ""


@dataclasses.dataclass(frozen=True)
class Priced:
    subtotal: int
    shipping: int
    tax: int
    tax_included: bool
    total: int
    jurisdiction: str
    rate: int | None
    method: shipping_rules.Method | None
    tax_reference: str | None = None

    @property
    def net(self) -> int:
        """What is not tax: the goods and the shipping, the fulfiller's (before the fee)."""
        return self.total - self.tax


@dataclasses.dataclass(frozen=True)
class Basis:
    """What a store's prices for delivery depend on besides the goods: its
    shipping methods on offer and its tax table."""

    methods: tuple[shipping_rules.Method, ...]
    table: TaxTable


def basis_of(session: Session, manufacturer_id: int, currency: str) -> Basis:
    return Basis(tuple(active_methods(session, manufacturer_id)), table_of(session, manufacturer_id, currency))


def choose_method(basis: Basis, *, to_country: str, delivery: Delivery, method_code: str | None,
                  field: str = "shipping_method") -> shipping_rules.Method | None:
    """The method the order ships by (None: pickup, or a store with no methods).
    :raise 422: a method that does not exist or does not ship there, or none that does."""
    if delivery == Delivery.PICKUP:
        if method_code:
            raise Invalid.field(field, "a pickup order is not shipped: leave the shipping method out")
        return None
    if not basis.methods:
        if method_code:
            raise Invalid.field(field, f"this store has no shipping method {method_code[:32]!r}")
        return None
    method = shipping_rules.choose(basis.methods, to_country, method_code)
    if method is None:
        if method_code and any(m.code == method_code for m in basis.methods):
            raise Invalid.field(field, f"{method_code!r} does not ship {in_country(to_country)}")
        if method_code:
            raise Invalid.field(field, f"this store has no shipping method {method_code[:32]!r}")
        raise Invalid.field("ship_to.country", f"this store does not ship {in_country(to_country)}")
    return method


def price(basis: Basis, taxes: TaxProvider, *, currency: str, lines: Sequence[PricedLine], to: Destination,
          delivery: Delivery, method_code: str | None, idempotency_key: str = "",
          field: str = "shipping_method") -> Priced:
    """Goods, shipping, tax and total. Call it outside any transaction: the
    provider may be a network call. :raise 422: see `choose_method`; a total
    over the limit. :raise 503: the tax provider is not answering."""
    subtotal = sum(line.total for line in lines)
    items = sum(line.quantity for line in lines)
    method = choose_method(basis, to_country=to.country, delivery=delivery, method_code=method_code, field=field)
    shipping = shipping_rules.charge(method, goods=subtotal, items=items) if method else 0
    table = basis.table
    try:
        quote = taxes.quote(TaxRequest(
            currency=currency, country=to.country, region=to.region, postal_code=to.postal_code, city=to.city,
            line1=to.line1, lines=[TaxLine(line.sku, line.total, line.quantity) for line in lines],
            shipping=shipping, prices_include_tax=table.prices_include_tax, shipping_taxed=table.shipping_taxed,
            rates=table.rates, idempotency_key=idempotency_key))
    except TaxError as exc:
        raise Unavailable(f"tax could not be calculated ({exc}); nothing was charged, try again") from None
    total = subtotal + shipping + (0 if quote.included else quote.tax)
    if total > MAX_AMOUNT:
        raise Invalid.field("items", f"the order's total must be at most {format_amount(MAX_AMOUNT, currency)}")
    return Priced(subtotal=subtotal, shipping=shipping, tax=quote.tax, tax_included=quote.included, total=total,
                  jurisdiction=quote.jurisdiction, rate=quote.rate, method=method, tax_reference=quote.reference)


@dataclasses.dataclass(frozen=True)
class MethodOffer:
    method: shipping_rules.Method
    charge: int


@dataclasses.dataclass(frozen=True)
class CheckoutOptions:
    """What a cart's checkout offers before the address is known: every method on
    offer with its charge for this cart (the default first), and how tax shows."""

    methods: list[MethodOffer]
    prices_include_tax: bool
    currency: str


def checkout_options(ctx, slug: str, *, goods: int, items: int) -> CheckoutOptions:
    """:raise 404: no storefront."""
    with ctx.uow() as uow:
        maker = uow.session.scalar(select(Manufacturer).where(Manufacturer.slug == slug))
        if maker is None:
            raise NotFound(f"no storefront {slug!r}")
        basis = basis_of(uow.session, maker.id, maker.currency)
    methods = sorted(basis.methods, key=lambda m: (not m.is_default, m.price, m.code))
    return CheckoutOptions([MethodOffer(m, shipping_rules.charge(m, goods=goods, items=items)) for m in methods],
                           basis.table.prices_include_tax, maker.currency)
