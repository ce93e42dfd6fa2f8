"""The storefront under /s/<slug>/: the manufacturer's brand, its catalog, a cart,
checkout, and the order-status page reached by its unguessable link.

Server-rendered; the only JavaScript is vendored (`static/store.js`: tell an
embedding page our height). The cart lives in the URL, so the shop works inside
a cross-site iframe, where browsers block cookies. The order's link is exchanged
for a cookie scoped to the order (web/capability.py), partitioned inside the
frame, so the order page's address holds no token.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import json
from decimal import Decimal

from flask import Blueprint, Response, abort, current_app, g, redirect, render_template, request, url_for
from markupsafe import Markup

from broker.accounts.models import Manufacturer
from broker.auth import ANONYMOUS
from broker.catalog.services import storefront_catalog
from broker.errors import BrokerError, Conflict, Invalid, NotFound
from broker.grammar import image_url_or_none, origins_or_none
from broker.money import exponent
from broker.orders import delivered, pricing
from broker.orders import services as orders
from broker.orders.models import Delivery, OrderStatus
from broker.pagination import PageRequest
from broker.personal import services as personal
from broker.privacy import erasure, export
from broker.reputation import services as reputation
from broker.returns import services as returns
from broker.storefront import contrast
from broker.storefront import services as shop
from broker.urls import origin_for
from web import capability, formkeys, i18n, order_page
from web.i18n import N_
from web.links import external_url

bp = Blueprint("store", __name__, url_prefix="/s/<slug>", template_folder="templates")


def _ctx():
    return current_app.extensions["broker"]


# The pages every visitor sees alike (the cart is in their URL, hence in the key),
# kept rendered in each process for BROKER_STOREFRONT_CACHE_SECONDS
# (broker/storefront/cache.py). In another process than the one that changed it, a
# price on them may be that many seconds old: the cart and checkout never read a
# cached page, they price every line from the database (shop.price_cart, and
# orders.place_order for the order itself). The host is not in the key: these
# pages link with relative URLs only, so a store's custom domain gets the same page.
CACHED_PAGES = frozenset({"store.catalog", "store.product"})


@dataclasses.dataclass(frozen=True)
class CachedPage:
    store: Manufacturer  # as read for the page: its headers need it (frame-ancestors, the style's hash)
    body: bytes
    etag: str


@bp.url_value_preprocessor
def _load_store(endpoint, values):
    slug = values.pop("slug")
    g.embedded = request.args.get("embed") == "1"
    # A search's results are not kept: every visitor's words would be a page of its own.
    if endpoint in CACHED_PAGES and not _search_query():
        pages = _ctx().pages()
        where = values["sku"] if endpoint == "store.product" else _page_number()
        # The language too: the page is in it, and its links keep a `lang` the address gave.
        g.page_key = (endpoint, slug, where, shop.format_cart(_cart()), g.embedded, i18n.asked_language(),
                      i18n.kept_language())
        cached = pages.get(g.page_key)
        if cached is not None:  # no database at all: the store comes with its page
            g.store, g.cached_page = cached.store, cached
            return
        g.page_fill = pages.begin()  # before the store is read: see PageCache.put
    try:
        g.store = shop.store(_ctx(), slug)
    except NotFound:
        abort(404)


@bp.url_defaults
def _add_slug(endpoint, values):
    if "store" in g:
        values.setdefault("slug", g.store.slug)
    if g.get("embedded"):
        values.setdefault("embed", "1")


@bp.after_request
def _security_headers(response: Response) -> Response:
    """Only the manufacturer's own origins may frame the store; no third-party
    script, style, frame or tracker can load. (`Referrer-Policy` and `nosniff` are
    every page's, set app-wide in web/security.py without overwriting a view's
    own: a redirect to a token's URL says `no-referrer`.)"""
    if "store" not in g:
        return response
    response.headers["Content-Security-Policy"] = store_csp(g.store, https=_ctx().settings.https,
                                                            stripe=bool(g.get("stripe_page")))
    return response


def _frame_ancestors(store: Manufacturer) -> list[str]:
    """The store's embedding origins, parsed again and serialised: a value stored
    before the grammar was enforced (`https://x; report-uri ...`) is dropped, never
    copied into the header."""
    return list(_parsed_origins(_stored_origins(store)))


def _stored_origins(store: Manufacturer) -> tuple[str, ...]:
    """The stored list's strings, as a key (only a string can be an origin; a
    value put in the column by hand may be anything JSON holds)."""
    stored = store.frame_origins
    return tuple(v for v in stored if isinstance(v, str)) if isinstance(stored, (list, tuple)) else ()


@functools.lru_cache(maxsize=1024)
def _parsed_origins(stored: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(str(origin) for origin in origins_or_none(stored))


def store_csp(store: Manufacturer, *, https: bool, stripe: bool = False) -> str:
    """The storefront's Content-Security-Policy, built from parsed values only.

    Images: https (and http only on a plain-HTTP deployment, where the catalog may
    hold http images). Stripe.js must load from Stripe (its PCI rules forbid
    copying it), so the payment page alone also allows Stripe's own hosts, and
    nothing else. Made once per store's values: every page of a store sends it."""
    return _csp(_stored_origins(store), store.color_primary, store.color_accent, https, stripe)


@functools.lru_cache(maxsize=1024)
def _csp(frame_origins: tuple[str, ...], primary: str, accent: str, https: bool, stripe: bool) -> str:
    images = "'self' https: data:" if https else "'self' https: http: data:"
    stripe_script = " https://js.stripe.com" if stripe else ""
    stripe_more = ("; frame-src https://js.stripe.com https://hooks.stripe.com"
                   "; connect-src 'self' https://api.stripe.com") if stripe else ""
    style = _look(primary, accent)[1]
    ancestors = " ".join(["'self'", *_parsed_origins(frame_origins)])
    return (f"default-src 'self'; img-src {images}; style-src 'self' {style}; "
            f"script-src 'self'{stripe_script}{stripe_more}; form-action 'self'; base-uri 'none'; "
            f"object-src 'none'; frame-ancestors {ancestors}")


@functools.lru_cache(maxsize=1024)
def _look(primary: str, accent: str) -> tuple[Markup, str]:
    """The store's colours as the one inline style its pages carry, and the CSP
    source that allows exactly that text: its hash. Not a nonce: a cached page goes
    to many visitors, and a nonce that repeats protects nothing.

    Beside the two brand colours, the colours that make them readable
    (broker/storefront/contrast.py): the text on each (white or dark, for WCAG
    AA) and each darkened as far as text or a focus ring on white needs."""
    # Parsed again (in `palette`): a value put in the database by hand must not end
    # the <style> element either.
    p = contrast.palette(primary, accent)
    css = Markup(":root {{ --brand: {}; --on-brand: {}; --brand-ink: {}; --accent: {}; --on-accent: {}; "
                 "--accent-ink: {}; }}").format(p.brand, p.on_brand, p.brand_ink, p.accent, p.on_accent,
                                               p.accent_ink)
    digest = base64.b64encode(hashlib.sha256(str(css).encode()).digest()).decode()
    return css, f"'sha256-{digest}'"


@bp.app_template_filter("image_src")
def _image_src(url: str | None) -> str | None:
    """A stored image URL as it may go into a page: parsed and serialised, or None
    when it does not fit (an http image on an HTTPS deployment, a value stored
    before the rules)."""
    return image_url_or_none(url, https_only=_ctx().settings.https)


def store_style(store: Manufacturer) -> Markup:
    """The store's one inline style (its colours); its CSP hash is in `store_csp`."""
    return _look(store.color_primary, store.color_accent)[0]


@bp.context_processor
def _store_style() -> dict:
    return {"store_style": store_style(g.store)} if "store" in g else {}


@bp.app_template_filter("price")
@functools.lru_cache(maxsize=8192)
def _price(amount: int, currency: str, locale: str = "en_US") -> str:
    """Minor units, formatted for the store's currency and locale (Babel).

    Cached: a catalog page formats the same few dozen prices on every request,
    and Babel parses the locale's pattern each time (a fifth of the page's time)."""
    from babel.numbers import format_currency

    return format_currency(Decimal(amount).scaleb(-exponent(currency)), currency, locale=locale)


def _cart() -> dict[str, int]:
    return shop.parse_cart(request.values.get("cart"))


def _page_number() -> int:
    return max(1, request.args.get("page", 1, type=int) or 1)


def _keep(html: str) -> Response:
    """The page just rendered, kept for the next visitors (see CACHED_PAGES)."""
    body = html.encode()
    # The ETag covers the frame-ancestors too: a 304 makes the browser reuse the
    # body it has, under the headers of the 304.
    origins = "\n".join(_frame_ancestors(g.store)).encode()
    page = CachedPage(g.store, body, hashlib.blake2b(body + b"\0" + origins, digest_size=16).hexdigest())
    _ctx().pages().put(g.page_key, g.store.id, page, g.page_fill)
    return _page_response(page)


_HTML = "text/html; charset=utf-8"


def _page_response(page: CachedPage) -> Response:
    """The page, or 304 if the browser has this version. `public`: nothing on it is
    personal (the cart is in the URL); `no-cache`: the browser asks every time (a
    304 is cheap), so a change shows as soon as this server shows it."""
    headers = [("ETag", f'"{page.etag}"'), ("Cache-Control", "public, no-cache")]
    # Asked only when the browser sent one: werkzeug builds an empty set of tags otherwise.
    if "HTTP_IF_NONE_MATCH" in request.environ and request.if_none_match.contains_weak(page.etag):
        return Response(status=304, headers=headers)
    return Response(page.body, content_type=_HTML, headers=headers)


def _search_query() -> str:
    return " ".join(request.args.get("q", "").split())[:100]


@bp.get("/")
def catalog():
    """The store's active products, 48 a page; `?q=` searches their names, SKUs
    and descriptions. :raise 404: no such store."""
    if "cached_page" in g:
        return _page_response(g.cached_page)
    number, query = _page_number(), _search_query()
    found = storefront_catalog(_ctx(), g.store.slug, PageRequest(number, 48), query)
    cart = _cart()
    html = render_template("store/catalog.html", page=found, number=number, cart=cart, query=query,
                           cart_param=shop.format_cart(cart), cart_count=sum(cart.values()))
    return html if query else _keep(html)


@bp.get("/p/<path:sku>")
def product(sku: str):
    """:raise 404: no such store, or no such product on sale there."""
    if "cached_page" in g:
        return _page_response(g.cached_page)
    try:
        _, item = shop.product(_ctx(), g.store.slug, sku)
    except NotFound:
        abort(404)
    cart = _cart()
    return _keep(render_template("store/product.html", item=item, cart_param=shop.format_cart(cart),
                                 cart_count=sum(cart.values())))


@bp.get("/cart")
def cart():
    """Add (`add`, `qty`) or change (`set_<sku>`) lines; the cart comes back in the URL."""
    items = _cart()
    add = request.args.get("add")
    if add:
        qty = request.args.get("qty", 1, type=int) or 1
        items[add] = max(1, min(999, items.get(add, 0) + qty))
    for key, value in request.args.items():
        if key.startswith("set_"):
            sku = key[4:]
            qty = int(value) if value.isdigit() else 0
            if qty <= 0:
                items.pop(sku, None)
            else:
                items[sku] = min(999, qty)
    priced = shop.price_cart(_ctx(), g.store.slug, items)
    return render_template("store/cart.html", cart=priced, cart_param=shop.format_cart(items),
                           cart_count=priced.count, options=_checkout_options(priced))


CHECKOUT_FIELDS = ("name", "email", "line1", "line2", "city", "city_area", "region", "postal_code", "country",
                   "delivery", "shipping_method", "lat", "lon")


# --- shipping and tax at checkout (store/_shipping_choice.html, store/_totals.html) ---

def _checkout_options(priced) -> pricing.CheckoutOptions:
    """The shipping methods on offer with this cart's charge for each, and whether
    the store's prices include tax."""
    return pricing.checkout_options(_ctx(), g.store.slug, goods=priced.total, items=priced.count)


def _shipping_method(form: dict) -> str | None:
    """The method chosen; none for a pickup (nothing is shipped)."""
    return None if form.get("delivery") == "pickup" else (form.get("shipping_method") or None)


def _point(form: dict) -> tuple[float | None, float | None]:
    """The customer's device's point (store/_locate.html), when both halves are
    numbers in range; anything else is as if not given."""
    try:
        lat, lon = float(form.get("lat") or "x"), float(form.get("lon") or "x")
    except ValueError:
        return None, None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None, None
    return round(lat, 5), round(lon, 5)


def _unplaced(errors: dict) -> bool:
    """The address could not be placed on the map: offer the device's location."""
    return any("use your location" in message for messages in errors.values() for message in messages)

# --- end of shipping and tax at checkout ---


def _store_country(store: Manufacturer) -> str:
    """The country a checkout's address starts in: the store's locale's territory
    (en_GB: GB; a bare `de`: its likeliest, DE), else the US."""
    from babel import Locale, UnknownLocaleError
    from babel.core import get_global

    try:
        locale = Locale.parse(store.locale or "en_US")
    except (ValueError, UnknownLocaleError):
        return "US"
    if locale.territory:
        return locale.territory
    likely = get_global("likely_subtags").get(locale.language, "")
    territory = likely.split("_")[-1] if likely else ""
    return territory if len(territory) == 2 and territory.isalpha() else "US"


@bp.route("/checkout", methods=["GET", "POST"])
def checkout():
    """The checkout form, with the order's summary; placing the order redirects
    (post/redirect/get, once per form: web/formkeys.py). Every wrong field comes
    back at once, with a summary at the top that takes the focus."""
    items = _cart()
    priced = shop.price_cart(_ctx(), g.store.slug, items)
    if request.method == "POST":
        form = {k: request.form.get(k, "").strip()[:400] for k in CHECKOUT_FIELDS}
    else:
        form = {"country": _store_country(g.store), "delivery": "ship"}
    errors: dict[str, list[str]] = {}
    once = formkeys.sent(f"checkout:{g.store.slug}")
    if request.method == "POST" and request.form.get("action") == "country":
        pass  # the no-script way to re-shape the address for another country: nothing is checked yet
    elif request.method == "POST":
        try:
            formkeys.check_unused(_ctx(), once)
        except formkeys.AlreadyDone as done:  # a reload or a second click: the first's answer
            return _placed(done.result)
        if request.form.get("payment") != "test-approve" and not _ctx().settings.stripe_secret_key:
            errors["payment"] = [i18n.gettext("Choose the test payment to continue.")]
        cmd = orders.PlaceOrder(
            # Every line the cart holds, the unavailable ones too: the service names them.
            items=[orders.Item(sku, qty) for sku, qty in items.items()],
            customer=orders.Customer(form["name"], form["email"]),
            ship_to=orders.Address(form["line1"], form["city"], form["postal_code"], form["country"],
                                   line2=form["line2"], region=form["region"], city_area=form["city_area"],
                                   lat=_point(form)[0], lon=_point(form)[1]),
            delivery=Delivery.PICKUP if form.get("delivery") == "pickup" else Delivery.SHIP,
            shipping_method=_shipping_method(form),
            language=i18n.current_language(),  # the customer's emails are written in it
        )
        try:
            if errors:  # not placed: the service only checks the rest, so every error shows at once
                orders.check_order(_ctx(), g.store.slug, cmd)
            else:
                placed = orders.place_order(_ctx(), g.store.slug, cmd, once=once)
        except formkeys.AlreadyDone as done:  # the same, sent while the first was at work
            return _placed(done.result)
        except Invalid as exc:
            for key, messages in exc.errors.items():
                errors.setdefault(_field(key), []).extend(i18n.service_message(m) for m in messages)
        except BrokerError as exc:
            errors = {"payment": [exc.detail]}
        else:
            if not errors:
                return _placed({"order_id": placed.order.id, "token": placed.access_token,
                                "pickup_code": placed.pickup_code, "client_secret": placed.client_secret})
    status = 422 if errors else 200
    totals, totals_note = _checkout_totals(priced, form)
    return render_template("store/checkout.html", cart=priced, cart_param=shop.format_cart(items),
                           totals=totals, totals_note=totals_note,
                           cart_count=priced.count, form=form, errors=errors, summary=_error_summary(errors, form),
                           test_mode=_ctx().payments.test_mode, options=_checkout_options(priced),
                           locate=_unplaced(errors), card_next=bool(_ctx().settings.stripe_secret_key)), status


def _checkout_totals(cart, form: dict) -> tuple[list, str]:
    """The order's subtotal, shipping, tax and total for the address so far, as
    placing it would work them out; or no lines, and why not yet."""
    from broker.addresses import PostalAddress, check_address
    from broker.orders.totals import order_totals

    if not cart.lines:
        return [], ""
    not_yet = i18n.gettext("Tax and the total show once your address is complete.")
    try:
        to = check_address(PostalAddress(country=form.get("country", ""), region=form.get("region", ""),
                                         postal_code=form.get("postal_code", ""), city=form.get("city", "")),
                           field="ship_to", street=False)
    except Invalid:
        return [], not_yet
    if not shop.tax_knowable(to):
        return [], not_yet
    try:
        priced = shop.quote_cart(_ctx(), cart, delivery=Delivery.PICKUP if form.get("delivery") == "pickup"
                            else Delivery.SHIP, method_code=_shipping_method(form), to=to)
    except Invalid as exc:
        messages = [m for ms in exc.errors.values() for m in ms] or [exc.detail]
        return [], i18n.service_message(messages[0])
    except BrokerError:
        return [], i18n.gettext("The tax could not be worked out just now: it is added when you place the order.")
    method = priced.method
    quoted = _Quoted(currency=cart.maker.currency, subtotal=priced.subtotal, shipping=priced.shipping,
                     tax=priced.tax, tax_included=priced.tax_included, total=priced.total,
                     tax_jurisdiction=priced.jurisdiction, tax_rate=priced.rate,
                     shipping_method=method.code if method else None,
                     shipping_method_name=method.name if method else None)
    return order_totals(quoted, i18n.current_locale(), translate=i18n.gettext), ""


@dataclasses.dataclass(frozen=True)
class _Quoted:
    """A priced cart with an order's money fields, for `order_totals`."""

    currency: str
    subtotal: int
    shipping: int
    tax: int
    tax_included: bool
    total: int
    tax_jurisdiction: str
    tax_rate: int | None
    shipping_method: str | None
    shipping_method_name: str | None


@bp.post("/checkout/total")
def checkout_total():
    """The checkout form's subtotal, shipping, tax and total for what it holds so
    far, as JSON for the page's script: {"lines": [{"label", "amount", "total"}],
    "note"}. Nothing is placed or kept."""
    items = _cart()
    cart = shop.price_cart(_ctx(), g.store.slug, items)
    form = {k: request.form.get(k, "").strip()[:400] for k in CHECKOUT_FIELDS}
    totals, note = _checkout_totals(cart, form)
    body = {"lines": [{"label": t.label, "amount": t.amount, "total": t.total} for t in totals], "note": note}
    return Response(json.dumps(body, ensure_ascii=False), mimetype="application/json",
                    headers={"Cache-Control": "no-store"})


@bp.get("/address-format/<country>")
def address_format(country: str):
    """A country's address form as JSON (as GET /api/v1/address-formats/<country>),
    under the store's own address, which a store's custom domain also answers.
    :raise 404: no such country."""
    from broker.addresses import address_form

    found = address_form(country, locale=i18n.current_language())
    if found is None:
        abort(404)
    described = dataclasses.asdict(found)
    for field in described["fields"]:  # labels in the page's language (`?lang=`, as the page's script asks)
        field["label"] = i18n.gettext(field["label"])
    return Response(json.dumps(described, ensure_ascii=False), mimetype="application/json",
                    headers={"Cache-Control": "public, max-age=3600"})


# Where each error of the summary links to, and what it is called there.
_LABELS = {"cart": ("order-summary", N_("Your order")), "name": ("name", N_("Full name")),
           "email": ("email", N_("Email")), "country": ("country", N_("Country")),
           "payment": ("payment-choice", N_("Payment")), "delivery": ("delivery-ship", N_("Delivery"))}
# Named by their field's name, capitalised (below): in the catalogs too.
_OTHER_LABELS = (N_("Shipping method"), N_("Lat"), N_("Lon"))


def _error_summary(errors: dict[str, list[str]], form: dict) -> list[tuple[str, str, str]]:
    """(anchor, label, message) per error, in the form's order."""
    from broker.addresses import address_form

    fmt = address_form(form.get("country") or "US", region=form.get("region")) or address_form("US")
    labels = {**_LABELS, **{f.name: (f.name, f.label) for f in fmt.fields}}
    order = ["cart", "name", "email", "delivery", "country", *(f.name for f in fmt.fields), "payment"]
    rank = {name: i for i, name in enumerate(order)}
    found = []
    for name in sorted(errors, key=lambda n: rank.get(n, len(order))):
        anchor, label = labels.get(name, (name, name.replace("_", " ").capitalize()))
        label = i18n.gettext(label)
        for message in errors[name]:
            found.append((anchor, label, message[:1].upper() + message[1:]))
    return found


# What only the checkout's POST knows and its GET page must show (Stripe's client
# secret for the Payment Element, the pickup code, which is stored only as a
# hash): a cookie scoped to the order, like the order's own (web/capability.py).
PLACED = capability.Kind("broker_placed")


def _placed(result: dict | None) -> Response:
    """After checkout, post/redirect/get: the order's page, or the page that
    shows its pickup code, or Stripe's Payment Element. The order's cookie is set
    here, where its token is made, and the redirect goes through the token URL
    (a browser that keeps no cookie still gets there). Stripe sends the browser
    back to the token-free page: the token is not Stripe's to keep in its logs."""
    if not result:
        return redirect(url_for("store.catalog"), code=303)
    order_id, token = result["order_id"], result["token"]
    if result.get("client_secret"):
        # Stripe: the order goes on the board when its webhook says the card is authorised.
        target = "store.pay"
    elif result.get("pickup_code"):
        target = "store.placed"
    else:
        target = "store.order"
    response = redirect(url_for(target, order_id=order_id, token=token, new=1), code=303)
    response.headers["Referrer-Policy"] = "no-referrer"
    scope = _order_scope(order_id)
    capability.remember(response, capability.ORDER, scope, token)
    if target != "store.order":
        capability.remember(response, PLACED, scope, json.dumps(
            {"code": result.get("pickup_code"), "secret": result.get("client_secret")}))
    return response


def _placed_secrets(order_id: int) -> dict:
    """The checkout's pickup code and client secret, from this browser's cookie."""
    try:
        held = json.loads(capability.held(PLACED, _order_scope(order_id)) or "{}")
    except ValueError:
        return {}
    return held if isinstance(held, dict) else {}


@bp.get("/o/<int:order_id>/placed", defaults={"token": None})
@bp.get("/o/<int:order_id>/<token>/placed")
def placed(order_id: int, token: str | None):
    """The pickup code, after checkout (a reload shows it again; the email has it too).
    :raise 404: wrong token. :raise 403: no link, no cookie."""
    link = _order_link(order_id, token)
    view = _own_order(order_id, link.token)
    code = _placed_secrets(order_id).get("code")
    if not code:
        return redirect(link.url_for("store.order", order_id=order_id, new=1), code=303)
    return render_template("store/pickup_code.html", order=view.order, code=code,
                           link=link.url_for("store.order", order_id=order_id, new=1), cart_param="", cart_count=0)


@bp.get("/o/<int:order_id>/pay", defaults={"token": None})
@bp.get("/o/<int:order_id>/<token>/pay")
def pay(order_id: int, token: str | None):
    """Stripe's Payment Element for an order awaiting its card.
    :raise 404: wrong token. :raise 403: no link, no cookie."""
    link = _order_link(order_id, token)
    view = _own_order(order_id, link.token)
    secret = _placed_secrets(order_id).get("secret")
    if view.order.status != OrderStatus.AWAITING_PAYMENT or not secret:
        return redirect(link.url_for("store.order", order_id=order_id, new=1), code=303)
    g.stripe_page = True
    return render_template(
        "store/pay.html", order=view.order, client_secret=secret,
        publishable_key=_ctx().settings.stripe_publishable_key, cart_param="", cart_count=0,
        return_url=external_url("store.order", store=g.store, order_id=order_id, new=1))


def _field(name: str) -> str:
    """The service's field names, as the checkout form names them."""
    if name.startswith("items"):
        return "cart"
    return {"customer.name": "name", "customer.email": "email", "ship_to": "postal_code", "": "cart",
            "ship_to.lat": "postal_code", "ship_to.lon": "postal_code"}.get(name, name.split(".")[-1])


def _order_scope(order_id: int) -> str:
    """The order's token-free path, to which its cookie is scoped: /s/<slug>/o/<id>."""
    return f"/s/{g.store.slug}/o/{order_id}"


def _order_link(order_id: int, token: str | None) -> capability.Capability:
    """The customer's key to the order: its link, exchanged for a cookie (see
    web/capability.py). :raise 404: not this store's order, or not its token.
    :raise 403: a token-free URL without the order's cookie."""
    return capability.require(
        capability.ORDER, _order_scope(order_id), token, check=lambda t: _own_order(order_id, t),
        missing=lambda: (render_template("store/link_needed.html", hours=capability.COOKIE_HOURS, cart_param="",
                                                 cart_count=0), 403))


def _own_order(order_id: int, token: str) -> orders.OrderView:
    """:raise 404: not this store's order, or not its token."""
    try:
        view = orders.get_order(_ctx(), ANONYMOUS, order_id, token)
    except NotFound:
        abort(404)
    if view.order.manufacturer_id != g.store.id:
        abort(404)
    return view


# Each page and action answers on the token-free URL (the cookie) and under the
# token URL: a GET there is the exchange; a POST there comes from the page a
# browser that keeps no cookie was shown.


@bp.get("/o/<int:order_id>", defaults={"token": None})
@bp.get("/o/<int:order_id>/<token>")
def order(order_id: int, token: str | None):
    """:raise 404: wrong token. :raise 403: no link, no cookie."""
    return _order_page(order_id, _order_link(order_id, token))


def _order_page(order_id: int, link: capability.Capability, *, status: int = 200, **more):
    ctx = _ctx()
    try:
        view = orders.get_order(ctx, ANONYMOUS, order_id, link.token)
        log = shop.disclosure_log(ctx, order_id, link.token)
        reviews = reputation.reviews_for_order(ctx, order_id, access_token=link.token)
        thread = personal.messages(ctx, order_id, actor=ANONYMOUS, token=link.token)
    except NotFound:
        abort(404)
    if view.order.manufacturer_id != g.store.id:
        abort(404)
    return render_template("store/order.html", **order_page.values(
        view, token=link.token, now=ctx.now(), locale=i18n.current_locale(), window_days=g.store.return_window_days,
        order_url=lambda action: link.url_for(f"store.{action}", order_id=order_id),
        link=link, log=log, reviews=reviews, thread=thread, **more)), status


@bp.route("/o/<int:order_id>/cancel", defaults={"token": None}, methods=["GET", "POST"])
@bp.route("/o/<int:order_id>/<token>/cancel", methods=["GET", "POST"])
def cancel(order_id: int, token: str | None):
    """Cancel the order: a confirmation page, then the cancellation (its hold released).
    :raise 404: wrong token. :raise 403: no link, no cookie."""
    link = _order_link(order_id, token)
    view = _own_order(order_id, link.token)
    if request.method == "GET":
        return render_template("store/cancel.html", view=view, link=link, error=None, cart_param="", cart_count=0)
    try:
        orders.cancel_order(_ctx(), order_id, link.token, once=formkeys.sent(f"cancel:order:{order_id}"))
    except formkeys.AlreadyDone:
        pass  # a second click: the first cancelled it
    except NotFound:
        abort(404)
    except Conflict as exc:
        return render_template("store/cancel.html", view=view, link=link, error=exc.detail, cart_param="",
                               cart_count=0), 409
    return redirect(link.url_for("store.order", order_id=order_id, done="cancelled"), code=303)


@bp.post("/o/<int:order_id>/review", defaults={"token": None})
@bp.post("/o/<int:order_id>/<token>/review")
def review(order_id: int, token: str | None):
    link = _order_link(order_id, token)
    try:
        rating = int(request.form.get("rating", "0"))
        reputation.review_as_customer(_ctx(), order_id, link.token, rating, request.form.get("comment", ""),
                                      once=formkeys.sent(f"review:order:{order_id}"))
    except formkeys.AlreadyDone:
        pass  # a reload or a second click: the first is saved
    except ValueError:
        return _order_page(order_id, link, error=i18n.gettext("Choose 1 to 5 stars."), status=422)
    except NotFound:
        abort(404)
    except BrokerError as exc:
        return _order_page(order_id, link, error=exc.detail, status=exc.status)
    return _done(link, order_id, "reviewed", "#review")


@bp.post("/o/<int:order_id>/delivered", defaults={"token": None})
@bp.post("/o/<int:order_id>/<token>/delivered")
def confirm_delivery(order_id: int, token: str | None):
    """The customer says the order arrived; the review form opens."""
    link = _order_link(order_id, token)
    try:
        delivered.confirm_delivery(_ctx(), order_id, link.token)
    except NotFound:
        abort(404)
    except BrokerError as exc:
        return _order_page(order_id, link, error=exc.detail, status=exc.status)
    return _done(link, order_id, "delivered", "#review")


def _done(link: capability.Capability, order_id: int, what: str, anchor: str = "") -> Response:
    """Post/redirect/get: the order page, with what just happened."""
    return redirect(link.url_for("store.order", order_id=order_id, done=what) + anchor, code=303)


@bp.post("/o/<int:order_id>/message", defaults={"token": None})
@bp.post("/o/<int:order_id>/<token>/message")
def message(order_id: int, token: str | None):
    """Write to the store that has the order, through the relay.

    :raise 404: wrong token. :raise 409: no store has the order now. :raise 422: blank or too long."""
    link = _order_link(order_id, token)
    try:
        personal.send_message(_ctx(), order_id, request.form.get("body", ""), actor=ANONYMOUS, token=link.token,
                              once=formkeys.sent(f"message:order:{order_id}"))
    except formkeys.AlreadyDone:
        pass  # a reload or a second click: the first is sent
    except NotFound:
        abort(404)
    except Invalid as exc:
        return _order_page(order_id, link, message_error=" ".join(exc.errors.get("body", [exc.detail])), status=422)
    except BrokerError as exc:
        return _order_page(order_id, link, message_error=exc.detail, status=exc.status)
    return _done(link, order_id, "message", "#messages")


@bp.post("/o/<int:order_id>/return", defaults={"token": None})
@bp.post("/o/<int:order_id>/<token>/return")
def return_request(order_id: int, token: str | None):
    """Ask to send it back, with a reason (a choice and the customer's words).

    :raise 404: wrong token. :raise 409: not returnable now. :raise 422: no reason."""
    link = _order_link(order_id, token)
    form = {"reason_kind": request.form.get("reason_kind", ""), "reason": request.form.get("reason", "")}
    try:
        reason = returns.reason_text(form["reason_kind"], form["reason"])
        returns.request_return(_ctx(), order_id, link.token, reason, once=formkeys.sent(f"return:order:{order_id}"))
    except formkeys.AlreadyDone:
        pass  # a reload or a second click: the first is sent
    except NotFound:
        abort(404)
    except Invalid as exc:
        return _order_page(order_id, link, return_errors=exc.errors or {"reason": [exc.detail]}, form=form,
                           status=422)
    except BrokerError as exc:
        return _order_page(order_id, link, error=exc.detail, status=exc.status)
    return _done(link, order_id, "return", "#returns")


# --- the customer's data: download and erase (the same key, as above) ----------


def _attachment(data: dict, filename: str) -> Response:
    """JSON to save, never cached on the way (it is the customer's personal data)."""
    return Response(json.dumps(data, indent=2, ensure_ascii=False), mimetype="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"',
                             "Cache-Control": "no-store"})


@bp.get("/o/<int:order_id>/data", defaults={"token": None})
@bp.get("/o/<int:order_id>/<token>/data")
def my_data(order_id: int, token: str | None):
    """Everything Broker holds about the customer for this order, as a JSON download."""
    link = _order_link(order_id, token)
    _own_order(order_id, link.token)
    try:
        data = export.export_order(_ctx(), order_id, link.token)
    except NotFound:
        abort(404)
    return _attachment(data, f"order-{order_id}-my-data.json")


@bp.route("/o/<int:order_id>/erase", defaults={"token": None}, methods=["GET", "POST"])
@bp.route("/o/<int:order_id>/<token>/erase", methods=["GET", "POST"])
def erase(order_id: int, token: str | None):
    """Erase my data: a confirmation page, then the erasure (an order in flight is
    cancelled and its hold released first)."""
    link = _order_link(order_id, token)
    view = _own_order(order_id, link.token)
    if view.order.erased_at is not None:
        return redirect(link.url_for("store.order", order_id=order_id), code=303)
    if request.method == "GET":
        return render_template("store/erase.html", view=view, link=link, error=None)
    if request.form.get("confirm") != "yes":
        return render_template("store/erase.html", view=view, link=link,
                               error=i18n.gettext("Tick the box to confirm that you want your data erased.")), 422
    try:
        erasure.erase_order(_ctx(), order_id, link.token)
    except NotFound:
        abort(404)
    except BrokerError as exc:
        return render_template("store/erase.html", view=view, link=link, error=exc.detail), exc.status
    return redirect(link.url_for("store.order", order_id=order_id), code=303)


@bp.get("/embed.js")
def embed_js():
    """`<script src=".../s/<slug>/embed.js" data-store="<slug>"></script>` mounts the
    store in an iframe that grows to its content. Publicly cacheable, so nothing
    in it comes from the request: the frame's address and origin are the store's
    verified domain or BROKER_PUBLIC_URL."""
    src = external_url("store.catalog", store=g.store, embed="1")
    origin = str(origin_for(_ctx().settings, g.store))
    body = render_template("store/embed.js", src=src, origin=origin)
    return Response(body, mimetype="text/javascript", headers={"Cache-Control": "public, max-age=300"})
