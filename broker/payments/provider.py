"""The payment provider seam.

A provider authorises (places a hold), captures, releases and refunds. Broker
never sees card numbers: a provider returns a reference, and, where the customer
must still confirm in the browser (Stripe), a client secret for the storefront.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from sqlalchemy.orm import Session


@dataclasses.dataclass(frozen=True)
class Authorization:
    ref: str
    # True when the hold is in place now; False when the customer must still
    # confirm it and the provider will tell us by webhook.
    authorized: bool
    client_secret: str | None = None


class PaymentDeclined(Exception):
    pass


class PaymentProvider(Protocol):
    name: str
    test_mode: bool

    def authorize(self, session: Session, *, amount: int, currency: str, idempotency_key: str,
                  description: str) -> Authorization: ...

    def capture(self, session: Session, ref: str, *, amount: int, idempotency_key: str) -> None: ...

    def release(self, session: Session, ref: str, *, idempotency_key: str) -> None: ...


def make_payment_provider(settings) -> PaymentProvider:
    # Stripe arrives with its own issue; until then the offline provider is the
    # only one, and it is never used silently in place of configured Stripe keys.
    if settings.stripe_secret_key:
        from broker.config import ConfigError

        raise ConfigError("STRIPE_SECRET_KEY is set, but this version of Broker has no Stripe provider yet")
    from broker.payments.offline import OfflineProvider

    return OfflineProvider()
