from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from broker.privacy.models import Disclosure


def disclose(session: Session, *, order_id: int, party_kind: str, party_id: int | None, fields: list[str],
             purpose: str, now: datetime) -> None:
    """Record that a party was shown some of a customer's personal data (caller's transaction)."""
    session.add(Disclosure(order_id=order_id, party_kind=party_kind, party_id=party_id,
                           fields=sorted(fields), purpose=purpose, at=now))
