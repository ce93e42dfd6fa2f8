"""Signing up, in and out, passwords, colleagues, API keys and email settings:
the pages every retailer and manufacturer user shares."""

from __future__ import annotations

from flask import Blueprint, abort, flash, make_response, redirect, render_template, request, url_for

from broker.accounts import invitations
from broker.accounts import services as accounts
from broker.accounts.models import Role
from broker.errors import BrokerError, Invalid
from broker.geo.geocoding import LocationQuery
from broker.identity import services as identity
from broker.notifications import services as notifications
from web import capability
from web.security import (
    check_csrf,
    ctx,
    current_session_id,
    current_user,
    end_session,
    safe_next,
    signed_in,
    start_session,
)

bp = Blueprint("account", __name__, template_folder="templates")
bp.before_request(check_csrf)

# Where each emailed link's cookie is good (web/capability.py): the flow's own path.
VERIFY_SCOPE = "/verify"
INVITATION_SCOPE = "/invitations"
RESET_SCOPE = "/password/reset"
UNSUBSCRIBE_SCOPE = "/unsubscribe"


def home_for(user) -> str:
    if not user.verified:
        return url_for("account.check_email")
    return url_for("portal.board") if user.role == Role.RETAILER else url_for("console.dashboard")


def _message(title: str, exc: BrokerError):
    return render_template("app/message.html", title=title, message=exc.detail), exc.status


def _link_refused(title: str, exc: BrokerError):
    abort(make_response(render_template("app/message.html", title=title, message=exc.detail), exc.status))


def _link_needed(title: str):
    return render_template("app/message.html", title=title,
                           message="Open the link from your email again: it lets this browser in for "
                                   f"{capability.COOKIE_HOURS} hours, and this browser holds no such key now."), 403


def _checker(title: str, read):
    """`check` for capability.require: the link's own refusal (422 or 409) for a bad token."""
    def check(token: str) -> None:
        try:
            read(ctx(), token)
        except BrokerError as exc:
            _link_refused(title, exc)
    return check


@bp.route("/signin", methods=["GET", "POST"])
def signin():
    """:raise 429: too many attempts (per address, and per account: web.security.RATE_LIMITS)."""
    user = current_user()
    target = safe_next(request.values.get("next"), "")
    if user is not None and request.method == "GET":
        return redirect(target if target and user.verified else home_for(user))
    error = None
    if request.method == "POST":
        try:
            user, session_id = identity.sign_in(ctx(), request.form.get("email", ""),
                                                request.form.get("password", ""))
        except BrokerError as exc:
            error = exc.detail
        else:
            start_session(user, session_id)
            return redirect(target if target and user.verified else home_for(user))
    return render_template("app/signin.html", error=error, email=request.form.get("email", ""), next=target), \
        (401 if error else 200)


@bp.post("/signout")
def signout():
    """Ends the session on the server, not only in this browser."""
    identity.sign_out(ctx(), current_session_id())
    end_session()
    flash("You are signed out.")
    return redirect(url_for("account.signin"))


def _sign_up_command(form) -> identity.RetailerSignUp:
    try:
        radius = float(form.get("service_radius_km") or "nan")
    except ValueError:
        radius = float("nan")
    return identity.RetailerSignUp(
        company=form.get("company", ""), name=form.get("name", ""), email=form.get("email", ""),
        password=form.get("password", ""), store_name=form.get("store_name", ""),
        location=LocationQuery(postal_code=(form.get("postal_code") or "").strip() or None,
                               country=(form.get("country") or "US").strip() or None),
        service_radius_km=radius if radius == radius else 0.0)


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    """A retailer signs up: its company, its first store and its first user,
    pending until the address is confirmed through the link mailed to it.
    :raise 409: the address has a verified account. :raise 422: bad input."""
    errors: dict[str, list[str]] = {}
    status = 200
    if request.method == "POST":
        try:
            user, session_id = identity.sign_up_retailer(ctx(), _sign_up_command(request.form))
        except BrokerError as exc:
            errors, status = exc.errors or {"form": [exc.detail]}, 422
        else:
            start_session(user, session_id)
            return redirect(url_for("account.check_email"))
    return render_template("app/signup.html", errors=errors, form=request.form, invited=None,
                           action=url_for("account.signup")), status


# --- Confirming an address --------------------------------------------------------


@bp.get("/account/verify")
@signed_in(verified=False)
def check_email():
    """What an unverified user sees after signing in: check your email."""
    user = current_user()
    if user.verified:
        return redirect(home_for(user))
    return render_template("app/check_email.html", user=user)


@bp.post("/account/verify/send")
@signed_in(verified=False)
def resend_verification():
    """Mail the link again. :raise 429: more than once a minute, or five times an hour.
    :raise 409: already confirmed, or the sign-up has lapsed."""
    try:
        identity.resend_verification(ctx(), current_user())
    except BrokerError as exc:
        return _message("Confirm your email address", exc)
    flash(f"We sent the link again to {current_user().email}.")
    return redirect(url_for("account.check_email"))


@bp.route("/verify", defaults={"token": None}, methods=["GET", "POST"])
@bp.route("/verify/<token>", methods=["GET", "POST"])
def verify(token: str | None):
    """GET shows what the link confirms (a mail scanner opening it confirms
    nothing); POST confirms, signed in as that account or with its password.
    The link is exchanged for a cookie on /verify (web/capability.py).
    :raise 422: the link is used, expired or forged, or the password wrong.
    :raise 409: the address was confirmed for another account first."""
    title = "Confirm your email address"
    held = capability.require(capability.VERIFY, VERIFY_SCOPE, token,
                              check=_checker(title, identity.check_verification_link),
                              missing=lambda: _link_needed(title))
    try:
        link = identity.check_verification_link(ctx(), held.token)
    except BrokerError as exc:
        return _message(title, exc)
    user = current_user()
    signed_in_as = user.user_id if user is not None else None
    error = None
    if request.method == "POST":
        try:
            confirmed, session_id = identity.verify_email(ctx(), held.token, signed_in_as=signed_in_as,
                                                          password=request.form.get("password", ""))
        except Invalid as exc:
            error = "; ".join(m for ms in exc.errors.values() for m in ms) or exc.detail
        except BrokerError as exc:
            return _message(title, exc)
        else:
            if session_id is not None:
                start_session(confirmed, session_id)
            flash("Your email address is confirmed." + (
                " Ask the manufacturers you sell for to authorise you as a dealer."
                if confirmed.role == Role.RETAILER else ""))
            response = redirect(url_for("portal.dealers") if confirmed.role == Role.RETAILER
                                else home_for(confirmed))
            capability.forget(response, capability.VERIFY, VERIFY_SCOPE)
            return response
    return render_template("app/verify.html", link=link, held=held, mine=signed_in_as == link.user_id,
                           error=error), (422 if error else 200)


# --- A manufacturer's invitation --------------------------------------------------


def _invitation(token: str | None) -> capability.Capability:
    return capability.require(capability.INVITATION, INVITATION_SCOPE, token,
                              check=_checker("Invitation", invitations.read_invitation),
                              missing=lambda: _link_needed("Invitation"))


def _render_invitation(held: capability.Capability, *, errors=None, form=None, status: int = 200):
    try:
        invitation = invitations.read_invitation(ctx(), held.token)
    except BrokerError as exc:
        return _message("Invitation", exc)
    return render_template("app/invitation.html", invitation=invitation, held=held, user=current_user(),
                           errors=errors or {}, form=form or {}, invited=invitation,
                           action=held.url_for("account.invitation_signup")), status


@bp.get("/invitations", defaults={"token": None})
@bp.get("/invitations/<token>")
def invitation(token: str | None):
    """A manufacturer's invitation, from the link mailed to the invited address
    (exchanged for a cookie on /invitations: web/capability.py). Signed in as a
    retailer: accept or decline for that company. Signed out: sign up with the
    invited address, or sign in. :raise 422: used or expired."""
    return _render_invitation(_invitation(token))


def _answer(token: str | None, accept: bool):
    held = _invitation(token)
    user = current_user()
    if user is None:
        return redirect(held.url_for("account.invitation"))
    try:
        answered = (invitations.accept_invitation if accept else invitations.decline_invitation)(
            ctx(), held.token, user)
    except BrokerError as exc:
        return _message("Invitation", exc)
    if accept:
        flash(f"You are now a dealer of {answered.manufacturer}: its orders near your stores are on your board.")
        response = redirect(url_for("portal.board"))
    else:
        flash(f"You declined the invitation of {answered.manufacturer}.")
        response = redirect(url_for("portal.dealers"))
    capability.forget(response, capability.INVITATION, INVITATION_SCOPE)
    return response


@bp.post("/invitations/accept", defaults={"token": None})
@bp.post("/invitations/<token>/accept")
def accept_invitation(token: str | None):
    """:raise 403: not a retailer's verified user. :raise 422: used or expired."""
    return _answer(token, accept=True)


@bp.post("/invitations/decline", defaults={"token": None})
@bp.post("/invitations/<token>/decline")
def decline_invitation(token: str | None):
    """:raise 403: not a retailer's verified user. :raise 422: used or expired."""
    return _answer(token, accept=False)


@bp.post("/invitations/signup", defaults={"token": None})
@bp.post("/invitations/<token>/signup")
def invitation_signup(token: str | None):
    """Sign up through the invitation: with the invited address, verified by the
    link, and a dealer at once. :raise 409: the address has an account. :raise 422: bad input."""
    held = _invitation(token)
    try:
        user, session_id = invitations.sign_up_invited(ctx(), held.token, _sign_up_command(request.form))
    except BrokerError as exc:
        return _render_invitation(held, errors=exc.errors or {"form": [exc.detail]}, form=request.form,
                                  status=exc.status)
    start_session(user, session_id)
    flash("Welcome to Broker: you accepted the invitation, and the manufacturer's orders near your store are on "
          "your board.")
    response = redirect(url_for("portal.board"))
    capability.forget(response, capability.INVITATION, INVITATION_SCOPE)
    return response


# --- Passwords ----------------------------------------------------------------------


@bp.route("/password/forgot", methods=["GET", "POST"])
def forgot():
    sent = False
    if request.method == "POST":
        identity.request_password_reset(ctx(), request.form.get("email", ""))
        sent = True
    return render_template("app/forgot.html", sent=sent)


@bp.route("/password/reset", defaults={"token": None}, methods=["GET", "POST"])
@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset(token: str | None):
    """Set a password from a reset or welcome link (which confirms the address),
    exchanged for a cookie on /password/reset (web/capability.py). Every other
    session of the user ends."""
    link = capability.require(capability.PASSWORD, RESET_SCOPE, token,
                              check=_checker("Password link", identity.check_password_link),
                              missing=lambda: _link_needed("Password link"))
    try:
        email = identity.check_password_link(ctx(), link.token)
    except BrokerError as exc:
        return _message("Password link", exc)
    error = None
    if request.method == "POST":
        password = request.form.get("password", "")
        if password != request.form.get("confirm", ""):
            error = "the two passwords differ"
        else:
            try:
                user, session_id = identity.reset_password(ctx(), link.token, password)
            except BrokerError as exc:
                error = "; ".join(m for ms in exc.errors.values() for m in ms) or exc.detail
            else:
                start_session(user, session_id)
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
        session_id = identity.change_password(ctx(), user, request.form.get("current_password", ""),
                                              request.form.get("new_password", ""))
    except BrokerError as exc:
        return _settings_with(errors=exc.errors or {"password": [exc.detail]})
    start_session(user, session_id)  # this browser stays signed in, on a new session; every other one ends
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


@bp.route("/unsubscribe", defaults={"token": None}, methods=["GET", "POST"])
@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
def unsubscribe(token: str | None):
    """GET asks (mail scanners open links; they must not unsubscribe anyone);
    POST does it, including a mail client's one-click List-Unsubscribe-Post to
    the token URL (no cookie, no form). The page's own form posts to /unsubscribe,
    by the cookie the link was exchanged for, with the link's CSRF token."""
    link = capability.require(capability.UNSUBSCRIBE, UNSUBSCRIBE_SCOPE, token,
                              check=_checker("Unsubscribe", notifications.unsubscribe_link),
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
