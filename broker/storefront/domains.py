"""A store's custom domain: claiming it and verifying it (how the check works:
`broker/storefront/hosts.py`).

A domain is a real DNS name on the internet (`broker.grammar.parse_custom_domain`),
never one of Broker's own hosts, and one store's at most: the column is unique,
so of two stores claiming one domain at the same moment the second gets a 422.
Changing the domain starts a new claim with a new token, unverified.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.accounts.models import Manufacturer
from broker.auth import Actor, ActorKind, require
from broker.config import Settings
from broker.context import Context
from broker.errors import Invalid, NotFound
from broker.grammar import GrammarError, parse_custom_domain
from broker.storefront.hosts import DomainCheckFailed, challenge_url

TAKEN = "another store uses this domain"


def set_domain(session: Session, settings: Settings, maker: Manufacturer, text: str) -> bool:
    """Claim `text` (blank: none) for `maker` in the caller's transaction; True if
    the domain changed. The same domain again keeps its token and verification.
    :raise 422: not a domain Broker accepts, or another store's."""
    if not text.strip():
        changed = maker.custom_domain is not None
        maker.custom_domain = maker.domain_token = maker.domain_verified_at = None
        return changed
    try:
        domain = parse_custom_domain(text, own_hosts=settings.trusted_hosts)
    except GrammarError as exc:
        raise Invalid.field("custom_domain", str(exc)) from None
    if domain == maker.custom_domain:
        return False
    if held_by(session, domain, maker.id) is not None:
        raise Invalid.field("custom_domain", TAKEN)
    maker.custom_domain = domain
    maker.domain_token = secrets.token_urlsafe(32)
    maker.domain_verified_at = None
    return True


def held_by(session: Session, domain: str, maker_id: int) -> int | None:
    """The other store that holds `domain`, if any. A claim made at the same
    moment is not seen here; the unique column refuses it at the commit."""
    return session.scalar(select(Manufacturer.id).where(Manufacturer.custom_domain == domain,
                                                        Manufacturer.id != maker_id))


def verify_domain(ctx: Context, actor: Actor, *, slug: str | None = None) -> Manufacturer:
    """Check that the store's domain points at this Broker, and if it does, mark
    it verified: from then on requests for it serve the store. A manufacturer
    verifies its own store; the operator names one by `slug`.

    :raise 404: no such store. :raise 422: no domain set, or the check failed
    (the message says what the domain answered).
    """
    require(actor, ActorKind.MANUFACTURER, ActorKind.OPERATOR)
    with ctx.uow() as uow:
        where = Manufacturer.slug == slug if actor.is_operator else Manufacturer.id == actor.id
        maker = uow.session.scalar(select(Manufacturer).where(where))
        if maker is None:
            raise NotFound(f"no storefront {slug!r}" if slug else "no storefront")
        domain, token, verified = maker.custom_domain, maker.domain_token, maker.domain_verified_at
    if not domain:
        raise Invalid.field("custom_domain", "set a custom domain first")
    if verified is not None:
        return maker
    problem = None if token else "it has no token"
    try:
        if parse_custom_domain(domain, own_hosts=ctx.settings.trusted_hosts) != domain:
            problem = f"{domain} is not written as Broker writes domains"
    except GrammarError as exc:
        problem = str(exc)
    if problem:
        # Stored before today's rules: never called, never served.
        raise Invalid.field("custom_domain", f"{problem}; set the domain again")
    url = challenge_url(domain, token)
    try:
        answer = ctx.domain_check()(url)
    except DomainCheckFailed as exc:
        raise Invalid.field("custom_domain", f"{url} could not be checked: {exc}. Point {domain} at this "
                                             f"Broker ({ctx.settings.public_origin.host}) and try again") from None
    if answer.strip() != token.encode():
        raise Invalid.field("custom_domain", f"{url} did not answer with this store's token: {domain} does not "
                                             f"point at this Broker ({ctx.settings.public_origin.host}) yet")
    with ctx.uow() as uow:
        maker = uow.session.scalar(select(Manufacturer).where(Manufacturer.id == maker.id).with_for_update())
        if maker.custom_domain != domain or maker.domain_token != token:
            raise Invalid.field("custom_domain", "the domain changed while it was checked; check it again")
        maker.domain_verified_at = ctx.now()
        store_id = maker.id
        uow.after_commit(lambda: ctx.domains_changed(store_id))
        uow.commit()
        return maker
