"""The customer's pages in the store's language (Flask-Babel, gettext catalogs
in web/translations): the storefront, the order page and the personal-request
pages. The retailer portal and the manufacturer console stay English.

Which language a page is in:

1. `?lang=<code>`, the customer's choice from the language control; it is kept
   in every link the page makes (inside an embedding site's iframe a cookie may
   be blocked, so the address carries it) and remembered in a cookie scoped to
   the store's path (or /requests);
2. that cookie;
3. the store's locale (`de_DE`: German), or, on the personal-request pages,
   which have no store, the browser's Accept-Language;
4. English.

Only the supported codes are ever used: anything else in `lang` or the cookie
is as if it were absent, and is never written back into a page.

Money and dates follow the chosen language with the store's territory where
Babel knows that pair (`de` in a `de_DE` store: de_DE; `en` there: en_DE, which
writes "899,00 €"), else the language alone.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlencode

from flask import Flask, Response, current_app, g, has_request_context, request
from flask_babel import Babel

from broker.languages import DEFAULT, LANGUAGES, money_locale, supported


def N_(message: str) -> str:  # noqa: N802 (gettext's name for "extract this, translate it later")
    """Marks a message for `pybabel extract` where it is defined; it is translated where shown."""
    return message


PARAM = "lang"
COOKIE = "broker_lang"
# The labels of an address form's fields (broker/addresses/formats.py builds them
# in English; address.html shows each in the page's language).
_ADDRESS_LABELS = (N_("Street address"), N_("Apartment, suite, building"), N_("Postal code"), N_("ZIP code"),
                   N_("Eircode"), N_("PIN code"), N_("State"), N_("Province"), N_("Prefecture"), N_("County"),
                   N_("Emirate"), N_("Island"), N_("Parish"), N_("Department"), N_("District"), N_("Area"),
                   N_("Oblast"), N_("City"), N_("Town"), N_("Suburb"), N_("Neighbourhood"),
                   N_("Village or township"), N_("Townland"))
# The checkout's commonest errors as broker/ words them, translated where shown
# (`service_message`); a message not among them is shown as broker/ wrote it.
_SERVICE_MESSAGES = (N_("enter your name"), N_("enter an email address, like name@example.com"),
                     N_("Enter the street address"), N_("Enter the city"), N_("Enter the town"),
                     N_("Enter the postal code"), N_("Enter the ZIP code"), N_("Choose the state"),
                     N_("Choose the province"), N_("Choose the prefecture"))
_POSTAL_LIKE = re.compile(r"^Enter an? (postal code|ZIP code) like (\S{1,20})$")
# The blueprints whose pages are the customer's; everything else stays English.
CUSTOMER_BLUEPRINTS = frozenset({"store", "requests"})


def _customer_page() -> bool:
    """A page of the storefront or the requests, or an error page inside a store."""
    return has_request_context() and (request.blueprint in CUSTOMER_BLUEPRINTS or g.get("store") is not None)


def gettext(message: str, **values) -> str:
    """`message` in this page's language, `values` put in (a `%(name)s` each)."""
    from flask_babel import gettext as translate

    return translate(message, **values)


def service_message(message: str) -> str:
    """An error a service wrote (in English), in the page's language where the
    catalogs have it; else as written."""
    found = _POSTAL_LIKE.match(message)
    if found:
        template = (N_("Enter a postal code like %(example)s") if found.group(1) == "postal code"
                    else N_("Enter a ZIP code like %(example)s"))
        return gettext(template, example=found.group(2))
    return gettext(message) if message in _SERVICE_MESSAGES else message


def weekday_time(moment) -> str:
    """"Mon 09:00" as the page's language writes it ("Mo. 09:00", "月 09:00"), in the moment's own time zone."""
    from babel.dates import format_datetime

    return format_datetime(moment, "EEE HH:mm", tzinfo=moment.tzinfo, locale=current_locale())


def restart() -> None:
    """Choose the language again (the store became known late: an error page)."""
    from flask_babel import refresh

    g.pop("language", None)
    refresh()


def asked_language() -> str | None:
    """The language this request names itself (its `lang`, else the cookie), or None."""
    return supported(request.args.get(PARAM)) or supported(request.cookies.get(COOKIE))


def kept_language() -> str | None:
    """The `lang` to keep in the links this page makes: only one the address carried."""
    return supported(request.args.get(PARAM))


def store_language(locale: str | None) -> str:
    return supported(locale) or DEFAULT


def current_language() -> str:
    """The language of this request's page (see the module's docstring)."""
    if "language" in g:
        return g.language
    language = DEFAULT
    if _customer_page():
        language = asked_language() or _default_language()
    g.language = language
    return language


def _default_language() -> str:
    store = g.get("store")
    if store is not None:
        return store_language(store.locale)
    if request.blueprint == "requests":
        return request.accept_languages.best_match(list(LANGUAGES), default=DEFAULT) or DEFAULT
    return DEFAULT


def current_locale() -> str:
    """The locale of this request's money and dates."""
    store = g.get("store")
    return money_locale(current_language(), store.locale if store is not None else None)


def _select_locale() -> str:
    return current_language()


def language_links() -> list[dict]:
    """The language control: each language, its name in itself, and this page in it."""
    current = current_language()
    if request.method == "GET" or (request.url_rule and "GET" in (request.url_rule.methods or ())):
        path = request.script_root + quote(request.path, safe="/:@!$&'()*+,;=-._~")
        kept = [(k, v) for k, v in request.args.items(multi=True) if k != PARAM] if request.method == "GET" else []
    else:  # a POST's answer (a form with errors) at an address that only takes POSTs
        path, kept = request.script_root + "/", []
    return [{"code": code, "name": name, "current": code == current,
             "url": f"{path}?{urlencode([*kept, (PARAM, code)])}"} for code, name in LANGUAGES.items()]


def _remember(response: Response) -> Response:
    """A `lang` chosen in the address is remembered, in a cookie for the store's
    path (or /requests): the next page without `lang` is in it too."""
    if not _customer_page():
        return response
    # The page's language may come from the cookie: a shared cache keeps one copy per cookie.
    # (Appended to the header as it is: `response.vary` parses it into a set and
    # writes it back, a twentieth of a cached catalog page's time.)
    vary = response.headers.get("Vary")
    if not vary:
        response.headers["Vary"] = "Cookie"
    elif "cookie" not in (token.strip().lower() for token in vary.split(",")):
        response.headers["Vary"] = f"{vary}, Cookie"
    chosen = kept_language()
    if not chosen or request.cookies.get(COOKIE) == chosen:
        return response
    store = g.get("store")
    path = f"/s/{store.slug}/" if store is not None else "/requests/"
    embedded = bool(g.get("embedded"))
    secure = embedded or current_app.extensions["broker"].settings.cookies_secure
    response.set_cookie(COOKIE, chosen, max_age=365 * 24 * 3600, path=path, httponly=True, secure=secure,
                        samesite="None" if embedded else "Lax", partitioned=embedded)
    # A page that sets a cookie is nobody else's to keep.
    if "public" in response.headers.get("Cache-Control", ""):
        response.headers["Cache-Control"] = "private, no-cache"
    return response


def _template_values() -> dict:
    if not _customer_page():
        return {}
    return {"page_language": current_language(), "money_locale": current_locale(), "language_links": language_links,
            "kept_language": kept_language()}


# Not made links to a page: the checkout's script cuts the country off this URL's end.
_NO_LANG = frozenset({"store.address_format", "store.embed_js"})


def _keep_in_links(endpoint: str, values: dict) -> None:
    """A `lang` the address carried goes on in every link to the customer's pages."""
    if endpoint.split(".")[0] not in CUSTOMER_BLUEPRINTS or endpoint in _NO_LANG or not has_request_context():
        return
    chosen = kept_language()
    if chosen:
        values.setdefault(PARAM, chosen)


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", "translations")
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT)
    Babel(app, locale_selector=_select_locale)
    # Multi-line {% trans %} blocks read as one line, as `pybabel extract` (babel.cfg) reads them.
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    app.context_processor(_template_values)
    # Python's gettext for what a template hands to Python (order_totals' labels).
    app.jinja_env.globals.update(translate_text=gettext)
    app.jinja_env.filters["weekday_time"] = weekday_time
    app.after_request(_remember)
    app.url_defaults(_keep_in_links)
