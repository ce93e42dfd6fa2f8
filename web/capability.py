"""Capability links, exchanged for a cookie on first use.

An order's or a request's link, a password link, an unsubscribe link and an
invitation carry their token in the URL: that is what makes them work from an
email. Kept in the address bar, the token would reach access logs, proxies and
every `Referer` the page sends. So a GET of a token URL is exchanged:

1. The token is checked (a wrong one is the page's own 404 or 422, and nothing is set).
2. An HttpOnly cookie, scoped by `Path` to that one order, request or flow and
   holding the token signed with a timestamp, is set, and the browser is sent
   (303) back to the same URL with `?cookie_check=1`.
3. If the cookie came back, 303 to the same URL without the token
   (`/s/<slug>/o/<id>`); the token-free URLs and every action on them
   authenticate by the cookie, and forms carry a CSRF token bound to it
   (`link_csrf`), checked before the action.
   If it did not (a browser that refuses cookies), the page is shown where it
   is, under the token URL, and its links and forms keep the token in their
   path: the customer still reaches the order, nothing loops, and every
   response to a URL with a token in it says `Referrer-Policy: no-referrer`
   (`init_app`), so the token still never leaves in a `Referer`.

A browser that already holds the cookie skips the check: link, 303, page.

Every redirect carrying a token sends `Referrer-Policy: no-referrer` and has no
assets to load. Inside the storefront's embed (`?embed=1`: a cross-site iframe,
where browsers drop ordinary third-party cookies) the cookie is partitioned
(CHIPS: `Partitioned; Secure; SameSite=None`); elsewhere it is `SameSite=Lax`,
and `Secure` behind HTTPS.

The cookie lasts as long as the browser session, and the server refuses it after
COOKIE_HOURS: the link keeps working for good (it is the capability), so the
cookie need not outlive an afternoon on a shared computer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
from typing import Callable
from urllib.parse import quote, urlencode

from flask import Flask, Response, abort, current_app, g, make_response, redirect, request, url_for
from markupsafe import Markup

from broker.errors import Invalid
from broker.redact import holds_capability
from broker.tokens import make_token, read_token

CHECK = "cookie_check"
CSRF_FIELD = "link_csrf"
COOKIE_HOURS = 12


@dataclasses.dataclass(frozen=True)
class Kind:
    cookie: str  # the cookie's name; one per kind, each scoped by its own Path
    param: str = "token"  # where the URL carries the token: a path variable of this name, or a query key


ORDER = Kind("broker_order")
REQUEST = Kind("broker_request")
PASSWORD = Kind("broker_password")
UNSUBSCRIBE = Kind("broker_unsubscribe")
INVITATION = Kind("broker_invitation")
VERIFY = Kind("broker_verify")


@dataclasses.dataclass(frozen=True)
class Capability:
    """What the request holds: the token, the path it is good for, and whether it
    came in the URL (a browser that keeps no cookie) or from the cookie."""

    kind: Kind
    scope: str
    token: str
    in_url: bool

    @property
    def csrf_token(self) -> str:
        """Bound to this capability: a form from another order, or from a page that
        does not hold it, does not pass."""
        key = current_app.config["SECRET_KEY"].encode()
        message = f"link-csrf|{self.kind.cookie}|{self.scope}|{self.token}".encode()
        return hmac.new(key, message, hashlib.sha256).hexdigest()

    def csrf_field(self) -> Markup:
        return Markup('<input type="hidden" name="%s" value="%s">') % (CSRF_FIELD, self.csrf_token)

    def url_for(self, endpoint: str, **values) -> str:
        """A URL on this capability: token-free with the cookie; with the token (and
        the check already done) for a browser that keeps no cookie."""
        if self.in_url:
            values.update({self.kind.param: self.token, CHECK: 1})
        return url_for(endpoint, **values)


def require(kind: Kind, scope: str, token: str | None, *, check: Callable[[str], object],
            missing: Callable[[], object]) -> Capability:
    """The capability this request holds, by its URL or by its cookie; or the
    response that stands in for the page (a redirect of the exchange, or
    `missing()` for a token-free URL without a valid cookie), raised.

    `check(token)` aborts with the page's own answer to a wrong token (404 or 422).
    :raise 400: a POST authenticated by the cookie without this capability's CSRF token.
    """
    if token:
        if request.method not in ("GET", "HEAD"):
            # A form on the page a cookie-less browser was shown: the token in the
            # path is the credential, as it was in the email; no cookie is involved.
            return Capability(kind, scope, token, in_url=True)
        check(token)
        if held(kind, scope) == token:  # this browser has been here before: no check needed
            response = _redirect(_token_free_url(kind, token))
            remember(response, kind, scope, token)  # from now, for another COOKIE_HOURS
            abort(response)
        if request.args.get(CHECK):
            return Capability(kind, scope, token, in_url=True)  # the cookie did not come back
        response = _redirect(_token_url(kind, token))
        remember(response, kind, scope, token)
        abort(response)
    token = held(kind, scope)
    if token is None:
        abort(make_response(missing()))
    cap = Capability(kind, scope, token, in_url=False)
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        sent = request.form.get(CSRF_FIELD, "")
        # Bytes: compare_digest refuses a str with non-ASCII in it (a forged form).
        if not secrets.compare_digest(sent.encode(), cap.csrf_token.encode()):
            abort(400, description="This form has expired or did not come from this page. "
                                   "Go back, reload the page and try again.")
    return cap


def remember(response: Response, kind: Kind, scope: str, token: str) -> None:
    """Set the capability's cookie on `response` (also done at checkout and when a
    request is posted, where the token is made)."""
    embedded = bool(g.get("embedded"))
    value = make_token(current_app.config["SECRET_KEY"], f"link.{kind.cookie}", {"s": scope, "t": token})
    secure = embedded or current_app.extensions["broker"].settings.cookies_secure
    response.set_cookie(kind.cookie, value, path=scope, httponly=True, secure=secure,
                        samesite="None" if embedded else "Lax", partitioned=embedded)


def forget(response: Response, kind: Kind, scope: str) -> None:
    """End the cookie (a password link used, an invitation taken up)."""
    response.delete_cookie(kind.cookie, path=scope, httponly=True,
                           secure=current_app.extensions["broker"].settings.cookies_secure, samesite="Lax")


def held(kind: Kind, scope: str) -> str | None:
    """The token the cookie holds for exactly this scope, if it is ours, intact and
    young enough. A browser may send several of the name (a partitioned and an
    ordinary one, or a wider path's): any one that fits will do."""
    for value in request.cookies.getlist(kind.cookie):
        try:
            data = read_token(current_app.config["SECRET_KEY"], f"link.{kind.cookie}", value,
                              max_age_s=COOKIE_HOURS * 3600)
        except Invalid:
            continue
        if isinstance(data, dict) and data.get("s") == scope and isinstance(data.get("t"), str):
            return data["t"]
    return None


def _query(kind: Kind, **extra) -> str:
    """This request's query string without the token and the check (`new`, `embed` stay)."""
    kept = [(k, v) for k, v in request.args.items(multi=True) if k not in (CHECK, kind.param)]
    query = urlencode([*kept, *extra.items()])
    return f"?{query}" if query else ""


def _path(path: str) -> str:
    return request.script_root + quote(path, safe="/:@!$&'()*+,;=-._~")


def _token_free_url(kind: Kind, token: str) -> str:
    """This URL without its token: /s/acme/o/5/<token>/erase?new=1 is /s/acme/o/5/erase?new=1.
    Made from the request's own path, not by url_for from what the query says: a
    `?slug=` or `?_external=` in a link must not steer the redirect."""
    path = request.path
    if kind.param == "token":
        segment = f"/{token}"
        at = path.find(segment)
        if at >= 0 and path[at + len(segment):][:1] in ("", "/"):
            path = path[:at] + path[at + len(segment):]
    return _path(path) + _query(kind)


def _token_url(kind: Kind, token: str) -> str:
    """This URL, token and all, with the check added."""
    in_query = {} if kind.param == "token" else {kind.param: token}
    return _path(request.path) + _query(kind, **in_query, **{CHECK: "1"})


def _redirect(location: str) -> Response:
    response = redirect(location, code=303)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _no_referrer(response: Response) -> Response:
    """Any response to a URL with a capability in it (a token link, a cookie-less
    browser's page, and a link added later that nobody listed here), and any
    redirect to one (checkout's to the new order's link), tells the browser to
    send no `Referer` from it."""
    redirect_to = response.location if 300 <= response.status_code < 400 else None
    if holds_capability(request.full_path) or (redirect_to and holds_capability(redirect_to)):
        response.headers["Referrer-Policy"] = "no-referrer"
    return response


def init_app(app: Flask) -> None:
    # Registered after the blueprints: app-wide after_request functions run after
    # theirs, so this has the last word on Referrer-Policy.
    app.after_request(_no_referrer)
