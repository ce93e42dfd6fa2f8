"""Stripe Tax behind the `TaxProvider` seam: its calculation API, through the
official SDK, with the API version pinned as for payments
(broker/payments/stripe_provider.py).

A calculation is asked for the cart and the shipping charge at the customer's
address; each line's `tax_behavior` follows the store (inclusive where its
prices include tax); a shipping charge the store does not tax is sent with
Stripe's nontaxable tax code. Nothing is recorded at Stripe (no tax
transaction): Broker's ledger and tax report are the record.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import stripe

from broker.payments.stripe_provider import MAX_NETWORK_RETRIES, STRIPE_API_VERSION
from broker.tax import rules
from broker.tax.provider import TaxError, TaxQuote, TaxRequest

NONTAXABLE = "txcd_00000000"


class StripeTax:
    name = "stripe"

    def __init__(self, settings) -> None:
        self._http = stripe.new_default_http_client()
        self._client = stripe.StripeClient(
            api_key=settings.stripe_secret_key, stripe_version=STRIPE_API_VERSION,
            base_addresses={"api": settings.stripe_api_base.rstrip("/")} if settings.stripe_api_base else {},
            max_network_retries=MAX_NETWORK_RETRIES, http_client=self._http)

    def close(self) -> None:
        self._http.close()

    def quote(self, request: TaxRequest) -> TaxQuote:
        behavior = "inclusive" if request.prices_include_tax else "exclusive"
        address = {k: v for k, v in {"country": request.country, "state": request.region,
                                     "postal_code": request.postal_code, "city": request.city,
                                     "line1": request.line1}.items() if v}
        params: dict[str, Any] = {
            "currency": request.currency.lower(),
            "line_items": [{"amount": line.amount, "reference": line.reference[:500], "quantity": line.quantity,
                            "tax_behavior": behavior} for line in request.lines],
            "customer_details": {"address": address, "address_source": "shipping"},
        }
        if request.shipping:
            params["shipping_cost"] = {"amount": request.shipping, "tax_behavior": behavior,
                                       **({} if request.shipping_taxed else {"tax_code": NONTAXABLE})}
        options: stripe.RequestOptions = {"stripe_version": STRIPE_API_VERSION}
        if request.idempotency_key:
            options["idempotency_key"] = request.idempotency_key
        try:
            calculation = self._client.v1.tax.calculations.create(params, options=options).to_dict()
        except stripe.StripeError as exc:
            retryable = isinstance(exc, (stripe.APIConnectionError, stripe.RateLimitError)) or (
                isinstance(exc, stripe.APIError) and (exc.http_status is None or exc.http_status >= 500))
            raise TaxError(f"Stripe Tax: {exc.user_message or type(exc).__name__}", retryable=retryable) from None
        return read_calculation(calculation, request)


def read_calculation(calculation: dict, request: TaxRequest) -> TaxQuote:
    """Stripe's calculation as Broker's quote: the tax, where it is owed (the
    jurisdiction of the largest part of it) and its rate when one rate applied."""
    tax = int(calculation.get("tax_amount_exclusive") or 0) + int(calculation.get("tax_amount_inclusive") or 0)
    parts = [b for b in calculation.get("tax_breakdown") or [] if int(b.get("amount") or 0) > 0]
    jurisdiction, rate = request.country.upper(), None
    if parts:
        main = max(parts, key=lambda b: int(b["amount"]))
        details = main.get("tax_rate_details") or {}
        jurisdiction = rules.jurisdiction((details.get("country") or request.country).upper(),
                                          (details.get("state") or "").upper())
        if len(parts) == 1:
            rate = _rate(details.get("percentage_decimal"))
    elif tax == 0:
        rate = 0
    return TaxQuote(tax=tax, included=request.prices_include_tax, jurisdiction=jurisdiction, rate=rate,
                    reference=calculation.get("id"))


def _rate(text) -> int | None:
    try:
        value = Decimal(str(text)).normalize()
        return rules.parse_rate(format(value, "f"))
    except (InvalidOperation, ValueError, TypeError):
        return None
