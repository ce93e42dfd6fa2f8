"""The offline payment provider: holds, captures, releases, refunds, connected
accounts and transfers in its own tables, with no network and no real money.
Everything it touches is test mode. It is what Broker uses where no Stripe keys
are set, so the one-machine mode shows the whole money story."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.payments.models import OfflineAccount, OfflineCharge, OfflineRefund, OfflineTransfer
from broker.payments.provider import Account, Authorization, PaymentError, PaymentState


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _ref(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


class OfflineProvider:
    name = "offline"
    test_mode = True

    def authorize(self, session: Session, *, amount: int, currency: str, idempotency_key: str,
                  description: str, metadata: dict[str, str] | None = None) -> Authorization:
        existing = session.scalar(select(OfflineCharge).where(OfflineCharge.idempotency_key == idempotency_key))
        if existing is not None:
            return Authorization(ref=existing.ref, authorized=existing.status != "failed")
        now = _now()
        charge = OfflineCharge(ref=_ref("off"), idempotency_key=idempotency_key, status="authorized", amount=amount,
                               currency=currency, created_at=now, updated_at=now)
        session.add(charge)
        session.flush()
        return Authorization(ref=charge.ref, authorized=True)

    def capture(self, session: Session, ref: str, *, amount: int, idempotency_key: str) -> PaymentState:
        charge = self._charge(session, ref)
        if charge.status == "captured":
            return self._state(charge)  # a retried capture
        if charge.status != "authorized":
            raise PaymentError(f"cannot capture a payment that is {charge.status}")
        if amount > charge.amount:
            raise PaymentError("cannot capture more than was authorised")
        charge.status = "captured"
        charge.captured_amount = amount
        charge.updated_at = _now()
        return self._state(charge)

    def release(self, session: Session, ref: str, *, idempotency_key: str) -> None:
        charge = self._charge(session, ref)
        if charge.status == "released":
            return
        if charge.status != "authorized":
            raise PaymentError(f"cannot release a payment that is {charge.status}")
        charge.status = "released"
        charge.updated_at = _now()

    def refund(self, session: Session, ref: str, *, amount: int, idempotency_key: str) -> str:
        existing = session.scalar(select(OfflineRefund).where(OfflineRefund.idempotency_key == idempotency_key))
        if existing is not None:
            return existing.ref
        charge = self._charge(session, ref)
        if charge.status != "captured":
            raise PaymentError(f"cannot refund a payment that is {charge.status}")
        if amount <= 0 or charge.refunded_amount + amount > charge.captured_amount:
            raise PaymentError("cannot refund more than was captured")
        charge.refunded_amount += amount
        charge.updated_at = _now()
        refund = OfflineRefund(ref=_ref("offre"), idempotency_key=idempotency_key, charge_ref=ref, amount=amount,
                               created_at=_now())
        session.add(refund)
        return refund.ref

    def retrieve(self, session: Session, ref: str) -> PaymentState:
        return self._state(self._charge(session, ref, lock=False))

    def create_account(self, session: Session, *, email: str, country: str, idempotency_key: str) -> Account:
        existing = session.scalar(select(OfflineAccount).where(OfflineAccount.idempotency_key == idempotency_key))
        if existing is None:
            existing = OfflineAccount(ref=_ref("offacct"), idempotency_key=idempotency_key, email=email,
                                      created_at=_now())
            session.add(existing)
            session.flush()
        return Account(ref=existing.ref, ready=True)

    def account(self, session: Session, ref: str) -> Account:
        found = session.scalar(select(OfflineAccount).where(OfflineAccount.ref == ref))
        if found is None:
            raise PaymentError(f"no offline account {ref}")
        return Account(ref=found.ref, ready=True)

    def onboarding_link(self, session: Session, account_ref: str, *, return_url: str, refresh_url: str) -> str:
        return return_url  # nothing to fill in: offline accounts are ready at once

    def transfer(self, session: Session, *, account_ref: str, amount: int, currency: str, transfer_group: str,
                 source_ref: str | None, idempotency_key: str) -> str:
        existing = session.scalar(select(OfflineTransfer).where(OfflineTransfer.idempotency_key == idempotency_key))
        if existing is not None:
            return existing.ref
        self.account(session, account_ref)
        transfer = OfflineTransfer(ref=_ref("offtr"), idempotency_key=idempotency_key, account_ref=account_ref,
                                   amount=amount, currency=currency, transfer_group=transfer_group, created_at=_now())
        session.add(transfer)
        session.flush()
        return transfer.ref

    @staticmethod
    def _charge(session: Session, ref: str, *, lock: bool = True) -> OfflineCharge:
        stmt = select(OfflineCharge).where(OfflineCharge.ref == ref)
        charge = session.scalar(stmt.with_for_update() if lock else stmt)
        if charge is None:
            raise PaymentError(f"no offline charge {ref}")
        return charge

    @staticmethod
    def _state(charge: OfflineCharge) -> PaymentState:
        return PaymentState(
            ref=charge.ref, status=charge.status, amount=charge.amount,
            amount_capturable=charge.amount if charge.status == "authorized" else 0,
            amount_received=charge.captured_amount, amount_refunded=charge.refunded_amount, charge_ref=charge.ref,
        )
