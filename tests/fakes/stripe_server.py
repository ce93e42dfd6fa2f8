"""A fake Stripe API on 127.0.0.1, for tests that drive the real `stripe` SDK.

Only what Broker uses: PaymentIntents with manual capture, refunds, Express
accounts, account links and transfers. It speaks Stripe's wire format (form
encoded requests with `a[b][c]` keys, JSON objects with `id` and `object`,
`{"error": {...}}` errors with Stripe's status codes), checks the API key,
refuses unknown parameters, and honours idempotency keys the way Stripe does:
the first answer to a key is replayed for the same request, and a key reused
for a different request is an `idempotency_error`.

    with FakeStripe() as fake:
        provider = StripeProvider(Settings(..., stripe_api_base=fake.url))
        auth = provider.authorize(...)
        fake.authorize(auth.ref)          # the customer confirms the card
        fake.fail_next(status=500)        # the next request fails

What the customer does in the browser (confirming, declining) and what happens
at Stripe by itself (onboarding, a hold expiring) are methods on `FakeStripe`.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

CANCELABLE = {"requires_payment_method", "requires_capture", "requires_confirmation", "requires_action",
              "processing"}
CONFIRMABLE = {"requires_payment_method", "requires_confirmation", "requires_action"}

# The parameters each endpoint accepts; anything else is refused, as Stripe does,
# so a misspelt parameter fails the test instead of being silently ignored.
COMMON = {"expand"}
PARAMS = {
    "create_payment_intent": {"amount", "currency", "capture_method", "automatic_payment_methods", "description",
                              "metadata", "transfer_group", "confirm", "payment_method", "payment_method_types",
                              "receipt_email", "statement_descriptor", "statement_descriptor_suffix", "customer",
                              "on_behalf_of", "application_fee_amount", "transfer_data", "setup_future_usage"},
    "retrieve_payment_intent": {"client_secret"},
    "capture_payment_intent": {"amount_to_capture", "metadata", "application_fee_amount", "statement_descriptor",
                               "statement_descriptor_suffix", "final_capture"},
    "cancel_payment_intent": {"cancellation_reason"},
    "confirm_payment_intent": {"payment_method", "return_url", "receipt_email"},
    "create_refund": {"payment_intent", "charge", "amount", "reason", "metadata", "refund_application_fee",
                      "reverse_transfer"},
    "create_account": {"type", "email", "country", "capabilities", "business_type", "metadata", "controller",
                       "business_profile"},
    "retrieve_account": set(),
    "create_account_link": {"account", "refresh_url", "return_url", "type", "collect", "collection_options"},
    "create_transfer": {"amount", "currency", "destination", "transfer_group", "source_transaction", "description",
                        "metadata"},
    "create_transfer_reversal": {"amount", "description", "metadata", "refund_application_fee"},
    "create_tax_calculation": {"currency", "line_items", "customer_details", "shipping_cost", "customer",
                               "tax_date"},
}


class StripeFailure(Exception):
    """Answer the request with a Stripe-shaped error."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, **extra: Any):
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"type": type, "message": message}
        if code:
            self.body["code"] = code
        if param:
            self.body["param"] = param
        self.body.update(extra)


@dataclasses.dataclass(frozen=True)
class Recorded:
    """One request as the fake received it."""

    method: str
    path: str
    params: dict[str, Any]
    headers: dict[str, str]
    status: int

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("Idempotency-Key")

    @property
    def stripe_version(self) -> str | None:
        return self.headers.get("Stripe-Version")


@dataclasses.dataclass
class _Failure:
    status: int
    times: int
    body: dict[str, Any]
    should_retry: bool | None


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A valid `Stripe-Signature` header value for `payload`, as Stripe signs webhooks."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def event(type: str, obj: dict[str, Any], *, created: int | None = None) -> dict[str, Any]:
    """A Stripe-shaped (snapshot) event carrying `obj`."""
    return {
        "id": _id("evt"),
        "object": "event",
        "api_version": None,
        "type": type,
        "created": int(time.time()) if created is None else created,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "data": {"object": copy.deepcopy(obj)},
    }


def parse_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding back into nested values: `metadata[order_id]=7`
    becomes {"metadata": {"order_id": "7"}}, `expand[0]=x` a list. Values stay
    strings, as on the wire."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        head = key.split("[", 1)[0]
        parts = [head] + re.findall(r"\[([^\]]*)\]", key[len(head):])
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise StripeFailure(400, f"Invalid parameter: {key}", param=key)
        node[parts[-1]] = value
    return _lists(root)


def _lists(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    converted = {k: _lists(v) for k, v in value.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def _id(prefix: str) -> str:
    return f"{prefix}_fake{secrets.token_hex(8)}"


def _now() -> int:
    return int(time.time())


class _QuietHandler(WSGIRequestHandler):
    """No request log on stderr (werkzeug would also install a logging handler)."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass

    def log(self, *args: Any, **kwargs: Any) -> None:
        pass


class FakeStripe:
    """The fake API, its state, and the server thread that serves it.

    State is plain dicts, as Stripe would render them: `payment_intents`,
    `charges`, `refunds`, `accounts`, `transfers`, `reversals`, keyed by id;
    `requests` lists every request received, in order.
    """

    def __init__(self, api_key: str | None = None):
        # With `api_key`, only that key is accepted; without, any `sk_`/`rk_` key.
        self.api_key = api_key
        self.payment_intents: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.accounts: dict[str, dict[str, Any]] = {}
        self.account_links: list[dict[str, Any]] = []
        self.transfers: dict[str, dict[str, Any]] = {}
        self.reversals: dict[str, dict[str, Any]] = {}
        # Stripe Tax: the rates this fake applies, (country, state) -> percentage as
        # Stripe writes it ("8.875"; state "" for the whole country), and the
        # calculations made.
        self.tax_rates: dict[tuple[str, str], str] = {("US", "NY"): "8.875", ("DE", ""): "19.0"}
        self.tax_calculations: dict[str, dict[str, Any]] = {}
        self.requests: list[Recorded] = []
        self._idempotent: dict[str, tuple[str, str, dict[str, Any], int, dict[str, Any]]] = {}
        self._failures: list[_Failure] = []
        self._lock = threading.RLock()
        self._server = None
        self._thread: threading.Thread | None = None
        self._routes = Map([
            Rule("/v1/payment_intents", methods=["POST"], endpoint="create_payment_intent"),
            Rule("/v1/payment_intents/<id>", methods=["GET"], endpoint="retrieve_payment_intent"),
            Rule("/v1/payment_intents/<id>/capture", methods=["POST"], endpoint="capture_payment_intent"),
            Rule("/v1/payment_intents/<id>/cancel", methods=["POST"], endpoint="cancel_payment_intent"),
            Rule("/v1/payment_intents/<id>/confirm", methods=["POST"], endpoint="confirm_payment_intent"),
            Rule("/v1/refunds", methods=["POST"], endpoint="create_refund"),
            Rule("/v1/accounts", methods=["POST"], endpoint="create_account"),
            Rule("/v1/accounts/<id>", methods=["GET"], endpoint="retrieve_account"),
            Rule("/v1/account_links", methods=["POST"], endpoint="create_account_link"),
            Rule("/v1/transfers", methods=["POST"], endpoint="create_transfer"),
            Rule("/v1/transfers/<id>/reversals", methods=["POST"], endpoint="create_transfer_reversal"),
            Rule("/v1/tax/calculations", methods=["POST"], endpoint="create_tax_calculation"),
        ])

    # -- running ------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake Stripe server is not running")
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> FakeStripe:
        if self._server is not None:
            return self
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-stripe", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        assert self._thread is not None
        self._thread.join(timeout=5)
        self._server.server_close()
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeStripe:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what happens outside the API ---------------------------------------------

    def fail_next(self, status: int = 500, *, times: int = 1, type: str | None = None, code: str | None = None,
                  message: str | None = None, should_retry: bool | None = None) -> None:
        """Answer the next `times` requests with this error, before doing anything.
        Nothing is stored against their idempotency keys (the request never
        started), so a retry can succeed. `should_retry` sends Stripe's
        `Stripe-Should-Retry` header, which the SDK obeys."""
        default_type, default_code, default_message = {
            402: ("card_error", "card_declined", "Your card was declined."),
            429: ("invalid_request_error", "rate_limit", "Too many requests."),
        }.get(status, ("api_error" if status >= 500 else "invalid_request_error", None, "Something went wrong."))
        body = {"type": type or default_type, "message": message or default_message}
        if code or default_code:
            body["code"] = code or default_code
        with self._lock:
            self._failures.append(_Failure(status, times, body, should_retry))

    def authorize(self, pi_id: str) -> dict[str, Any]:
        """The customer confirms the card: the hold is placed (or, for automatic
        capture, the payment succeeds)."""
        with self._lock:
            return copy.deepcopy(self._confirm(self._intent(pi_id)))

    def decline(self, pi_id: str, decline_code: str = "generic_decline") -> dict[str, Any]:
        """The customer's card is declined: a failed charge, and the PaymentIntent
        waits for another payment method."""
        with self._lock:
            intent = self._intent(pi_id)
            if intent["status"] not in CONFIRMABLE:
                raise ValueError(f"{pi_id} is {intent['status']}: nothing to decline")
            charge = self._new_charge(intent, status="failed")
            intent.update(status="requires_payment_method", latest_charge=charge["id"], last_payment_error={
                "type": "card_error", "code": "card_declined", "decline_code": decline_code,
                "message": "Your card was declined.", "charge": charge["id"]})
            return copy.deepcopy(intent)

    def expire(self, pi_id: str) -> dict[str, Any]:
        """The hold lapses: Stripe cancels an uncaptured PaymentIntent by itself."""
        with self._lock:
            return copy.deepcopy(self._cancel(self._intent(pi_id), "automatic"))

    def complete_onboarding(self, acct_id: str) -> dict[str, Any]:
        """The account holder finishes Stripe's onboarding."""
        with self._lock:
            account = self.accounts.get(acct_id)
            if account is None:
                raise KeyError(acct_id)
            account.update(details_submitted=True, payouts_enabled=True, charges_enabled=True)
            account["capabilities"] = {name: "active" for name in account["capabilities"]}
            account["requirements"] = {"currently_due": [], "eventually_due": [], "past_due": [],
                                       "disabled_reason": None}
            return copy.deepcopy(account)

    def requests_to(self, path_prefix: str, method: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests
                    if r.path.startswith(path_prefix) and (method is None or r.method == method)]

    # -- HTTP -----------------------------------------------------------------------

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        status, body, headers = self._handle(request)
        response = Response(json.dumps(body), status=status, content_type="application/json")
        response.headers["Request-Id"] = _id("req")
        # No keep-alive: a closed fake leaves no connection (or thread) behind.
        response.headers["Connection"] = "close"
        for name, value in headers.items():
            response.headers[name] = value
        return response(environ, start_response)

    def _handle(self, request: Request) -> tuple[int, dict[str, Any], dict[str, str]]:
        headers = {name: value for name, value in request.headers.items()}
        params: dict[str, Any] = {}
        with self._lock:
            try:
                pairs = parse_qsl(request.query_string.decode(), keep_blank_values=True)
                if request.method == "POST":
                    pairs += parse_qsl(request.get_data(as_text=True), keep_blank_values=True)
                params = parse_form(pairs)
                status, body, extra = self._dispatch(request, params)
            except StripeFailure as exc:
                status, body, extra = exc.status, {"error": exc.body}, {}
            self.requests.append(Recorded(request.method, request.path, params, headers, status))
            if version := request.headers.get("Stripe-Version"):
                extra["Stripe-Version"] = version
            return status, body, extra

    def _dispatch(self, request: Request, params: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        self._authenticate(request)
        if self._failures:
            failure = self._failures[0]
            failure.times -= 1
            if failure.times <= 0:
                self._failures.pop(0)
            extra = {}
            if failure.should_retry is not None:
                extra["Stripe-Should-Retry"] = "true" if failure.should_retry else "false"
            return failure.status, {"error": dict(failure.body)}, extra
        try:
            endpoint, args = self._routes.bind("127.0.0.1").match(request.path, method=request.method)
        except NotFound:
            raise StripeFailure(404, f"Unrecognized request URL ({request.method}: {request.path}).") from None
        except MethodNotAllowed:
            raise StripeFailure(405, f"Unrecognized request URL ({request.method}: {request.path}).") from None
        except HTTPException:  # a redirect for a trailing slash, and the like
            raise StripeFailure(404, f"Unrecognized request URL ({request.method}: {request.path}).") from None
        allowed = PARAMS[endpoint] | COMMON
        for name in params:
            if name not in allowed:
                raise StripeFailure(400, f"Received unknown parameter: {name}", param=name)
        handler = getattr(self, f"_{endpoint}")
        key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
        if key is None:
            return 200, handler(params, **args), {}
        stored = self._idempotent.get(key)
        if stored is not None:
            method, path, first_params, status, body = stored
            if (method, path, first_params) != (request.method, request.path, params):
                raise StripeFailure(400, "Keys for idempotent requests can only be used with the same parameters "
                                         "they were first used with. Try using a key other than "
                                         f"'{key}' if you meant to execute a different request.",
                                    type="idempotency_error")
            return status, copy.deepcopy(body), {"Idempotent-Replayed": "true", "Original-Request": key}
        try:
            status, body = 200, handler(params, **args)
        except StripeFailure as exc:
            status, body = exc.status, {"error": exc.body}
        self._idempotent[key] = (request.method, request.path, params, status, copy.deepcopy(body))
        return status, body, {}

    def _authenticate(self, request: Request) -> None:
        auth = request.headers.get("Authorization", "")
        key = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
        good = key == self.api_key if self.api_key else key.startswith(("sk_", "rk_"))
        if not good:
            shown = f"{key[:8]}{'*' * 8}" if key else "none"
            raise StripeFailure(401, f"Invalid API Key provided: {shown}")

    # -- PaymentIntents -------------------------------------------------------------

    def _create_payment_intent(self, params: dict[str, Any]) -> dict[str, Any]:
        amount = _integer(params, "amount", required=True, minimum=1)
        currency = _currency(params)
        capture_method = params.get("capture_method", "automatic")
        if capture_method not in ("automatic", "automatic_async", "manual"):
            raise StripeFailure(400, f"Invalid capture_method: {capture_method}", param="capture_method")
        intent_id = _id("pi")
        intent = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": 0,
            "automatic_payment_methods": _booleans(params.get("automatic_payment_methods")),
            "canceled_at": None,
            "cancellation_reason": None,
            "capture_method": capture_method,
            "client_secret": f"{intent_id}_secret_{secrets.token_hex(12)}",
            "confirmation_method": "automatic",
            "created": _now(),
            "currency": currency,
            "description": params.get("description"),
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": _metadata(params),
            "payment_method": None,
            "status": "requires_payment_method",
            "transfer_group": params.get("transfer_group"),
        }
        self.payment_intents[intent_id] = intent
        if _boolean(params.get("confirm")):
            self._confirm(intent)
        return self._render_intent(intent, params)

    def _retrieve_payment_intent(self, params: dict[str, Any], id: str) -> dict[str, Any]:
        return self._render_intent(self._intent(id), params)

    def _capture_payment_intent(self, params: dict[str, Any], id: str) -> dict[str, Any]:
        intent = self._intent(id)
        if intent["status"] != "requires_capture":
            raise StripeFailure(400, "This PaymentIntent could not be captured because it has a status of "
                                     f"{intent['status']}. Only a PaymentIntent with one of the following statuses "
                                     "may be captured: requires_capture.",
                                code="payment_intent_unexpected_state", payment_intent=self._render_intent(intent))
        amount = _integer(params, "amount_to_capture", minimum=1)
        amount = intent["amount_capturable"] if amount is None else amount
        if amount > intent["amount_capturable"]:
            raise StripeFailure(400, f"The amount_to_capture ({amount}) must be less than or equal to the "
                                     f"amount_capturable ({intent['amount_capturable']}).",
                                code="amount_too_large", param="amount_to_capture")
        charge = self.charges[intent["latest_charge"]]
        # Stripe refunds the part of the hold that is not captured, and counts it
        # in the charge's amount_refunded.
        charge.update(captured=True, amount_captured=amount, amount_refunded=charge["amount"] - amount)
        intent.update(status="succeeded", amount_received=amount, amount_capturable=0)
        return self._render_intent(intent, params)

    def _cancel_payment_intent(self, params: dict[str, Any], id: str) -> dict[str, Any]:
        reason = params.get("cancellation_reason", "requested_by_customer")
        return self._render_intent(self._cancel(self._intent(id), reason), params)

    def _confirm_payment_intent(self, params: dict[str, Any], id: str) -> dict[str, Any]:
        intent = self._intent(id)
        if intent["status"] not in CONFIRMABLE:
            raise StripeFailure(400, f"This PaymentIntent's status is {intent['status']}, which cannot be confirmed.",
                                code="payment_intent_unexpected_state", payment_intent=self._render_intent(intent))
        if params.get("payment_method"):
            intent["payment_method"] = params["payment_method"]
        return self._render_intent(self._confirm(intent), params)

    def _confirm(self, intent: dict[str, Any]) -> dict[str, Any]:
        if intent["status"] not in CONFIRMABLE:
            raise ValueError(f"{intent['id']} is {intent['status']}: it cannot be confirmed")
        charge = self._new_charge(intent, status="succeeded")
        intent.update(latest_charge=charge["id"], last_payment_error=None,
                      payment_method=intent["payment_method"] or "pm_card_visa")
        if intent["capture_method"] == "manual":
            intent.update(status="requires_capture", amount_capturable=intent["amount"])
        else:
            charge.update(captured=True, amount_captured=charge["amount"])
            intent.update(status="succeeded", amount_received=intent["amount"])
        return intent

    def _cancel(self, intent: dict[str, Any], reason: str) -> dict[str, Any]:
        if intent["status"] not in CANCELABLE:
            raise StripeFailure(400, "You cannot cancel this PaymentIntent because it has a status of "
                                     f"{intent['status']}. Only a PaymentIntent with one of the following statuses "
                                     "may be canceled: " + ", ".join(sorted(CANCELABLE)) + ".",
                                code="payment_intent_unexpected_state", payment_intent=self._render_intent(intent))
        if intent["status"] == "requires_capture":
            # The uncaptured charge is refunded in full: the hold goes away.
            charge = self.charges[intent["latest_charge"]]
            charge.update(amount_refunded=charge["amount"], refunded=True)
        intent.update(status="canceled", amount_capturable=0, canceled_at=_now(), cancellation_reason=reason)
        return intent

    def _new_charge(self, intent: dict[str, Any], *, status: str) -> dict[str, Any]:
        charge = {
            "id": _id("ch"),
            "object": "charge",
            "amount": intent["amount"],
            "amount_captured": 0,
            "amount_refunded": 0,
            "captured": False,
            "created": _now(),
            "currency": intent["currency"],
            "failure_code": "card_declined" if status == "failed" else None,
            "paid": status == "succeeded",
            "payment_intent": intent["id"],
            "refunded": False,
            "status": status,
            "transfer_group": intent["transfer_group"],
        }
        self.charges[charge["id"]] = charge
        return charge

    def _intent(self, intent_id: str) -> dict[str, Any]:
        intent = self.payment_intents.get(intent_id)
        if intent is None:
            raise StripeFailure(404, f"No such payment_intent: '{intent_id}'", code="resource_missing",
                                param="intent")
        return intent

    def _render_intent(self, intent: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
        rendered = copy.deepcopy(intent)
        if "latest_charge" in _expand(params) and rendered["latest_charge"]:
            rendered["latest_charge"] = copy.deepcopy(self.charges[rendered["latest_charge"]])
        return rendered

    # -- refunds ----------------------------------------------------------------------

    def _create_refund(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("payment_intent"):
            intent = self._intent(params["payment_intent"])
            if intent["status"] != "succeeded":
                raise StripeFailure(400, "This PaymentIntent does not have a successful charge to refund.",
                                    code="payment_intent_unexpected_state", param="payment_intent")
            charge = self.charges[intent["latest_charge"]]
        elif params.get("charge"):
            charge = self.charges.get(params["charge"])
            if charge is None:
                raise StripeFailure(404, f"No such charge: '{params['charge']}'", code="resource_missing",
                                    param="charge")
        else:
            raise StripeFailure(400, "One of the following params should be provided for this request: "
                                     "payment_intent or charge.", code="parameter_missing")
        if not charge["captured"]:
            raise StripeFailure(400, "This charge has not been captured.", code="charge_not_refundable")
        refundable = charge["amount"] - charge["amount_refunded"]
        if refundable <= 0:
            raise StripeFailure(400, f"Charge {charge['id']} has already been refunded.",
                                code="charge_already_refunded")
        amount = _integer(params, "amount", minimum=1)
        amount = refundable if amount is None else amount
        if amount > refundable:
            raise StripeFailure(400, f"Refund amount ({amount}) is greater than unrefunded amount on charge "
                                     f"({refundable})", code="amount_too_large", param="amount")
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        refund = {
            "id": _id("re"),
            "object": "refund",
            "amount": amount,
            "charge": charge["id"],
            "created": _now(),
            "currency": charge["currency"],
            "metadata": _metadata(params),
            "payment_intent": charge["payment_intent"],
            "reason": params.get("reason"),
            "status": "succeeded",
        }
        self.refunds[refund["id"]] = refund
        return copy.deepcopy(refund)

    # -- connected accounts -------------------------------------------------------------

    def _create_account(self, params: dict[str, Any]) -> dict[str, Any]:
        kind = params.get("type", "standard")
        if kind not in ("standard", "express", "custom"):
            raise StripeFailure(400, "Invalid type: must be one of custom, express, or standard", param="type")
        country = params.get("country", "US")
        if not re.fullmatch(r"[A-Za-z]{2}", country):
            raise StripeFailure(400, f"Invalid country: {country}", param="country")
        requested = params.get("capabilities") or {}
        if not isinstance(requested, dict):
            raise StripeFailure(400, "Invalid capabilities", param="capabilities")
        capabilities = {}
        for name, options in requested.items():
            if not isinstance(options, dict) or "requested" not in options:
                raise StripeFailure(400, f"Missing required param: capabilities[{name}][requested].",
                                    param=f"capabilities[{name}][requested]")
            if _boolean(options["requested"]):
                capabilities[name] = "inactive"
        account = {
            "id": _id("acct"),
            "object": "account",
            "business_type": params.get("business_type"),
            "capabilities": capabilities,
            "charges_enabled": False,
            "country": country.upper(),
            "created": _now(),
            "default_currency": "usd",
            "details_submitted": False,
            "email": params.get("email"),
            "metadata": _metadata(params),
            "payouts_enabled": False,
            "requirements": {"currently_due": ["external_account", "tos_acceptance.date"],
                             "eventually_due": [], "past_due": [], "disabled_reason": "requirements.past_due"},
            "type": kind,
        }
        self.accounts[account["id"]] = account
        return copy.deepcopy(account)

    def _retrieve_account(self, params: dict[str, Any], id: str) -> dict[str, Any]:
        return copy.deepcopy(self._account(id, param="account"))

    def _create_account_link(self, params: dict[str, Any]) -> dict[str, Any]:
        for name in ("account", "type"):
            if not params.get(name):
                raise StripeFailure(400, f"Missing required param: {name}.", code="parameter_missing", param=name)
        if params["type"] not in ("account_onboarding", "account_update"):
            raise StripeFailure(400, f"Invalid type: {params['type']}", param="type")
        for name in ("refresh_url", "return_url"):
            if not str(params.get(name, "")).startswith(("http://", "https://")):
                raise StripeFailure(400, "Not a valid URL", code="url_invalid", param=name)
        account = self._account(params["account"], param="account")
        created = _now()
        link = {
            "object": "account_link",
            "created": created,
            "expires_at": created + 300,
            "url": f"{self.url}/setup/e/{account['id']}/{secrets.token_hex(8)}",
        }
        self.account_links.append({**link, "account": account["id"], "refresh_url": params["refresh_url"],
                                   "return_url": params["return_url"], "type": params["type"]})
        return copy.deepcopy(link)

    def _account(self, acct_id: str, *, param: str) -> dict[str, Any]:
        account = self.accounts.get(acct_id)
        if account is None:
            raise StripeFailure(404, f"No such account: '{acct_id}'", code="resource_missing", param=param)
        return account

    # -- transfers ----------------------------------------------------------------------

    def _create_transfer(self, params: dict[str, Any]) -> dict[str, Any]:
        amount = _integer(params, "amount", required=True, minimum=1)
        currency = _currency(params)
        if not params.get("destination"):
            raise StripeFailure(400, "Missing required param: destination.", code="parameter_missing",
                                param="destination")
        account = self.accounts.get(params["destination"])
        if account is None:
            raise StripeFailure(400, f"No such destination: '{params['destination']}'", code="resource_missing",
                                param="destination")
        if account["capabilities"].get("transfers") != "active":
            raise StripeFailure(400, "Your destination account needs to have at least one of the following "
                                     "capabilities enabled: transfers, crypto_transfers, legacy_payments",
                                code="insufficient_capabilities_for_transfer", param="destination")
        source = params.get("source_transaction")
        if source:
            charge = self.charges.get(source)
            if charge is None:
                raise StripeFailure(400, f"No such charge: '{source}'", code="resource_missing",
                                    param="source_transaction")
            if not charge["captured"] or charge["currency"] != currency:
                raise StripeFailure(400, "The source_transaction must be a captured charge in the transfer's "
                                         "currency.", param="source_transaction")
            already = sum(t["amount"] - t["amount_reversed"] for t in self.transfers.values()
                          if t["source_transaction"] == source)
            if already + amount > charge["amount_captured"]:
                raise StripeFailure(400, "Transfers using this transaction as a source must not exceed the source "
                                         f"amount of {charge['amount_captured']}.", code="amount_too_large",
                                    param="amount")
        transfer_id = _id("tr")
        transfer = {
            "id": transfer_id,
            "object": "transfer",
            "amount": amount,
            "amount_reversed": 0,
            "created": _now(),
            "currency": currency,
            "description": params.get("description"),
            "destination": account["id"],
            "metadata": _metadata(params),
            "reversals": {"object": "list", "data": [], "has_more": False,
                          "url": f"/v1/transfers/{transfer_id}/reversals"},
            "reversed": False,
            "source_transaction": source or None,
            "transfer_group": params.get("transfer_group"),
        }
        self.transfers[transfer_id] = transfer
        return copy.deepcopy(transfer)

    def _create_transfer_reversal(self, params: dict[str, Any], id: str) -> dict[str, Any]:
        transfer = self.transfers.get(id)
        if transfer is None:
            raise StripeFailure(404, f"No such transfer: '{id}'", code="resource_missing", param="id")
        left = transfer["amount"] - transfer["amount_reversed"]
        amount = _integer(params, "amount", minimum=1)
        amount = left if amount is None else amount
        if left <= 0 or amount > left:
            raise StripeFailure(400, f"The reversal amount ({amount}) is greater than what is left on the "
                                     f"transfer ({left}).", code="amount_too_large", param="amount")
        reversal = {
            "id": _id("trr"),
            "object": "transfer_reversal",
            "amount": amount,
            "created": _now(),
            "currency": transfer["currency"],
            "metadata": _metadata(params),
            "transfer": id,
        }
        self.reversals[reversal["id"]] = reversal
        transfer["amount_reversed"] += amount
        transfer["reversed"] = transfer["amount_reversed"] == transfer["amount"]
        transfer["reversals"]["data"].append(copy.deepcopy(reversal))
        return copy.deepcopy(reversal)


    # -- Stripe Tax -------------------------------------------------------------------

    def _create_tax_calculation(self, params: dict[str, Any]) -> dict[str, Any]:
        """A calculation as Stripe Tax makes one: each line item and the shipping
        cost taxed at the destination's rate (the state's if this fake has one,
        else the country's, else none), inclusive or exclusive per its
        `tax_behavior`; the nontaxable tax code `txcd_00000000` is not taxed."""
        currency = _currency(params)
        details = params.get("customer_details") or {}
        address = details.get("address") or {}
        country = (address.get("country") or "").upper()
        if not country:
            raise StripeFailure(400, "The customer's address must have a country.",
                                code="customer_tax_location_invalid", param="customer_details[address][country]")
        state = (address.get("state") or "").upper()
        found = (country, state) if (country, state) in self.tax_rates else (country, "")
        percentage = self.tax_rates.get(found)
        items = params.get("line_items")
        if not isinstance(items, list) or not items:
            raise StripeFailure(400, "Missing required param: line_items.", code="parameter_missing",
                                param="line_items")
        shipping = params.get("shipping_cost")
        taxed = [(item, f"line_items[{i}]") for i, item in enumerate(items)]
        if shipping:
            taxed.append((shipping, "shipping_cost"))
        exclusive = inclusive = total = taxable_total = 0
        rate = Decimal(percentage) if percentage else Decimal(0)
        for item, name in taxed:
            amount = _integer(item, "amount", required=True, minimum=0)
            behavior = item.get("tax_behavior")
            if behavior not in ("inclusive", "exclusive"):
                raise StripeFailure(400, f"Invalid tax_behavior for {name}.", param=f"{name}[tax_behavior]")
            item_rate = Decimal(0) if item.get("tax_code") == "txcd_00000000" else rate
            if behavior == "inclusive":
                tax = int((amount * item_rate / (100 + item_rate)).quantize(Decimal(1), ROUND_HALF_UP))
                inclusive += tax
                total += amount
                taxable_total += amount - tax
            else:
                tax = int((amount * item_rate / 100).quantize(Decimal(1), ROUND_HALF_UP))
                exclusive += tax
                total += amount + tax
                taxable_total += amount
        calculation = {
            "id": _id("taxcalc"), "object": "tax.calculation", "amount_total": total, "currency": currency,
            "customer_details": {"address": address, "address_source": details.get("address_source")},
            "expires_at": _now() + 90 * 24 * 3600, "livemode": False,
            "tax_amount_exclusive": exclusive, "tax_amount_inclusive": inclusive,
            "tax_breakdown": [] if not percentage else [{
                "amount": exclusive + inclusive, "inclusive": bool(inclusive and not exclusive),
                "tax_rate_details": {"country": found[0], "state": found[1] or None,
                                     "percentage_decimal": percentage, "tax_type": "sales_tax" if country == "US"
                                     else "vat"},
                "taxability_reason": "standard_rated", "taxable_amount": taxable_total}],
        }
        self.tax_calculations[calculation["id"]] = calculation
        return copy.deepcopy(calculation)


# -- parameter checks, as Stripe words them ----------------------------------------------


def _integer(params: dict[str, Any], name: str, *, required: bool = False, minimum: int | None = None) -> int | None:
    raw = params.get(name)
    if raw is None:
        if required:
            raise StripeFailure(400, f"Missing required param: {name}.", code="parameter_missing", param=name)
        return None
    if not isinstance(raw, str) or not re.fullmatch(r"-?\d+", raw):
        raise StripeFailure(400, f"Invalid integer: {raw}", code="parameter_invalid_integer", param=name)
    value = int(raw)
    if minimum is not None and value < minimum:
        raise StripeFailure(400, f"This value must be greater than or equal to {minimum}.",
                            code="parameter_invalid_integer", param=name)
    return value


def _currency(params: dict[str, Any]) -> str:
    raw = params.get("currency")
    if not raw:
        raise StripeFailure(400, "Missing required param: currency.", code="parameter_missing", param="currency")
    if not re.fullmatch(r"[a-z]{3}", raw):
        # Stripe's currencies are lower case on the wire (it would accept upper
        # case and lower it; the fake is stricter, to test the boundary).
        raise StripeFailure(400, f"Invalid currency: {raw}.", param="currency")
    return raw


def _boolean(raw: Any) -> bool:
    return raw in (True, "true")


def _booleans(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _booleans(v) for k, v in value.items()}
    if value in ("true", "false"):
        return value == "true"
    return value


def _metadata(params: dict[str, Any]) -> dict[str, str]:
    metadata = params.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise StripeFailure(400, "Invalid object", param="metadata")
    return {k: v for k, v in metadata.items() if v != ""}


def _expand(params: dict[str, Any] | None) -> list[str]:
    expand = (params or {}).get("expand") or []
    return expand if isinstance(expand, list) else [expand]
