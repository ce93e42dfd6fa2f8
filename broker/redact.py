"""Capability tokens out of everything Broker writes down: access logs, request
logs, error logs, its own log lines.

A capability link (an order's or a request's page, a password, unsubscribe,
invitation or verification link) is a bearer credential: whoever reads it in a
log file, a log shipper or a support ticket holds the order. So every URL that
reaches a log goes through `redact_url` first, and every free-text log line
through `redact_text`.

Redaction is generic, so a new capability route is covered without an edit here:
- known places: the segment after `/o/<id>/`, `/requests/<id>/`,
  `/password/reset/`, `/unsubscribe/`, `/verify/`, and the values of query keys
  such as `invitation` or `token`;
- anything else that looks like a token, in any path segment, query value or
  header: a run of URL-safe characters at least 16 long that mixes lower-case
  letters with capitals or digits (`secrets.token_urlsafe`, itsdangerous'
  signed tokens, hex digests, Stripe's client secrets), percent-encoded or not.

The price is that a long mixed-case product SKU in a path is redacted too.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

REDACTED = "[redacted]"
MIN_TOKEN_LENGTH = 16

# The segment after these is a capability, whatever it looks like; a short
# lower-case word there is an action on the token-free URL (`/o/5/cancel`).
_AFTER = re.compile(
    r"(?P<lead>/(?:s/[^/?#\s]+/o/\d+|requests/\d+|password/reset|unsubscribe|verify|confirm|invitations?)/)"
    r"(?P<value>[^/?#&\s\"']+)")
_ACTION = re.compile(r"[a-z]{1,12}")
# Query keys whose value is a credential, wherever they appear.
_QUERY = re.compile(
    r"(?P<lead>(?:^|[?&;\s\"'])(?:invitation|token|access_token|auth|key|secret|signature|sig|code|client_secret|"
    r"payment_intent_client_secret|setup_intent_client_secret)=)(?P<value>[^&#\s\"']+)", re.IGNORECASE)
# What a token is made of (URL-safe base64, itsdangerous' dots), and percent escapes.
_RUN = re.compile(r"[A-Za-z0-9_.~%-]{" + str(MIN_TOKEN_LENGTH) + ",}")
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_.~-]+")
# Free text: only the words that carry a URL, a path or a query are looked into,
# so "SettlementRunError" in a message stays as it is.
_URLISH = re.compile(r"[^\s\"'<>()\[\]]*[/?=&%][^\s\"'<>()\[\]]*")


def looks_like_token(value: str) -> bool:
    """A run of URL-safe characters long and mixed enough to be a secret."""
    if len(value) < MIN_TOKEN_LENGTH or value.isdigit() or not _TOKEN_CHARS.fullmatch(value):
        return False
    lower = sum(c.islower() for c in value)
    other = sum(c.isupper() or c.isdigit() for c in value)
    return lower >= 3 and other >= 3


def redact_url(text: str, *, _depth: int = 0) -> str:
    """A URL, path, query string or header value with every capability replaced by `[redacted]`."""
    if not text:
        return text
    text = _AFTER.sub(lambda m: m["lead"] + (m["value"] if _ACTION.fullmatch(m["value"]) else REDACTED), text)
    text = _QUERY.sub(lambda m: m["lead"] + REDACTED, text)
    return _RUN.sub(lambda m: _redact_run(m.group(0), _depth), text)


def _redact_run(run: str, depth: int) -> str:
    if "%" in run and depth < 3:
        decoded = unquote(run)
        if decoded != run:
            # `next=%2Fs%2Facme%2Fo%2F5%2F<token>`: look at what it says, not how it is spelled.
            cleaned = redact_url(decoded, _depth=depth + 1)
            return cleaned if cleaned != decoded else run
    return REDACTED if looks_like_token(run) else run


def redact_text(text: str) -> str:
    """A free-text line (a log message, a traceback) with the capabilities in its URLs redacted."""
    if not text or not any(c in text for c in "/?=&%"):
        return text
    return _URLISH.sub(lambda m: redact_url(m.group(0)), text)


def holds_capability(url: str) -> bool:
    """Whether this URL (path and query) would lose anything to redaction."""
    return redact_url(url) != url
