"""The offline payment provider: real holds, captures and releases in its own
table, with no network and no real money. Every payment it makes is test mode."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.errors import Conflict
from broker.payments.models import OfflineCharge
from broker.payments.provider import Authorization


class OfflineProvider:
    name = "offline"
    test_mode = True

    def authorize(self, session: Session, *, amount: int, currency: str, idempotency_key: str,
                  description: str) -> Authorization:
        existing = session.scalar(select(OfflineCharge).where(OfflineCharge.idempotency_key == idempotency_key))
        if existing is not None:
            return Authorization(ref=existing.ref, authorized=existing.status != "failed")
        now = datetime.now(timezone.utc)
        charge = OfflineCharge(
            ref=f"off_{secrets.token_hex(12)}",
            idempotency_key=idempotency_key,
            status="authorized",
            amount=amount,
            currency=currency,
            created_at=now,
            updated_at=now,
        )
        session.add(charge)
        session.flush()
        return Authorization(ref=charge.ref, authorized=True)

    def capture(self, session: Session, ref: str, *, amount: int, idempotency_key: str) -> None:
        charge = self._get(session, ref)
        if charge.status == "captured" and charge.captured_amount == amount:
            return  # a retried capture
        if charge.status != "authorized":
            raise Conflict(f"cannot capture a payment that is {charge.status}")
        if amount > charge.amount:
            raise Conflict("cannot capture more than was authorised")
        charge.status = "captured"
        charge.captured_amount = amount
        charge.updated_at = datetime.now(timezone.utc)

    def release(self, session: Session, ref: str, *, idempotency_key: str) -> None:
        charge = self._get(session, ref)
        if charge.status == "released":
            return
        if charge.status != "authorized":
            raise Conflict(f"cannot release a payment that is {charge.status}")
        charge.status = "released"
        charge.updated_at = datetime.now(timezone.utc)

    @staticmethod
    def _get(session: Session, ref: str) -> OfflineCharge:
        charge = session.scalar(select(OfflineCharge).where(OfflineCharge.ref == ref).with_for_update())
        if charge is None:
            raise Conflict(f"no offline charge {ref}")
        return charge
