"""Signing agents' callbacks, as Stripe signs its webhooks, so agents can reuse
its libraries: `Broker-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of
"<t>.<body>">`.

The secret is `signing_secret(settings)`: BROKER_CALLBACK_SECRET, or one
derived from BROKER_SECRET_KEY, which `broker serve` and `broker scheduler`
refuse to start without, so every process and every restart signs alike.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

SIGNATURE_TOLERANCE = 300


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
