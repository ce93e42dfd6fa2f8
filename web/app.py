"""The app factory. It wires a Context into Flask; it never migrates the database
and never starts a scheduler (those are `broker db upgrade` and `broker scheduler`).
It answers only for Broker's own hosts and stores' verified domains (web/hosts.py)."""

from __future__ import annotations

import functools
import logging

from flask import Flask
from werkzeug.routing import IntegerConverter

from broker.config import Settings
from broker.context import Context


MAX_ID = 2**63 - 1


class BoundedIntConverter(IntegerConverter):
    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


class BrokerFlask(Flask):
    """Flask, with `ensure_sync`'s answer remembered for each function. Flask asks
    it of the view and of every hook, on every request (`inspect` reads the
    function's flags each time, about 2% of a cached catalog page); Broker's
    views and hooks are made once, with the app. Bounded: a function made per
    request (`after_this_request`) only cycles through the cache."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._ensured = functools.lru_cache(maxsize=512)(super().ensure_sync)

    def ensure_sync(self, func):
        return self._ensured(func)


def create_app(settings: Settings | None = None, *, context: Context | None = None,
               test_config: dict | None = None) -> Flask:
    if context is None:
        context = Context.from_settings(settings or Settings.from_env())
    app = BrokerFlask(__name__)
    app.config.update(
        SECRET_KEY=context.settings.secret_key,
        MAX_CONTENT_LENGTH=1024 * 1024,
        JSON_SORT_KEYS=False,
    )
    if test_config:
        app.config.update(test_config)
    app.extensions["broker"] = context
    # Ids are 64-bit: a larger number in a path is no route at all (404), not an
    # overflow in the database driver.
    app.url_map.converters["int"] = BoundedIntConverter
    logging.getLogger("broker").setLevel(logging.INFO)

    from api import init_api
    from web import (account, capability, console, console_shipping, errors, formkeys, i18n, money, order_page, pages,
                     portal, requests, retries, storefront)
    from web.boundary import init_boundary
    from web.hosts import init_hosts
    from web.security import init_security

    # Before anything else: a request for a host Broker does not answer for is a
    # 400 before any view runs (web/hosts.py); then bad bytes are a 400 before any
    # view reads them (web/boundary.py).
    init_hosts(app, list(context.settings.trusted_hosts), context.domains)
    init_boundary(app)
    init_api(app)
    errors.init_app(app)
    i18n.init_app(app)
    app.jinja_env.globals["status_word"] = order_page.status_word  # an order's status, in the page's language
    app.register_blueprint(account.bp)
    app.register_blueprint(portal.bp)
    app.register_blueprint(console.bp)
    app.register_blueprint(money.portal_bp)
    app.register_blueprint(money.console_bp)
    app.register_blueprint(console_shipping.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(requests.bp)
    app.register_blueprint(storefront.bp)
    # An order's subtotal, shipping, tax and total as lines, for every page that shows one.
    from broker.orders.totals import order_totals
    app.jinja_env.globals["order_totals"] = order_totals
    retries.install(app)  # every view, before the rate limits wrap theirs
    init_security(app)
    capability.init_app(app)
    formkeys.init_app(app)
    if context.settings.trusted_proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = context.settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    return app
