"""The customer's pages for personal requests: post one, follow it, accept an
offer. The request's link (id and token) is the customer's key: there is no
account, and no cookie to forge a form with."""

from __future__ import annotations

import json
from datetime import timedelta

from flask import Blueprint, Response, abort, current_app, redirect, render_template, request, url_for

from broker.errors import BrokerError, Invalid, NotFound
from broker.geo.geocoding import LocationQuery
from broker.money import CURRENCIES, parse_amount
from broker.personal import services
from broker.privacy import services as privacy

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
            return redirect(url_for("requests.follow", request_id=posted.request.id, token=posted.access_token,
                                    new=1), code=303)
    return render_template("request_new.html", form=form, errors=errors, currencies=sorted(CURRENCIES),
                           days=EXPIRY_DAYS), 422


def _field(name: str) -> str:
    """The service's field names, as the form's inputs are named."""
    return {"location.postal_code": "postal_code", "location.country": "country", "location": "postal_code",
            "ship_to.name": "name", "ship_to.line1": "line1", "ship_to.city": "city",
            "ship_to.postal_code": "postal_code", "ship_to.country": "country"}.get(name, name)


@bp.get("/<int:request_id>/<token>")
def follow(request_id: int, token: str):
    try:
        view = services.get_request(_ctx(), request_id, token)
    except BrokerError:
        abort(404)
    return render_template("request_follow.html", view=view, token=token, new=request.args.get("new"), error=None)


@bp.post("/<int:request_id>/<token>/accept")
def accept(request_id: int, token: str):
    try:
        bid_id = int(request.form.get("bid_id", ""))
        services.accept_offer(_ctx(), request_id, token, bid_id)
    except (ValueError, NotFound):
        abort(404)
    except BrokerError as exc:
        view = services.get_request(_ctx(), request_id, token)
        return render_template("request_follow.html", view=view, token=token, new=None, error=exc.detail), 409
    return redirect(url_for("requests.follow", request_id=request_id, token=token), code=303)


@bp.post("/<int:request_id>/<token>/cancel")
def cancel(request_id: int, token: str):
    try:
        services.cancel_request(_ctx(), request_id, token)
    except NotFound:
        abort(404)
    except BrokerError as exc:
        view = services.get_request(_ctx(), request_id, token)
        return render_template("request_follow.html", view=view, token=token, new=None, error=exc.detail), 409
    return redirect(url_for("requests.follow", request_id=request_id, token=token), code=303)


@bp.get("/<int:request_id>/<token>/data")
def my_data(request_id: int, token: str):
    """Everything Broker holds about the customer for this request (and its order), as a JSON download."""
    try:
        data = privacy.export_request(_ctx(), request_id, token)
    except BrokerError:
        abort(404)
    return Response(json.dumps(data, indent=2, ensure_ascii=False), mimetype="application/json",
                    headers={"Content-Disposition": f'attachment; filename="request-{request_id}-my-data.json"',
                             "Cache-Control": "no-store"})


@bp.route("/<int:request_id>/<token>/erase", methods=["GET", "POST"])
def erase(request_id: int, token: str):
    """Erase my data: a confirmation page, then the erasure (an open request is
    withdrawn first; an awarded one's order is cancelled first if not shipped)."""
    try:
        view = services.get_request(_ctx(), request_id, token)
    except BrokerError:
        abort(404)
    if view.request.erased_at is not None:
        return redirect(url_for("requests.follow", request_id=request_id, token=token), code=303)
    if request.method == "GET":
        return render_template("request_erase.html", view=view, token=token, error=None)
    if request.form.get("confirm") != "yes":
        return render_template("request_erase.html", view=view, token=token,
                               error="Tick the box to confirm that you want your data erased."), 422
    try:
        privacy.erase_request(_ctx(), request_id, token)
    except NotFound:
        abort(404)
    except BrokerError as exc:
        return render_template("request_erase.html", view=view, token=token, error=exc.detail), exc.status
    return redirect(url_for("requests.follow", request_id=request_id, token=token), code=303)
