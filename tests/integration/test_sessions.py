"""Sessions end on the server (finding 9 of the security review: a cookie copied
before /signout still opened /portal/ afterwards).

A "copied cookie" is the session cookie taken from one browser and replayed
from another test client, as an attacker with a stolen cookie would."""

from __future__ import annotations

from datetime import timedelta

import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import event, select

from broker.accounts.models import Role
from broker.auth import digest
from broker.identity import services as identity
from broker.identity.models import UserSession
from tests.factories import HERE, World
from tests.pages import PASSWORD, outbox_link, post, sign_in, user_for

COOKIE = "broker_session"


def cookie_of(client) -> str:
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None, "not signed in"
    return cookie.value


def copy_of(app, client):
    """Another browser holding the same session cookie."""
    thief = app.test_client()
    thief.set_cookie(COOKIE, cookie_of(client))
    return thief


def session_id_in(app, client) -> str:
    return app.session_interface.get_signing_serializer(app).loads(cookie_of(client))["sid"]


@pytest.fixture
def kim(ctx):
    shop = World(ctx).retailer(HERE)
    return user_for(ctx, Role.RETAILER, shop.id, "kim@shop.example", "Kim")


def test_copied_cookie_is_dead_after_signout(app, client, kim):
    sign_in(client, "kim@shop.example")
    thief = copy_of(app, client)
    assert thief.get("/portal/").status_code == 200  # the copy works while the session does
    assert post(client, "/signout", form="/account").status_code == 302
    response = thief.get("/portal/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/signin")
    assert thief.get("/account").status_code == 302


def test_signing_out_ends_only_that_session(app, client, kim):
    other = app.test_client()
    sign_in(other, "kim@shop.example")
    sign_in(client, "kim@shop.example")
    post(client, "/signout", form="/account")
    assert other.get("/portal/").status_code == 200


def test_password_change_ends_other_sessions(app, client, kim):
    elsewhere = app.test_client()
    sign_in(elsewhere, "kim@shop.example")
    sign_in(client, "kim@shop.example")
    stolen = copy_of(app, client)
    response = post(client, "/account/password", {"current_password": PASSWORD, "new_password": "new password 1",
                                                   "confirm": "new password 1"}, form="/account")
    assert response.status_code == 302
    assert client.get("/account").status_code == 200  # this browser stays signed in, on a new session
    assert elsewhere.get("/account").status_code == 302
    assert stolen.get("/account").status_code == 302  # a copy of this browser's old cookie too


def test_password_reset_ends_every_session(app, client, ctx, kim):
    sign_in(client, "kim@shop.example")
    stolen = copy_of(app, client)
    identity.request_password_reset(ctx, "kim@shop.example")
    path = outbox_link(ctx, "kim@shop.example", "/password/reset/")
    browser = app.test_client()
    assert post(browser, path, {"password": "a brand new one", "confirm": "a brand new one"},
                form=path).status_code == 302
    assert browser.get("/account").status_code == 200
    assert client.get("/account").status_code == 302 and stolen.get("/account").status_code == 302


def test_removed_user_session_ends(app, client, ctx, kim):
    shop_id = kim.company_id
    lee = user_for(ctx, Role.RETAILER, shop_id, "lee@shop.example", "Lee")
    lee_browser = app.test_client()
    sign_in(lee_browser, "lee@shop.example")
    stolen = copy_of(app, lee_browser)
    sign_in(client, "kim@shop.example")
    assert post(client, f"/account/users/{lee.user_id}/remove", form="/account").status_code == 302
    assert lee_browser.get("/portal/").status_code == 302 and stolen.get("/portal/").status_code == 302
    with ctx.uow() as uow:
        assert uow.session.scalar(select(UserSession.ended_at).where(UserSession.user_id == lee.user_id))


def test_an_idle_session_ends(app, client, clock, ctx, kim):
    sign_in(client, "kim@shop.example")
    idle = timedelta(minutes=ctx.settings.session_idle_minutes)
    clock.advance(seconds=idle.total_seconds() - 60)
    assert client.get("/account").status_code == 200  # used within the idle time: it holds, and is seen again
    clock.advance(seconds=idle.total_seconds() - 60)
    assert client.get("/account").status_code == 200
    clock.advance(seconds=idle.total_seconds() + 1)
    assert client.get("/account").status_code == 302


def test_a_busy_session_still_ends_at_its_absolute_lifetime(app, client, clock, ctx, kim):
    sign_in(client, "kim@shop.example")
    step = timedelta(minutes=ctx.settings.session_idle_minutes) - timedelta(minutes=1)
    for _ in range(int(timedelta(hours=ctx.settings.session_hours) / step)):
        clock.advance(seconds=step.total_seconds())
        assert client.get("/account").status_code == 200
    clock.advance(seconds=step.total_seconds())
    assert client.get("/account").status_code == 302


def test_the_cookie_alone_signs_nobody_in(app, client, ctx, kim):
    """A cookie signed with the app's key is not enough: the session must be a row."""
    forged = app.session_interface.get_signing_serializer(app)
    assert isinstance(forged, URLSafeTimedSerializer)
    for content in ({"uid": kim.user_id, "epoch": "0" * 16}, {"sid": "made-up"}):
        browser = app.test_client()
        browser.set_cookie(COOKIE, forged.dumps(content))
        assert browser.get("/portal/").status_code == 302


def test_only_a_hash_of_the_session_id_is_stored(app, client, ctx, kim):
    sign_in(client, "kim@shop.example")
    session_id = session_id_in(app, client)
    with ctx.uow() as uow:
        hashes = list(uow.session.scalars(select(UserSession.token_hash).where(UserSession.user_id == kim.user_id)))
    assert digest(session_id) in hashes and session_id not in hashes


def test_checking_a_session_is_one_indexed_read(app, client, ctx, engine, kim):
    sign_in(client, "kim@shop.example")
    session_id = session_id_in(app, client)
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN")):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        assert identity.load_session(ctx, session_id).user_id == kim.user_id
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == 1 and "user_sessions.token_hash =" in statements[0]


def test_a_signed_in_form_still_needs_its_csrf_token(app, client, kim):
    sign_in(client, "kim@shop.example")
    assert client.post("/account/keys", data={"csrf_token": "forged"}).status_code == 400
    assert client.post("/account/keys", data={"csrf_token": "gef\u00e4lscht"}).status_code == 400  # not a 500
    assert client.post("/signout").status_code == 400
    assert client.get("/account").status_code == 200  # a forged sign-out ends nothing
