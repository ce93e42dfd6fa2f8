from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.db import insert_if_absent
from broker.outbox.models import OutboxMessage


def enqueue(session: Session, *, topic: str, dedupe_key: str, recipient_kind: str, recipient_id: int | None,
            payload: dict, now: datetime, written: set[str] | None = None) -> bool:
    """Add a message in the caller's transaction, once per (topic, dedupe_key).
    True if it was written now.

    `written`: the topic's keys already in the outbox, read once by the caller
    with `written_keys` (it gets this one added), instead of a query here: for
    a caller writing thousands at once, whose keys no other transaction writes."""
    values = dict(topic=topic, dedupe_key=dedupe_key, recipient_kind=recipient_kind, recipient_id=recipient_id,
                  payload=payload, created_at=now)
    if written is not None:
        # A caller writing thousands (a settlement run's summaries) under keys
        # only it can write: added to the session, flushed together.
        if dedupe_key in written:
            return False
        written.add(dedupe_key)
        session.add(OutboxMessage(**values))
        return True
    # ON CONFLICT rather than a look first: two transactions deciding the same
    # message at once (a double-submitted form) would both find none.
    return insert_if_absent(session, OutboxMessage, values, unique=["topic", "dedupe_key"]) is not None


def written_keys(session: Session, topic: str, keys: Iterable[str]) -> set[str]:
    """Those of `keys` already written under `topic` (by its unique index, a
    thousand at a time)."""
    keys = list(keys)
    found: set[str] = set()
    for start in range(0, len(keys), 1000):
        found.update(session.scalars(select(OutboxMessage.dedupe_key).where(
            OutboxMessage.topic == topic, OutboxMessage.dedupe_key.in_(keys[start:start + 1000]))))
    return found
