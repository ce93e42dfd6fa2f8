"""Error pages: inside a store (`/s/<slug>/...`) in the store's own look, with a
way back to its catalog; elsewhere in Broker's plain one. The API keeps its
problem details (api/problems.py), and a page answers the same status.

A 500's page must never fail itself: it reads nothing from the database (the
store only if its view had already loaded it) and, should rendering still
raise, falls back to a fixed page.
"""

from __future__ import annotations

import logging
import re

from flask import Flask, Response, current_app, g, render_template, request
from flask.globals import request_ctx
from werkzeug.exceptions import HTTPException, InternalServerError

from web.i18n import N_

log = logging.getLogger("broker.web")

_STORE_PATH = re.compile(r"^/s/([a-z0-9][a-z0-9-]{0,63})(?:/|$)")

# Marked for the catalogs (web/i18n.py): a store's error page is in the customer's language.
TITLES = {
    400: (N_("This request did not work"), N_("Something in it was not as we expected. Go back, reload the page and try again.")),
    403: (N_("You cannot open this page"), N_("This page needs a key you do not hold here.")),
    404: (N_("We cannot find that page"), N_("The address may be mistyped, or the page is gone.")),
    405: (N_("This page cannot do that"), N_("Go back and try again from the page's own links and buttons.")),
    409: (N_("That changed meanwhile"), N_("Someone else changed it at the same time. Reload the page and try again.")),
    413: (N_("That is too large"), N_("Send less at once.")),
    429: (N_("Too many tries"), N_("You have sent this too often in a short time. Wait a minute, then try again.")),
    500: (N_("Something went wrong on our side"), N_("Nothing was changed by the request that failed. Please try again in a moment.")),
    503: (N_("We are busy"), N_("Please try again in a moment.")),
}

FALLBACK = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<title>Something went wrong</title></head><body><main><h1>Something went wrong on our side</h1>"
            "<p>Please try again in a moment.</p><p><a href=\"/\">Home</a></p></main></body></html>")


FOREIGN_HOST = "This address is not served here.\n"


def init_app(app: Flask) -> None:
    """Call after the API is set up: its HTTP-exception handling hands pages here."""
    app.extensions["broker_error_page"] = error_page
    app.register_error_handler(InternalServerError, _internal_error)


def _internal_error(error: InternalServerError) -> Response:
    if request.path.startswith(("/api/", "/webhooks/")):
        from api import problems

        return problems.internal_error(error.original_exception or error)
    return error_page(error)


def error_page(error: HTTPException) -> Response:
    """The page for `error`, with its status and headers (Retry-After, Allow)."""
    code = error.code or 500
    if request_ctx.url_adapter is None:
        # A Host Broker does not answer for (web/hosts.py): no URL can be built
        # for it, so no page of ours, and nothing failed that a log should show.
        response = Response(FOREIGN_HOST, status=code, mimetype="text/plain")
        response.headers["Cache-Control"] = "no-store"
        return response
    try:
        response = _render(error, code)
    except Exception:  # the error page itself failed: never a second traceback to the customer
        log.exception("the error page for %s failed", code)
        response = Response(FALLBACK, status=code, mimetype="text/html")
    for name, value in error.get_headers():
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
    response.headers["Cache-Control"] = "no-store"
    return response


def _render(error: HTTPException, code: int) -> Response:
    title, message = TITLES.get(code, (error.name, ""))
    # Our own words for the page; a view's description says what went wrong for this request.
    detail = error.description if code in (400, 403, 409, 422) and error.description else None
    store = _store(code)
    if store is not None:
        from web import storefront

        g.store = store  # the store's templates and url_for(slug) read it
        from web import i18n

        i18n.restart()  # the store's language, now that the store is known
        title, message = i18n.gettext(title), i18n.gettext(message) if message else message
        response = Response(render_template(
            "store/error.html", code=code, title=title, message=message, detail=detail,
            store_style=storefront.store_style(store), cart_param=_cart_param(), cart_count=0),
            status=code, mimetype="text/html")
        response.headers["Content-Security-Policy"] = storefront.store_csp(
            store, https=current_app.extensions["broker"].settings.https)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
    return Response(render_template("error.html", code=code, title=title, message=message, detail=detail),
                    status=code, mimetype="text/html")


def _store(code: int):
    """The store whose pages this request is in, or None. Read from the database
    only for an error that is not the server's own (404 of an unknown path
    under a store, 429)."""
    if "store" in g:
        return g.store
    found = _STORE_PATH.match(request.path)
    if found is None or code >= 500:
        return None
    from broker.errors import NotFound
    from broker.storefront import services as shop

    try:
        return shop.store(current_app.extensions["broker"], found.group(1))
    except NotFound:
        return None


def _cart_param() -> str:
    from broker.storefront import services as shop

    try:
        return shop.format_cart(shop.parse_cart(request.values.get("cart")))
    except Exception:  # a cart that does not parse is no reason to fail the error page
        return ""
