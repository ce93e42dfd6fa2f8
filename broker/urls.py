"""Every absolute URL Broker builds, in one place.

Links in emails, the embed script and snippet, Stripe's return and refresh URLs,
any redirect that must be absolute: each is BROKER_PUBLIC_URL's origin, or a
store's verified custom domain, joined with a path Broker made. Never a request's
`Host` header: a URL built from it would send a customer wherever the request
said (and a cached embed script would carry it to everyone).
"""

from __future__ import annotations

from broker.accounts.models import Manufacturer
from broker.config import Settings
from broker.grammar import GrammarError, Origin, parse_custom_domain


def verified_domain(store: Manufacturer | None, settings: Settings) -> str | None:
    """The store's custom domain if it is verified and still fits the grammar
    (a value stored before a rule existed never reaches a URL)."""
    if store is None or not store.custom_domain or store.domain_verified_at is None:
        return None
    try:
        domain = parse_custom_domain(store.custom_domain, own_hosts=settings.trusted_hosts)
    except GrammarError:
        return None
    return domain if domain == store.custom_domain else None


def origin_for(settings: Settings, store: Manufacturer | None = None) -> Origin:
    """BROKER_PUBLIC_URL's origin, or the store's verified domain (on the same scheme)."""
    public = settings.public_origin
    domain = verified_domain(store, settings)
    return public if domain is None else Origin(public.scheme, domain)


def absolute_url(settings: Settings, path: str, *, store: Manufacturer | None = None) -> str:
    """`path` (starting with one `/`, as `url_for` makes it) on Broker's public
    origin, or on `store`'s verified custom domain when it has one."""
    return origin_for(settings, store).join(path)
