"""Setting up a payout account from the portal and the console.

`start` makes the caller's connected account (once) and gives the provider's
onboarding link: Stripe's hosted Connect onboarding, or the offline provider's
stand-in, a page of Broker's own that says it is test mode. `status` reads the
account's state; when the account is not ready yet it asks the provider again,
so the owner coming back from onboarding sees it at once rather than when
Stripe's `account.updated` webhook arrives.
"""

from __future__ import annotations

import dataclasses
import logging

from sqlalchemy import select

from broker.accounts.models import Store
from broker.auth import Actor, ActorKind, require
from broker.context import Context
from broker.errors import NotFound, Unavailable
from broker.locks import lock
from broker.payments.provider import PaymentError
from broker.payouts import services as payouts
from broker.payouts.models import ConnectedAccount

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class AccountState:
    provider: str
    test_mode: bool
    exists: bool
    ready: bool
    account_ref: str | None


def _country(ctx: Context, actor: Actor) -> str:
    """The country the account is for: a retailer's first store's; else the US
    (a manufacturer's country is not recorded; Stripe's onboarding asks)."""
    if actor.kind is ActorKind.RETAILER:
        with ctx.uow() as uow:
            country = uow.session.scalar(select(Store.country).where(Store.retailer_id == actor.id)
                                         .order_by(Store.id).limit(1))
        if country and len(country) == 2:
            return country
    return "US"


def start(ctx: Context, actor: Actor, *, email: str) -> payouts.Onboarding:
    """Make the caller's account if need be; the link to finish onboarding (None if ready).

    :raise 503: the provider could not be reached; nothing was written."""
    require(actor, ActorKind.RETAILER, ActorKind.MANUFACTURER)
    try:
        return payouts.connect(ctx, actor, email=email, country=_country(ctx, actor))
    except PaymentError as exc:
        raise Unavailable(f"the payment provider could not set up the account ({exc}); try again") from None


def _account(session, actor: Actor, provider: str, *, for_update: bool = False) -> ConnectedAccount | None:
    stmt = select(ConnectedAccount).where(ConnectedAccount.owner_kind == actor.kind.value,
                                          ConnectedAccount.owner_id == actor.id, ConnectedAccount.provider == provider)
    return session.scalar(lock(stmt) if for_update else stmt)


def status(ctx: Context, actor: Actor) -> AccountState:
    """The caller's payout account, its readiness asked of the provider again while it is not ready."""
    require(actor, ActorKind.RETAILER, ActorKind.MANUFACTURER)
    provider = ctx.payments
    with ctx.uow() as uow:
        session = uow.session
        account = _account(session, actor, provider.name, for_update=True)
        if account is not None and not account.ready:
            try:
                fresh = provider.account(session, account.account_ref)
            except PaymentError as exc:
                # Shown as it was; the webhook will still tell us.
                log.warning("could not read connected account %s: %s", account.account_ref, exc)
            else:
                if fresh.ready:
                    payouts.account_updated(session, account.account_ref, True, ctx.now())
                    uow.commit()
        return AccountState(provider.name, provider.test_mode, account is not None,
                            bool(account and account.ready), account.account_ref if account else None)


def complete_offline(ctx: Context, actor: Actor, account_ref: str) -> AccountState:
    """The simulated onboarding page was confirmed: the caller's offline account is ready.

    :raise 404: not the offline provider, or not the caller's account."""
    require(actor, ActorKind.RETAILER, ActorKind.MANUFACTURER)
    provider = ctx.payments
    complete = getattr(provider, "complete_onboarding", None)
    if provider.name != "offline" or complete is None:
        raise NotFound("payout accounts are set up at the payment provider")
    with ctx.uow() as uow:
        session = uow.session
        account = _account(session, actor, provider.name, for_update=True)
        if account is None or account.account_ref != account_ref:
            raise NotFound("no such payout account of yours")
        complete(session, account_ref)
        payouts.account_updated(session, account_ref, True, ctx.now())
        uow.commit()
        return AccountState(provider.name, provider.test_mode, True, True, account_ref)


def offline_account(ctx: Context, actor: Actor, account_ref: str) -> AccountState:
    """The caller's offline account, for the simulated onboarding page.

    :raise 404: not the offline provider, or not the caller's account."""
    state = status(ctx, actor)
    if state.provider != "offline" or state.account_ref != account_ref:
        raise NotFound("no such payout account of yours")
    return state
