"""Delivering personal agents' callbacks from the outbox (the `callbacks` job).

A callback is an `OutboxMessage` with a topic starting "callback." (for example
"callback.offer", "callback.award"), `recipient_kind="agent"`, and
`payload = {"url": <http(s) URL>, "body": <JSON object>}`. The service that
decided the event writes the message in its own transaction; this module only
delivers it, from a scheduled job, so a slow or dead agent never holds up a
request or a database lock.

Callbacks are a channel of the outbox's queue (`broker.outbox.queue`): claimed
under a lease, sent outside any transaction, the outcome recorded; failures
retried with backoff and parked after MAX_ATTEMPTS. A send is a POST of the
body, signed, to the URL, after the destination check below; 2xx is success,
anything else a failure.

Delivery is at least once: a dispatcher that dies between sending and
recording leaves the lease to expire and the message is sent again. Every
request carries the message id in `Broker-Delivery`, so an agent de-duplicates
on it.

Each request is signed (`broker.outbox.signing`, Stripe's scheme) in its
`Broker-Signature` header.

Before each call the destination is checked (`broker.outbox.destinations`):
no private, loopback or link-local address, no port but 80 and 443 (unless the
operator allows private callbacks), and the connection goes to the address that
was checked. Redirects are never followed.
"""

from __future__ import annotations

import dataclasses
import http.client
import logging
import socket
import time
from collections.abc import Callable

from broker.context import Context
from broker.outbox.destinations import (
    Destination,
    PinnedConnection,
    Refused,
    Resolver,
    resolve_destination,
)
from broker.outbox.queue import Channel, Claim, DeliveryReport, Failure, deliver
from broker.outbox.signing import encode_body, sign, signing_secret


log = logging.getLogger(__name__)

TOPIC_PREFIX = "callback."
RECIPIENT_KIND = "agent"
USER_AGENT = "Broker-Callbacks/1"

TIMEOUT_SECONDS = 5.0
# A whole call (connect, TLS, send, response headers) must end well inside the
# lease, or a second dispatcher could claim the message while the first is still
# talking to the agent. Per-operation timeouts alone do not bound a server that
# drips its response a byte at a time.
MAX_CALL_SECONDS = 30.0
MAX_ATTEMPTS = 8  # failures to send before a callback is parked
CALLBACKS = Channel("callback", "callbacks", TOPIC_PREFIX, RECIPIENT_KIND, MAX_ATTEMPTS)


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


def deliver_due(ctx: Context, *, limit: int = 100, http: Transport | None = None,
                timeout: float = TIMEOUT_SECONDS, resolver: Resolver = socket.getaddrinfo) -> DeliveryReport:
    """Deliver up to `limit` due callbacks (`broker.outbox.queue.deliver`). Safe
    to run in several schedulers at once; delivery is at least once, never twice
    at the same time. A failing message is recorded and retried later, or
    parked; it never stops the others.

    `http` replaces the real transport (`send_request`), `timeout` the per-
    operation timeout and `resolver` the DNS lookup: for tests.
    """
    transport = http or send_request
    allow_private = bool(getattr(ctx.settings, "allow_private_callbacks", False))
    secret = signing_secret(ctx.settings)
    return deliver(ctx, CALLBACKS, lambda claim: _send(ctx, claim, transport, secret=secret, timeout=timeout,
                                                       allow_private=allow_private, resolver=resolver),
                   limit=limit)


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
        log.info("callbacks: %s sent, %s failed, %s parked", total.sent, total.failed, total.parked,
                 extra={"event": "callbacks.run", "sent": total.sent, "failed": total.failed,
                        "parked": total.parked})
    return total


def _send(ctx: Context, claim: Claim, transport: Transport, *, secret: str, timeout: float, allow_private: bool,
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


