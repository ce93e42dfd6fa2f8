"""Signing up, in and out, passwords, colleagues, API keys and email settings:
the pages every retailer and manufacturer user shares."""

from __future__ import annotations

from flask import Blueprint, abort, flash, make_response, redirect, render_template, request, url_for

from broker.accounts import services as accounts
from broker.accounts.models import Role
from broker.errors import BrokerError, Invalid
from broker.geo.geocoding import LocationQuery
from broker.identity import services as identity
from broker.notifications import services as notifications
from web import capability
from web.security import check_csrf, ctx, current_user, end_session, safe_next, signed_in, start_session

bp = Blueprint("account", __name__, template_folder="templates")
bp.before_request(check_csrf)

# Where each emailed link's cookie is good (web/capability.py): the flow's own path.
SIGNUP_SCOPE = "/signup"
RESET_SCOPE = "/password/reset"
UNSUBSCRIBE_SCOPE = "/unsubscribe"


def home_for(user) -> str:
    return url_for("portal.board") if user.role == Role.RETAILER else url_for("console.dashboard")


@bp.route("/signin", methods=["GET", "POST"])
def signin():
    """:raise 429: too many attempts (per address, and per account: web.security.RATE_LIMITS)."""
    user = current_user()
    target = safe_next(request.values.get("next"), "")
    if user is not None and request.method == "GET":
        return redirect(target or home_for(user))
    error = None
    if request.method == "POST":
        try:
            user, epoch = identity.sign_in(ctx(), request.form.get("email", ""), request.form.get("password", ""))
        except BrokerError as exc:
            error = exc.detail
        else:
            start_session(user, epoch)
            return redirect(target or home_for(user))
    return render_template("app/signin.html", error=error, email=request.form.get("email", ""), next=target), \
        (401 if error else 200)


@bp.post("/signout")
def signout():
    end_session()
    flash("You are signed out.")
    return redirect(url_for("account.signin"))


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    """A retailer signs up: its company, its first store and its first user.
    An invitation's link (`?invitation=`) is exchanged for a cookie on /signup
    (web/capability.py); the form carries it on in its body."""
    if request.method == "POST":
        invitation = request.values.get("invitation") or None
    elif request.args.get("invitation"):
        invitation = capability.require(capability.INVITATION, SIGNUP_SCOPE, request.args["invitation"],
                                        check=_check_invitation, missing=lambda: None).token
    else:
        invitation = capability.held(capability.INVITATION, SIGNUP_SCOPE)
    invited = None
    if invitation:
        try:
            invited = identity.read_invitation(ctx(), invitation)
        except BrokerError as exc:
            return render_template("app/message.html", title="Invitation", message=exc.detail), 422
    errors: dict[str, list[str]] = {}
    form = request.form
    if request.method == "POST":
        try:
            radius = float(form.get("service_radius_km") or "nan")
        except ValueError:
            radius = float("nan")
        cmd = identity.RetailerSignUp(
            company=form.get("company", ""), name=form.get("name", ""), email=form.get("email", ""),
            password=form.get("password", ""), store_name=form.get("store_name", ""),
            location=LocationQuery(postal_code=(form.get("postal_code") or "").strip() or None,
                                   country=(form.get("country") or "US").strip() or None),
            service_radius_km=radius if radius == radius else 0.0, invitation=invitation)
        try:
            user = identity.sign_up_retailer(ctx(), cmd)
        except BrokerError as exc:
            errors = exc.errors or {"form": [exc.detail]}
        else:
            user, epoch = identity.sign_in(ctx(), cmd.email, cmd.password)
            start_session(user, epoch)
            flash("Welcome to Broker. Ask the manufacturers you sell for to authorise you as a dealer."
                  if not invited else f"Welcome to Broker: you are a dealer of {invited[0]}.")
            response = redirect(url_for("portal.dealers") if not invited else url_for("portal.board"))
            capability.forget(response, capability.INVITATION, SIGNUP_SCOPE)
            return response
    return render_template("app/signup.html", errors=errors, form=form, invitation=invitation, invited=invited), \
        (422 if errors else 200)


def _link_refused(title: str, exc: BrokerError):
    abort(make_response(render_template("app/message.html", title=title, message=exc.detail), 422))


def _link_needed(title: str):
    return render_template("app/message.html", title=title,
                           message="Open the link from your email again: it lets this browser in for "
                                   f"{capability.COOKIE_HOURS} hours, and this browser holds no such key now."), 403


def _check_invitation(token: str) -> None:
    try:
        identity.read_invitation(ctx(), token)
    except BrokerError as exc:
        _link_refused("Invitation", exc)


@bp.route("/password/forgot", methods=["GET", "POST"])
def forgot():
    sent = False
    if request.method == "POST":
        identity.request_password_reset(ctx(), request.form.get("email", ""))
        sent = True
    return render_template("app/forgot.html", sent=sent)


def _check_password_link(token: str) -> None:
    try:
        identity.check_password_link(ctx(), token)
    except BrokerError as exc:
        _link_refused("Password link", exc)


@bp.route("/password/reset", defaults={"token": None}, methods=["GET", "POST"])
@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset(token: str | None):
    """The emailed link (a reset, or a new colleague's first password), exchanged
    for a cookie on /password/reset (web/capability.py)."""
    link = capability.require(capability.PASSWORD, RESET_SCOPE, token, check=_check_password_link,
                              missing=lambda: _link_needed("Password link"))
    token = link.token
    try:
        email = identity.check_password_link(ctx(), token)
    except BrokerError as exc:
        return render_template("app/message.html", title="Password link", message=exc.detail), 422
    error = None
    if request.method == "POST":
        password = request.form.get("password", "")
        if password != request.form.get("confirm", ""):
            error = "the two passwords differ"
        else:
            try:
                identity.reset_password(ctx(), token, password)
                user, epoch = identity.sign_in(ctx(), email, password)
            except BrokerError as exc:
                error = "; ".join(m for ms in exc.errors.values() for m in ms) or exc.detail
            else:
                start_session(user, epoch)
                flash("Your password is set.")
                response = redirect(home_for(user))
                capability.forget(response, capability.PASSWORD, RESET_SCOPE)
                return response
    return render_template("app/reset.html", email=email, error=error, link=link), 422 if error else 200


@bp.get("/account")
@signed_in()
def settings():
    user = current_user()
    return render_template("app/account.html", users=identity.list_users(ctx(), user),
                           keys=accounts.list_keys(ctx(), user.actor), new_key=None, errors={})


@bp.post("/account/password")
@signed_in()
def change_password():
    user = current_user()
    try:
        if request.form.get("new_password") != request.form.get("confirm"):
            raise Invalid.field("confirm", "the two new passwords differ")
        epoch = identity.change_password(ctx(), user, request.form.get("current_password", ""),
                                         request.form.get("new_password", ""))
    except BrokerError as exc:
        return _settings_with(errors=exc.errors or {"password": [exc.detail]})
    start_session(user, epoch)  # this session stays; every other one ends
    flash("Your password is changed; other sessions are signed out.")
    return redirect(url_for("account.settings"))


@bp.post("/account/users")
@signed_in()
def invite_user():
    try:
        invited = identity.invite_user(ctx(), current_user(), request.form.get("email", ""),
                                       request.form.get("name", ""))
    except BrokerError as exc:
        return _settings_with(errors=exc.errors or {"email": [exc.detail]})
    flash(f"{invited.email} was sent a link to set their password.")
    return redirect(url_for("account.settings"))


@bp.post("/account/users/<int:user_id>/remove")
@signed_in()
def remove_user(user_id: int):
    identity.remove_user(ctx(), current_user(), user_id)
    flash("The colleague was removed.")
    return redirect(url_for("account.settings"))


@bp.post("/account/keys")
@signed_in()
def create_key():
    user = current_user()
    secret = accounts.create_key(ctx(), user.actor)
    # Shown on this response only: it is stored as a hash and cannot be shown again.
    return render_template("app/account.html", users=identity.list_users(ctx(), user),
                           keys=accounts.list_keys(ctx(), user.actor), new_key=secret, errors={})


@bp.post("/account/keys/<int:key_id>/revoke")
@signed_in()
def revoke_key(key_id: int):
    accounts.revoke_key(ctx(), current_user().actor, key_id)
    flash("The key is revoked: calls with it now get 401.")
    return redirect(url_for("account.settings"))


@bp.post("/account/digest")
@signed_in(Role.RETAILER)
def digest():
    on = request.form.get("digest") == "on"
    identity.set_digest(ctx(), current_user(), on)
    flash("You will get a daily digest of new listings near your stores." if on else "The daily digest is off.")
    return redirect(url_for("account.settings"))


def _settings_with(*, errors):
    user = current_user()
    return render_template("app/account.html", users=identity.list_users(ctx(), user),
                           keys=accounts.list_keys(ctx(), user.actor), new_key=None, errors=errors), 422


def _check_unsubscribe_link(token: str) -> None:
    try:
        notifications.unsubscribe_link(ctx(), token)
    except BrokerError as exc:
        _link_refused("Unsubscribe", exc)


@bp.route("/unsubscribe", defaults={"token": None}, methods=["GET", "POST"])
@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
def unsubscribe(token: str | None):
    """GET asks (mail scanners open links; they must not unsubscribe anyone);
    POST does it, including a mail client's one-click List-Unsubscribe-Post to
    the token URL (no cookie, no form). The page's own form posts to /unsubscribe,
    by the cookie the link was exchanged for, with the link's CSRF token."""
    link = capability.require(capability.UNSUBSCRIBE, UNSUBSCRIBE_SCOPE, token, check=_check_unsubscribe_link,
                              missing=lambda: _link_needed("Unsubscribe"))
    if request.method == "POST":
        try:
            what = notifications.unsubscribe(ctx(), link.token)
        except BrokerError as exc:
            return render_template("app/message.html", title="Unsubscribe", message=exc.detail), 422
        response = make_response(render_template("app/message.html", title="Unsubscribed",
                                                 message=f"You will no longer get {what}."))
        capability.forget(response, capability.UNSUBSCRIBE, UNSUBSCRIBE_SCOPE)
        return response
    return render_template("app/unsubscribe.html", link=link)
