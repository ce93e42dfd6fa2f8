"""Stripe behind the `PaymentProvider` seam, through the official SDK.

Three things hold for every request this module makes:

- The API version is pinned (`STRIPE_API_VERSION`), on the client and on each
  call. Stripe changes object shapes between versions; pinning means an SDK
  upgrade or a change to the account's default version in the dashboard cannot
  change what Broker reads. Bump it on purpose, after reading Stripe's changelog.
- Every write carries Broker's own idempotency key, derived from what is being
  done (`payment-7-capture`), so a retry after a timeout, a crash or a second
  worker replays Stripe's first answer instead of moving money twice. (The SDK
  would otherwise invent a random key per call, which only protects its own
  network retries.)
- Stripe's exceptions become `PaymentError`, with `retryable` saying whether
  trying later may work, and a message that carries no card data.

Amounts cross this boundary as integers in minor units either way; currencies are
upper case in Broker and lower case at Stripe.

How a PaymentIntent's status reads in Broker (`payment_state`):

    requires_payment_method, last_payment_error set  failed (a declined attempt;
                                                     the customer may still retry,
                                                     and a later success moves on)
    requires_payment_method, requires_confirmation,
    requires_action, processing                      requires_action
    requires_capture                                 authorized
    succeeded                                        captured
    canceled, last_payment_error set                 failed (it was never authorised:
                                                     Stripe clears the error when an
                                                     attempt succeeds)
    canceled                                         released
    anything else                                    requires_action (no change)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import stripe
from sqlalchemy.orm import Session

from broker.inputs import BadInput, load_json
from broker.payments.provider import Account, Authorization, PaymentError, PaymentState

# The version stripe-python 16.1 was generated for. The SDK's typed objects
# describe this version; sending another one works but can surprise them.
STRIPE_API_VERSION = "2026-10-28.endive"

# The SDK retries connection errors, 409s and 5xx itself (with the same
# idempotency key), with a backoff of about 0.5 s then 1 s.
MAX_NETWORK_RETRIES = 2

_UNEXPECTED_STATE = "payment_intent_unexpected_state"

_STATUS = {
    "requires_payment_method": "requires_action",
    "requires_confirmation": "requires_action",
    "requires_action": "requires_action",
    "processing": "requires_action",
    "requires_capture": "authorized",
    "succeeded": "captured",
    "canceled": "released",
}


class WebhookPayloadError(ValueError):
    """A correctly signed body that is not a JSON object Broker can take."""


class WebhookSignatureError(ValueError):
    """A webhook whose signature is missing, malformed, wrong or stale."""


def verify_webhook(payload: bytes, signature_header: str | None, secret: str, tolerance: int = 300) -> dict:
    """Check a webhook's `Stripe-Signature` against the endpoint's secret and
    return the event as a plain dict.

    The signature covers the raw body, so pass the bytes exactly as received
    (not re-serialised JSON). `tolerance` is how old, in seconds, the signed
    timestamp may be; it defends against replays of a captured request.

    :raise WebhookSignatureError: missing, malformed, wrong, stale or tampered
        signature. :raise WebhookPayloadError: signed, but not a JSON object
        Broker can take (`broker.inputs.load_json`).
    """
    try:
        stripe.WebhookSignature.verify_header(payload, signature_header, secret, tolerance)
    except stripe.SignatureVerificationError as exc:
        raise WebhookSignatureError(exc.user_message or "the signature does not match") from None
    except UnicodeDecodeError:
        raise WebhookSignatureError("the body is not UTF-8 text") from None
    try:
        # The strict loader: a NUL or lone surrogate in a signed body is still not
        # text the database can store, nor 100,000 levels of nesting a payload.
        event = load_json(payload, multiline_everywhere=True)
    except BadInput as exc:
        raise WebhookPayloadError(str(exc)) from None
    if not isinstance(event, dict):
        raise WebhookPayloadError("the body is not a JSON object")
    return event


def account_ready(account: Mapping[str, Any]) -> bool:
    """A connected account can receive transfers: onboarding finished, payouts
    on, and (where Stripe reports it) the transfers capability active."""
    capabilities = account.get("capabilities") or {}
    transfers = capabilities.get("transfers", "active") if isinstance(capabilities, Mapping) else "active"
    return bool(account.get("payouts_enabled")) and bool(account.get("details_submitted")) and transfers == "active"


def payment_state(intent: Mapping[str, Any]) -> PaymentState:
    """Read a PaymentIntent (a plain dict, `latest_charge` id or expanded) as
    Broker's `PaymentState`; see the module docstring for the status table."""
    status = intent.get("status")
    failed_attempt = bool(intent.get("last_payment_error"))
    if status in ("requires_payment_method", "canceled") and failed_attempt:
        broker_status = "failed"
    else:
        broker_status = _STATUS.get(status, "requires_action")

    latest = intent.get("latest_charge")
    charge = latest if isinstance(latest, Mapping) else None
    charge_id = charge.get("id") if charge is not None else latest
    if charge is not None:
        # A declined attempt leaves a failed charge behind. Broker keeps the first
        # charge reference it is told about (refunds, disputes and transfers'
        # source_transaction hang off it), so never report a failed one.
        usable = charge.get("status") != "failed"
    else:
        usable = status in ("requires_capture", "succeeded")
    return PaymentState(
        ref=intent["id"],
        status=broker_status,
        amount=int(intent.get("amount") or 0),
        amount_capturable=int(intent.get("amount_capturable") or 0),
        amount_received=int(intent.get("amount_received") or 0),
        amount_refunded=_refunded_after_capture(charge) if charge is not None else 0,
        charge_ref=charge_id if usable and isinstance(charge_id, str) else None,
    )


def _refunded_after_capture(charge: Mapping[str, Any]) -> int:
    """What was given back after capture. When only part of a hold is captured,
    Stripe refunds the rest and counts it in the charge's `amount_refunded`;
    for Broker that remainder was released, not refunded, so leave it out."""
    if not charge.get("captured"):
        return 0
    amount = int(charge.get("amount") or 0)
    captured = int(charge.get("amount_captured") if charge.get("amount_captured") is not None else amount)
    return max(0, int(charge.get("amount_refunded") or 0) - (amount - captured))


def _payment_error(action: str, exc: stripe.StripeError) -> PaymentError:
    """Stripe's error as a PaymentError. Card errors are described by their codes
    only; other messages are Stripe's own, about the request, never the card."""
    if isinstance(exc, stripe.CardError):
        body = exc.json_body.get("error", {}) if isinstance(exc.json_body, dict) else {}
        codes = ", ".join(c for c in (exc.code, body.get("decline_code")) if c)
        detail, retryable = f"the card was declined ({codes or 'no reason given'})", False
    elif isinstance(exc, stripe.APIConnectionError):
        detail, retryable = "could not reach Stripe", True
    elif isinstance(exc, stripe.RateLimitError):
        detail, retryable = "too many requests to Stripe", True
    elif isinstance(exc, stripe.APIError):
        # 5xx, 409 (a lock on Stripe's side) or a response that was not Stripe's JSON.
        status = exc.http_status
        detail = f"Stripe failed (HTTP {status})" if status else "Stripe sent an unreadable response"
        retryable = status is None or status >= 500 or status == 409
    else:
        # InvalidRequestError, IdempotencyError, AuthenticationError, PermissionError...:
        # the same request will fail the same way.
        detail = exc.user_message or type(exc).__name__
        if exc.code:
            detail += f" [{exc.code}]"
        retryable = False
    if exc.request_id:
        detail += f" (request {exc.request_id})"
    return PaymentError(f"could not {action}: {detail}", retryable=retryable)


@contextlib.contextmanager
def _stripe_errors(action: str) -> Iterator[None]:
    try:
        yield
    except stripe.StripeError as exc:
        raise _payment_error(action, exc) from exc


class StripeProvider:
    """The `PaymentProvider` for Stripe: PaymentIntents with manual capture for the
    hold, Express connected accounts and transfers (separate charges and
    transfers, grouped by order) for payouts. It keeps nothing in Broker's
    database; the `session` arguments are part of the seam and go unused."""

    name = "stripe"

    def __init__(self, settings) -> None:
        key = settings.stripe_secret_key
        self.test_mode = key.startswith(("sk_test_", "rk_test_"))
        # Our own handle on the HTTP client, so `close()` can release its pooled
        # connections (StripeClient has no close of its own).
        self._http = stripe.new_default_http_client()
        self._client = stripe.StripeClient(
            api_key=key,
            stripe_version=STRIPE_API_VERSION,
            # The SDK joins base and path as strings: "http://x/" would give "//v1/...".
            base_addresses={"api": settings.stripe_api_base.rstrip("/")} if settings.stripe_api_base else {},
            max_network_retries=MAX_NETWORK_RETRIES,
            http_client=self._http,
        )
        # The v1 namespace: `client.payment_intents` and friends still work in
        # v16 but warn (DeprecationWarning) on every access.
        self._v1 = self._client.v1

    def close(self) -> None:
        """Close this thread's pooled connections to Stripe."""
        self._http.close()

    # -- payments -------------------------------------------------------------

    def authorize(self, session: Session, *, amount: int, currency: str, idempotency_key: str,
                  description: str, metadata: dict[str, str] | None = None) -> Authorization:
        """Create a PaymentIntent to be confirmed by the customer in the browser
        (with the client secret) and captured later by Broker."""
        metadata = {str(k): str(v) for k, v in (metadata or {}).items()}
        params: dict[str, Any] = {
            "amount": amount,
            "currency": currency.lower(),
            "capture_method": "manual",
            "automatic_payment_methods": {"enabled": True},
            "metadata": metadata,
        }
        if description:
            params["description"] = description
        if metadata.get("transfer_group"):
            params["transfer_group"] = metadata["transfer_group"]
        with _stripe_errors("authorise the payment"):
            intent = self._v1.payment_intents.create(params, options=_write(idempotency_key))
        return Authorization(ref=intent.id, authorized=intent.status == "requires_capture",
                             client_secret=intent.client_secret)

    def capture(self, session: Session, ref: str, *, amount: int, idempotency_key: str) -> PaymentState:
        """Capture `amount` of the hold; Stripe releases the rest. A payment
        captured already (a retry after Stripe's idempotency window) is read back
        rather than refused."""
        try:
            with _stripe_errors("capture the payment"):
                intent = self._v1.payment_intents.capture(
                    ref, {"amount_to_capture": amount, "expand": ["latest_charge"]},
                    options=_write(idempotency_key))
        except PaymentError as exc:
            if _code(exc) == _UNEXPECTED_STATE:
                state = self.retrieve(session, ref)
                if state.status == "captured":
                    return state
            raise
        return payment_state(intent.to_dict())

    def release(self, session: Session, ref: str, *, idempotency_key: str) -> None:
        """Cancel the PaymentIntent, releasing the hold. Releasing one that is
        cancelled already is not an error."""
        try:
            with _stripe_errors("release the payment"):
                self._v1.payment_intents.cancel(ref, options=_write(idempotency_key))
        except PaymentError as exc:
            if _code(exc) == _UNEXPECTED_STATE:
                with _stripe_errors("read the payment"):
                    intent = self._v1.payment_intents.retrieve(ref, options=_read())
                if intent.status == "canceled":
                    return
            raise

    def refund(self, session: Session, ref: str, *, amount: int, idempotency_key: str) -> str:
        with _stripe_errors("refund the payment"):
            refund = self._v1.refunds.create({"payment_intent": ref, "amount": amount},
                                             options=_write(idempotency_key))
        return refund.id

    def retrieve(self, session: Session, ref: str) -> PaymentState:
        with _stripe_errors("read the payment"):
            intent = self._v1.payment_intents.retrieve(ref, {"expand": ["latest_charge"]}, options=_read())
        return payment_state(intent.to_dict())

    # -- connected accounts and payouts ----------------------------------------

    def create_account(self, session: Session, *, email: str, country: str, idempotency_key: str) -> Account:
        params = {
            "type": "express",
            "email": email,
            "country": country.upper(),
            "capabilities": {"transfers": {"requested": True}},
        }
        with _stripe_errors("create the connected account"):
            account = self._v1.accounts.create(params, options=_write(idempotency_key))
        return Account(ref=account.id, ready=account_ready(account.to_dict()))

    def account(self, session: Session, ref: str) -> Account:
        with _stripe_errors("read the connected account"):
            account = self._v1.accounts.retrieve(ref, options=_read())
        return Account(ref=account.id, ready=account_ready(account.to_dict()))

    def onboarding_link(self, session: Session, account_ref: str, *, return_url: str, refresh_url: str) -> str:
        """A single-use link to Stripe's hosted onboarding (it expires within
        minutes: make one per visit, never store it)."""
        params = {"account": account_ref, "refresh_url": refresh_url, "return_url": return_url,
                  "type": "account_onboarding"}
        with _stripe_errors("create the onboarding link"):
            # No caller key: each link is meant to be new; the SDK adds a random one.
            link = self._v1.account_links.create(params, options=_read())
        return link.url

    def transfer(self, session: Session, *, account_ref: str, amount: int, currency: str, transfer_group: str,
                 source_ref: str | None, idempotency_key: str) -> str:
        """Pay a connected account from the platform's balance. With `source_ref`
        (the charge the money came from) the transfer waits for that charge's
        funds instead of needing an available balance now."""
        params: dict[str, Any] = {
            "amount": amount,
            "currency": currency.lower(),
            "destination": account_ref,
            "transfer_group": transfer_group,
        }
        if source_ref:
            params["source_transaction"] = source_ref
        with _stripe_errors("transfer to the connected account"):
            transfer = self._v1.transfers.create(params, options=_write(idempotency_key))
        return transfer.id


def _read() -> stripe.RequestOptions:
    return {"stripe_version": STRIPE_API_VERSION}


def _write(idempotency_key: str) -> stripe.RequestOptions:
    if not idempotency_key:
        raise ValueError("every write to Stripe needs an idempotency key")
    return {"stripe_version": STRIPE_API_VERSION, "idempotency_key": idempotency_key}


def _code(exc: PaymentError) -> str | None:
    cause = exc.__cause__
    return cause.code if isinstance(cause, stripe.StripeError) else None
