"""Delivering personal agents' callbacks from the outbox.

A callback is an `OutboxMessage` with a topic starting "callback." (for example
"callback.offer", "callback.award"), `recipient_kind="agent"`, and
`payload = {"url": <http(s) URL>, "body": <JSON object>}`. The service that
decided the event writes the message in its own transaction; this module only
delivers it, from a scheduled job, so a slow or dead agent never holds up a
request or a database lock.

How a delivery goes (`deliver_due`), one message at a time:

1. Claim: a short transaction picks the oldest due message (`FOR UPDATE SKIP
   LOCKED` on PostgreSQL; SQLite's single writer lock serialises claims),
   moves its `next_at` 60 s forward (the lease) and commits. Another dispatcher
   no longer sees it as due, so two dispatchers never send it at the same time.
2. Send: outside any transaction, POST the body, signed, to the URL, after the
   destination check below. 2xx is success; anything else is a failure.
3. Record: a second short transaction sets `sent_at`, or counts the failure and
   schedules the retry (exponential backoff), giving up after MAX_ATTEMPTS.

Delivery is at least once: a dispatcher that dies between 2 and 3 leaves the
lease to expire and the message is sent again. Every request carries the
message id in `Broker-Delivery`, so an agent de-duplicates on it.

Signing follows Stripe's scheme so agents can reuse its libraries:
`Broker-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + body>`.
The secret is `signing_secret(settings)`: BROKER_CALLBACK_SECRET, or one
derived from BROKER_SECRET_KEY, which `broker serve` and `broker scheduler`
refuse to start without, so every process and every restart signs alike.

Before each call the destination is checked (`broker.outbox.destinations`):
no private, loopback or link-local address, no port but 80 and 443 (unless the
operator allows private callbacks), and the connection goes to the address that
was checked. Redirects are never followed.

Delivery state lives inside the payload, under "_delivery", until the model has
columns for it; only the accessors below (`delivery_state`,
`set_delivery_state`, `_due_clause`) know that:

    {"attempts": 2,                       # failed attempts so far
     "next_at": "2026-03-02T09:01:30.000000+00:00",  # not due before (UTC, ISO)
     "last_error": "HTTP 500",
     "gave_up": false,
     "lease": "9f2c..."}                  # the claim this state belongs to
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import http.client
import json
import logging
import random
import re
import secrets
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select

from broker.clock import as_utc
from broker.context import Context
from broker.outbox.destinations import Destination, PinnedConnection, Refused, Resolver, resolve_destination
from broker.outbox.models import OutboxMessage

log = logging.getLogger(__name__)

TOPIC_PREFIX = "callback."
RECIPIENT_KIND = "agent"


@dataclasses.dataclass(frozen=True)
class Channel:
    """A kind of outbox message with its own sender: callbacks here, emails in
    `broker.notifications.delivery`. Both share the claim-send-record cycle."""

    name: str
    prefix: str
    recipient_kind: str
    max_attempts: int
    # Payload keys dropped once a message is delivered: what it said is the
    # recipient's now, and need not stay in Broker's database (an email's text
    # holds the customer's order link, for one).
    forget_when_sent: tuple[str, ...] = ()
USER_AGENT = "Broker-Callbacks/1"

TIMEOUT_SECONDS = 5.0
LEASE_SECONDS = 60
# A whole call (connect, TLS, send, response headers) must end well inside the
# lease, or a second dispatcher could claim the message while the first is still
# talking to the agent. Per-operation timeouts alone do not bound a server that
# drips its response a byte at a time.
MAX_CALL_SECONDS = 30.0
MAX_ATTEMPTS = 8
CALLBACKS = Channel("callback", TOPIC_PREFIX, RECIPIENT_KIND, MAX_ATTEMPTS)
BACKOFF_FIRST = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=6)
BACKOFF_JITTER = 0.10
SIGNATURE_TOLERANCE = 300

_ERROR_LENGTH = 500
_ADDRESS = re.compile(r"[^\s@<>()\[\]{}'\",;:]+@[^\s@<>()\[\]{}'\",;:]+")

# --- Signing ---------------------------------------------------------------


def signing_secret(settings) -> str:
    """The secret callbacks are signed with: BROKER_CALLBACK_SECRET when set, else
    one derived from BROKER_SECRET_KEY (never the key itself, which also signs
    sessions). Either must be set in production for signatures to be stable."""
    explicit = getattr(settings, "callback_secret", "")
    if explicit:
        return explicit
    return hmac.new(settings.secret_key.encode(), b"callbacks", hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The `Broker-Signature` header value for `body` sent at `timestamp`."""
    return f"t={timestamp},v1={_mac(body, secret, timestamp)}"


def verify(body: bytes, header: str, secret: str, tolerance: int = SIGNATURE_TOLERANCE,
           now: float | None = None) -> bool:
    """True if `header` is a valid signature of `body` made within `tolerance`
    seconds of `now` (default: the current time). For agents and tests.

    As with Stripe, several `v1=` values may be present (a secret being rotated);
    one matching is enough. Anything malformed is simply invalid.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            return False
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = _mac(body, secret, timestamp)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


def _mac(body: bytes, secret: str, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def encode_body(body: dict) -> bytes:
    """The exact bytes sent and signed: compact, keys sorted."""
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


# --- Retries ---------------------------------------------------------------


def backoff(attempts: int, *, message_id: int = 0) -> timedelta:
    """How long to wait after the `attempts`-th failure: 30 s, doubling, capped at
    6 h, each ±10%. The jitter is seeded by message and attempt, so it spreads
    retries of a batch that failed together yet is the same on every replay."""
    exponent = max(attempts - 1, 0)
    # Compare before multiplying: 2**exponent is huge for a large attempt count.
    if exponent >= 20:
        base = BACKOFF_CAP
    else:
        base = min(BACKOFF_FIRST * (2 ** exponent), BACKOFF_CAP)
    # Spreading retries, not a secret: a seeded generator makes it repeatable.
    jitter = random.Random(f"{message_id}:{attempts}").uniform(1 - BACKOFF_JITTER, 1 + BACKOFF_JITTER)  # noqa: S311
    return base * jitter


# --- Delivery state (inside the payload for now) --------------------------


@dataclasses.dataclass(frozen=True)
class DeliveryState:
    attempts: int = 0
    next_at: datetime | None = None
    last_error: str = ""
    gave_up: bool = False
    lease: str = ""


def _iso(value: datetime) -> str:
    # Fixed width, always UTC: these strings sort as the times they name, which
    # the due query relies on (it compares them as text in SQL). Every one has
    # the same shape, so this holds under a PostgreSQL locale collation too.
    return as_utc(value).isoformat(timespec="microseconds")


def delivery_state(message: OutboxMessage) -> DeliveryState:
    raw = message.payload.get("_delivery") if isinstance(message.payload, dict) else None
    if not isinstance(raw, dict):
        return DeliveryState()
    try:
        next_at = as_utc(datetime.fromisoformat(raw["next_at"])) if raw.get("next_at") else None
    except (TypeError, ValueError):
        next_at = None  # unreadable: due now rather than never
    return DeliveryState(
        attempts=int(raw.get("attempts") or 0),
        next_at=next_at,
        last_error=str(raw.get("last_error") or ""),
        gave_up=bool(raw.get("gave_up")),
        lease=str(raw.get("lease") or ""),
    )


def set_delivery_state(message: OutboxMessage, state: DeliveryState) -> None:
    # A new dict, not an in-place change: the JSON column does not track mutation.
    payload = message.payload if isinstance(message.payload, dict) else {"_invalid_payload": message.payload}
    message.payload = {
        **payload,
        "_delivery": {
            "attempts": state.attempts,
            "next_at": _iso(state.next_at) if state.next_at else None,
            "last_error": state.last_error,
            "gave_up": state.gave_up,
            "lease": state.lease,
        },
    }


def is_due(message: OutboxMessage, now: datetime, channel: Channel = CALLBACKS) -> bool:
    if (message.sent_at is not None or not message.topic.startswith(channel.prefix)
            or message.recipient_kind != channel.recipient_kind):
        return False
    state = delivery_state(message)
    return not state.gave_up and (state.next_at is None or state.next_at <= now)


def _due_clause(now: datetime, channel: Channel = CALLBACKS):
    """`is_due` in SQL, so a backlog of messages waiting for their retry does not
    hide the due ones behind a LIMIT."""
    next_at = OutboxMessage.payload[("_delivery", "next_at")].as_string()
    gave_up = OutboxMessage.payload[("_delivery", "gave_up")].as_boolean()
    return (
        OutboxMessage.sent_at.is_(None)
        & OutboxMessage.topic.startswith(channel.prefix, autoescape=True)
        & (OutboxMessage.recipient_kind == channel.recipient_kind)
        & or_(next_at.is_(None), next_at <= _iso(now))
        & gave_up.is_not(True)
    )


# --- Sending ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CallbackRequest:
    message_id: int
    url: str
    destination: Destination
    headers: dict[str, str]
    body: bytes
    timeout: float = TIMEOUT_SECONDS


Transport = Callable[[CallbackRequest], int]


def send_request(request: CallbackRequest) -> int:
    """POST `request` to one of its checked addresses; return the HTTP status.

    Raises OSError (timeouts, refused connections, TLS failures) or
    http.client.HTTPException. Never follows a redirect: the caller sees the 3xx.
    """
    deadline = time.monotonic() + min(MAX_CALL_SECONDS, request.timeout * 6)
    destination = request.destination
    connection = PinnedConnection(destination, request.timeout, deadline)
    try:
        connection.request("POST", destination.target, body=request.body, headers=request.headers)
        response = connection.getresponse()
        # The body is not read: only the status matters, and an agent's reply
        # should not be able to keep us busy.
        response.close()
        return response.status
    finally:
        connection.close()


# --- The dispatcher --------------------------------------------------------


@dataclasses.dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0  # failed this time, will be retried
    gave_up: int = 0  # failed for the last time (or could never be sent)

    @property
    def handled(self) -> int:
        return self.sent + self.failed + self.gave_up

    def add(self, other: "DeliveryReport") -> None:
        self.sent += other.sent
        self.failed += other.failed
        self.gave_up += other.gave_up


@dataclasses.dataclass(frozen=True)
class _Claim:
    message_id: int
    topic: str
    payload: Any
    lease: str


def deliver_due(ctx: Context, *, limit: int = 100, http: Transport | None = None,
                timeout: float = TIMEOUT_SECONDS, resolver: Resolver = socket.getaddrinfo) -> DeliveryReport:
    """Deliver up to `limit` due callbacks, one claim-send-record cycle each (see
    the module docstring). Safe to run in several schedulers at once; delivery is
    at least once, never twice at the same time. A failing message is recorded
    and retried later; it never stops the others.

    `http` replaces the real transport (`send_request`), `timeout` the per-
    operation timeout and `resolver` the DNS lookup: for tests.
    """
    transport = http or send_request
    allow_private = bool(getattr(ctx.settings, "allow_private_callbacks", False))
    secret = signing_secret(ctx.settings)
    report = DeliveryReport()
    for _ in range(limit):
        claim = claim_next(ctx)
        if claim is None:
            break
        try:
            error = _send(ctx, claim, transport, secret=secret, timeout=timeout, allow_private=allow_private,
                          resolver=resolver)
        except Exception as exc:  # a bug in building the request must not stop the loop
            log.exception("callback %s could not be sent", claim.message_id)
            error = Failure(f"{type(exc).__name__}: {exc}")
        try:
            outcome = record_outcome(ctx, claim, error)
        except Exception:
            # The lease runs out and the message is tried again: at least once.
            log.exception("callback %s: recording the outcome failed", claim.message_id,
                          extra={"event": "callback.record_failed", "message_id": claim.message_id})
            continue
        if outcome == "sent":
            report.sent += 1
        elif outcome == "gave_up":
            report.gave_up += 1
        elif outcome == "failed":
            report.failed += 1
    return report


def run_callbacks(ctx: Context, *, batch: int = 100, max_rounds: int = 20) -> DeliveryReport:
    """The scheduled job: deliver until nothing is due, at most `batch * max_rounds`
    messages in one run (the next run picks up the rest)."""
    total = DeliveryReport()
    for _ in range(max_rounds):
        report = deliver_due(ctx, limit=batch)
        total.add(report)
        if report.handled < batch:
            break
    if total.handled:
        log.info("callbacks: %s sent, %s failed, %s gave up", total.sent, total.failed, total.gave_up,
                 extra={"event": "callbacks.run", "sent": total.sent, "failed": total.failed,
                        "gave_up": total.gave_up})
    return total


def claim_next(ctx: Context, channel: Channel = CALLBACKS) -> _Claim | None:
    with ctx.uow() as uow:
        now = ctx.now()
        message = uow.session.scalar(
            select(OutboxMessage).where(_due_clause(now, channel)).order_by(OutboxMessage.id).limit(1)
            .with_for_update(skip_locked=True)
        )
        if message is None:
            return None
        lease = secrets.token_hex(8)
        state = delivery_state(message)
        set_delivery_state(message, dataclasses.replace(state, next_at=now + timedelta(seconds=LEASE_SECONDS),
                                                        lease=lease))
        claim = _Claim(message.id, message.topic, message.payload, lease)
        uow.commit()
        return claim


@dataclasses.dataclass(frozen=True)
class Failure:
    reason: str
    permanent: bool = False  # retrying cannot help (a malformed message)


def _send(ctx: Context, claim: _Claim, transport: Transport, *, secret: str, timeout: float, allow_private: bool,
          resolver: Resolver) -> Failure | None:
    payload = claim.payload
    url, body = (payload.get("url"), payload.get("body")) if isinstance(payload, dict) else (None, None)
    if not isinstance(url, str) or not isinstance(body, dict):
        return Failure('the payload needs "url" (a string) and "body" (an object)', permanent=True)
    try:
        destination = resolve_destination(url, allow_private=allow_private, resolver=resolver)
    except Refused as exc:
        return Failure(f"refused: {exc}")
    data = encode_body(body)
    timestamp = int(ctx.now().timestamp())
    request = CallbackRequest(
        message_id=claim.message_id,
        url=url,
        destination=destination,
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Broker-Signature": sign(data, secret, timestamp),
            "Broker-Event": claim.topic[len(TOPIC_PREFIX):],
            "Broker-Delivery": str(claim.message_id),
        },
        body=data,
        timeout=timeout,
    )
    try:
        status = transport(request)
    except (OSError, http.client.HTTPException, ValueError) as exc:  # ValueError: a non-ASCII path
        return Failure(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return Failure(f"HTTP {status} (redirects are not followed)")
    return Failure(f"HTTP {status}")


def record_outcome(ctx: Context, claim: _Claim, failure: Failure | None, channel: Channel = CALLBACKS) -> str:
    with ctx.uow() as uow:
        message = uow.session.scalar(
            select(OutboxMessage).where(OutboxMessage.id == claim.message_id).with_for_update()
        )
        if message is None or message.sent_at is not None:
            return "gone"
        now = ctx.now()
        state = delivery_state(message)
        if failure is None:
            message.sent_at = now
            if channel.forget_when_sent and isinstance(message.payload, dict):
                message.payload = {k: v for k, v in message.payload.items() if k not in channel.forget_when_sent}
            set_delivery_state(message, dataclasses.replace(state, next_at=None, lease=""))
            uow.commit()
            log.info("%s %s delivered", channel.name, claim.message_id,
                     extra={"event": f"{channel.name}.sent", "message_id": claim.message_id, "topic": claim.topic})
            return "sent"
        if state.lease != claim.lease:
            # Our lease ran out and another dispatcher claimed the message; its
            # outcome is the one to record.
            return "superseded"
        attempts = state.attempts + 1
        gave_up = failure.permanent or attempts >= channel.max_attempts
        next_at = None if gave_up else now + backoff(attempts, message_id=claim.message_id)
        # An SMTP refusal quotes the recipient's address; logs never carry one.
        failure = dataclasses.replace(failure, reason=_ADDRESS.sub("<address>", failure.reason))
        set_delivery_state(message, DeliveryState(attempts=attempts, next_at=next_at,
                                                  last_error=failure.reason[:_ERROR_LENGTH], gave_up=gave_up))
        uow.commit()
    if gave_up:
        log.error("%s %s: giving up after %s attempts: %s", channel.name, claim.message_id, attempts,
                  failure.reason,
                  extra={"event": f"{channel.name}.gave_up", "message_id": claim.message_id, "attempts": attempts})
        return "gave_up"
    log.warning("%s %s failed (attempt %s), retry at %s: %s", channel.name, claim.message_id, attempts,
                next_at.isoformat() if next_at else None, failure.reason,
                extra={"event": f"{channel.name}.failed", "message_id": claim.message_id, "attempts": attempts})
    return "failed"
