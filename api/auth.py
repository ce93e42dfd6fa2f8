"""The caller behind a request: an API key, the operator token, or no one."""

from __future__ import annotations

import copy
import functools

from flask import current_app, g, request

from broker.accounts.services import authenticate
from broker.auth import Actor, ActorKind, require
from broker.errors import Unauthenticated


def broker_context():
    return current_app.extensions["broker"]


def current_actor() -> Actor:
    if "actor" not in g:
        header = request.headers.get("Authorization", "")
        bearer = None
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise Unauthenticated("use Authorization: Bearer <key>")
            bearer = value.strip()
        g.actor = authenticate(broker_context(), bearer)
    return g.actor


def access_token() -> str | None:
    return request.headers.get("X-Access-Token") or None


def allow(*kinds: ActorKind):
    """Who may call an endpoint.

    Checked before the request body is parsed, so a caller without the right key
    gets 401/403, never a validation error that describes the schema. The roles
    also go into the OpenAPI document (`security` and `x-roles`). The service
    checks again: this is the door, the service is the lock.
    """

    def decorator(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            require(current_actor(), *kinds)
            return fn(*args, **kwargs)

        return _documented(wrapper, fn, [{"bearer": []}], [kind.value for kind in kinds])

    return decorator


def customer_or_key(fn):
    """The customer (`X-Access-Token`) or a retailer's or manufacturer's key; the
    service decides which of them may see what (only the object's own parties).

    Checked before the body is parsed, like `allow`, so a caller with neither
    gets 401 (the operator, whose token is no party's, 403), never a validation error.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not access_token():
            actor = current_actor()
            if actor.kind is ActorKind.ANONYMOUS:
                raise Unauthenticated("give the X-Access-Token, or an API key")
            require(actor, ActorKind.RETAILER, ActorKind.MANUFACTURER)
        return fn(*args, **kwargs)

    roles = ["customer", ActorKind.RETAILER.value, ActorKind.MANUFACTURER.value]
    return _documented(wrapper, fn, [{"accessToken": []}, {"bearer": []}], roles)


def customer(fn):
    """The customer only, by the order's or request's `X-Access-Token`: no API key
    acts for a customer. The service checks that the token is this object's.

    Checked before the body is parsed, like `allow`.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not access_token():
            raise Unauthenticated("give the X-Access-Token")
        return fn(*args, **kwargs)

    return _documented(wrapper, fn, [{"accessToken": []}], ["customer"])


def _documented(wrapper, fn, security: list[dict], roles: list[str]):
    """Write who may call into the operation's OpenAPI entry (flask-smorest's `_apidoc`)."""
    apidoc = copy.deepcopy(getattr(fn, "_apidoc", {}))
    manual = apidoc.setdefault("manual_doc", {})
    manual["security"] = security
    manual["x-roles"] = roles
    wrapper._apidoc = apidoc
    return wrapper
