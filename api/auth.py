"""The caller behind a request: an API key, the operator token, or no one."""

from __future__ import annotations

from flask import current_app, g, request

from broker.accounts.services import authenticate
from broker.auth import Actor
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
