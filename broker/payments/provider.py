"""The payment provider seam.

A provider places a hold on a card (authorise), captures it, releases it,
refunds it, and pays fulfillers out through connected accounts. Broker never sees
card numbers: a provider returns references, and, where the customer must still
confirm in the browser (Stripe), a client secret for the storefront.

Two implementations: `OfflineProvider` (the default where no keys are set; its
own tables, test mode, no network) and `StripeProvider` (the official SDK, API
version pinned, idempotency keys on every write). Services only ever see this
interface, chosen by `broker.payments.factory.make_payment_provider` from the
settings (a module of its own: the implementations import this one).
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


@dataclasses.dataclass(frozen=True)
class PaymentState:
    """What the provider says about a payment now (to re-read after a webhook)."""

    ref: str
    # requires_action (customer still to confirm), authorized, captured, released, failed
    status: str
    amount: int
    amount_capturable: int = 0
    amount_received: int = 0
    amount_refunded: int = 0
    charge_ref: str | None = None


@dataclasses.dataclass(frozen=True)
class Account:
    ref: str
    # Ready: the account can receive transfers (payouts enabled, details submitted).
    ready: bool


class PaymentError(Exception):
    """The provider refused or failed; `retryable` says whether trying later may work."""

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


class PaymentProvider(Protocol):
    name: str
    test_mode: bool

    def authorize(self, session: Session, *, amount: int, currency: str, idempotency_key: str,
                  description: str, metadata: dict[str, str]) -> Authorization: ...

    def capture(self, session: Session, ref: str, *, amount: int, idempotency_key: str) -> PaymentState:
        """Capture `amount` (at most what was authorised); the rest of the hold is released."""

    def release(self, session: Session, ref: str, *, idempotency_key: str) -> None: ...

    def refund(self, session: Session, ref: str, *, amount: int, idempotency_key: str) -> str:
        """Refund part or all of a captured payment; returns the refund's reference."""

    def retrieve(self, session: Session, ref: str) -> PaymentState: ...

    def create_account(self, session: Session, *, email: str, country: str, idempotency_key: str) -> Account: ...

    def account(self, session: Session, ref: str) -> Account: ...

    def onboarding_link(self, session: Session, account_ref: str, *, return_url: str, refresh_url: str) -> str: ...

    def transfer(self, session: Session, *, account_ref: str, amount: int, currency: str, transfer_group: str,
                 source_ref: str | None, idempotency_key: str) -> str:
        """Move money from the platform to a connected account; returns the transfer's reference."""
