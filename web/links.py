"""Absolute URLs in the web layer: a view's path (`url_for`, relative) on
Broker's public origin or a store's verified domain (`broker.urls`), never on
the request's Host."""

from __future__ import annotations

from flask import current_app, url_for
from markupsafe import Markup

from broker.accounts.models import Manufacturer
from broker.urls import absolute_url


def external_url(endpoint: str, *, store: Manufacturer | None = None, **values) -> str:
    """`url_for(endpoint, **values)` made absolute on BROKER_PUBLIC_URL, or on
    `store`'s verified custom domain when it has one."""
    return absolute_url(current_app.extensions["broker"].settings, url_for(endpoint, **values), store=store)


def embed_snippet(store: Manufacturer) -> str:
    """The one tag a manufacturer pastes into its site to mount the store."""
    src = external_url("store.embed_js", store=store, slug=store.slug)
    return str(Markup('<script src="{}" data-store="{}"></script>').format(src, store.slug))
