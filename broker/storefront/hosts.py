"""Stores' own domains: which ones Broker answers for (`DomainDirectory`), and
the HTTP call that checks that a domain points at Broker (`HttpDomainCheck`).

How a custom domain becomes verified (the services are in
`broker/storefront/domains.py`): the manufacturer sets it, and Broker gives the
claim a random token. Broker itself answers
`GET http://<domain>/.well-known/broker-domain/<token>` with the token, for that
host only. Verifying (the console's button, `broker storefront verify-domain`)
makes that request to the domain from the outside, through DNS, like ACME's
HTTP-01 challenge: the token comes back only if the name really points at this
Broker. Until then the domain serves nothing and no URL is built with it.
"""

from __future__ import annotations

import dataclasses
import http.client
import socket
import threading
import time
from collections.abc import Callable

from sqlalchemy import select

from broker.accounts.models import Manufacturer
from broker.outbox.destinations import PinnedConnection, Refused, Resolver, resolve_destination
from broker.uow import UnitOfWork

CHALLENGE_PATH = "/.well-known/broker-domain/"
USER_AGENT = "Broker-Domain-Check/1"
MAX_ANSWER = 256  # a token is 43 characters; nothing longer is read


@dataclasses.dataclass(frozen=True)
class DomainClaim:
    domain: str
    slug: str
    manufacturer_id: int
    token: str
    verified: bool


def challenge_url(domain: str, token: str) -> str:
    """Where the check looks: plain HTTP on port 80, as ACME's HTTP-01 does, so a
    domain can be verified before it has a certificate. `domain` is parsed."""
    return f"http://{domain}{CHALLENGE_PATH}{token}"


def _claim(row) -> DomainClaim:
    return DomainClaim(row.custom_domain, row.slug, row.id, row.domain_token or "", row.domain_verified_at is not None)


_COLUMNS = (Manufacturer.id, Manufacturer.slug, Manufacturer.custom_domain, Manufacturer.domain_token,
            Manufacturer.domain_verified_at)


class DomainDirectory:
    """Every store's verified custom domain, read from the database at most once
    every `seconds` per process; a change made in this process shows at once
    (`invalidate`), one made in another within `seconds`. The host check asks it
    for every request whose Host is not one of Broker's own names, so a flood of
    made-up hosts costs one query per interval, not one each."""

    def __init__(self, open_uow: Callable[[], UnitOfWork], seconds: float,
                 clock: Callable[[], float] = time.monotonic):
        self._open = open_uow
        self._seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._verified: dict[str, DomainClaim] = {}
        self._loaded_at: float | None = None

    def verified(self, host: str) -> DomainClaim | None:
        """The store whose verified domain `host` is (a parsed host name), if any."""
        now = self._clock()
        if self._loaded_at is None or now - self._loaded_at >= self._seconds:
            with self._lock:
                if self._loaded_at is None or now - self._loaded_at >= self._seconds:
                    self._verified = self._load()
                    self._loaded_at = now
        return self._verified.get(host)

    def claim(self, host: str) -> DomainClaim | None:
        """The store that claimed `host`, verified or not, read now (for the
        challenge, which must answer as soon as the claim is made)."""
        with self._open() as uow:
            row = uow.session.execute(select(*_COLUMNS).where(Manufacturer.custom_domain == host)).first()
            return None if row is None else _claim(row)

    def invalidate(self) -> None:
        with self._lock:
            self._loaded_at = None

    def _load(self) -> dict[str, DomainClaim]:
        with self._open() as uow:
            rows = uow.session.execute(select(*_COLUMNS).where(Manufacturer.custom_domain.is_not(None),
                                                               Manufacturer.domain_verified_at.is_not(None)))
            return {row.custom_domain: _claim(row) for row in rows}


class DomainCheckFailed(Exception):
    """The domain did not answer with the token; the message says what happened, for a person."""


DomainCheck = Callable[[str], bytes]


@dataclasses.dataclass(frozen=True)
class HttpDomainCheck:
    """GET a challenge URL and return the answer's body (at most MAX_ANSWER
    bytes) if it is a 200. Under the callbacks' rules: the host is resolved once,
    every address must be public unless `allow_private`
    (BROKER_ALLOW_PRIVATE_CALLBACKS), the connection goes to a checked address,
    redirects are not followed and proxies are ignored. `resolver` replaces DNS
    (tests)."""

    allow_private: bool = False
    resolver: Resolver = socket.getaddrinfo
    timeout: float = 5.0

    def __call__(self, url: str) -> bytes:
        try:
            destination = resolve_destination(url, allow_private=self.allow_private, resolver=self.resolver)
        except Refused as exc:
            raise DomainCheckFailed(f"Broker will not call it: {exc}") from None
        connection = PinnedConnection(destination, self.timeout, time.monotonic() + 3 * self.timeout)
        try:
            connection.request("GET", destination.target, headers={"User-Agent": USER_AGENT, "Accept": "text/plain"})
            response = connection.getresponse()
            status = response.status
            body = response.read(MAX_ANSWER) if status == 200 else b""
            response.close()
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise DomainCheckFailed(f"it did not answer ({type(exc).__name__}: {exc})") from None
        finally:
            connection.close()
        if status != 200:
            redirect = " (redirects are not followed)" if 300 <= status < 400 else ""
            raise DomainCheckFailed(f"it answered HTTP {status}{redirect}")
        return body
