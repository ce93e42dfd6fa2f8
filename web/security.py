"""What every signed-in page shares: the session, CSRF, rate limits, headers.

* The session is a row on the server (`broker.identity.sessions`). Flask's
  signed cookie (HttpOnly, SameSite=Lax, Secure behind HTTPS) carries only that
  row's random id and the CSRF token: every signed-in request checks the row, so
  a cookie outlives neither sign-out nor a password change nor a removal.
* A user whose address is not verified yet sees only the "check your email"
  page (`signed_in`).
* CSRF: every POST to a signed-in blueprint carries the session's token in a
  hidden `csrf_token` field (`csrf_field()` in templates); a missing or wrong
  token is a 400, checked before the view runs.
* Rate limits (flask-limiter) count per client address, in Redis when
  BROKER_REDIS_URL is set (shared by every web process), else in memory.
"""

from __future__ import annotations

import functools
import secrets
from datetime import timedelta

from flask import Flask, abort, current_app, g, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from markupsafe import Markup

from broker.accounts.models import Role
from broker.grammar import GrammarError, parse_local_path
from broker.identity.services import SignedIn, load_session

SESSION_ID = "sid"
CSRF_FIELD = "csrf_token"
# A mail client's one-click unsubscribe (RFC 8058) posts without our form.
CSRF_EXEMPT = {"account.unsubscribe"}



def _form_email() -> str:
    """Sign-in attempts are also counted per account, from any address."""
    return "email:" + ((request.form.get("email") or "").strip().lower() or get_remote_address())


def _signed_in_user() -> str:
    """Counted per signed-in user, from any address (sending the link again)."""
    user = current_user()
    return f"user:{user.user_id}" if user is not None else get_remote_address()


# Which endpoints are limited, and how: (limits, key) with key None meaning the
# client's address. Declared here as data and applied to each app's views by
# `init_security`, so every app (each test's, each web process's) has its own
# limiter and storage; nothing is bound at import time.
RATE_LIMITS: dict[str, list[tuple[str, object]]] = {
    "account.signin": [("10 per minute;60 per hour", None), ("5 per minute;30 per hour", _form_email)],
    "account.signup": [("10 per hour", None)],
    "account.forgot": [("5 per minute;20 per hour", None)],
    "account.reset": [("10 per minute", None)],
    "account.resend_verification": [("20 per hour", None), ("1 per minute;5 per hour", _signed_in_user)],
    "account.verify": [("10 per minute;60 per hour", None)],
    "account.invitation_signup": [("10 per hour", None)],
    # Placing orders and posting requests: generous for people, a wall for scripts.
    "orders.StorefrontOrders": [("30 per minute;300 per hour", None)],
    "store.checkout": [("30 per minute;300 per hour", None)],
    # The checkout's total as the address is typed (it may ask Stripe Tax).
    "store.checkout_total": [("60 per minute;600 per hour", None)],
    "personal.Requests": [("10 per minute;100 per hour", None)],
    "requests.create": [("10 per minute;100 per hour", None)],
}

# Endpoints whose limits count failures only: a sign-in that succeeds (a redirect)
# uses up nothing, so people who sign in often are never locked out; the wrong
# passwords of a guesser (401) are what is counted.
FAILURES_ONLY = frozenset({"account.signin"})


def _failed(response) -> bool:
    return response.status_code >= 400


class _SessionCookies(SecureCookieSessionInterface):
    """Flask's signed-cookie session, its signer made once per key rather than
    on every request: making one serialises a test value, which cost a cached
    catalog page a twentieth of its time."""

    def get_signing_serializer(self, app: Flask):
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        made = app.extensions.get("session_signer")
        if made is None or made[0] != keys:
            made = app.extensions["session_signer"] = (keys, super().get_signing_serializer(app))
        return made[1]


def init_security(app: Flask) -> None:
    """Call after every blueprint is registered (the limits wrap their views)."""
    settings = app.extensions["broker"].settings
    app.config.update(
        SESSION_COOKIE_NAME="broker_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.cookies_secure,
        # The cookie's own lifetime; the server's row decides (idle and absolute).
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_hours),
    )
    app.session_interface = _SessionCookies()
    after, teardown = list(app.after_request_funcs.get(None, [])), list(app.teardown_request_funcs.get(None, []))
    limiter = Limiter(key_func=get_remote_address, app=app, default_limits=[], strategy="moving-window",
                      storage_uri=app.config.get("RATELIMIT_STORAGE_URI") or settings.redis_url or "memory://",
                      headers_enabled=True, key_prefix=app.config.get("RATELIMIT_KEY_PREFIX", "broker"))
    # Every limit is a view's own (below), checked by its decorator when the view
    # is called. The app-wide check flask-limiter adds before every request only
    # serves default, application and blueprint limits, which Broker has none of:
    # it cost every request, a bid or a cached catalog page, about 80 µs for nothing.
    hooks = app.before_request_funcs.get(None, [])
    if limiter._check_request_limit in hooks:  # not there when limits are switched off
        hooks.remove(limiter._check_request_limit)
    for endpoint, rules in RATE_LIMITS.items():
        if endpoint not in app.view_functions:
            continue
        view = _uniquely_named(app.view_functions[endpoint], endpoint)
        deduct_when = _failed if endpoint in FAILURES_ONLY else None
        for limits, key in rules:
            view = limiter.limit(limits, key_func=key, methods=["POST"], deduct_when=deduct_when)(view)
        app.view_functions[endpoint] = _marked_limited(view)
    # flask-limiter's after-request hook (the X-RateLimit headers, the deductions
    # that count failures only) and its teardown, like its app-wide check above,
    # served every request: they run only where a limited view was called.
    for hooks, before in ((app.after_request_funcs, after), (app.teardown_request_funcs, teardown)):
        hooks[None] = [hook if hook in before else _only_where_limited(hook) for hook in hooks.get(None, [])]
    app.extensions["limiter"] = limiter
    app.jinja_env.globals["csrf_field"] = csrf_field
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["current_user"] = current_user
    app.after_request(_headers)


_LIMITED = "broker_rate_limited"


def _marked_limited(view):
    """The limited view, outermost: the mark is set before any limit is checked,
    so a refused request (429) is marked too."""

    @functools.wraps(view)
    def marked(*args, **kwargs):
        setattr(g, _LIMITED, True)
        return view(*args, **kwargs)

    return marked


def _only_where_limited(hook):
    def hook_where_limited(value):
        return hook(value) if g.get(_LIMITED) else value

    return hook_where_limited


def _uniquely_named(view, endpoint: str):
    """flask-limiter files a view's limits under its module and name; every class-
    based view is `flask.views.view`, so each limited view gets its endpoint's name."""

    @functools.wraps(view)
    def limited(*args, **kwargs):
        return view(*args, **kwargs)

    limited.__module__ = "web.limits"
    limited.__name__ = limited.__qualname__ = endpoint.replace(".", "_")
    return limited


_APP_PAGE_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                 "frame-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'")
# Every response's, unless it set its own: a view's `Referrer-Policy: no-referrer`
# (a redirect to a token's URL) stays. `Cache-Control`: nothing that did not say
# otherwise is kept by a browser or a proxy: an order's page, a request's offers
# and the API's answers (a winner's ship-to address) carry personal data. Static
# files, the storefront's catalog and its embed script set their own.
_DEFAULTS = (("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "same-origin"), ("Cache-Control", "no-store"))
_HSTS = ("Strict-Transport-Security", "max-age=31536000; includeSubDomains")


def _headers(response):
    headers = response.headers
    if g.get("app_page"):
        # Signed-in pages: our own scripts, styles and images only, and never in a frame.
        headers["Content-Security-Policy"] = _APP_PAGE_CSP
        headers["X-Frame-Options"] = "DENY"
        headers["Cache-Control"] = "no-store"
    # The names present, read once (werkzeug's `setdefault` raises and catches an
    # exception for each name that is not there).
    present = {name.lower() for name, _ in headers}
    defaults = (*_DEFAULTS, _HSTS) if current_app.config.get("SESSION_COOKIE_SECURE") else _DEFAULTS
    for name, value in defaults:
        if name.lower() not in present:
            headers.add(name, value)
    return response


def csrf_token() -> str:
    token = session.get(CSRF_FIELD)
    if not token:
        token = session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return token


def csrf_field() -> Markup:
    return Markup('<input type="hidden" name="%s" value="%s">') % (CSRF_FIELD, csrf_token())


def check_csrf() -> None:
    """A before_request hook for every blueprint with forms."""
    g.app_page = True
    if request.method in ("GET", "HEAD", "OPTIONS") or request.endpoint in CSRF_EXEMPT:
        return
    sent = request.form.get(CSRF_FIELD, "")
    expected = session.get(CSRF_FIELD, "")
    if not expected or not secrets.compare_digest(sent.encode(), expected.encode()):
        abort(400, description="This form has expired or did not come from Broker. Go back, reload and try again.")


def ctx():
    return current_app.extensions["broker"]


def current_user() -> SignedIn | None:
    if "user" not in g:
        g.user = None
        session_id = session.get(SESSION_ID)
        if isinstance(session_id, str) and session_id:
            g.user = load_session(ctx(), session_id)
            if g.user is None:
                session.clear()
    return g.user


def current_session_id() -> str:
    value = session.get(SESSION_ID)
    return value if isinstance(value, str) else ""


def start_session(user: SignedIn, session_id: str) -> None:
    """Put a session the service opened in the cookie."""
    session.clear()  # a new CSRF token with every sign-in: nothing carries over
    session.permanent = True
    session[SESSION_ID] = session_id
    g.user = user


def end_session() -> None:
    """Forget the session in this browser (the service has ended it on the server)."""
    session.clear()
    g.user = None


def safe_next(target: str | None, default: str) -> str:
    """Only a path on this site, parsed and serialised (broker.grammar): neither
    `next=https://evil.example` nor `next=/%09/evil.example` leaves it."""
    if not target:
        return default
    try:
        return parse_local_path(target)
    except GrammarError:
        return default


def signed_in(role: Role | None = None, *, verified: bool = True):
    """The page needs a signed-in user (else: to the sign-in page) whose address
    is verified (else: to "check your email"; `verified=False` for that page),
    of this role (else 403: a retailer opening the console by URL)."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            user = current_user()
            if user is None:
                return redirect(url_for("account.signin", next=request.full_path.rstrip("?")))
            if verified and not user.verified:
                return redirect(url_for("account.check_email"))
            if role is not None and user.role != role:
                return render_template("app/message.html", title="Not for your account",
                                       message="This page belongs to another kind of account.",
                                       status=403), 403
            return view(*args, **kwargs)

        return wrapper

    return decorator
