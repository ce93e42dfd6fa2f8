"""Capability links (an order's, a request's, password, unsubscribe and invitation
links) are exchanged on first use for an HttpOnly cookie scoped to that one
order, request or flow, and the browser is sent to the same URL without the
token. Each test performs what an attacker, or an unlucky browser, would do.

Through the Flask test client; the browser's side (Referer, the cross-site
embed) is in tests/e2e/test_capability_browser.py, the logs in
tests/e2e/test_capability_logs.py.
"""

from __future__ import annotations

import re

import itsdangerous.timed
import pytest
from sqlalchemy import select

from broker.fulfilment.models import Assignment
from broker.fulfilment.services import RecordShipment, record_shipment
from broker.orders.models import Order
from broker.settlement.services import settle
from broker.tokens import make_token
from tests.factories import World
from tests.pages import outbox_link, submit
from web import capability

ASSETS = re.compile(r"<(?:link|script|img|iframe|style)\b", re.IGNORECASE)


@pytest.fixture
def maker(world):
    return world.manufacturer("acme", products=[("KETTLE", 4599)])


@pytest.fixture
def placed(world, maker):
    return world.order(maker, sku="KETTLE")


def set_cookies(response) -> dict[str, dict]:
    """The cookies a response sets, each with its attributes (lower-cased names;
    a flag such as HttpOnly or Partitioned is True). By hand: http.cookies does
    not know Partitioned, and drops the whole header for it."""
    found = {}
    for header in response.headers.getlist("Set-Cookie"):
        first, *attributes = [part.strip() for part in header.split(";")]
        name, _, value = first.partition("=")
        attrs: dict = {"value": value}
        for attribute in attributes:
            key, has_value, attr_value = attribute.partition("=")
            attrs[key.lower()] = attr_value if has_value else True
        found[name] = attrs
    return found


def csrf_of(page) -> str:
    return re.search(r'name="link_csrf" value="([^"]+)"', page.get_data(as_text=True)).group(1)


def order_path(placed) -> str:
    return f"/s/acme/o/{placed.order.id}"


def status_of(session, order_id: int) -> str:
    return session.scalar(select(Order.status).where(Order.id == order_id).execution_options(populate_existing=True))


# --- the order page ------------------------------------------------------------------


class TestOrderLink:
    def test_order_link_is_exchanged_for_a_cookie_and_redirected(self, client, placed):
        path, token = order_path(placed), placed.access_token
        first = client.get(f"{path}/{token}?new=1")
        assert first.status_code == 303
        assert first.headers["Referrer-Policy"] == "no-referrer"
        assert not ASSETS.search(first.get_data(as_text=True))  # nothing to load, so nothing to send a Referer
        cookie = set_cookies(first)["broker_order"]
        assert cookie["path"] == path and cookie["httponly"] is True and cookie["samesite"] == "Lax"
        assert "partitioned" not in cookie and "expires" not in cookie and "max-age" not in cookie
        # The browser comes back with the cookie: to the same page, without the token.
        second = client.get(first.headers["Location"])
        assert second.status_code == 303 and second.headers["Referrer-Policy"] == "no-referrer"
        assert second.headers["Location"] == f"{path}?new=1"
        page = client.get(second.headers["Location"])
        assert page.status_code == 200 and b"your order is placed" in page.data
        assert token.encode() not in page.data  # not in a link, not in a form
        # Next time, a browser holding the cookie goes straight through.
        again = client.get(f"{path}/{token}")
        assert again.status_code == 303 and again.headers["Location"] == path

    def test_the_exchange_redirects_to_this_order_only(self, client, placed):
        """What the link's query says is carried along as query, never made the path or host."""
        path, token = order_path(placed), placed.access_token
        first = client.get(f"{path}/{token}?slug=other&_external=1&_scheme=javascript&order_id=99&embed=1")
        assert first.headers["Location"].startswith(f"{path}/{token}?")
        second = client.get(first.headers["Location"])
        location = second.headers["Location"]
        assert location.startswith(f"{path}?") and "cookie_check" not in location and token not in location
        assert "slug=other" in location and "embed=1" in location

    def test_a_wrong_token_is_404_and_sets_nothing(self, client, ctx, placed, world, maker):
        other = world.order(maker, sku="KETTLE")
        for wrong in ("not-the-token", other.access_token, placed.access_token[:-1]):
            response = client.get(f"{order_path(placed)}/{wrong}")
            assert response.status_code == 404 and "Set-Cookie" not in response.headers
        # Nor the right token for another store's address.
        World(ctx).manufacturer("other")
        response = client.get(f"/s/other/o/{placed.order.id}/{placed.access_token}")
        assert response.status_code == 404 and "Set-Cookie" not in response.headers

    def test_token_free_order_page_needs_the_cookie(self, app, client, placed, ctx):
        path = order_path(placed)
        stranger = app.test_client()
        refused = stranger.get(path)
        assert refused.status_code == 403 and b"Ada" not in refused.data and b"Secret Lane" not in refused.data
        assert b"link in your order confirmation email" in refused.data
        # The raw token as the cookie, or a cookie of our making for the token with
        # another purpose, does not open it.
        stranger.set_cookie("broker_order", placed.access_token, path=path)
        assert stranger.get(path).status_code == 403
        forged = make_token(ctx.settings.secret_key, "link.broker_request", {"s": path, "t": placed.access_token})
        stranger.set_cookie("broker_order", forged, path=path)
        assert stranger.get(path).status_code == 403
        for action in ("cancel", "review", "return", "erase"):
            assert stranger.post(f"{path}/{action}", data={"confirm": "yes"}).status_code == 403
        assert stranger.get(f"{path}/data").status_code == 403

    def test_the_cookie_expires_on_the_server_after_its_hours(self, client, placed, monkeypatch):
        path = order_path(placed)
        client.get(f"{path}/{placed.access_token}", follow_redirects=True)
        assert client.get(path).status_code == 200
        real = itsdangerous.timed.TimestampSigner.get_timestamp
        monkeypatch.setattr(itsdangerous.timed.TimestampSigner, "get_timestamp",
                            lambda self: real(self) + capability.COOKIE_HOURS * 3600 + 60)
        assert client.get(path).status_code == 403
        # The link itself still works (and sets a fresh cookie).
        assert client.get(f"{path}/{placed.access_token}", follow_redirects=True).request.path == path

    def test_cookie_is_scoped_to_its_order(self, app, client, placed, world, maker, ctx):
        other = world.order(maker, sku="KETTLE")
        mine = client.get(f"{order_path(placed)}/{placed.access_token}")
        assert set_cookies(mine)["broker_order"]["path"] == order_path(placed)
        client.get(mine.headers["Location"], follow_redirects=True)
        assert client.get(order_path(placed)).status_code == 200
        # /s/acme/o/1's cookie is not sent to /s/acme/o/12, nor to another order...
        assert client.get(order_path(other)).status_code == 403
        # ...and copied by hand to another order's path, it is refused there: it names its own.
        value = client.get_cookie("broker_order", path=order_path(placed)).value
        thief = app.test_client()
        thief.set_cookie("broker_order", value, path=order_path(other))
        assert thief.get(order_path(other)).status_code == 403
        # Nor does it open the same order id under another store's address.
        World(ctx).manufacturer("other")
        thief.set_cookie("broker_order", value, path=f"/s/other/o/{placed.order.id}")
        assert thief.get(f"/s/other/o/{placed.order.id}").status_code == 403

    @pytest.mark.parametrize("action, data", [("cancel", {"confirm": "yes"}), ("review", {"rating": "5"}),
                                              ("return", {"reason": "broken"}), ("erase", {"confirm": "yes"})])
    def test_order_actions_need_the_csrf_token(self, client, placed, world, maker, session, action, data):
        other = world.order(maker, sku="KETTLE")
        path = order_path(placed)
        client.get(f"{path}/{placed.access_token}", follow_redirects=True)
        page = client.get(f"{path}/cancel")  # the confirmation's form, bound to this order
        client.get(f"{order_path(other)}/{other.access_token}", follow_redirects=True)
        other_csrf = csrf_of(client.get(f"{order_path(other)}/cancel"))
        for sent in ({}, {"link_csrf": ""}, {"link_csrf": other_csrf}, {"link_csrf": csrf_of(page) + "0"},
                     {"link_csrf": "é" * 64}):
            refused = client.post(f"{path}/{action}", data={**data, **sent})
            assert refused.status_code == 400, (sent, refused.status_code)
            assert b"did not come from this page" in refused.data
        assert status_of(session, placed.order.id) == "open"

    def test_cancel_and_erase_work_through_the_token_free_urls(self, client, placed, session):
        path = order_path(placed)
        client.get(f"{path}/{placed.access_token}", follow_redirects=True)
        page = client.get(f"{path}/cancel")
        done = client.post(f"{path}/cancel", data={"link_csrf": csrf_of(page)})
        assert done.status_code == 303 and done.headers["Location"] == f"{path}?done=cancelled"
        assert status_of(session, placed.order.id) == "cancelled"
        erase = client.get(f"{path}/erase")
        erased = client.post(f"{path}/erase", data={"confirm": "yes", "link_csrf": csrf_of(erase)})
        assert erased.status_code == 303 and erased.headers["Location"] == path
        assert b"Your personal data was erased" in client.get(path).data

    def test_review_and_return_work_through_the_token_free_urls(self, client, ctx, clock, maker, placed, session):
        clock.advance(hours=13)
        settle(ctx)  # nobody bid: the manufacturer ships it
        assignment = session.scalar(select(Assignment).where(Assignment.order_id == placed.order.id))
        record_shipment(ctx, maker.actor, assignment.id, RecordShipment("UPS", "1Z"))
        path = order_path(placed)
        page = client.get(f"{path}/{placed.access_token}", follow_redirects=True)
        csrf = csrf_of(page)
        assert client.post(f"{path}/delivered", data={"link_csrf": csrf}).status_code == 303  # reviews open
        assert client.post(f"{path}/review", data={"rating": "4", "link_csrf": csrf}).status_code == 303
        assert client.post(f"{path}/return", data={"reason": "It leaks", "link_csrf": csrf}).status_code == 303
        after = client.get(path)
        assert b"You rated it 4" in after.data and b"You asked to return it" in after.data

    def test_a_browser_that_refuses_cookies_still_reaches_its_order(self, app, placed, session):
        """It is sent once to `?cookie_check=1`, then shown the page where it is:
        no loop, the token stays in its URLs, and nothing it loads gets a Referer."""
        browser = app.test_client(use_cookies=False)
        path, token = order_path(placed), placed.access_token
        hops = []
        response = browser.get(f"{path}/{token}?new=1")
        while response.status_code == 303:
            hops.append(response.headers["Location"])
            assert len(hops) < 3, f"a redirect loop: {hops}"
            response = browser.get(response.headers["Location"])
        assert hops == [f"{path}/{token}?new=1&cookie_check=1"]
        assert response.status_code == 200 and b"your order is placed" in response.data
        assert b"This browser keeps no cookies" in response.data
        assert response.headers["Referrer-Policy"] == "no-referrer"
        text = response.get_data(as_text=True)
        links = set(re.findall(r'(?:href|action)="(/s/acme/o/[^"]+)"', text))
        # Its actions, and the language control's links to this page itself.
        assert links and all((f"{path}/{token}/" in link or link.startswith(f"{path}/{token}?"))
                             and "cookie_check=1" in link for link in links), links
        for link in links:
            if "/data" in link:
                assert browser.get(link.replace("&amp;", "&")).status_code == 200  # the download, without a hop
        cancel = next(link for link in links if link.split("?")[0].endswith("/cancel")).replace("&amp;", "&")
        done = browser.post(cancel, data={"confirm": "yes"})
        assert done.status_code == 303 and done.headers["Location"].startswith(f"{path}/{token}?")
        assert status_of(session, placed.order.id) == "cancelled"
        assert browser.get(done.headers["Location"]).status_code == 200


class TestEmbeddedCookie:
    def test_inside_the_embed_the_cookie_is_partitioned(self, client, placed):
        response = client.get(f"{order_path(placed)}/{placed.access_token}?embed=1")
        cookie = set_cookies(response)["broker_order"]
        assert cookie["partitioned"] is True and cookie["secure"] is True and cookie["httponly"] is True
        assert cookie["samesite"] == "None"
        assert "embed=1" in response.headers["Location"]

    def test_checkout_in_the_embed_sets_the_partitioned_cookie_and_stays_in_the_frame(self, client, maker):
        form = {"name": "Ada Lovelace", "email": "ada@example.com", "line1": "12 Analytical Row", "line2": "",
                "city": "San Francisco", "postal_code": "94103", "country": "US", "payment": "test-approve"}
        done = client.post("/s/acme/checkout?cart=KETTLE:1&embed=1", data=form)
        assert done.status_code == 303 and "embed=1" in done.headers["Location"]
        assert set_cookies(done)["broker_order"]["partitioned"] is True
        page = client.get(done.headers["Location"], follow_redirects=True)
        assert re.fullmatch(r"/s/acme/o/\d+", page.request.path) and page.request.args.get("embed") == "1"


# --- personal requests ----------------------------------------------------------------


def post_request(client) -> dict:
    response = client.post("/api/v1/requests", json={
        "description": "A red kettle", "quantity": 1, "max_price": 5000, "currency": "USD",
        "location": {"postal_code": "94103", "country": "US"},
        "ship_to": {"name": "Grace Hopper", "line1": "77 Cobol Court", "city": "San Francisco",
                    "postal_code": "94103", "country": "US"}})
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


class TestRequestLink:
    def test_request_link_is_exchanged_for_a_cookie_and_redirected(self, client):
        posted = post_request(client)
        path, token = f"/requests/{posted['id']}", posted["access_token"]
        first = client.get(f"{path}/{token}")
        assert first.status_code == 303 and first.headers["Referrer-Policy"] == "no-referrer"
        cookie = set_cookies(first)["broker_request"]
        assert cookie["path"] == path and cookie["httponly"] is True and cookie["samesite"] == "Lax"
        page = client.get(first.headers["Location"], follow_redirects=True)
        assert page.status_code == 200 and page.request.path == path and token.encode() not in page.data
        assert client.get(f"{path}/not-the-token").status_code == 404

    def test_request_page_needs_its_own_cookie(self, app, client):
        mine, theirs = post_request(client), post_request(client)
        client.get(f"/requests/{mine['id']}/{mine['access_token']}", follow_redirects=True)
        assert client.get(f"/requests/{mine['id']}").status_code == 200
        assert client.get(f"/requests/{theirs['id']}").status_code == 403
        assert app.test_client().get(f"/requests/{mine['id']}").status_code == 403

    @pytest.mark.parametrize("action, data", [("cancel", {}), ("accept", {"bid_id": "1"}),
                                              ("erase", {"confirm": "yes"})])
    def test_request_actions_need_the_csrf_token(self, client, session, action, data):
        from broker.personal.models import PersonalRequest

        posted = post_request(client)
        path = f"/requests/{posted['id']}"
        client.get(f"{path}/{posted['access_token']}", follow_redirects=True)
        refused = client.post(f"{path}/{action}", data=data)
        assert refused.status_code == 400
        status = session.scalar(select(PersonalRequest.status).where(PersonalRequest.id == posted["id"])
                                .execution_options(populate_existing=True))
        assert status == "open"
        confirm = client.get(f"{path}/cancel")  # the confirmation step holds the form
        done = client.post(f"{path}/cancel", data={"link_csrf": csrf_of(confirm)})
        assert done.status_code == 303 and done.headers["Location"] == f"{path}?done=withdrawn"


# --- the account links ----------------------------------------------------------------


class TestAccountLinks:
    def test_password_link_is_exchanged_for_a_cookie_and_redirected(self, app, ctx):
        from broker.accounts.models import Role
        from broker.identity import services as identity

        maker = World(ctx).manufacturer()
        _, link = identity.add_user(ctx, role=Role.MANUFACTURER, company_id=maker.id, email="new@maker.example",
                                      name="New")
        path = "/" + link.split("/", 3)[3]
        client = app.test_client()
        first = client.get(path)
        assert first.status_code == 303 and first.headers["Referrer-Policy"] == "no-referrer"
        assert set_cookies(first)["broker_password"]["path"] == "/password/reset"
        page = client.get(first.headers["Location"], follow_redirects=True)
        assert page.request.path == "/password/reset" and b"new@maker.example" in page.data
        assert app.test_client().get("/password/reset").status_code == 403
        # The form, on the token-free URL, needs the link's CSRF token as well as the session's.
        session_csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
        body = {"password": "a long new password", "confirm": "a long new password", "csrf_token": session_csrf}
        assert client.post("/password/reset", data=body).status_code == 400
        done = client.post("/password/reset", data={**body, "link_csrf": csrf_of(page)})
        assert done.status_code == 302 and set_cookies(done)["broker_password"]["value"] == ""
        wrong = app.test_client().get("/password/reset/not-a-token")
        assert wrong.status_code == 422 and "Set-Cookie" not in wrong.headers

    def test_unsubscribe_link_is_exchanged_and_its_form_needs_the_csrf_token(self, app, ctx):
        from broker.notifications.services import opted_out, unsubscribe_url

        path = "/" + unsubscribe_url(ctx, "kim@shop.example", "digest").split("/", 3)[3]
        client = app.test_client()
        first = client.get(path)
        assert first.status_code == 303 and set_cookies(first)["broker_unsubscribe"]["path"] == "/unsubscribe"
        page = client.get(first.headers["Location"], follow_redirects=True)
        assert page.request.path == "/unsubscribe" and b"Stop these emails?" in page.data
        assert client.post("/unsubscribe").status_code == 400  # a page elsewhere posting to it
        with ctx.uow() as uow:
            assert not opted_out(uow.session, "kim@shop.example", "digest")
        assert client.post("/unsubscribe", data={"link_csrf": csrf_of(page)}).status_code == 200
        with ctx.uow() as uow:
            assert opted_out(uow.session, "kim@shop.example", "digest")
        wrong = app.test_client().get("/unsubscribe/not-a-token")
        assert wrong.status_code == 422 and "Set-Cookie" not in wrong.headers

    def test_invitation_link_is_exchanged_for_a_cookie_and_redirected(self, app, ctx):
        from broker.accounts import invitations

        maker = World(ctx).manufacturer()
        invitations.invite(ctx, maker.actor, "new@retail.example")
        path = outbox_link(ctx, "new@retail.example", "/invitations/")
        client = app.test_client()
        first = client.get(path)
        assert first.status_code == 303 and set_cookies(first)["broker_invitation"]["path"] == "/invitations"
        page = client.get(first.headers["Location"], follow_redirects=True)
        assert page.request.full_path.rstrip("?") == "/invitations"
        assert b"new@retail.example" in page.data
        assert app.test_client().get("/invitations").status_code == 403  # another browser holds no key
        wrong = app.test_client().get("/invitations/not-a-token")
        assert wrong.status_code == 422 and "Set-Cookie" not in wrong.headers
        done = submit(client, path, {
            "company": "Bay Bikes", "name": "Robin", "email": "new@retail.example",
            "password": "correct horse battery", "store_name": "Mission St", "postal_code": "94103",
            "country": "US", "service_radius_km": "40"})
        assert done.status_code == 302 and set_cookies(done)["broker_invitation"]["value"] == ""

    def test_verification_link_is_exchanged_for_a_cookie_and_redirected(self, app, ctx):
        from broker.identity import services as identity
        from broker.geo.geocoding import LocationQuery

        identity.sign_up_retailer(ctx, identity.RetailerSignUp(
            company="Bay Bikes", name="Robin", email="robin@bay.example", password="correct horse battery",
            location=LocationQuery(postal_code="94103", country="US"), service_radius_km=40))
        path = outbox_link(ctx, "robin@bay.example", "/verify/")
        client = app.test_client()
        first = client.get(path)
        assert first.status_code == 303 and set_cookies(first)["broker_verify"]["path"] == "/verify"
        page = client.get(first.headers["Location"], follow_redirects=True)
        assert page.request.full_path.rstrip("?") == "/verify" and b"robin@bay.example" in page.data
        assert app.test_client().get("/verify").status_code == 403
        done = submit(client, path, {"password": "correct horse battery"})
        assert done.status_code == 302 and set_cookies(done)["broker_verify"]["value"] == ""


# --- Referrer-Policy, for any link --------------------------------------------------


@pytest.mark.parametrize("path", [
    "/s/acme/o/1/{token}", "/requests/1/{token}", "/password/reset/{token}", "/unsubscribe/{token}",
    "/signup?invitation={token}",
    # Routes in no list: a verification link added later, anything else with a token in it.
    "/verify/{token}", "/some/new/capability/{token}", "/s/acme/?key={token}",
])
def test_any_response_to_a_url_with_a_token_sends_no_referrer(client, maker, path):
    token = "Zx81-" + "aB3dEf9GhJ2kLmN5pQrS7tUvW0xYz4"
    response = client.get(path.format(token=token))
    assert response.headers["Referrer-Policy"] == "no-referrer", (path, response.status_code)


def test_token_free_pages_keep_their_referrer_policy(client, maker):
    assert client.get("/s/acme/").headers["Referrer-Policy"] == "same-origin"
    assert client.get("/signin").headers["Referrer-Policy"] == "same-origin"
