"""The customer's pages for personal requests: post one, follow it, accept an
offer. The request's link (id and token) is the customer's key: there is no
account. The link is exchanged for a cookie scoped to the request
(web/capability.py), so the page's address holds no token; forms carry a CSRF
token bound to that cookie."""

from __future__ import annotations

import json
from datetime import timedelta

from flask import Blueprint, Response, abort, current_app, make_response, redirect, render_template, request, url_for

from broker.errors import BrokerError, Invalid, NotFound
from broker.geo.geocoding import LocationQuery
from broker.money import CURRENCIES, parse_amount
from broker.personal import services
from broker.privacy import erasure, export
from web import capability

bp = Blueprint("requests", __name__, url_prefix="/requests", template_folder="templates")

EXPIRY_DAYS = (1, 3, 7, 14, 30)


def _ctx():
    return current_app.extensions["broker"]


@bp.get("/new")
def new():
    return render_template("request_new.html", form={"currency": "USD", "country": "US", "quantity": "1",
                                                     "prefer": "nearest", "days": "7"},
                           errors={}, currencies=sorted(CURRENCIES), days=EXPIRY_DAYS)


@bp.post("/new")
def create():
    form = request.form.to_dict()
    errors: dict[str, list[str]] = {}
    currency = form.get("currency", "USD")
    try:
        max_price = parse_amount(form.get("max_price", ""), currency)
    except ValueError as exc:
        errors["max_price"] = [str(exc)]
        max_price = 0
    try:
        quantity = int(form.get("quantity", "1"))
    except ValueError:
        errors["quantity"] = ["a whole number, please"]
        quantity = 0
    days = int(form.get("days", "7")) if form.get("days", "7").isdigit() else 7
    if not errors:
        ctx = _ctx()
        cmd = services.PostRequest(
            description=form.get("description", ""), quantity=quantity, max_price=max_price, currency=currency,
            location=LocationQuery(form.get("postal_code", "").strip() or None, form.get("country", "").strip() or None),
            ship_to=services.ShipTo(name=form.get("name", ""), line1=form.get("line1", ""),
                                    line2=form.get("line2", ""), city=form.get("city", ""),
                                    postal_code=form.get("postal_code", ""), country=form.get("country", "")),
            prefer=form.get("prefer", "nearest"), contact=form.get("contact") or None,
            expires_at=ctx.now() + timedelta(days=min(days, max(EXPIRY_DAYS))),
        )
        try:
            posted = services.post_request(ctx, cmd)
        except Invalid as exc:
            errors = {_field(k): v for k, v in exc.errors.items()} or {"form": [exc.detail]}
        except BrokerError as exc:
            errors = {"form": [exc.detail]}
        else:
            # The cookie is set here, where the token is made; the link still goes
            # by the token URL, where a browser that keeps no cookie is shown the page.
            response = redirect(url_for("requests.follow", request_id=posted.request.id, token=posted.access_token,
                                        new=1), code=303)
            capability.remember(response, capability.REQUEST, _scope(posted.request.id), posted.access_token)
            return response
    return render_template("request_new.html", form=form, errors=errors, currencies=sorted(CURRENCIES),
                           days=EXPIRY_DAYS), 422


def _field(name: str) -> str:
    """The service's field names, as the form's inputs are named."""
    return {"location.postal_code": "postal_code", "location.country": "country", "location": "postal_code",
            "ship_to.name": "name", "ship_to.line1": "line1", "ship_to.city": "city",
            "ship_to.postal_code": "postal_code", "ship_to.country": "country"}.get(name, name)


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
    response = make_response(render_template("request_follow.html", view=view, link=link, new=new, error=error,
                                             own_link=own_link), status)
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


@bp.post("/<int:request_id>/accept", defaults={"token": None})
@bp.post("/<int:request_id>/<token>/accept")
def accept(request_id: int, token: str | None):
    link = _link(request_id, token)
    try:
        bid_id = int(request.form.get("bid_id", ""))
        services.accept_offer(_ctx(), request_id, link.token, bid_id)
    except (ValueError, NotFound):
        abort(404)
    except BrokerError as exc:
        return _page(_check(request_id, link.token), link, error=exc.detail, status=409)
    return redirect(link.url_for("requests.follow", request_id=request_id), code=303)


@bp.post("/<int:request_id>/cancel", defaults={"token": None})
@bp.post("/<int:request_id>/<token>/cancel")
def cancel(request_id: int, token: str | None):
    link = _link(request_id, token)
    try:
        services.cancel_request(_ctx(), request_id, link.token)
    except NotFound:
        abort(404)
    except BrokerError as exc:
        return _page(_check(request_id, link.token), link, error=exc.detail, status=409)
    return redirect(link.url_for("requests.follow", request_id=request_id), code=303)


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
                               error="Tick the box to confirm that you want your data erased."), 422
    try:
        erasure.erase_request(_ctx(), request_id, link.token)
    except NotFound:
        abort(404)
    except BrokerError as exc:
        return render_template("request_erase.html", view=view, link=link, error=exc.detail), exc.status
    return redirect(link.url_for("requests.follow", request_id=request_id), code=303)
