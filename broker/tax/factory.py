"""The tax provider the settings name: a module of its own, so the interface
(`broker.tax.provider`) never imports its implementations back."""

from __future__ import annotations

from broker.tax.provider import TableTax, TaxProvider


def make_tax_provider(settings) -> TaxProvider:
    if settings.tax_provider == "stripe":
        from broker.tax.stripe_tax import StripeTax

        return StripeTax(settings)
    return TableTax()
