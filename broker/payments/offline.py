"""The offline payment provider: holds, captures, releases, refunds, connected
accounts and transfers in its own tables, with no network and no real money.
Everything it touches is test mode. It is what Broker uses where no Stripe keys
are set, so the one-machine mode shows the whole money story."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.db import insert_if_absent
from broker.payments.models import OfflineAccount, OfflineCharge, OfflineRefund, OfflineTransfer
from broker.payments.provider import Account, Authorization, PaymentError, PaymentState


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _ref(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _once(session: Session, model, idempotency_key: str, **values) -> None:
    """Write the provider's record for this idempotency key unless there is one:
    as at Stripe, the same key twice, even at the same moment, is one operation."""
    insert_if_absent(session, model, dict(idempotency_key=idempotency_key, **values), unique=["idempotency_key"])


class OfflineProvider:
    name = "offline"
    test_mode = True

    # Broker's own tables, not a network call: asked inside the caller's
    # transaction (broker.payments.holds.remote).
    local = True

    def authorize(self, session: Session, *, amount: int, currency: str, idempotency_key: str,
                  description: str, metadata: dict[str, str] | None = None) -> Authorization:
        now = _now()
        _once(session, OfflineCharge, idempotency_key, ref=_ref("off"), status="authorized", amount=amount,
              currency=currency, created_at=now, updated_at=now)
        charge = session.scalar(select(OfflineCharge).where(OfflineCharge.idempotency_key == idempotency_key))
        return Authorization(ref=charge.ref, authorized=charge.status != "failed")

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
        # The charge first: refunds of one charge queue behind its lock, and the
        # second with the same key finds the first's refund.
        charge = self._charge(session, ref)
        existing = session.scalar(select(OfflineRefund).where(OfflineRefund.idempotency_key == idempotency_key))
        if existing is not None:
            return existing.ref
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
        _once(session, OfflineAccount, idempotency_key, ref=_ref("offacct"), email=email, onboarded=False,
              created_at=_now())
        found = session.scalar(select(OfflineAccount).where(OfflineAccount.idempotency_key == idempotency_key))
        return Account(ref=found.ref, ready=found.onboarded)

    def account(self, session: Session, ref: str) -> Account:
        found = session.scalar(select(OfflineAccount).where(OfflineAccount.ref == ref))
        if found is None:
            raise PaymentError(f"no offline account {ref}")
        return Account(ref=found.ref, ready=found.onboarded)

    def onboarding_link(self, session: Session, account_ref: str, *, return_url: str, refresh_url: str) -> str:
        """Where the account's owner finishes onboarding. Stripe hosts that page;
        the offline provider's stands in Broker's own pages, under the page the
        owner is sent back to (`<return_url>/offline/<ref>`: the portal's or the
        console's payout-account page), and says it is test mode."""
        return f"{return_url.rstrip('/')}/offline/{account_ref}"

    def complete_onboarding(self, session: Session, ref: str) -> Account:
        """The owner went through the simulated onboarding page: the account is ready."""
        found = session.scalar(select(OfflineAccount).where(OfflineAccount.ref == ref).with_for_update())
        if found is None:
            raise PaymentError(f"no offline account {ref}")
        found.onboarded = True
        return Account(ref=found.ref, ready=True)

    def transfer(self, session: Session, *, account_ref: str, amount: int, currency: str, transfer_group: str,
                 source_ref: str | None, idempotency_key: str) -> str:
        self.account(session, account_ref)
        _once(session, OfflineTransfer, idempotency_key, ref=_ref("offtr"), account_ref=account_ref, amount=amount,
              currency=currency, transfer_group=transfer_group, created_at=_now())
        return session.scalar(select(OfflineTransfer.ref).where(OfflineTransfer.idempotency_key == idempotency_key))

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
