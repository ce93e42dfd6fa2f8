"""What the pages say is true: a shop's rating with its count ("New: no ratings
yet" below three), dealers by name in the console, one closing time for a
request on the board and on the customer's page, no empty "()" on a request's
lines, "Shipped to this address" only once shipped; and the fulfiller rates the
customer from the portal's order page, blind as in the API."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from broker.accounts.models import Role
from broker.board import services as board
from broker.fulfilment import services as fulfilment
from broker.orders.delivered import confirm_delivery
from broker.pagination import PageRequest
from broker.reputation import services as reputation
from broker.reputation.models import Author, Review, SubjectKind
from broker.reputation.rules import rating_text
from tests.factories import HERE, north_of
from tests.integration.test_console_pages import sign_in as console_sign_in
from tests.integration.test_portal_pages import Portal, html, post, sign_in
from tests.integration.test_portal_pages import _cheap_password_hashes  # noqa: F401  (autouse fixture)
from tests.integration.test_portal_pages import settings  # noqa: F401  (sessions that outlast the clock)


@pytest.fixture
def portal(ctx, clock):
    return Portal(ctx, clock)


@pytest.fixture
def signed_in(client, portal):
    sign_in(client, "owner@corner.example")
    return client


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def rate_shop(ctx, world, maker, shop_id: int, stars: list[int]) -> None:
    """Revealed customer ratings of a shop (written 15 days ago: past the blind window)."""
    with ctx.uow() as uow:
        for n in stars:
            order_id = world.order(maker).order.id
            uow.session.add(Review(order_id=order_id, author=Author.CUSTOMER, subject_kind=SubjectKind.RETAILER,
                                   subject_id=shop_id, rating=n, comment="", created_at=ctx.now() - timedelta(days=15)))
        uow.commit()


def post_request(client):
    return client.post("/api/v1/requests", json={
        "description": "a cast-iron kettle", "quantity": 1, "max_price": 9000, "currency": "USD",
        "location": {"lat": HERE[0], "lon": HERE[1]},
        "ship_to": {"name": "Grace Hopper", "line1": "77 Cobol Court", "city": "San Francisco",
                    "postal_code": "94103", "country": "US"}}).get_json()


class TestRatingsWithCounts:
    def test_the_words(self):
        assert rating_text(4.6, 0) == "New: no ratings yet"
        assert rating_text(4.2, 1) == "New: 1 rating so far"
        assert rating_text(4.2, 2) == "New: 2 ratings so far"
        assert rating_text(4.66, 3) == "4.7★ (3 ratings)"

    def test_customers_see_a_new_shop_as_new_and_a_rated_one_with_its_count(self, ctx, client, portal):
        world = portal.world
        fresh = world.retailer(north_of(HERE, 2), name="Fresh Shop")
        rated = world.retailer(north_of(HERE, 4), name="Rated Shop")
        rate_shop(ctx, world, portal.maker, rated.id, [5, 4, 5, 5])
        posted = post_request(client)
        [listing] = client.get("/api/v1/board", headers=auth(fresh.key)).get_json()
        for shop in (fresh, rated):
            assert client.post(f"/api/v1/board/{listing['id']}/bids", headers=auth(shop.key),
                               json={"price": 8000}).status_code == 201
        got = client.get(f"/api/v1/requests/{posted['id']}",
                         headers={"X-Access-Token": posted["access_token"]}).get_json()
        offers = {o["retailer"]: o for o in got["offers"]}
        assert (offers["Fresh Shop"]["ratings"], offers["Fresh Shop"]["rating_text"]) == (0, "New: no ratings yet")
        assert offers["Rated Shop"]["ratings"] == 4
        assert re.fullmatch(r"\d\.\d★ \(4 ratings\)", offers["Rated Shop"]["rating_text"])
        page = html(client.get(f"/requests/{posted['id']}/{posted['access_token']}", follow_redirects=True))
        assert "New: no ratings yet" in page and offers["Rated Shop"]["rating_text"] in page
        assert "4.6" not in page  # the starting score is never shown as if customers gave it

    def test_the_scorecard_says_new_and_counts(self, ctx, signed_in, portal):
        page = html(signed_in.get("/portal/scorecard"))
        assert '<div class="big" id="rating">New</div>' in page and "no ratings yet" in page
        rate_shop(ctx, portal.world, portal.maker, portal.me.company_id, [5, 5, 4])
        page = html(signed_in.get("/portal/scorecard"))
        assert re.search(r'<div class="big" id="rating">\d\.\d ★</div>', page) and "3 ratings" in page

    def test_the_console_lists_dealers_with_their_rating_and_count(self, ctx, client, portal):
        rate_shop(ctx, portal.world, portal.maker, portal.me.company_id, [4, 4, 4])
        console_sign_in(client, ctx, Role.MANUFACTURER, portal.maker.id)
        page = html(client.get("/console/dealers"))
        row = re.search(r'<tr data-retailer="%d">.*?</tr>' % portal.me.company_id, page, re.DOTALL).group(0)
        assert "Corner Bikes" in row and re.search(r"\d\.\d★ \(3 ratings\)", row)


class TestNamesAndDates:
    def test_the_console_names_the_dealer_and_says_shipped_only_once_shipped(self, ctx, client, portal):
        assignment = portal.win()
        console_sign_in(client, ctx, Role.MANUFACTURER, portal.maker.id)
        listing = html(client.get("/console/orders"))
        page = html(client.get(f"/console/orders/{assignment.order_id}"))
        for text in (listing, page):
            assert "Corner Bikes" in text and "retailer #" not in text
        assert "To be shipped to this address" in page and "Shipped to this address" not in page
        fulfilment.record_shipment(ctx, portal.actor, assignment.id, fulfilment.RecordShipment("UPS", "1Z"))
        assert "Shipped to this address" in html(client.get(f"/console/orders/{assignment.order_id}"))

    def test_a_request_closes_at_the_same_time_on_the_board_and_on_the_customers_page(self, ctx, client, portal):
        shop = portal.world.retailer(north_of(HERE, 2), name="Kettle Shop")
        posted = post_request(client)
        [listing] = client.get("/api/v1/board", headers=auth(shop.key)).get_json()
        got = client.get(f"/api/v1/requests/{posted['id']}",
                         headers={"X-Access-Token": posted["access_token"]}).get_json()
        assert got["closes_at"] == listing["closes_at"] == posted["closes_at"]
        assert got["closes_at"] < got["expires_at"]  # decided at the next settlement, not at the expiry
        page = html(client.get(f"/requests/{posted['id']}/{posted['access_token']}", follow_redirects=True))
        closes = re.search(r'<time id="request-closes"[^>]*>([^<]+)</time>', page).group(1)
        assert closes.startswith(listing["closes_at"][:10] + " " + listing["closes_at"][11:16])

    def test_a_short_request_closes_at_its_expiry_everywhere(self, ctx, client, portal):
        shop = portal.world.retailer(north_of(HERE, 2), name="Kettle Shop")
        soon = (ctx.now() + timedelta(hours=2)).isoformat()
        posted = client.post("/api/v1/requests", json={
            "description": "a kettle, today", "quantity": 1, "max_price": 9000, "currency": "USD",
            "location": {"lat": HERE[0], "lon": HERE[1]}, "expires_at": soon,
            "ship_to": {"name": "Grace Hopper", "line1": "77 Cobol Court", "city": "San Francisco",
                        "postal_code": "94103", "country": "US"}}).get_json()
        [listing] = client.get("/api/v1/board", headers=auth(shop.key)).get_json()
        got = client.get(f"/api/v1/requests/{posted['id']}",
                         headers={"X-Access-Token": posted["access_token"]}).get_json()
        assert listing["closes_at"] == got["closes_at"] == got["expires_at"]

    def test_a_request_won_order_has_no_empty_brackets(self, ctx, client, signed_in, portal):
        posted = post_request(client)
        [listing] = client.get("/api/v1/board", headers=auth(portal.world.retailer(north_of(HERE, 30)).key)).get_json()
        board.place_bid(ctx, portal.actor, board.PlaceBid(listing["id"], price=8000))
        assert client.post(f"/api/v1/requests/{posted['id']}/accept", headers={"X-Access-Token": posted["access_token"]},
                           json={"bid_id": client.get(f"/api/v1/requests/{posted['id']}", headers={
                               "X-Access-Token": posted["access_token"]}).get_json()["offers"][0]["bid_id"]}
                           ).status_code == 200
        orders = html(signed_in.get("/portal/orders"))
        assignment_id = re.search(r'href="/portal/orders/(\d+)"', orders).group(1)
        page = html(signed_in.get(f"/portal/orders/{assignment_id}"))
        assert "a cast-iron kettle" in page and "()" not in page


class TestFulfillerRatesTheCustomer:
    @pytest.fixture
    def shipped(self, ctx, portal):
        """A won order, shipped: its assignment and the customer's access token."""
        placed = portal.order()
        board.place_bid(ctx, portal.actor, board.PlaceBid(portal.world.listing_id(placed.order.id)))
        portal.settle()
        [view] = fulfilment.list_assignments(ctx, portal.actor, PageRequest(1, 10)).items
        fulfilment.record_shipment(ctx, portal.actor, view.assignment.id, fulfilment.RecordShipment("UPS", "1Z"))
        return view.assignment, placed.access_token

    def test_no_rating_before_delivery(self, ctx, signed_in, shipped):
        delivered, _ = shipped
        page = html(signed_in.get(f"/portal/orders/{delivered.id}"))
        assert "Rate the customer" not in page
        response = post(signed_in, f"/portal/orders/{delivered.id}/review", {"rating": "5"},
                        token_from=f"/portal/orders/{delivered.id}")
        assert response.status_code == 409

    def test_rate_after_delivery_and_then_read_the_customers_review(self, ctx, signed_in, portal, shipped):
        delivered, order_token = shipped
        confirm_delivery(ctx, delivered.order_id, order_token)
        reputation.review_as_customer(ctx, delivered.order_id, order_token, 4, "Quick and friendly")
        page = html(signed_in.get(f"/portal/orders/{delivered.id}"))
        assert 'id="review-heading">Rate the customer' in page
        assert "Quick and friendly" not in page and 'id="review-blind"' in page  # blind until both reviewed

        bad = post(signed_in, f"/portal/orders/{delivered.id}/review", {"rating": "9", "comment": "x" * 501},
                   token_from=f"/portal/orders/{delivered.id}")
        assert bad.status_code == 422
        text = html(bad)
        assert "choose from 1 to 5 stars" in text and "at most 500 characters" in text
        assert 'aria-describedby="rating-error"' in text and 'aria-describedby="comment-error"' in text

        done = post(signed_in, f"/portal/orders/{delivered.id}/review", {"rating": "5", "comment": "Paid, polite"},
                    token_from=f"/portal/orders/{delivered.id}")
        assert done.status_code == 302
        page = html(signed_in.get(done.headers["Location"]))
        assert "You rated the customer 5 ★" in page and "Paid, polite" in page
        assert "The customer rated you <strong>4 ★</strong>" in page and "Quick and friendly" in page
        assert 'name="rating"' not in page  # once only
        again = post(signed_in, f"/portal/orders/{delivered.id}/review", {"rating": "1"},
                     token_from=f"/portal/orders/{delivered.id}")
        assert again.status_code == 409

