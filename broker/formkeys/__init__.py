"""One-time form keys: a form that creates something carries a random key, and
the POST that creates records the key, in the same transaction, with what it
created. A reload or a double click sends the same key again and creates
nothing: the second POST learns what the first made and answers as the first did.

In a service (inside its unit of work, BEFORE any other write)::

    formkeys.claim(session, once, now=now)          # raises AlreadyDone(result)
    ... create the order ...
    formkeys.record(session, once, {"order_id": order.id, "token": token})
    uow.commit()

`once` is a `Once(key, scope)`, or None when the caller sent no key (the API):
then both calls do nothing. Why it is safe across processes: `claim` inserts
the key's row first (`INSERT ... ON CONFLICT DO NOTHING` on its unique hash).
On PostgreSQL a second transaction with the same key waits on that row until
the first commits (it then finds the row and its result) or rolls back (its
insert then goes through, and it does the work itself); SQLite's writers never
overlap (BEGIN IMMEDIATE). A POST that fails (bad input) rolls the row back
with everything else, so the corrected form may be sent again with its key.

The result is sealed (AES-GCM) with a key derived from the form key, which
only the browser that was shown the form holds: what a checkout made includes
the order's access token, stored nowhere else in the clear.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import re
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.db import insert_if_absent
from broker.errors import Conflict
from broker.formkeys.models import FormKey

# 32 random bytes, urlsafe base64 without padding (secrets.token_urlsafe(32)).
_KEY = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclasses.dataclass(frozen=True)
class Once:
    """A form's one-time key and the form it belongs to (`checkout:acme`)."""

    key: str
    scope: str

    @classmethod
    def parse(cls, key: str | None, scope: str) -> "Once | None":
        """The key a form sent, or None when it sent none or not one of ours
        (a malformed key protects nothing: the POST runs unguarded, as the API's)."""
        if not key or not _KEY.fullmatch(key):
            return None
        return cls(key, scope)


class AlreadyDone(Exception):
    """This key's POST already ran: `result` is what it recorded (None when the
    first POST made nothing to point at)."""

    def __init__(self, result: dict | None):
        super().__init__("this form was already sent")
        self.result = result


def _hash(key: str) -> str:
    return hashlib.sha256(f"form-key|{key}".encode()).hexdigest()


def _cipher(key: str) -> AESGCM:
    return AESGCM(hashlib.sha256(f"form-key-seal|{key}".encode()).digest())


def claim(session: Session, once: Once | None, *, now: datetime) -> None:
    """Take the key for this POST (caller's transaction; call before any other write).

    :raise AlreadyDone: the key was used on this form already (and committed).
    :raise 409: the key was used on another form.
    """
    if once is None:
        return
    if insert_if_absent(session, FormKey, {"key_hash": _hash(once.key), "scope": once.scope[:120],
                                           "sealed": "", "created_at": now}, unique=["key_hash"]) is not None:
        return
    row = session.scalar(select(FormKey).where(FormKey.key_hash == _hash(once.key)))
    if row is None or row.scope != once.scope[:120]:
        raise Conflict("this form was already used for something else; reload the page and try again")
    raise AlreadyDone(_unseal(once, row.sealed))


def check_unused(ctx, once: Once | None) -> None:
    """Before a view checks its form (a repeat of a placed checkout must not be told
    its cart has sold out meanwhile): read-only; `claim` still decides.

    :raise AlreadyDone: the key was used on this form already.
    """
    if once is None:
        return
    with ctx.uow() as uow:
        row = uow.session.scalar(select(FormKey).where(FormKey.key_hash == _hash(once.key)))
        if row is not None and row.scope == once.scope[:120]:
            raise AlreadyDone(_unseal(once, row.sealed))


def record(session: Session, once: Once | None, result: dict) -> None:
    """What this key's POST created (JSON-able), sealed, in the caller's transaction."""
    if once is None:
        return
    nonce = os.urandom(12)
    sealed = nonce + _cipher(once.key).encrypt(nonce, json.dumps(result).encode(), once.scope.encode())
    row = session.scalar(select(FormKey).where(FormKey.key_hash == _hash(once.key)))
    row.sealed = base64.b64encode(sealed).decode()


def _unseal(once: Once, sealed: str) -> dict | None:
    if not sealed:
        return None
    raw = base64.b64decode(sealed)
    try:  # the scope is authenticated too: a row edited to another form does not open
        return json.loads(_cipher(once.key).decrypt(raw[:12], raw[12:], once.scope.encode()))
    except InvalidTag:
        return None
