"""The customer's pages for personal requests: post one, follow it, accept an
offer. The request's link (id and token) is the customer's key: there is no
account. The link is exchanged for a cookie scoped to the request
(web/capability.py), so the page's address holds no token; forms carry a CSRF
token bound to that cookie."""

from __future__ import annotations

import functools
import json
from datetime import timedelta

from flask import Blueprint, Response, abort, current_app, make_response, redirect, render_template, request, url_for

from broker.addresses.formats import countries
from broker.auth import ANONYMOUS
from broker.email_address import email_address
from broker.errors import BrokerError, Invalid, NotFound
from broker.geo.geocoding import LocationQuery
from broker.money import CURRENCIES, MAX_AMOUNT, amount_examples, format_money, parse_amount
from broker.orders import delivered
from broker.orders import services as orders
from broker.personal import services
from broker.personal import services as personal
from broker.privacy import erasure, export
from broker.reputation import services as reputation
from broker.returns import services as returns
from broker.storefront import services as shop
from web import capability, formkeys, i18n, order_page
from web.i18n import N_, gettext

bp = Blueprint("requests", __name__, url_prefix="/requests", template_folder="templates")

EXPIRY_DAYS = (1, 3, 7, 14, 30)
# The currencies most requests are in, offered first; the rest follow by code.
COMMON_CURRENCIES = ("USD", "EUR", "GBP", "CAD", "AUD", "JPY", "CHF", "SEK", "NOK", "DKK", "NZD", "MXN")
LABELS = {"description": N_("What do you want?"), "quantity": N_("How many"), "max_price": N_("The most you will pay"),
          "currency": N_("Currency"), "name": N_("Name"), "line1": N_("Street address"),
          "line2": N_("Apartment, floor (optional)"), "city": N_("City"), "postal_code": N_("Postal code"),
          "country": N_("Country"), "contact": N_("Email for notices (optional)"), "payment": N_("Payment"),
          "form": ""}
FIELDS = ("description", "quantity", "max_price", "currency", "prefer", "days", "name", "line1", "line2", "city",
          "city_area", "region", "postal_code", "country", "contact", "payment")
STATUS_WORDS = {"awaiting_payment": N_("waiting for your card"), "open": N_("open for offers"),
                "awarded": N_("an offer won: it is your order now"), "expired": N_("expired without an offer"),
                "cancelled": N_("withdrawn")}
DONE = {"withdrawn": N_("Your request is withdrawn and the hold on your card released."),
        "accepted": N_("You accepted the offer: it is your order now, and the shop is told to ship it.")}
# What only the POST that posted a request knows and the payment page needs:
# Stripe's client secret, kept in a cookie scoped to the request (web/capability.py).
TO_PAY = capability.Kind("broker_request_pay")


def _done_text(what: str | None) -> str | None:
    return gettext(DONE[what]) if what in DONE else None


def _ctx():
    return current_app.extensions["broker"]


@functools.lru_cache(maxsize=8)
def _currencies(language: str = "en") -> dict[str, list[tuple[str, str]]]:
    """The currencies to choose from, each named in the page's language."""
    from babel.numbers import get_currency_name

    common = [c for c in COMMON_CURRENCIES if c in CURRENCIES]
    named = lambda codes: [(c, get_currency_name(c, locale=language)) for c in codes]  # noqa: E731
    return {"common": named(common), "rest": named(sorted(CURRENCIES - set(common)))}


@functools.lru_cache(maxsize=1)
def _country_currencies() -> dict[str, str]:
    """Each country's own currency (Babel's), where Broker takes it: the form's default."""
    from babel.numbers import get_territory_currencies

    found = {}
    for code, _ in countries():
        for currency in get_territory_currencies(code, tender=True):
            if currency in CURRENCIES:
                found[code] = currency
                break
    return found


def _render_new(form: dict, errors: dict, status: int = 200):
    from broker.addresses import address_form

    currency = form.get("currency") if form.get("currency") in CURRENCIES else "USD"
    # The address is the country's form (address.html), as at checkout: its
    # fields' labels name them in the error summary too.
    fmt = address_form(form.get("country") or "US", region=form.get("region") or None) or address_form("US")
    labels = {name: gettext(label) if label else "" for name, label in LABELS.items()}
    labels.update({f.name: gettext(f.label) for f in fmt.fields})
    return render_template(
        "request_new.html", form=form, errors=errors, labels=labels,
        currencies=_currencies(i18n.current_language()), days=EXPIRY_DAYS, countries=countries(i18n.current_language()),
        country_currencies=json.dumps(_country_currencies(), separators=(",", ":")),
        example=amount_examples(currency), offline=not _ctx().settings.stripe_secret_key), status


@bp.get("/new")
def new():
    """The request form; the currency defaults to the country's (`?country=DE`)."""
    country = request.args.get("country", "US").strip().upper()
    country = country if country in dict(countries()) else "US"
    return _render_new({"currency": _country_currencies().get(country, "USD"), "country": country, "quantity": "1",
                        "prefer": "nearest", "days": "7", "payment": "test-approve"}, {})


def _check_form(form: dict) -> tuple[dict[str, list[str]], int, int]:
    """What the page can tell at once, every field together (the service then
    checks the address against its country): errors, quantity, ceiling."""
    errors: dict[str, list[str]] = {}
    if not form["description"].strip():
        errors["description"] = [gettext("say what you want")]
    quantity = int(form["quantity"]) if form["quantity"].strip().isdigit() and len(form["quantity"]) < 7 else 0
    if not 1 <= quantity <= services.MAX_QUANTITY:
        errors["quantity"] = [gettext("a whole number from 1 to %(most)s", most=services.MAX_QUANTITY)]
    currency = form["currency"].strip().upper()
    max_price = 0
    if currency not in CURRENCIES:
        errors["currency"] = [gettext("choose a currency from the list")]
    else:
        try:
            max_price = parse_amount(form["max_price"], currency)
        except ValueError as exc:
            # Too large to hold is said in the currency's own format, like every amount here.
            errors["max_price"] = [str(exc) if "at most" not in str(exc) else _amount_range(currency)]
        else:
            if not 1 <= max_price <= MAX_AMOUNT:
                errors["max_price"] = [_amount_range(currency)]
    for name in ("name", "line1", "city"):
        if not form[name].strip():
            errors[name] = [gettext("required")]
    if form["country"] not in dict(countries()):
        errors["country"] = [gettext("choose a country from the list")]
    if form["contact"].strip():
        try:  # the one email rule (broker/email_address.py), so it shows with the other errors
            email_address(form["contact"], "contact")
        except Invalid:
            errors["contact"] = [gettext("an email address such as you@example.com, or leave it empty")]
    if form["payment"] != "test-approve" and not _ctx().settings.stripe_secret_key:
        errors["payment"] = [gettext("choose the test payment to continue")]
    return errors, quantity, max_price


def _amount_range(currency: str) -> str:
    return gettext("an amount from %(least)s to %(most)s", least=format_money(1, currency),
                   most=format_money(MAX_AMOUNT, currency))


@bp.post("/new")
def create():
    """Post a request and authorise its ceiling; post/redirect/get to its page (or
    to Stripe's Payment Element). A reload or a double click posts it once."""
    form = {name: request.form.get(name, "") for name in FIELDS}
    once = formkeys.sent("request:new")
    try:
        formkeys.check_unused(_ctx(), once)
    except formkeys.AlreadyDone as done:
        return _posted(done.result)
    if request.form.get("action") == "country":
        # Without the page's script: the address form for the country chosen, nothing posted.
        return _render_new(form, {})
    errors, quantity, max_price = _check_form(form)
    if not errors:
        ctx = _ctx()
        days = int(form["days"]) if form["days"] in {str(d) for d in EXPIRY_DAYS} else 7
        cmd = services.PostRequest(
            description=form["description"], quantity=quantity, max_price=max_price,
            currency=form["currency"].strip().upper(),
            location=LocationQuery(form["postal_code"].strip() or None, form["country"].strip() or None,
                                   city=form["city"].strip() or None, region=form["region"].strip() or None),
            ship_to=services.ShipTo(name=form["name"], line1=form["line1"], line2=form["line2"], city=form["city"],
                                    postal_code=form["postal_code"], country=form["country"],
                                    region=form["region"], city_area=form["city_area"]),
            prefer=form["prefer"] if form["prefer"] in ("nearest", "lowest_price") else "nearest",
            contact=form["contact"] or None, expires_at=ctx.now() + timedelta(days=days),
            language=i18n.current_language(),  # its emails are written in it
        )
        try:
            posted = services.post_request(ctx, cmd, once=once)
        except formkeys.AlreadyDone as done:  # the same form, sent while the first was at work
            return _posted(done.result)
        except Invalid as exc:
            errors = {_field(k): v for k, v in exc.errors.items()} or {"form": [exc.detail]}
        except BrokerError as exc:
            errors = {"payment": [exc.detail]}
        else:
            return _posted({"request_id": posted.request.id, "token": posted.access_token,
                            "client_secret": posted.client_secret})
    return _render_new(form, errors, 422)


def _posted(result: dict | None) -> Response:
    """The request's page (or its payment page), through its token URL: the cookie
    is set here, where the token is made; a browser that keeps none still gets there."""
    if not result:
        return redirect(url_for("requests.new"), code=303)
    request_id, token = result["request_id"], result["token"]
    target = "requests.pay" if result.get("client_secret") else "requests.follow"
    response = redirect(url_for(target, request_id=request_id, token=token, new=1), code=303)
    response.headers["Referrer-Policy"] = "no-referrer"
    capability.remember(response, capability.REQUEST, _scope(request_id), token)
    if result.get("client_secret"):
        capability.remember(response, TO_PAY, _scope(request_id), result["client_secret"])
    return response


def _field(name: str) -> str:
    """The service's field names, as the form's inputs are named."""
    return {"location.postal_code": "postal_code", "location.country": "country", "location": "postal_code",
            "location.city": "city", "ship_to.name": "name", "ship_to.line1": "line1", "ship_to.city": "city",
            "ship_to.postal_code": "postal_code", "ship_to.country": "country", "ship_to.region": "region",
            "ship_to.city_area": "city_area", "location.region": "region",
            "ship_to": "postal_code", "expires_at": "form"}.get(name, name)


def _scope(request_id: int) -> str:
    """The request's token-free path, to which its cookie is scoped."""
    return url_for("requests.follow", request_id=request_id)


def _check(request_id: int, token: str) -> services.RequestView:
    """:raise 404: no such request, or not its token."""
    try:
        return services.get_request(_ctx(), request_id, token)
    except BrokerError:
        abort(404)


def _link(request_id: int, token: str | None) -> capability.Capability:
    """The customer's key (see web/capability.py). :raise 404: wrong token.
    :raise 403: a token-free URL without the request's cookie."""
    return capability.require(
        capability.REQUEST, _scope(request_id), token, check=lambda t: _check(request_id, t),
        missing=lambda: (render_template("request_link_needed.html", hours=capability.COOKIE_HOURS), 403))


def _page(view: services.RequestView, link: capability.Capability, *, error: str | None = None, status: int = 200):
    new = request.args.get("new")
    # Posted from the form just now: no email carries this link, so the page shows
    # it once, to keep. In the body, never in the address, so it leaves in no Referer.
    own_link = (_ctx().settings.public_url.rstrip("/")
                + url_for("requests.follow", request_id=view.request.id, token=link.token)) if new else None
    response = make_response(render_template(
        "request_follow.html", view=view, link=link, new=new, error=error, own_link=own_link,
        status_text=gettext(STATUS_WORDS.get(view.request.status, view.request.status)),
        done=_done_text(request.args.get("done"))), status)
    if own_link:
        response.headers["Referrer-Policy"] = "no-referrer"
    return response


# Each page and action answers on the token-free URL (the cookie) and under the
# token URL: a GET there is the exchange; a POST there comes from the page a
# browser that keeps no cookie was shown.


@bp.get("/<int:request_id>", defaults={"token": None})
@bp.get("/<int:request_id>/<token>")
def follow(request_id: int, token: str | None):
    """:raise 404: wrong token. :raise 403: no link, no cookie."""
    link = _link(request_id, token)
    return _page(_check(request_id, link.token), link)


@bp.get("/<int:request_id>/pay", defaults={"token": None})
@bp.get("/<int:request_id>/<token>/pay")
def pay(request_id: int, token: str | None):
    """Stripe's Payment Element for a request awaiting its card.
    :raise 404: wrong token. :raise 403: no link, no cookie."""
    link = _link(request_id, token)
    view = _check(request_id, link.token)
    secret = capability.held(TO_PAY, _scope(request_id))
    if view.request.status != "awaiting_payment" or not secret:
        return redirect(link.url_for("requests.follow", request_id=request_id, new=request.args.get("new")),
                        code=303)
    return render_template("request_pay.html", view=view, client_secret=secret,
                           publishable_key=_ctx().settings.stripe_publishable_key,
                           return_url=_ctx().settings.public_url.rstrip("/")
                           + url_for("requests.follow", request_id=request_id, new=1))


def _confirm(view, link, *, offer=None, error=None, status=200):
    r = view.request
    if offer is not None:
        title, button = gettext("Accept this offer?"), gettext("Yes, accept this offer")
        action = link.url_for("requests.accept", request_id=r.id)
    else:
        title, button = gettext("Withdraw your request?"), gettext("Yes, withdraw my request")
        action = link.url_for("requests.cancel", request_id=r.id)
    return render_template("request_confirm.html", view=view, link=link, offer=offer, title=title, button=button,
                           action=action, error=error), status


@bp.route("/<int:request_id>/accept", defaults={"token": None}, methods=["GET", "POST"])
@bp.route("/<int:request_id>/<token>/accept", methods=["GET", "POST"])
def accept(request_id: int, token: str | None):
    """Accept an offer: a confirmation page (`?bid_id=`), then the award; the
    customer lands on the order it became. :raise 404: not this request's offer."""
    link = _link(request_id, token)
    view = _check(request_id, link.token)
    raw = request.values.get("bid_id", "")
    bid_id = int(raw) if raw.isdigit() and len(raw) < 19 else None
    offer = next((o for o in view.offers if o.bid.id == bid_id), None)
    if request.method == "GET":
        if view.request.status != "open":
            return redirect(link.url_for("requests.follow", request_id=request_id), code=303)
        if offer is None:
            abort(404)
        return _confirm(view, link, offer=offer)
    try:
        if bid_id is None:
            raise NotFound("no such offer")
        services.accept_offer(_ctx(), request_id, link.token, bid_id,
                              once=formkeys.sent(f"accept:request:{request_id}"))
    except formkeys.AlreadyDone:
        pass  # a reload or a second click: the first accepted it
    except NotFound:
        abort(404)
    except BrokerError as exc:
        if offer is None:
            return _page(_check(request_id, link.token), link, error=exc.detail, status=exc.status)
        return _confirm(_check(request_id, link.token), link, offer=offer, error=exc.detail, status=exc.status)
    return redirect(link.url_for("requests.order", request_id=request_id, done="accepted"), code=303)


@bp.route("/<int:request_id>/cancel", defaults={"token": None}, methods=["GET", "POST"])
@bp.route("/<int:request_id>/<token>/cancel", methods=["GET", "POST"])
def cancel(request_id: int, token: str | None):
    """Withdraw the request: a confirmation page, then the withdrawal (the hold released)."""
    link = _link(request_id, token)
    view = _check(request_id, link.token)
    if request.method == "GET":
        if view.request.status not in ("open", "awaiting_payment"):
            return redirect(link.url_for("requests.follow", request_id=request_id), code=303)
        return _confirm(view, link)
    try:
        services.cancel_request(_ctx(), request_id, link.token, once=formkeys.sent(f"cancel:request:{request_id}"))
    except formkeys.AlreadyDone:
        pass
    except NotFound:
        abort(404)
    except BrokerError as exc:
        return _page(_check(request_id, link.token), link, error=exc.detail, status=exc.status)
    return redirect(link.url_for("requests.follow", request_id=request_id, done="withdrawn"), code=303)


# --- the order a request became: the storefront's order page (web/order_page.py) ---


def _order_page(request_id: int, link: capability.Capability, *, status: int = 200, **more):
    ctx = _ctx()
    view = _check(request_id, link.token)
    if view.order is None:
        return redirect(link.url_for("requests.follow", request_id=request_id), code=303)
    order_id = view.order.id
    try:  # the order's token is the request's
        order = orders.get_order(ctx, ANONYMOUS, order_id, link.token)
        log = shop.disclosure_log(ctx, order_id, link.token)
        reviews = reputation.reviews_for_order(ctx, order_id, access_token=link.token)
        thread = personal.messages(ctx, order_id, actor=ANONYMOUS, token=link.token)
    except NotFound:
        abort(404)
    actions = {"confirm_delivery", "review", "message", "return_request"}
    elsewhere = {"my_data": "requests.my_data", "erase": "requests.erase", "cancel": "requests.order_cancel"}

    def order_url(action: str) -> str | None:
        if action in actions:
            return link.url_for("requests.order_action", request_id=request_id, action=action)
        return link.url_for(elsewhere[action], request_id=request_id) if action in elsewhere else None

    done = request.args.get("done")
    values = order_page.values(order, token=link.token, now=ctx.now(), locale=i18n.current_locale(),
                               window_days=view.window_days, order_url=order_url, link=link, log=log, reviews=reviews,
                               thread=thread, request_id=request_id, **more)
    if done in DONE:
        values["done"] = _done_text(done)
    return render_template("request_order.html", **values), status


@bp.get("/<int:request_id>/order", defaults={"token": None})
@bp.get("/<int:request_id>/<token>/order")
def order(request_id: int, token: str | None):
    """The order the request became: tracking, messages, delivery, returns, rating.
    :raise 404: wrong token. :raise 403: no link, no cookie."""
    return _order_page(request_id, _link(request_id, token))


@bp.route("/<int:request_id>/order/cancel", defaults={"token": None}, methods=["GET", "POST"])
@bp.route("/<int:request_id>/<token>/order/cancel", methods=["GET", "POST"])
def order_cancel(request_id: int, token: str | None):
    """Cancel the order the request became, before it ships: a confirmation page,
    then the cancellation (the hold released). :raise 404: wrong token, no order."""
    link = _link(request_id, token)
    view = _check(request_id, link.token)
    if view.order is None:
        abort(404)
    page = dict(view=view, link=link, offer=None, cancelling_order=True, title=gettext("Cancel your order?"),
                button=gettext("Yes, cancel the order"), action=link.url_for("requests.order_cancel", request_id=request_id))
    if request.method == "GET":
        return render_template("request_confirm.html", error=None, **page)
    try:
        orders.cancel_order(_ctx(), view.order.id, link.token, once=formkeys.sent(f"cancel:order:{view.order.id}"))
    except formkeys.AlreadyDone:
        pass  # a second click: the first cancelled it
    except NotFound:
        abort(404)
    except BrokerError as exc:
        return render_template("request_confirm.html", error=exc.detail, **page), exc.status
    return redirect(link.url_for("requests.order", request_id=request_id, done="cancelled"), code=303)


ORDER_DONE = {"message": ("message", "#messages"), "review": ("reviewed", "#review"),
              "confirm_delivery": ("delivered", "#review"), "return_request": ("return", "#returns")}


@bp.post("/<int:request_id>/order/<action>", defaults={"token": None})
@bp.post("/<int:request_id>/<token>/order/<action>")
def order_action(request_id: int, token: str | None, action: str):
    """The order page's actions, as on a storefront order (web/storefront.py).
    :raise 404: wrong token, no order yet, or no such action."""
    link = _link(request_id, token)
    if action not in ORDER_DONE:
        abort(404)
    view = _check(request_id, link.token)
    if view.order is None:
        abort(404)
    ctx, order_id = _ctx(), view.order.id
    once = formkeys.sent(f"{action}:order:{order_id}")
    form = {"reason_kind": request.form.get("reason_kind", ""), "reason": request.form.get("reason", "")}
    try:
        if action == "message":
            personal.send_message(ctx, order_id, request.form.get("body", ""), actor=ANONYMOUS, token=link.token,
                                  once=once)
        elif action == "review":
            raw = request.form.get("rating", "")
            if raw not in {"1", "2", "3", "4", "5"}:
                return _order_page(request_id, link, error=gettext("Choose 1 to 5 stars."), status=422)
            reputation.review_as_customer(ctx, order_id, link.token, int(raw), request.form.get("comment", ""),
                                          once=once)
        elif action == "confirm_delivery":
            delivered.confirm_delivery(ctx, order_id, link.token)
        else:
            returns.request_return(ctx, order_id, link.token, returns.reason_text(form["reason_kind"], form["reason"]),
                                   once=once)
    except formkeys.AlreadyDone:
        pass  # a reload or a second click: the first did it
    except NotFound:
        abort(404)
    except Invalid as exc:
        if action == "message":
            return _order_page(request_id, link, message_error=" ".join(exc.errors.get("body", [exc.detail])),
                               status=422)
        if action == "return_request":
            return _order_page(request_id, link, return_errors=exc.errors or {"reason": [exc.detail]}, form=form,
                               status=422)
        return _order_page(request_id, link, error=exc.detail, status=422)
    except BrokerError as exc:
        return _order_page(request_id, link, error=exc.detail, status=exc.status)
    done, anchor = ORDER_DONE[action]
    return redirect(link.url_for("requests.order", request_id=request_id, done=done) + anchor, code=303)


@bp.get("/<int:request_id>/data", defaults={"token": None})
@bp.get("/<int:request_id>/<token>/data")
def my_data(request_id: int, token: str | None):
    """Everything Broker holds about the customer for this request (and its order), as a JSON download."""
    link = _link(request_id, token)
    try:
        data = export.export_request(_ctx(), request_id, link.token)
    except BrokerError:
        abort(404)
    return Response(json.dumps(data, indent=2, ensure_ascii=False), mimetype="application/json",
                    headers={"Content-Disposition": f'attachment; filename="request-{request_id}-my-data.json"',
                             "Cache-Control": "no-store"})


@bp.route("/<int:request_id>/erase", defaults={"token": None}, methods=["GET", "POST"])
@bp.route("/<int:request_id>/<token>/erase", methods=["GET", "POST"])
def erase(request_id: int, token: str | None):
    """Erase my data: a confirmation page, then the erasure (an open request is
    withdrawn first; an awarded one's order is cancelled first if not shipped)."""
    link = _link(request_id, token)
    view = _check(request_id, link.token)
    if view.request.erased_at is not None:
        return redirect(link.url_for("requests.follow", request_id=request_id), code=303)
    if request.method == "GET":
        return render_template("request_erase.html", view=view, link=link, error=None)
    if request.form.get("confirm") != "yes":
        return render_template("request_erase.html", view=view, link=link,
                               error=gettext("Tick the box to confirm that you want your data erased.")), 422
    try:
        erasure.erase_request(_ctx(), request_id, link.token)
    except NotFound:
        abort(404)
    except BrokerError as exc:
        return render_template("request_erase.html", view=view, link=link, error=exc.detail), exc.status
    return redirect(link.url_for("requests.follow", request_id=request_id), code=303)
