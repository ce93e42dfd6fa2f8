"""Which hosts Broker answers for; any other `Host` is a 400 before any view runs.

* Broker's own names, BROKER_PUBLIC_URL's host and BROKER_ALLOWED_HOSTS, are
  Flask's TRUSTED_HOSTS (checked when the request is routed).
* A store's verified custom domain is trusted as well, and serves that store
  only: its pages, its embed script and the static files; `/` is its catalog.
  Verified domains live in the database, so `HostCheckedRequest` adds the one a
  request names, for that request alone, from a per-process cache
  (`DomainDirectory`). Requests for Broker's own names never reach the cache.
* A domain claimed but not yet verified answers only its challenge,
  `/.well-known/broker-domain/<token>`, with the store's token
  (broker/storefront/hosts.py says how verification works).
* `/healthz` answers on any host: a balancer's health check often names the
  instance by its address, and the answer holds no URL and nothing personal.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from flask import Blueprint, Flask, Response, abort, request
from flask import Request as FlaskRequest
from werkzeug.utils import cached_property

from broker.storefront.hosts import CHALLENGE_PATH, DomainClaim, DomainDirectory
from web.lookups import LookupDict

HEALTH_PATH = "/healthz"

bp = Blueprint("hosts", __name__)


class HostCheckedRequest(FlaskRequest):
    """Werkzeug checks the Host against `trusted_hosts` when Flask routes the
    request; Flask sets them from TRUSTED_HOSTS. Reading them back adds the store
    domain this request names, when there is one. Its query, form and cookies
    are `LookupDict`s (web/lookups.py)."""

    parameter_storage_class = LookupDict
    dict_storage_class = LookupDict
    directory: Callable[[], DomainDirectory]  # set for each app by `init_hosts`
    _static_hosts: list[str] | None = None

    @property
    def trusted_hosts(self) -> list[str] | None:
        if self.path == HEALTH_PATH:
            return None
        static = self._static_hosts
        if not static:
            return static
        claim = self.store_claim
        return static if claim is None else [*static, claim.domain]

    @trusted_hosts.setter
    def trusted_hosts(self, value) -> None:
        self._static_hosts = list(value) if value else None

    @cached_property
    def store_claim(self) -> DomainClaim | None:
        """The store whose domain the Host header names: a verified one, or for the
        challenge path a claimed one. None for Broker's own names and anything else."""
        host = self.environ.get("HTTP_HOST") or ""
        name, _, port = host.rpartition(":") if ":" in host else (host, "", "")
        if port and not port.isdigit():
            return None
        name = name.lower().removesuffix(".")
        static = self._static_hosts or []
        if not name or name in static or name.startswith("["):
            return None
        directory = type(self).directory()
        if self.path.startswith(CHALLENGE_PATH):
            return directory.claim(name)
        return directory.verified(name)


def _store_domain_only(endpoint: str | None, values: dict | None) -> None:
    """On a store's domain, that store's pages and nothing else of Broker's (no
    sign-in page on a manufacturer's domain, no other store)."""
    claim = request.store_claim if isinstance(request, HostCheckedRequest) else None
    if claim is None or endpoint == "hosts.challenge":
        return
    if not claim.verified:
        abort(404)
    if endpoint in ("static", "pages.home", "pages.healthz"):
        return
    if endpoint and endpoint.startswith("store.") and (values or {}).get("slug") == claim.slug:
        return
    abort(404)


@bp.get(CHALLENGE_PATH + "<token>")
def challenge(token: str):
    """The token of the store that claimed this host, for Broker's own check of
    the domain. :raise 404: not a claimed domain, or another token."""
    claim = request.store_claim
    if claim is None or not claim.token or not secrets.compare_digest(claim.token.encode(), token.encode()):
        abort(404)
    return Response(claim.token, mimetype="text/plain", headers={"Cache-Control": "no-store"})


def init_hosts(app: Flask, trusted: list[str], directory: Callable[[], DomainDirectory]) -> None:
    app.config["TRUSTED_HOSTS"] = trusted
    app.request_class = type("BrokerRequest", (HostCheckedRequest,), {"directory": staticmethod(directory)})
    app.url_value_preprocessor(_store_domain_only)
    app.register_blueprint(bp)
