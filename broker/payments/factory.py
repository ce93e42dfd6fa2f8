"""Which payment provider a process uses, chosen from the settings.

Its own module because both implementations import the interface
(`broker.payments.provider`): the interface module importing them back was an
import loop.
"""

from __future__ import annotations

from broker.payments.offline import OfflineProvider
from broker.payments.provider import PaymentProvider


def make_payment_provider(settings) -> PaymentProvider:
    if settings.stripe_secret_key:
        # Imported here, not above: the Stripe SDK takes about 0.3 s to import,
        # which a deployment without Stripe keys (and every CLI command) never needs.
        from broker.payments.stripe_provider import StripeProvider

        return StripeProvider(settings)
    return OfflineProvider()
