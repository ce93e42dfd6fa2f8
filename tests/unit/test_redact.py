"""Capability tokens are redacted from anything logged: in known places, and
wherever something looks like a token, so a link nobody listed is covered too."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from types import SimpleNamespace

import pytest

from broker import logs
from broker.redact import REDACTED, holds_capability, redact_text, redact_url
from broker.tokens import make_token

TOKEN = secrets.token_urlsafe(32)
SIGNED = make_token("secret", "anything-new", {"u": 12, "e": "0123456789abcdef"})  # itsdangerous, with dots
ESCAPED = "".join(f"%{b:02X}" for b in TOKEN.encode())


def url_id(url: str) -> str:
    """The test's id without the random token and the timed signature: the same
    in every process (pytest-xdist's workers must collect the same tests)."""
    return url.replace(ESCAPED, "<escaped-token>").replace(TOKEN, "<token>").replace(SIGNED, "<signed>")


@pytest.mark.parametrize("url", [
    f"/s/acme/o/5/{TOKEN}", f"/s/acme/o/5/{TOKEN}/erase?cookie_check=1", f"/requests/7/{TOKEN}/accept",
    f"/password/reset/{SIGNED}", f"/unsubscribe/{SIGNED}", f"/signup?invitation={SIGNED}&x=1",
    # Routes in no list anywhere: a verification link another change adds, and anything else.
    f"/verify/{SIGNED}", f"/email/confirm-address/{TOKEN}", f"/brand-new/{SIGNED}/step", f"/x?t={TOKEN}",
    f"/x?whatever={SIGNED}",
    # Spelled with percent escapes, or inside another parameter.
    f"/s/acme/o/5/{ESCAPED}",
    f"/signin?next=%2Fs%2Facme%2Fo%2F5%2F{TOKEN}",
    # A whole URL, as in a Referer.
    f"https://shop.acme.example/s/acme/o/5/{TOKEN}?embed=1",
    "/s/acme/o/5?payment_intent=pi_3Nab&payment_intent_client_secret=pi_3Nab_secret_Qx7LmZ2pW9",
], ids=url_id)
def test_a_token_anywhere_in_a_url_is_redacted(url):
    cleaned = redact_url(url)
    assert REDACTED in cleaned
    for secret in (TOKEN, SIGNED, SIGNED.split(".")[-1], "Qx7LmZ2pW9"):
        assert secret not in cleaned
    assert holds_capability(url)


@pytest.mark.parametrize("url", [
    "/s/acme/o/5", "/s/acme/o/5/cancel", "/s/acme/o/5/erase?embed=1", "/requests/new", "/requests/7/accept",
    "/password/reset", "/unsubscribe", "/signup", "/s/northwind/p/ROAD-AERO-58", "/s/acme/cart?cart=BIKE-1:2,BELL-1:1",
    "/static/vendor/leaflet/marker-icon-2x.png", "/api/v1/settlements?as_of=2026-03-02T09%3A00%3A00Z",
    "/api/v1/orders/9223372036854775807", "/s/a-rather-long-store-slug-name/",
])
def test_what_is_not_a_token_stays_readable(url):
    assert redact_url(url) == url
    assert not holds_capability(url)


def test_free_text_redacts_urls_and_leaves_words_alone():
    line = f"Exception on /s/acme/o/5/{TOKEN} [GET]: SettlementRunError in broker.settlement.services"
    assert redact_text(line) == f"Exception on /s/acme/o/5/{REDACTED} [GET]: SettlementRunError in " \
                                "broker.settlement.services"


def test_our_log_lines_and_tracebacks_are_redacted(capsys):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    request_log = logging.getLogger("werkzeug")
    saved_request_level = request_log.level
    request_log.setLevel(logging.INFO)  # another test may have quietened it
    logs.configure("text")
    try:
        log = logging.getLogger("web.app")
        try:
            raise RuntimeError(f"could not handle /verify/{SIGNED}")
        except RuntimeError:
            log.exception("Exception on %s [%s]", f"/s/acme/o/5/{TOKEN}", "GET")
        logging.getLogger("werkzeug").info('127.0.0.1 - - "%s" %s -', f"GET /unsubscribe/{SIGNED} HTTP/1.1", 303)
        logging.getLogger("broker.x").info("done", extra={"path": f"/requests/7/{TOKEN}"})
        logs.configure("json")
        logging.getLogger("web.app").error("unhandled error on GET %s", f"/signup?invitation={SIGNED}",
                                           exc_info=(RuntimeError, RuntimeError(f"/x/{TOKEN}"), None))
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        request_log.setLevel(saved_request_level)
    written = capsys.readouterr().err
    assert "Exception on /s/acme/o/5/[redacted]" in written and "could not handle /verify/[redacted]" in written
    assert "GET /unsubscribe/[redacted] HTTP/1.1" in written and "invitation=[redacted]" in written
    assert TOKEN not in written and SIGNED not in written and SIGNED.split(".")[-1] not in written


# --- broker serve: gunicorn's access atoms ------------------------------------------


def test_every_gunicorn_access_atom_is_redacted():
    from web.serving import RedactingLogger

    path = f"/s/acme/o/5/{TOKEN}"
    environ = {
        "REQUEST_METHOD": "GET", "RAW_URI": f"{path}?new=1&invitation={SIGNED}", "PATH_INFO": path,
        "QUERY_STRING": f"new=1&invitation={SIGNED}", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
        "HTTP_REFERER": f"http://shop.example/requests/7/{TOKEN}", "HTTP_USER_AGENT": "Mozilla/5.0",
        "HTTP_COOKIE": "broker_order=eyJzIjoiL3MvYWNtZS9vLzUifQ.aBc.dEf", "HTTP_X_ACCESS_TOKEN": "short",
    }
    request = SimpleNamespace(headers=[("Referer", environ["HTTP_REFERER"]), ("Cookie", environ["HTTP_COOKIE"]),
                                       ("X-Access-Token", "short"), ("X-Original-URL", f"/verify/{SIGNED}")])
    response = SimpleNamespace(status="303 SEE OTHER", sent=0, headers=[
        ("Location", f"{path}?cookie_check=1"), ("Set-Cookie", "broker_order=whatever; Path=/s/acme/o/5")])
    logger = RedactingLogger.__new__(RedactingLogger)  # atoms() needs no configuration
    atoms = logger.atoms(response, request, environ, timedelta(milliseconds=3))
    text = " ".join(str(v) for v in atoms.values())
    assert TOKEN not in text and SIGNED not in text and "broker_order=" not in text
    assert atoms["{cookie}i"] == atoms["{set-cookie}o"] == atoms["{http_cookie}e"] == REDACTED
    assert atoms["{x-access-token}i"] == atoms["{http_x_access_token}e"] == REDACTED
    assert atoms["r"] == f"GET /s/acme/o/5/{REDACTED}?new=1&invitation={REDACTED} HTTP/1.1"
    assert atoms["{x-original-url}i"] == f"/verify/{REDACTED}"
    assert atoms["a"] == "Mozilla/5.0" and atoms["s"] == "303"


def test_gunicorn_error_lines_are_redacted():
    import io

    from gunicorn.config import Config

    from web.serving import RedactingLogger

    logger = RedactingLogger(Config())
    caught = io.StringIO()
    handler = logging.StreamHandler(caught)
    logger.error_log.addHandler(handler)
    try:
        logger.error("Error handling request %s", f"/s/acme/o/5/{TOKEN}/erase")
        logger.exception("Invalid request from ip=127.0.0.1: GET /unsubscribe/%s HTTP/1.1", SIGNED)
    finally:
        logger.error_log.removeHandler(handler)
    written = caught.getvalue()
    assert "Error handling request /s/acme/o/5/[redacted]/erase" in written
    assert "GET /unsubscribe/[redacted] HTTP/1.1" in written and SIGNED not in written
