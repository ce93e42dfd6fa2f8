"""The tax provider seam: what Broker asks (`TaxRequest`) and is told (`TaxQuote`).

Two implementations, chosen by `BROKER_TAX_PROVIDER`: `table` (the default,
`TableTax`: the manufacturer's own rate table, offline) and `stripe`
(`broker.tax.stripe_tax.StripeTax`: Stripe Tax's calculation API). A provider
may call out over the network, so callers ask it before they take any write
lock (broker/checkout.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Protocol

from broker.tax import rules


class TaxError(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclasses.dataclass(frozen=True)
class TaxLine:
    reference: str  # the SKU
    amount: int  # the line's total, in minor units, as priced in the catalog
    quantity: int


@dataclasses.dataclass(frozen=True)
class TaxRequest:
    currency: str
    country: str
    region: str
    postal_code: str
    city: str
    line1: str
    lines: Sequence[TaxLine]
    shipping: int
    prices_include_tax: bool
    shipping_taxed: bool
    # The manufacturer's table, (country, region) → rate (broker.tax.rules).
    rates: Mapping[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    idempotency_key: str = ""


@dataclasses.dataclass(frozen=True)
class TaxQuote:
    tax: int
    # True: `tax` is inside the prices (the total does not grow); False: added on top.
    included: bool
    jurisdiction: str
    rate: int | None  # thousandths of a percent; None where several apply (Stripe Tax)
    reference: str | None = None  # the provider's calculation id


class TaxProvider(Protocol):
    name: str

    def quote(self, request: TaxRequest) -> TaxQuote: ...


class TableTax:
    """The manufacturer's own table of rates: by country, by region where they
    differ, inclusive or exclusive as the store prices."""

    name = "table"

    def quote(self, request: TaxRequest) -> TaxQuote:
        found = rules.rate_for(request.rates, request.country, request.region)
        taxable = sum(line.amount for line in request.lines) + (request.shipping if request.shipping_taxed else 0)
        tax = (rules.tax_within(taxable, found.rate) if request.prices_include_tax
               else rules.tax_on_top(taxable, found.rate))
        return TaxQuote(tax=tax, included=request.prices_include_tax, jurisdiction=found.jurisdiction,
                        rate=found.rate)
