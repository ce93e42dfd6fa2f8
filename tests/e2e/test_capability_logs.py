"""No capability token reaches a log: `broker serve` (gunicorn's access and error
logs, with an access format that prints every atom a token could hide in) and
`broker run` (werkzeug's request log, as text and as JSON), as real processes.

Every kind of capability URL is requested, with and without a cookie jar (so
the exchange, its check, the cookie-less fallback and the token-free pages are
all logged), with the token also in a Referer and in X-Access-Token. Two links
are in no list anywhere: a verification link (`/verify/<token>`, which another
change adds) and a route that does not exist at all. Then the output is searched
for every token and every cookie value.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from broker.accounts import invitations
from broker.accounts.models import Role
from broker.auth import Actor, ActorKind
from broker.config import Settings
from broker.context import Context
from broker.identity import services as identity
from broker.migrate import upgrade
from broker.notifications.services import unsubscribe_url
from broker.tokens import make_token
from tests.factories import World
from tests.pages import outbox_link

BROKER = [sys.executable, "-m", "web.cli"]
SECRET = "logs-" + "k" * 40
# gunicorn atoms a token could be in: the request line, path, query, Referer, the
# cookie and access-token headers, the redirect's Location and Set-Cookie, the raw URI.
ACCESS_FORMAT = ('%(h)s "%(r)s" %(s)s U=%(U)s q=%(q)s f=%(f)s cookie=%({cookie}i)s token=%({x-access-token}i)s '
                 'location=%({location}o)s set=%({set-cookie}o)s raw=%({raw_uri}e)s qs=%({query_string}e)s')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BROKER_", "DATABASE_URL", "STRIPE_"))}
    env["PYTHONPATH"] = os.getcwd() + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _wait_for(base: str, proc: subprocess.Popen, output, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the server exited early:\n{output.read_text()}")
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"{base} did not answer within {seconds}s")


def _call(opener, url: str, *, method: str = "GET", body: dict | None = None, headers: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={
        **({"Content-Type": "application/json"} if body is not None else {}), **(headers or {})})
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _account_links(url: str, maker_id: int) -> dict[str, str]:
    """Password, unsubscribe, invitation and verification tokens, made as the server
    makes them (the same secret and database)."""
    ctx = Context.from_settings(Settings(database_url=url, secret_key=SECRET, admin_token="x"))
    try:
        _, link = identity.add_user(ctx, role=Role.MANUFACTURER, company_id=maker_id,
                                    email=f"new-{secrets.token_hex(3)}@maker.example", name="New")
        return {
            "password": link.rsplit("/", 1)[1],
            "unsubscribe": unsubscribe_url(ctx, "kim@shop.example", "digest").rsplit("/", 1)[1],
            "invitation": _invitation(ctx, maker_id),
            "verify": make_token(SECRET, "email-verification", {"u": 1, "e": "kim@shop.example"}),
        }
    finally:
        ctx.engine.dispose()


def _invitation(ctx: Context, maker_id: int) -> str:
    """A dealer invitation's token, as mailed to the invited address."""
    address = f"new-{secrets.token_hex(3)}@retail.example"
    invitations.invite(ctx, Actor(ActorKind.MANUFACTURER, maker_id), address)
    return outbox_link(ctx, address, "/invitations/").rsplit("/", 1)[1]


def hit_every_capability_url(base: str, slug: str, sku: str, tokens: dict[str, str]) -> list[str]:
    """Request every capability URL, the way browsers and API clients do. Adds the
    order's and the request's tokens to `tokens`; returns the cookie values the
    server set."""
    jar = http.cookiejar.CookieJar()
    with_cookies = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    without = urllib.request.build_opener()
    status, body = _call(without, f"{base}/api/v1/storefronts/{slug}/orders", method="POST", body={
        "items": [{"sku": sku, "quantity": 1}], "customer": {"name": "Ada Lovelace", "email": "ada@example.com"},
        "ship_to": {"line1": "1 Main St", "city": "San Francisco", "postal_code": "94103", "country": "US"}})
    assert status == 201, body
    order = json.loads(body)
    status, body = _call(without, f"{base}/api/v1/requests", method="POST", body={
        "description": "A red kettle", "quantity": 1, "max_price": 5000, "currency": "USD",
        "location": {"postal_code": "94103", "country": "US"},
        "ship_to": {"name": "Grace Hopper", "line1": "77 Cobol Court", "city": "San Francisco",
                    "postal_code": "94103", "country": "US"}})
    assert status == 201, body
    request = json.loads(body)
    tokens.update(order=order["access_token"], request=request["access_token"],
                  unlisted=secrets.token_urlsafe(32))
    order_url = f"{base}/s/{slug}/o/{order['id']}/{order['access_token']}"
    request_url = f"{base}/requests/{request['id']}/{request['access_token']}"
    urls = [
        order_url + "?new=1", order_url + "/data", order_url + "/erase",
        request_url + "?new=1", request_url + "/data", request_url + "/erase",
        f"{base}/password/reset/{tokens['password']}", f"{base}/unsubscribe/{tokens['unsubscribe']}",
        f"{base}/invitations/{tokens['invitation']}", f"{base}/signup?invitation={tokens['unlisted']}",
        f"{base}/verify/{tokens['verify']}", f"{base}/brand/new/link/{tokens['unlisted']}",
        f"{base}/s/{slug}/?ref={tokens['unlisted']}",
    ]
    for opener in (with_cookies, without):
        for url in urls:
            status, _ = _call(opener, url, headers={"Referer": order_url})
            assert status in (200, 404, 422), (url, status)  # 422: a verification link that is not one
    # The token-free pages, by the cookies, and a form posted without its CSRF token.
    assert _call(with_cookies, f"{base}/s/{slug}/o/{order['id']}")[0] == 200
    assert _call(with_cookies, f"{base}/requests/{request['id']}")[0] == 200
    assert _call(with_cookies, f"{base}/s/{slug}/o/{order['id']}/cancel", method="POST")[0] == 400
    # The one-click unsubscribe (a POST to the link) and the API's header.
    assert _call(without, f"{base}/unsubscribe/{tokens['unsubscribe']}", method="POST")[0] == 200
    assert _call(without, f"{base}/api/v1/orders/{order['id']}",
                 headers={"X-Access-Token": order["access_token"]})[0] == 200
    return [cookie.value for cookie in jar]


def assert_nothing_leaked(output: str, tokens: dict[str, str], cookies: list[str], *, logged: list[str]) -> None:
    assert cookies, "the server set its cookies"
    for name, token in tokens.items():
        assert token not in output, f"the {name} token is in the log"
        # Nor any recognisable part of it (itsdangerous' signature, a half of a random one).
        for part in (token.rsplit(".", 1)[-1], token[: len(token) // 2]):
            assert part not in output, f"part of the {name} token is in the log"
    for value in cookies:
        assert value not in output and value.rsplit(".", 1)[-1] not in output, "a cookie's value is in the log"
    plain = re.sub(r"(\x1b|\\u001b)\[[0-9;]*m", "", output)  # werkzeug colours the status, in text and JSON
    for line in logged:
        assert line in plain, f"{line!r} was not logged:\n{plain[-3000:]}"


def test_no_token_in_the_serve_access_log(tmp_path):
    url = f"sqlite:///{tmp_path / 'broker.db'}"
    upgrade(url)
    ctx = Context.from_settings(Settings(database_url=url, secret_key=SECRET, admin_token="x"))
    maker = World(ctx).manufacturer("acme", products=[("KETTLE", 4599)])
    ctx.engine.dispose()
    tokens = _account_links(url, maker.id)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    output = tmp_path / "serve.log"
    with output.open("w") as sink:
        proc = subprocess.Popen(BROKER + ["serve", "--port", str(port), "--workers", "1",
                                          "--access-logformat", ACCESS_FORMAT],
                                cwd=tmp_path, env=_env(DATABASE_URL=url, BROKER_SECRET_KEY=SECRET,
                                                       BROKER_PUBLIC_URL=base),
                                stdout=sink, stderr=subprocess.STDOUT)
    try:
        _wait_for(base, proc, output)
        cookies = hit_every_capability_url(base, "acme", "KETTLE", tokens)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    log = output.read_text()
    assert_nothing_leaked(log, tokens, cookies, logged=[
        '"GET /s/acme/o/1/[redacted]?new=1 HTTP/1.1" 303', "U=/s/acme/o/1/[redacted]/data",
        "q=new=1&cookie_check=1", f"f={base}/s/acme/o/1/[redacted]", "cookie=[redacted]", "token=[redacted]",
        "location=/s/acme/o/1/[redacted]?new=1&cookie_check=1", "set=[redacted]",
        "raw=/requests/1/[redacted]", "qs=invitation=[redacted]", '"GET /invitations/[redacted] HTTP/1.1" 303', '"GET /password/reset/[redacted] HTTP/1.1"',
        '"GET /verify/[redacted] HTTP/1.1" 422', '"GET /brand/new/link/[redacted] HTTP/1.1" 404',
        '"GET /s/acme/?ref=[redacted] HTTP/1.1" 200', '"POST /unsubscribe/[redacted] HTTP/1.1" 200',
    ])


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_token_in_the_run_request_log(tmp_path, log_format):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    output = tmp_path / "run.log"
    with output.open("w") as sink:
        proc = subprocess.Popen(BROKER + ["run", "--port", str(port)], cwd=tmp_path, stdout=sink,
                                stderr=subprocess.STDOUT,
                                env=_env(BROKER_SECRET_KEY=SECRET, BROKER_PUBLIC_URL=base,
                                         BROKER_LOG_FORMAT=log_format))
    try:
        _wait_for(base, proc, output)
        tokens = _account_links(f"sqlite:///{tmp_path / 'broker.db'}", 1)
        cookies = hit_every_capability_url(base, "northwind", "NW-HELMET", tokens)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    # The demo's own customer tokens are printed on purpose when it starts; the
    # tokens searched for are the ones made by this test.
    log = output.read_text()
    quote = '\\"' if log_format == "json" else '"'
    assert_nothing_leaked(log, tokens, cookies, logged=[
        f"{quote}GET /s/northwind/o/7/[redacted]?new=1 HTTP/1.1{quote} 303",
        f"{quote}GET /requests/1/[redacted]/data?cookie_check=1 HTTP/1.1{quote} 200",
        f"{quote}GET /invitations/[redacted] HTTP/1.1{quote} 303",
        f"{quote}GET /signup?invitation=[redacted] HTTP/1.1{quote} 200",
        f"{quote}GET /verify/[redacted] HTTP/1.1{quote} 422",
        f"{quote}GET /brand/new/link/[redacted] HTTP/1.1{quote} 404",
    ])
