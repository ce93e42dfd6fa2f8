from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.outbox.models import OutboxMessage


def enqueue(session: Session, *, topic: str, dedupe_key: str, recipient_kind: str, recipient_id: int | None,
            payload: dict, now: datetime) -> bool:
    """Add a message in the caller's transaction, once per (topic, dedupe_key)."""
    exists = session.scalar(
        select(OutboxMessage.id).where(OutboxMessage.topic == topic, OutboxMessage.dedupe_key == dedupe_key)
    )
    if exists is not None:
        return False
    session.add(OutboxMessage(topic=topic, dedupe_key=dedupe_key, recipient_kind=recipient_kind,
                              recipient_id=recipient_id, payload=payload, created_at=now))
    return True
