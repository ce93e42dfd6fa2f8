"""Personal requests through the API: anonymous on the board, offers at or under
the ceiling, accept-now, both preferences, expiry with and without the
manufacturer fallback, the captured amount, and the contact relay."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from broker.outbox.models import OutboxMessage
from broker.payments.models import Payment
from broker.personal.services import expire_requests
from broker.settlement.services import settle
from tests.conftest import START
from tests.factories import HERE, north_of

SECRET_BITS = ("Grace Hopper", "grace@navy.example", "77 Cobol Court", "94103-1234")


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def body(**over):
    out = {
        "description": "A blue 52 cm road bike frame",
        "quantity": 1,
        "max_price": 50000,
        "currency": "USD",
        "location": {"lat": HERE[0], "lon": HERE[1]},
        "ship_to": {"name": "Grace Hopper", "line1": "77 Cobol Court", "city": "San Francisco",
                    "postal_code": "94103-1234", "country": "US"},
        "contact": "grace@navy.example",
    }
    out.update(over)
    return out


def post(client, **over):
    response = client.post("/api/v1/requests", json=body(**over))
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def offer(client, shop, listing_id, price):
    return client.post(f"/api/v1/board/{listing_id}/bids", headers=auth(shop.key), json={"price": price})


def board(client, shop):
    return client.get("/api/v1/board", headers=auth(shop.key))


@pytest.fixture
def shops(world):
    near = world.retailer(north_of(HERE, 2), name="Near Cycles")
    far = world.retailer(north_of(HERE, 9), name="Far Cycles")
    away = world.retailer(north_of(HERE, 400), name="Too Far")
    return near, far, away


class TestPosting:
    def test_posting_authorises_the_ceiling_and_lists_it_anonymously(self, client, shops, session):
        near, far, away = shops
        posted = post(client)
        assert posted["status"] == "open" and posted["pseudonym"].startswith("Customer ")
        assert posted["payment"]["amount"] == 50000 and posted["payment"]["status"] == "authorized"

        response = board(client, near)
        [item] = response.get_json()
        assert item["kind"] == "request" and item["max_price"] == 50000
        assert item["pseudonym"] == posted["pseudonym"] and 0 < item["buyer_score"] <= 1
        assert item["description"] == "A blue 52 cm road bike frame"
        for secret in SECRET_BITS:
            assert secret not in response.get_data(as_text=True)
        assert board(client, away).get_json() == []

    @pytest.mark.parametrize("over, field", [
        ({"max_price": 0}, "max_price"),
        ({"quantity": 0}, "quantity"),
        ({"currency": "XXX"}, "currency"),
        ({"prefer": "cheapest"}, "prefer"),
        ({"expires_at": (START - timedelta(hours=1)).isoformat()}, "expires_at"),
        ({"expires_at": (START + timedelta(days=60)).isoformat()}, "expires_at"),
        ({"callback_url": "http://127.0.0.1:9/hook"}, "callback_url"),
        ({"callback_url": "ftp://example.com/x"}, "callback_url"),
        ({"sku": "SKU-1"}, "manufacturer"),
        ({"location": {"lat": 95, "lon": 0}}, "location.lat"),
        ({"description": "", "sku": None}, "description"),
    ])
    def test_bad_requests_are_422_and_nothing_is_posted(self, client, session, over, field):
        from broker.personal.models import PersonalRequest

        data = {k: v for k, v in body(**over).items() if v is not None}
        response = client.post("/api/v1/requests", json=data)
        assert response.status_code == 422, response.get_data(as_text=True)
        assert field in response.get_json()["errors"]
        assert session.scalar(select(PersonalRequest.id)) is None

    def test_the_request_is_only_for_its_token(self, client, shops):
        posted = post(client)
        other = post(client)
        assert client.get(f"/api/v1/requests/{posted['id']}").status_code == 401
        assert client.get(f"/api/v1/requests/{posted['id']}",
                          headers={"X-Access-Token": other["access_token"]}).status_code == 404


class TestOffers:
    def test_offers_above_the_ceiling_are_refused(self, client, shops):
        near, *_ = shops
        post(client)
        listing = board(client, near).get_json()[0]["id"]
        response = offer(client, near, listing, 50001)
        assert response.status_code == 422 and "price" in response.get_json()["errors"]
        assert offer(client, near, listing, 50000).status_code == 201

    def test_an_offer_needs_a_price_and_can_only_improve(self, client, shops):
        near, *_ = shops
        post(client)
        listing = board(client, near).get_json()[0]["id"]
        assert client.post(f"/api/v1/board/{listing}/bids", headers=auth(near.key), json={}).status_code == 422
        assert offer(client, near, listing, 40000).status_code == 201
        assert offer(client, near, listing, 45000).status_code == 422
        improved = offer(client, near, listing, 38000)
        assert improved.status_code == 200 and improved.get_json()["price"] == 38000

    def test_the_customer_sees_offers_with_retailer_and_rating(self, client, shops):
        near, far, _ = shops
        posted = post(client)
        listing = board(client, near).get_json()[0]["id"]
        offer(client, near, listing, 45000)
        offer(client, far, listing, 41000)
        view = client.get(f"/api/v1/requests/{posted['id']}", headers={"X-Access-Token": posted["access_token"]})
        offers = view.get_json()["offers"]
        assert [(o["retailer"], o["price"]) for o in offers] == [("Far Cycles", 41000), ("Near Cycles", 45000)]
        assert all(1 <= o["rating"] <= 5 for o in offers)

    def test_a_retailer_never_sees_another_retailers_offer(self, client, shops):
        near, far, _ = shops
        post(client)
        listing = board(client, near).get_json()[0]["id"]
        offer(client, near, listing, 45000)
        mine = board(client, far).get_json()[0]
        assert mine["my_bid"] is None and "45000" not in json.dumps(mine)


class TestAward:
    def test_accepting_an_offer_makes_an_order_captured_at_the_offer_price(self, client, shops, ctx, session):
        near, far, _ = shops
        posted = post(client)
        token = {"X-Access-Token": posted["access_token"]}
        listing = board(client, near).get_json()[0]["id"]
        offer(client, near, listing, 45000)
        far_bid = offer(client, far, listing, 42000).get_json()

        accepted = client.post(f"/api/v1/requests/{posted['id']}/accept", headers=token,
                               json={"bid_id": far_bid["id"]}).get_json()
        assert accepted["status"] == "awarded" and accepted["order_id"]
        order = client.get(f"/api/v1/orders/{accepted['order_id']}", headers=token).get_json()
        assert (order["status"], order["total"]) == ("awarded", 42000)
        # The winner sees the address; the loser does not see the order.
        [assignment] = client.get("/api/v1/assignments", headers=auth(far.key)).get_json()
        assert assignment["ship_to"]["line1"] == "77 Cobol Court"
        assert client.get(f"/api/v1/orders/{accepted['order_id']}", headers=auth(near.key)).status_code == 404
        shipped = client.post(f"/api/v1/assignments/{assignment['id']}/shipment", headers=auth(far.key),
                              json={"carrier": "UPS", "tracking_number": "1Z"})
        assert shipped.status_code == 200
        payment = session.scalar(select(Payment).where(Payment.request_id == posted["id"])
                                 .execution_options(populate_existing=True))
        assert (payment.amount, payment.captured_amount) == (50000, 42000)  # never more than the winning price

    def test_settlement_awards_the_nearest_by_default(self, client, shops, ctx, session, clock):
        near, far, _ = shops
        posted = post(client)
        listing = board(client, near).get_json()[0]["id"]
        offer(client, near, listing, 49000)
        offer(client, far, listing, 30000)
        clock.now = START + timedelta(hours=13)
        assert settle(ctx).settled == 1
        view = client.get(f"/api/v1/requests/{posted['id']}", headers={"X-Access-Token": posted["access_token"]})
        order = client.get(f"/api/v1/orders/{view.get_json()['order_id']}",
                           headers={"X-Access-Token": posted["access_token"]}).get_json()
        assert order["total"] == 49000
        assert client.get("/api/v1/assignments", headers=auth(near.key)).get_json()[0]["order_id"] == order["id"]

    def test_settlement_awards_the_lowest_price_when_preferred(self, client, shops, ctx, clock):
        near, far, _ = shops
        post(client, prefer="lowest_price")
        listing = board(client, near).get_json()[0]["id"]
        offer(client, near, listing, 49000)
        offer(client, far, listing, 30000)
        clock.now = START + timedelta(hours=13)
        settle(ctx)
        [assignment] = client.get("/api/v1/assignments", headers=auth(far.key)).get_json()
        assert assignment["total"] == 30000

    def test_a_request_without_offers_waits_for_its_expiry(self, client, shops, ctx, clock):
        posted = post(client)
        clock.now = START + timedelta(hours=13)
        assert settle(ctx).settled == 0
        view = client.get(f"/api/v1/requests/{posted['id']}", headers={"X-Access-Token": posted["access_token"]})
        assert view.get_json()["status"] == "open"


class TestExpiry:
    def test_without_offers_a_free_text_request_expires_and_the_hold_is_released(self, client, ctx, clock, session):
        posted = post(client, expires_at=(START + timedelta(hours=30)).isoformat())
        clock.now = START + timedelta(hours=31)
        assert expire_requests(ctx).expired == 1
        view = client.get(f"/api/v1/requests/{posted['id']}",
                          headers={"X-Access-Token": posted["access_token"]}).get_json()
        assert view["status"] == "expired" and view["payment"]["status"] == "released"

    def test_without_offers_a_catalog_product_within_the_ceiling_goes_to_its_manufacturer(self, client, world,
                                                                                         ctx, clock):
        maker = world.manufacturer(products=[("BIKE-1", 45000)])
        posted = post(client, sku="BIKE-1", manufacturer=maker.slug, description="",
                      expires_at=(START + timedelta(hours=30)).isoformat())
        clock.now = START + timedelta(hours=31)
        assert expire_requests(ctx).to_manufacturer == 1
        [assignment] = client.get("/api/v1/assignments", headers=auth(maker.key)).get_json()
        assert assignment["fulfiller"] == "manufacturer" and assignment["total"] == 45000
        assert client.get(f"/api/v1/requests/{posted['id']}",
                          headers={"X-Access-Token": posted["access_token"]}).get_json()["status"] == "awarded"

    def test_a_catalog_product_above_the_ceiling_expires(self, client, world, ctx, clock):
        maker = world.manufacturer(products=[("BIKE-2", 60000)])
        post(client, sku="BIKE-2", manufacturer=maker.slug, expires_at=(START + timedelta(hours=30)).isoformat())
        clock.now = START + timedelta(hours=31)
        assert expire_requests(ctx).expired == 1

    def test_a_catalog_request_is_only_for_that_manufacturers_dealers(self, client, world):
        maker = world.manufacturer(products=[("BIKE-3", 40000)])
        dealer = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        stranger = world.retailer(north_of(HERE, 3))
        post(client, sku="BIKE-3", manufacturer=maker.slug)
        assert len(board(client, dealer).get_json()) == 1
        assert board(client, stranger).get_json() == []


class TestCallbacksAndRelay:
    def test_offers_and_the_award_are_queued_for_the_agent(self, client, ctx, shops, session, monkeypatch):
        import dataclasses

        near, *_ = shops
        ctx.settings = dataclasses.replace(ctx.settings, allow_private_callbacks=True)
        posted = post(client, callback_url="http://127.0.0.1:8765/hook")
        listing = board(client, near).get_json()[0]["id"]
        bid = offer(client, near, listing, 40000).get_json()
        offer(client, near, listing, 39000)
        client.post(f"/api/v1/requests/{posted['id']}/accept", headers={"X-Access-Token": posted["access_token"]},
                    json={"bid_id": bid["id"]})
        callbacks = OutboxMessage.topic.startswith("callback.")  # the customer's emails are in the outbox too
        topics = session.scalars(select(OutboxMessage.topic).where(callbacks).order_by(OutboxMessage.id)).all()
        assert topics == ["callback.offer", "callback.offer", "callback.award"]
        payloads = session.scalars(select(OutboxMessage.payload).where(callbacks).order_by(OutboxMessage.id)).all()
        assert payloads[0]["url"] == "http://127.0.0.1:8765/hook"
        assert payloads[1]["body"]["offer"]["price"] == 39000
        for secret in SECRET_BITS:
            assert secret not in json.dumps(payloads[0])

    def test_winner_and_customer_talk_without_seeing_each_others_email(self, client, shops):
        near, far, _ = shops
        posted = post(client)
        token = {"X-Access-Token": posted["access_token"]}
        listing = board(client, near).get_json()[0]["id"]
        bid = offer(client, near, listing, 40000).get_json()
        order_id = client.post(f"/api/v1/requests/{posted['id']}/accept", headers=token,
                               json={"bid_id": bid["id"]}).get_json()["order_id"]
        assert client.post(f"/api/v1/orders/{order_id}/messages", headers=token,
                           json={"body": "Can you deliver after 5pm?"}).status_code == 201
        reply = client.post(f"/api/v1/orders/{order_id}/messages", headers=auth(near.key),
                            json={"body": "Yes, Thursday works."})
        assert reply.status_code == 201
        thread = client.get(f"/api/v1/orders/{order_id}/messages", headers=auth(near.key))
        assert [m["sender"] for m in thread.get_json()] == ["customer", "fulfiller"]
        assert "grace@navy.example" not in thread.get_data(as_text=True)
        assert client.get(f"/api/v1/orders/{order_id}/messages", headers=auth(far.key)).status_code == 404
        assert client.post(f"/api/v1/orders/{order_id}/messages", headers=token, json={"body": " "}).status_code == 422


def test_a_request_open_longer_than_its_hold_is_captured_and_the_award_refunds_the_rest(client, shops, ctx, clock,
                                                                                        session):
    from broker.fulfilment.services import check_deadlines
    from broker.ledger.services import check

    near, *_ = shops
    posted = post(client)  # open 7 days; the hold lasts 114 hours
    clock.now = START + timedelta(hours=112)
    assert check_deadlines(ctx).captured_early == 1
    listing = board(client, near).get_json()[0]["id"]
    bid = offer(client, near, listing, 42000).get_json()
    client.post(f"/api/v1/requests/{posted['id']}/accept", headers={"X-Access-Token": posted["access_token"]},
                json={"bid_id": bid["id"]})
    payment = session.scalar(select(Payment).where(Payment.request_id == posted["id"])
                             .execution_options(populate_existing=True))
    assert (payment.captured_amount, payment.refunded_amount) == (50000, 8000)
    result = check(session)
    assert result.ok, result


class TestPages:
    FORM = {"description": "A red kettle", "quantity": "1", "max_price": "45.50", "currency": "USD",
            "prefer": "nearest", "days": "7", "name": "Grace Hopper", "line1": "77 Cobol Court", "line2": "",
            "city": "San Francisco", "postal_code": "94103", "country": "US", "contact": "",
            "payment": "test-approve"}

    def test_post_a_request_follow_it_and_accept_an_offer(self, client, ctx, shops, session):
        from broker.personal.models import PersonalRequest

        near, *_ = shops
        form = client.get("/requests/new").get_data(as_text=True)
        key = re.search(r'name="form_key" value="([^"]+)"', form).group(1)
        response = client.post("/requests/new", data={**self.FORM, "form_key": key})
        assert response.status_code == 303
        # A reload or a double click of the form posts it once, and lands on the same request.
        again = client.post("/requests/new", data={**self.FORM, "form_key": key})
        assert again.status_code == 303 and again.headers["Location"] == response.headers["Location"]
        assert len(session.scalars(select(PersonalRequest.id)).all()) == 1
        page = client.get(response.headers["Location"], follow_redirects=True)
        assert page.status_code == 200 and b"open for offers" in page.data and b"No offers yet" in page.data
        assert b"$45.50" in page.data and b"1 wanted, for up to" in page.data
        follow = page.request.path  # the token-free address: the link was exchanged for a cookie
        assert re.fullmatch(r"/requests/\d+", follow)
        # No email carries this link, so the page shows it, once, to keep.
        shown = re.search(r'id="request-link"[^>]*>([^<]+)<', page.get_data(as_text=True)).group(1)
        assert shown.startswith(f"{ctx.settings.public_url}{follow}/")
        assert b"request-link\"" not in client.get(follow).data
        item = board(client, near).get_json()[0]
        assert item["max_price"] == 4550
        # The board and the customer's page close the request at the same moment.
        closes = re.search(r'id="closes">Offers close <time[^>]* datetime="([^"]+)"', client.get(follow).get_data(
            as_text=True)).group(1)
        assert datetime.fromisoformat(closes) == datetime.fromisoformat(item["closes_at"])
        offer(client, near, item["id"], 4000)
        page = client.get(follow)
        assert b"Near Cycles" in page.data and b"$40.00" in page.data
        bid_id = int(re.search(rb'id="offer-(\d+)"', page.data).group(1))
        confirm = client.get(f"{follow}/accept?bid_id={bid_id}")
        assert confirm.status_code == 200 and b"Yes, accept this offer" in confirm.data
        assert b"Not chosen" not in client.get(follow).data  # nothing happened yet
        csrf = re.search(rb'name="link_csrf" value="([^"]+)"', confirm.data).group(1).decode()
        assert client.post(f"{follow}/accept", data={"bid_id": str(bid_id)}).status_code == 400  # no CSRF token
        key = re.search(rb'name="form_key" value="([^"]+)"', confirm.data).group(1).decode()
        accepted = client.post(f"{follow}/accept", data={"bid_id": str(bid_id), "link_csrf": csrf, "form_key": key})
        assert accepted.status_code == 303 and accepted.headers["Location"] == f"{follow}/order?done=accepted"
        # The confirmation sent twice (a double click): the first answer again, not "the request is awarded".
        again = client.post(f"{follow}/accept", data={"bid_id": str(bid_id), "link_csrf": csrf, "form_key": key})
        assert again.status_code == 303 and again.headers["Location"] == accepted.headers["Location"]
        order = client.get(accepted.headers["Location"]).get_data(as_text=True)
        assert "You accepted the offer" in order and 'data-status="awarded"' in order and 'id="messages"' in order
        page = client.get(follow).get_data(as_text=True)
        assert "You have a winner" in page and 'class="badge won">Winner' in page and 'id="order-link"' in page
        # From another browser, the link shown opens it again.
        other = client.application.test_client()
        assert b"You have a winner" in other.get(shown.removeprefix(ctx.settings.public_url),
                                                 follow_redirects=True).data
        # Before it ships, the order can be cancelled from its page, after a confirmation.
        assert f'href="{follow}/order/cancel"' in client.get(f"{follow}/order").get_data(as_text=True)
        confirm = client.get(f"{follow}/order/cancel")
        assert confirm.status_code == 200 and b"Yes, cancel the order" in confirm.data
        csrf = re.search(rb'name="link_csrf" value="([^"]+)"', confirm.data).group(1).decode()
        cancelled = client.post(f"{follow}/order/cancel", data={"link_csrf": csrf})
        assert cancelled.status_code == 303 and cancelled.headers["Location"] == f"{follow}/order?done=cancelled"
        page = client.get(cancelled.headers["Location"]).get_data(as_text=True)
        assert 'data-status="cancelled"' in page and "Your order is cancelled" in page

    def test_every_error_at_once_in_the_currency_s_format_never_minor_units(self, client, session):
        from broker.personal.models import PersonalRequest

        response = client.post("/requests/new", data={**self.FORM, "description": " ", "quantity": "0",
                                                      "max_price": "99999999", "name": "", "payment": ""})
        text = response.get_data(as_text=True)
        assert response.status_code == 422 and 'id="error-summary"' in text
        for name in ("description", "quantity", "max_price", "name", "payment"):
            assert f'id="{name}-error"' in text, name
        assert "$21,474,836.47" in text and "2147483647" not in text and "minor units" not in text
        assert session.scalar(select(PersonalRequest.id)) is None

    def test_the_currency_follows_the_country(self, client):
        page = client.get("/requests/new?country=DE").get_data(as_text=True)
        assert re.search(r'<option value="EUR" selected>', page)
        assert re.search(r'<option value="DE" selected>', page)

    def test_form_errors_show_next_to_the_field_and_post_nothing(self, client, session):
        from broker.personal.models import PersonalRequest

        response = client.post("/requests/new", data={**self.FORM, "postal_code": "00000", "max_price": "lots"})
        assert response.status_code == 422
        assert b'id="max_price-error"' in response.data
        bad_zip = client.post("/requests/new", data={**self.FORM, "postal_code": "00000"})
        assert bad_zip.status_code == 422 and b'id="postal_code-error"' in bad_zip.data
        assert session.scalar(select(PersonalRequest.id)) is None

    def test_the_address_is_the_countrys_form_as_at_checkout(self, client, session):
        from broker.personal.models import PersonalRequest

        japan = client.get("/requests/new?country=JP").get_data(as_text=True)
        # Japan's form: a prefecture to choose, its postal code's example as a hint.
        assert '<label for="region">Prefecture</label>' in japan and '<select id="region" name="region"' in japan
        assert "東京都" in japan and "For example 154-0023" in japan
        assert japan.index('id="postal_code"') < japan.index('id="region"') < japan.index('id="line1"')
        # Without the script, changing the country asks the server for that country's form.
        canada = client.post("/requests/new", data={**self.FORM, "country": "CA", "action": "country"})
        page = canada.get_data(as_text=True)
        assert canada.status_code == 200 and 'id="error-summary"' not in page and 'name="region"' in page
        assert session.scalar(select(PersonalRequest.id)) is None
        # The country's rules, each error next to its field: a postal code of another province.
        wrong = client.post("/requests/new", data={**self.FORM, "country": "CA", "city": "Toronto",
                                                   "postal_code": "M5V 2T6", "region": "QC", "currency": "CAD"})
        assert wrong.status_code == 422 and 'id="postal_code-error"' in wrong.get_data(as_text=True)
        assert session.scalar(select(PersonalRequest.id)) is None
        posted = client.post("/requests/new", data={**self.FORM, "country": "CA", "city": "Toronto",
                                                    "postal_code": "m5v2t6", "region": "", "currency": "CAD"})
        assert posted.status_code == 303
        request = session.scalar(select(PersonalRequest))
        assert (request.ship_postal_code, request.ship_region, request.ship_country) == ("M5V 2T6", "ON", "CA")

    def test_a_wrong_token_is_404(self, client, shops):
        posted = post(client)
        assert client.get(f"/requests/{posted['id']}/not-the-token").status_code == 404


def test_no_retailer_response_carries_the_customers_identity(client, shops, ctx, clock):
    """Walk everything a retailer can call around a request, the winner included,
    and look for the customer's name, email, street or contact in every body."""
    near, far, _ = shops
    posted = post(client)
    token = {"X-Access-Token": posted["access_token"]}
    forbidden_everywhere = ("grace@navy.example",)           # the contact: never shown to a retailer
    forbidden_before_award = SECRET_BITS                      # name, street, full postal code
    seen = []

    def call(shop, method, path, **kw):
        response = client.open(path, method=method, headers=auth(shop.key), **kw)
        seen.append((shop, path, response.get_data(as_text=True)))
        return response

    for shop in (near, far):
        call(shop, "GET", "/api/v1/board")
    listing = board(client, near).get_json()[0]["id"]
    bid = call(near, "POST", f"/api/v1/board/{listing}/bids", json={"price": 40000}).get_json()
    call(far, "POST", f"/api/v1/board/{listing}/bids", json={"price": 41000})
    call(far, "POST", f"/api/v1/board/{listing}/bids", json={"price": 39999})
    for shop in (near, far):
        call(shop, "GET", "/api/v1/bids")
        call(shop, "GET", f"/api/v1/requests/{posted['id']}")
    for _, path, text in seen:
        for secret in forbidden_before_award:
            assert secret not in text, (path, secret)

    order_id = client.post(f"/api/v1/requests/{posted['id']}/accept", headers=token,
                           json={"bid_id": bid["id"]}).get_json()["order_id"]
    client.post(f"/api/v1/orders/{order_id}/messages", headers=token, json={"body": "Hello from the customer"})
    seen.clear()
    for shop in (near, far):
        call(shop, "GET", "/api/v1/board")
        call(shop, "GET", "/api/v1/bids")
        call(shop, "GET", "/api/v1/assignments")
        call(shop, "GET", f"/api/v1/orders/{order_id}")
        call(shop, "GET", f"/api/v1/orders/{order_id}/messages")
        call(shop, "POST", f"/api/v1/orders/{order_id}/messages", json={"body": "Hi"})
    for shop, path, text in seen:
        for secret in forbidden_everywhere:
            assert secret not in text, (path, secret)
        if shop is far:  # the loser learns nothing more after the award either
            for secret in forbidden_before_award:
                assert secret not in text, (path, secret)
    assert any("77 Cobol Court" in text for shop, _, text in seen if shop is near)  # the winner can ship it


@pytest.mark.parametrize("path, body", [
    ("/api/v1/orders/1/messages", {"body": ""}),
    ("/api/v1/orders/1/return", {}),
    ("/api/v1/orders/1/reviews", {"rating": 9}),
    ("/api/v1/requests/1/accept", {"bid_id": "x"}),
])
def test_a_caller_without_token_or_key_gets_401_before_the_body_is_read(client, path, body):
    response = client.post(path, json=body)
    assert response.status_code == 401, response.get_data(as_text=True)
    assert "errors" not in response.get_json()
