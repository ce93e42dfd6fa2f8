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

Signing follows Stripe's scheme so agents can reuse its libraries:
`Broker-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + body>`.
The secret is `signing_secret(settings)`. Operators must set
BROKER_CALLBACK_SECRET (or at least BROKER_SECRET_KEY) in production: the
default secret key is random per process, so without either, the web process,
the scheduler and every restart would sign with different secrets.

The destination check (`check_destination`) refuses URLs that would let an
agent make Broker call into its own network (SSRF): other schemes, credentials
in the URL, ports other than 80 and 443, and any host that resolves to a
private, loopback, link-local, multicast, reserved or unspecified address,
including those hidden in IPv4-mapped, 6to4, Teredo and NAT64 IPv6 forms. The
host is resolved once, every address is checked, and the connection goes to a
checked address (HTTPS still sends SNI and verifies the certificate against the
host name): a DNS answer that changes between the check and the connection
(DNS rebinding) cannot redirect it. Redirects are never followed, and proxy
settings in the environment are ignored (a proxy would make the check moot).
The operator setting `allow_private_callbacks` (tests, self-hosted agents on a
LAN) lifts the address and port rules, never the scheme and credential rules.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import http.client
import io
import ipaddress
import json
import logging
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from broker.context import Context
from broker.outbox.queue import Channel, Claim, DeliveryReport, Failure, deliver

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
SIGNATURE_TOLERANCE = 300

Resolver = Callable[..., Sequence[tuple[Any, ...]]]


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


# --- The destination check ------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Destination:
    scheme: str
    host: str
    port: int
    target: str  # path and query, as sent in the request line
    # getaddrinfo's (family, type, proto, sockaddr) for each address, checked.
    addresses: tuple[tuple[Any, ...], ...] = ()


class Refused(Exception):
    """A callback URL Broker will not call; the message is the reason."""


def check_destination(url: str, *, allow_private: bool, resolver: Resolver = socket.getaddrinfo) -> str | None:
    """Why Broker refuses to call `url`, or None if it may.

    With `allow_private` only the scheme and credential rules apply (and the URL
    is not resolved).
    """
    try:
        if allow_private:
            _parse(url, allow_private=True)
        else:
            _resolve(url, allow_private=False, resolver=resolver)
    except Refused as exc:
        return str(exc)
    return None


def _parse(url: str, *, allow_private: bool) -> Destination:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise Refused(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise Refused(f"scheme {parts.scheme or '(none)'!r} is not http or https")
    if "@" in parts.netloc:
        raise Refused("credentials in the URL are not allowed")
    host = parts.hostname
    if not host:
        raise Refused("the URL has no host")
    if not allow_private:
        name = host.rstrip(".")
        if name == "localhost" or name.endswith(".localhost"):  # RFC 6761: always loopback
            raise Refused(f"{host} is a loopback name")
        literal = _ip_literal(host)
        if literal is not None:
            reason = _refused_address(literal)
            if reason:
                raise Refused(reason)
    default = 443 if parts.scheme == "https" else 80
    port = default if port is None else port
    if not allow_private and port not in (80, 443):
        raise Refused(f"port {port} is not allowed (only 80 and 443)")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Destination(parts.scheme, host, port, target)


def _resolve(url: str, *, allow_private: bool, resolver: Resolver) -> Destination:
    """Parse and check `url`, resolve its host once and check every address."""
    destination = _parse(url, allow_private=allow_private)
    literal = _ip_literal(destination.host)
    if literal is not None:
        # No lookup for an address literal (and no DNS in tests that use one).
        family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
        sockaddr = (str(literal), destination.port) if literal.version == 4 else (str(literal), destination.port, 0, 0)
        infos = [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr)]
    else:
        try:
            infos = list(resolver(destination.host, destination.port, 0, socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:
            raise Refused(f"cannot resolve {destination.host}: {exc}") from None
    if not infos:
        raise Refused(f"{destination.host} resolves to no address")
    addresses = []
    for family, type_, proto, _canonname, sockaddr in infos:
        if not allow_private:
            try:
                address = ipaddress.ip_address(sockaddr[0])
            except ValueError:
                raise Refused(f"{destination.host} resolves to {sockaddr[0]!r}, not an IP address") from None
            reason = _refused_address(address)
            if reason:
                # One bad address refuses the host: we might connect to any of them.
                raise Refused(f"{destination.host} resolves to a refused address: {reason}")
        addresses.append((family, type_ or socket.SOCK_STREAM, proto, sockaddr))
    return dataclasses.replace(destination, addresses=tuple(addresses))


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _refused_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address):
        # IPv4 addresses carried inside IPv6 ones reach the IPv4 network behind
        # them: check what they carry.
        embedded: list[ipaddress.IPv4Address] = []
        if address.ipv4_mapped is not None:
            embedded.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            embedded.append(address.sixtofour)
        if address.teredo is not None:
            embedded.extend(address.teredo)
        if address in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        for inner in embedded:
            reason = _refused_address(inner)
            if reason:
                return f"{address} embeds {reason}"
    for test, kind in (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
        # Shared address space (100.64/10), documentation ranges and the like:
        # not private by the table, but not on the internet either.
        (not address.is_global, "non-global"),
    ):
        if test:
            return f"{address} is a {kind} address"
    return None


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
    connection = _PinnedConnection(destination, request.timeout, deadline)
    try:
        connection.request("POST", destination.target, body=request.body, headers=request.headers)
        response = connection.getresponse()
        # The body is not read: only the status matters, and an agent's reply
        # should not be able to keep us busy.
        return response.status
    finally:
        connection.close()


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to an address checked beforehand, not to whatever the
    host name resolves to now. The Host header, SNI and certificate check still
    use the host name."""

    def __init__(self, destination: Destination, timeout: float, deadline: float):
        super().__init__(destination.host, destination.port, timeout=timeout)
        self.default_port = 443 if destination.scheme == "https" else 80  # Host header without ":443"
        self._destination = destination
        self._deadline = deadline

    def connect(self) -> None:
        self.sock = _DeadlineSocket(self._open(), self._deadline, self.timeout)

    def _open(self) -> socket.socket:
        error: OSError | None = None
        for family, type_, proto, sockaddr in self._destination.addresses:
            sock = socket.socket(family, type_, proto)
            try:
                sock.settimeout(_remaining(self._deadline, self.timeout))
                sock.connect(sockaddr)
                if self._destination.scheme == "https":
                    # wrap_socket takes the socket over (and closes it on failure).
                    sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self._destination.host)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        raise error or OSError("no address to connect to")


def _remaining(deadline: float, timeout: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the callback took too long")
    return min(timeout, left)


class _DeadlineSocket:
    """The little of the socket interface http.client uses, with each operation's
    timeout shortened so the whole call ends by the deadline."""

    def __init__(self, sock: socket.socket, deadline: float, timeout: float):
        self._sock = sock
        self._deadline = deadline
        self._timeout = timeout

    def _arm(self) -> None:
        self._sock.settimeout(_remaining(self._deadline, self._timeout))

    def sendall(self, data) -> None:
        self._arm()
        self._sock.sendall(data)

    def recv_into(self, buffer) -> int:
        self._arm()
        return self._sock.recv_into(buffer)

    def makefile(self, mode: str):
        return io.BufferedReader(_Reader(self))

    def close(self) -> None:
        self._sock.close()


class _Reader(io.RawIOBase):
    def __init__(self, sock: _DeadlineSocket):
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._sock.recv_into(buffer)


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
        destination = _resolve(url, allow_private=allow_private, resolver=resolver)
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


