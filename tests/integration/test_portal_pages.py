"""The retailer portal's pages through the Flask test client: each page with
data, bidding, shipping, stores and manufacturers, and the access rules (signed
out, the wrong kind of account, another retailer's order, a form without its
CSRF token, the customer's identity before the win)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from broker.accounts import applications, invitations
from broker.accounts import services as accounts
from broker.accounts.models import Role
from broker.board import services as board
from broker.board.models import Bid, BidStatus
from broker.fulfilment import services as fulfilment
from broker.fulfilment.models import Assignment, AssignmentStatus
from broker.fulfilment.scorecard import scorecard, week_starts
from broker.geo.geocoding import LocationQuery
from broker.identity import passwords
from broker.identity import services as identity
from broker.identity.models import User
from broker.identity.passwords import hash_password
from broker.orders import services as orders
from broker.orders.models import Delivery
from broker.pagination import PageRequest
from broker.personal import services as personal
from broker.privacy.models import Disclosure
from broker.settlement.services import settle
from tests.conftest import make_settings
from tests.factories import HERE, World, north_of
from tests.pages import outbox_link, sign_up_verified

PASSWORD = "portal-test-password"
CUSTOMER = {"name": "Ada Lovelace", "email": "ada@example.com", "street": "1 Secret Lane"}
PAGES = ["/portal/", "/portal/orders", "/portal/returns", "/portal/scorecard", "/portal/outcomes", "/portal/stores",
         "/portal/dealers"]
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


# --- helpers ---------------------------------------------------------------------------


def csrf(client, path: str = "/signin") -> str:
    page = client.get(path, follow_redirects=True)  # an emailed link is exchanged first
    found = CSRF.search(page.get_data(as_text=True))
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def sign_in(client, email: str, password: str = PASSWORD) -> None:
    response = client.post("/signin", data={"email": email, "password": password, "csrf_token": csrf(client)})
    assert response.status_code == 302, response.get_data(as_text=True)


def sign_up(ctx, *, company: str, email: str, postal_code: str = "94103", radius: float = 50.0):
    """A retailer company with its first store (in San Francisco) and its first user, verified."""
    return sign_up_verified(ctx, identity.RetailerSignUp(
        company=company, name=f"{company} owner", email=email, password=PASSWORD,
        location=LocationQuery(postal_code=postal_code, country="US"), service_radius_km=radius))


def post(client, path: str, data: dict | None = None, *, token_from: str = "/portal/"):
    return client.post(path, data={**(data or {}), "csrf_token": csrf(client, token_from)})


def html(response) -> str:
    return response.get_data(as_text=True)


def map_data(page: str, element_id: str) -> dict:
    found = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', page, re.DOTALL)
    assert found, f"no #{element_id} on the page"
    return json.loads(found.group(1))


class Portal:
    """A world with a manufacturer, a signed-up retailer (its dealer) and helpers."""

    def __init__(self, ctx, clock):
        self.ctx, self.clock = ctx, clock
        self.world = World(ctx)
        self.maker = self.world.manufacturer(products=(("SKU-1", 5000), ("SKU-2", 1250)))
        self.me = sign_up(ctx, company="Corner Bikes", email="owner@corner.example")
        accounts.authorise_dealer(ctx, self.maker.actor, self.me.company_id)

    @property
    def actor(self):
        return self.me.actor

    def order(self, **kwargs):
        return self.world.order(self.maker, **kwargs)

    def win(self, **kwargs):
        """An order on the board, bid on by this retailer and settled to it: its assignment."""
        placed = self.order(**kwargs)
        board.place_bid(self.ctx, self.actor, board.PlaceBid(self.world.listing_id(placed.order.id)))
        self.settle()
        with self.ctx.uow() as uow:
            return uow.session.scalar(select(Assignment).where(Assignment.order_id == placed.order.id,
                                                               Assignment.status == AssignmentStatus.ACTIVE))

    def settle(self):
        self.clock.advance(hours=13)
        return settle(self.ctx, as_of=self.clock.now)


@pytest.fixture
def settings(database_url):
    # These pages are used across settlement and shipping windows: the clock moves
    # on by hours under one signed-in client. How long a session lasts is
    # tests/integration/test_sessions.py's business.
    return make_settings(database_url, session_idle_minutes=30 * 24 * 60, session_hours=30 * 24)


@pytest.fixture(autouse=True)
def _cheap_password_hashes(monkeypatch):
    """These tests are about pages, not about how slow a password hash is: a
    cheaper scrypt cost (stored in each hash, so sign-in verifies it as is)."""
    monkeypatch.setattr(passwords, "N", 2**10)


@pytest.fixture
def portal(ctx, clock):
    return Portal(ctx, clock)


@pytest.fixture
def signed_in(client, portal):
    sign_in(client, "owner@corner.example")
    return client


# --- access rules --------------------------------------------------------------------


class TestAccess:
    @pytest.mark.parametrize("path", PAGES + ["/portal/orders/1", "/portal/orders/1/slip"])
    def test_signed_out_goes_to_the_sign_in_page(self, client, path):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/signin?next=")

    def test_a_manufacturer_user_gets_403(self, ctx, client, portal):
        with ctx.uow() as uow:
            uow.session.add(User(email="boss@maker.example", name="Boss", password_hash=hash_password(PASSWORD),
                                 role=Role.MANUFACTURER, manufacturer_id=portal.maker.id, created_at=ctx.now(),
                                 verified_at=ctx.now()))
            uow.commit()
        sign_in(client, "boss@maker.example")
        # One sign-in for every page: each check is a plain GET.
        assert {path: client.get(path).status_code for path in PAGES} == dict.fromkeys(PAGES, 403)

    def test_a_manufacturer_user_cannot_post_a_bid(self, ctx, client, portal):
        with ctx.uow() as uow:
            uow.session.add(User(email="boss@maker.example", name="Boss", password_hash=hash_password(PASSWORD),
                                 role=Role.MANUFACTURER, manufacturer_id=portal.maker.id, created_at=ctx.now(),
                                 verified_at=ctx.now()))
            uow.commit()
        listing_id = portal.world.listing_id(portal.order().order.id)
        sign_in(client, "boss@maker.example")
        assert post(client, f"/portal/board/{listing_id}/bid", token_from="/account").status_code == 403

    @pytest.mark.parametrize("suffix", ["", "/slip"])
    def test_another_retailers_order_is_not_found(self, ctx, client, portal, suffix):
        theirs = portal.win()
        sign_up(ctx, company="Other Shop", email="other@shop.example")
        sign_in(client, "other@shop.example")
        response = client.get(f"/portal/orders/{theirs.id}{suffix}")
        assert response.status_code == 404
        assert CUSTOMER["name"] not in html(response) and CUSTOMER["street"] not in html(response)

    def test_another_retailer_cannot_ship_or_release_it(self, ctx, client, portal):
        theirs = portal.win()
        sign_up(ctx, company="Other Shop", email="other@shop.example")
        sign_in(client, "other@shop.example")
        shipped = post(client, f"/portal/orders/{theirs.id}/shipment", {"carrier": "UPS", "tracking_number": "1Z"})
        released = post(client, f"/portal/orders/{theirs.id}/release", {"confirm": "yes"})
        assert (shipped.status_code, released.status_code) == (404, 404)
        with ctx.uow() as uow:
            assert uow.session.get(Assignment, theirs.id).status == AssignmentStatus.ACTIVE

    def test_a_post_without_the_csrf_token_is_refused(self, ctx, signed_in, portal):
        assignment = portal.win()
        listing = portal.world.listing_id(portal.order().order.id)
        paths = [f"/portal/board/{listing}/bid", f"/portal/board/{listing}/withdraw",
                 f"/portal/orders/{assignment.id}/shipment", f"/portal/orders/{assignment.id}/release",
                 "/portal/stores", f"/portal/dealers/{portal.maker.id}/apply"]
        form = {"carrier": "UPS", "tracking_number": "1Z", "confirm": "yes", "name": "X", "postal_code": "94105",
                "service_radius_km": "5"}
        assert {path: signed_in.post(path, data=form).status_code for path in paths} == dict.fromkeys(paths, 400)
        wrong = signed_in.post(f"/portal/board/{listing}/bid", data={"csrf_token": "forged"})
        assert wrong.status_code == 400
        with ctx.uow() as uow:
            assert uow.session.scalar(select(func.count(Bid.id)).where(Bid.listing_id == listing)) == 0
            assert uow.session.get(Assignment, assignment.id).status == AssignmentStatus.ACTIVE
            assert len(accounts.list_stores(ctx, portal.actor, PageRequest()).items) == 1

    def test_the_board_never_shows_who_the_customer_is(self, signed_in, portal):
        placed = portal.order(to=north_of(HERE, 3))
        page = html(signed_in.get("/portal/"))
        assert f"listing-{portal.world.listing_id(placed.order.id)}" in page
        for secret in CUSTOMER.values():
            assert secret not in page
        # Nor where exactly: the map gets the listing's grid cell, not the ship-to point.
        point = map_data(page, "board-map-data")["listings"][0]
        assert (point["lat"], point["lon"]) != (placed.order.ship_lat, placed.order.ship_lon)
        assert abs(point["lat"] - placed.order.ship_lat) < 0.02 and abs(point["lon"] - placed.order.ship_lon) < 0.02
        assert repr(placed.order.ship_lat)[:8] not in page

    def test_the_address_shows_once_won_and_each_showing_is_logged(self, ctx, signed_in, portal):
        assignment = portal.win()
        for path in ("/portal/orders", f"/portal/orders/{assignment.id}", f"/portal/orders/{assignment.id}/slip"):
            page = html(signed_in.get(path))
            assert CUSTOMER["name"] in page and CUSTOMER["street"] in page
            assert CUSTOMER["email"] not in page  # not needed to ship it
        with ctx.uow() as uow:
            purposes = list(uow.session.scalars(select(Disclosure.purpose).where(
                Disclosure.order_id == assignment.order_id, Disclosure.party_kind == "retailer",
                Disclosure.party_id == portal.me.company_id).order_by(Disclosure.id)))
        assert purposes == ["fulfiller listed what it must ship", "fulfiller opened an order it must ship",
                            "fulfiller printed a packing slip"]


# --- the board -----------------------------------------------------------------------


class TestBoard:
    def test_lists_and_maps_the_listings_near_my_stores(self, signed_in, portal):
        near = portal.order(to=north_of(HERE, 2), sku="SKU-2", quantity=3)
        far = portal.order(to=north_of(HERE, 400))  # outside every radius
        response = signed_in.get("/portal/")
        page = html(response)
        assert response.status_code == 200
        near_id, far_id = portal.world.listing_id(near.order.id), portal.world.listing_id(far.order.id)
        assert f'id="listing-{near_id}"' in page and f'id="listing-{far_id}"' not in page
        assert "3 × Product SKU-2" in page and "37.50 USD" in page and "San Francisco" in page
        assert "Closes 2026-03-03 02:00 UTC" in page
        data = map_data(page, "board-map-data")
        assert [listing["id"] for listing in data["listings"]] == [near_id]
        assert data["stores"][0]["radius_km"] == 50 and data["stores"][0]["name"] == "Corner Bikes"
        assert "vendor/leaflet/leaflet.js" in page and "portal-map.js" in page
        assert "<script>" not in page and 'style="' not in page  # the CSP admits neither

    def test_filters_by_kind_and_distance(self, ctx, signed_in, portal):
        near = portal.world.listing_id(portal.order(to=north_of(HERE, 2)).order.id)
        farther = portal.world.listing_id(portal.order(to=north_of(HERE, 20)).order.id)
        page = html(signed_in.get("/portal/?max_km=10"))
        assert f'id="listing-{near}"' in page and f'id="listing-{farther}"' not in page
        assert f'id="listing-{near}"' not in html(signed_in.get("/portal/?kind=request"))
        assert f'id="listing-{farther}"' in html(signed_in.get("/portal/?kind=order&max_km=25"))

    @pytest.mark.parametrize("query, field", [("max_km=-3", "max_km"), ("max_km=lots", "max_km"),
                                              ("kind=auction", "kind")])
    def test_a_bad_filter_is_shown_next_to_its_field(self, signed_in, portal, query, field):
        listing = portal.world.listing_id(portal.order().order.id)
        response = signed_in.get(f"/portal/?{query}")
        assert response.status_code == 422
        assert f'id="{field}-error"' in html(response)
        assert f'id="listing-{listing}"' in html(response)  # the rest of the board still shows

    def test_pages_through_the_listings(self, signed_in, portal, monkeypatch):
        monkeypatch.setattr("web.portal.BOARD_PAGE_SIZE", 2)
        ids = [portal.world.listing_id(portal.order(to=north_of(HERE, km)).order.id) for km in (1, 2, 3)]
        first, second = html(signed_in.get("/portal/?kind=order")), html(signed_in.get("/portal/?kind=order&page=2"))
        assert all(f'id="listing-{i}"' in first for i in ids[:2]) and f'id="listing-{ids[2]}"' not in first
        assert f'id="listing-{ids[2]}"' in second and "Page 2 of 2" in second
        assert 'href="/portal/?kind=order&amp;page=2"' in first

    def test_bid_and_withdraw_in_one_click_each(self, ctx, signed_in, portal):
        listing = portal.world.listing_id(portal.order().order.id)
        response = post(signed_in, f"/portal/board/{listing}/bid", {"kind": "order", "page": "1"})
        assert response.status_code == 302
        assert response.headers["Location"] == f"/portal/?kind=order&page=1#listing-{listing}"
        page = html(signed_in.get("/portal/"))
        assert f"You bid on listing #{listing}" in page and "My bid" in page
        assert map_data(page, "board-map-data")["listings"][0]["bid"] is True

        response = post(signed_in, f"/portal/board/{listing}/withdraw")
        assert response.status_code == 302
        assert f"Your bid on listing #{listing} is withdrawn" in html(signed_in.get("/portal/"))
        with ctx.uow() as uow:
            assert uow.session.scalar(select(Bid.status).where(Bid.listing_id == listing)) == BidStatus.WITHDRAWN

    def test_withdrawing_with_no_bid_is_a_404_page(self, signed_in, portal):
        listing = portal.world.listing_id(portal.order().order.id)
        assert post(signed_in, f"/portal/board/{listing}/withdraw").status_code == 404

    def test_bidding_on_a_settled_listing_is_a_409_page(self, signed_in, portal):
        listing = portal.world.listing_id(portal.order().order.id)
        portal.settle()
        response = post(signed_in, f"/portal/board/{listing}/bid")
        assert response.status_code == 409 and "closed" in html(response)

    def test_an_offer_on_a_request_needs_a_price_at_or_under_the_ceiling(self, ctx, signed_in, portal):
        posted = personal.post_request(ctx, personal.PostRequest(
            description="A blue tandem bicycle", quantity=1, max_price=80000, currency="USD",
            location=LocationQuery(lat=HERE[0], lon=HERE[1]),
            ship_to=personal.ShipTo(name="Grace Hopper", line1="2 Hidden Way", city="San Francisco",
                                    postal_code="94103", country="US"),
            contact="grace@example.com"))
        page = html(signed_in.get("/portal/?kind=request"))
        assert "A blue tandem bicycle" in page and "Up to <strong>800.00 USD</strong>" in page
        assert "Grace Hopper" not in page and "2 Hidden Way" not in page and "grace@example.com" not in page
        listing = int(re.search(r'id="listing-(\d+)"', page).group(1))
        form = {"listing_kind": "request", "currency": "USD", "kind": "request"}

        for price, message in (("", "needs a price"), ("900", "ceiling"),
                               ("12.345", "at most 2 decimal places")):
            response = post(signed_in, f"/portal/board/{listing}/bid", {**form, "price": price})
            assert response.status_code == 422, price
            assert f'id="price-{listing}-error"' in html(response) and message in html(response)
        response = post(signed_in, f"/portal/board/{listing}/bid", {**form, "price": "750"})
        assert response.status_code == 302
        with ctx.uow() as uow:
            assert uow.session.scalar(select(Bid.price).where(Bid.listing_id == listing)) == 75000
        assert posted.request.id


# --- won orders ------------------------------------------------------------------------


class TestOrders:
    def test_lists_what_i_must_ship_with_the_address_and_due_time(self, signed_in, portal):
        assignment = portal.win(quantity=2)
        page = html(signed_in.get("/portal/orders"))
        assert f'id="assignment-{assignment.id}"' in page
        assert "2 × Product SKU-1" in page and "1 Secret Lane" in page and "San Francisco, CA 94103" in page
        assert assignment.due_at.strftime("%Y-%m-%d %H:%M UTC") in page
        assert f'id="assignment-{assignment.id}"' not in html(signed_in.get("/portal/orders?status=shipped"))

    def test_record_the_shipment(self, ctx, signed_in, portal):
        assignment = portal.win()
        page = html(signed_in.get(f"/portal/orders/{assignment.id}"))
        assert "Record the shipment" in page and "Give the order back" in page
        response = post(signed_in, f"/portal/orders/{assignment.id}/shipment",
                        {"carrier": "UPS", "tracking_number": "1Z999AA10123456784"})
        assert response.status_code == 302 and response.headers["Location"] == f"/portal/orders/{assignment.id}"
        page = html(signed_in.get(response.headers["Location"]))
        assert "Shipment recorded: UPS 1Z999AA10123456784" in page
        assert "with UPS, tracking 1Z999AA10123456784" in page and "Record the shipment" not in page
        with ctx.uow() as uow:
            assert uow.session.get(Assignment, assignment.id).status == AssignmentStatus.SHIPPED
        # Shipping twice is refused, not a 500.
        again = post(signed_in, f"/portal/orders/{assignment.id}/shipment", {"carrier": "UPS", "tracking_number": "2"})
        assert again.status_code == 409

    @pytest.mark.parametrize("form, field", [({"carrier": " ", "tracking_number": "1Z"}, "carrier"),
                                             ({"carrier": "UPS"}, "tracking_number")])
    def test_a_blank_shipment_field_is_shown_next_to_it(self, ctx, signed_in, portal, form, field):
        assignment = portal.win()
        response = post(signed_in, f"/portal/orders/{assignment.id}/shipment", form)
        assert response.status_code == 422
        assert f'id="{field}-error"' in html(response) and "must not be blank" in html(response)
        assert 'value="UPS"' in html(response) or field == "carrier"  # what was typed stays
        with ctx.uow() as uow:
            assert uow.session.get(Assignment, assignment.id).status == AssignmentStatus.ACTIVE

    def test_the_packing_slip_has_the_ship_to_and_the_items(self, signed_in, portal):
        assignment = portal.win(quantity=2)
        response = signed_in.get(f"/portal/orders/{assignment.id}/slip")
        page = html(response)
        assert response.status_code == 200
        assert "Packing slip" in page and CUSTOMER["name"] in page and CUSTOMER["street"] in page
        assert "SKU-1" in page and "Corner Bikes" in page and "portal-print.js" in page
        # In the US's format: the state (from the ZIP code) between the city and the ZIP code.
        assert "San Francisco, CA 94103<br>UNITED STATES" in page

    def test_release_needs_a_confirmation_then_gives_the_order_back(self, ctx, signed_in, portal):
        assignment = portal.win()
        response = post(signed_in, f"/portal/orders/{assignment.id}/release")
        assert response.status_code == 422 and 'id="confirm-error"' in html(response)
        response = post(signed_in, f"/portal/orders/{assignment.id}/release", {"confirm": "yes"})
        assert response.status_code == 302 and response.headers["Location"] == "/portal/orders"
        page = html(signed_in.get("/portal/orders"))
        assert "You gave the order back" in page and f'id="assignment-{assignment.id}"' not in page
        assert signed_in.get(f"/portal/orders/{assignment.id}").status_code == 404  # no longer mine to see

    def test_a_pickup_is_handed_over_against_its_code(self, ctx, signed_in, portal):
        placed = orders.place_order(ctx, portal.maker.slug, orders.PlaceOrder(
            items=[orders.Item("SKU-1", 1)], customer=orders.Customer("Ada Lovelace", "ada@example.com"),
            ship_to=orders.Address("1 Secret Lane", "San Francisco", "94103", "US", lat=HERE[0], lon=HERE[1]),
            delivery=Delivery.PICKUP))
        board.place_bid(ctx, portal.actor, board.PlaceBid(portal.world.listing_id(placed.order.id)))
        portal.settle()
        with ctx.uow() as uow:
            assignment_id = uow.session.scalar(select(Assignment.id).where(Assignment.order_id == placed.order.id))
        page = html(signed_in.get(f"/portal/orders/{assignment_id}"))
        assert "pickup code" in page and "Record the shipment" not in page and CUSTOMER["street"] not in page
        wrong = post(signed_in, f"/portal/orders/{assignment_id}/pickup", {"code": "000000"})
        assert wrong.status_code == 422 and 'id="code-error"' in html(wrong)
        right = post(signed_in, f"/portal/orders/{assignment_id}/pickup", {"code": placed.pickup_code})
        assert right.status_code == 302
        assert "Handed over" in html(signed_in.get(right.headers["Location"]))


# --- scorecard and outcomes --------------------------------------------------------------


class TestScorecard:
    def test_counts_wins_on_time_and_lapses_by_week(self, ctx, clock, signed_in, portal):
        shipped = portal.win()
        fulfilment.record_shipment(ctx, portal.actor, shipped.id, fulfilment.RecordShipment("UPS", "1Z"))
        portal.win()  # never shipped: it lapses
        clock.advance(hours=49)
        fulfilment.check_deadlines(ctx)

        card = scorecard(ctx, portal.actor)
        assert (card.total.wins, card.total.on_time, card.total.lapsed, card.total.on_time_rate) == (2, 1, 1, 0.5)
        assert len(card.weeks) == 12 and card.weeks[-1].starts <= clock.now.date()
        assert sum(w.record.wins for w in card.weeks) == 2

        page = html(signed_in.get("/portal/scorecard"))
        assert '<div class="big" id="wins">2</div>' in page
        assert '<div class="big" id="on-time">50%</div>' in page
        assert '<div class="big" id="lapses">1</div>' in page
        assert 'id="chart-wins"' in page and 'id="chart-on-time"' in page
        assert 'data-series="On time" data-value="50"' in page  # this week's point
        assert re.search(r'<rect class="bar"[^>]*data-value="2"', page)  # this week's bar: two wins
        assert 'style="' not in page

    def test_another_retailers_record_does_not_count(self, ctx, portal):
        other = sign_up(ctx, company="Other Shop", email="other@shop.example")
        portal.win()
        assert scorecard(ctx, other.actor).total.wins == 0

    def test_weeks_start_on_monday_in_the_operators_time_zone(self, clock):
        starts = week_starts(clock.now, "America/Los_Angeles", 3)  # START is Monday 09:00 UTC = 01:00 in LA
        assert [s.isoformat() for s in starts] == ["2026-02-16T08:00:00+00:00", "2026-02-23T08:00:00+00:00",
                                                   "2026-03-02T08:00:00+00:00"]
        assert week_starts(clock.now - timedelta(hours=2), "America/Los_Angeles", 1)[0].day == 23


class TestOutcomes:
    def test_a_lost_bid_says_why_but_not_who_won(self, ctx, signed_in, portal):
        nearer = portal.world.retailer(HERE, dealer_of=[portal.maker], name="Nearer Cycles")
        placed = portal.order()
        portal.world.bid(nearer, placed.order.id)
        board.place_bid(ctx, portal.actor, board.PlaceBid(portal.world.listing_id(placed.order.id)))
        portal.settle()
        page = html(signed_in.get("/portal/outcomes"))
        assert ">Lost<" in page and "Lost: a nearer bidder won; the winner was under 5 km away." in page
        assert "Nearer Cycles" not in page and CUSTOMER["name"] not in page


# --- stores and manufacturers --------------------------------------------------------------


class TestStores:
    def test_edit_a_store(self, ctx, signed_in, portal):
        store_id = accounts.list_stores(ctx, portal.actor, PageRequest()).items[0].id
        page = html(signed_in.get("/portal/stores"))
        assert map_data(page, "stores-map-data")["stores"][0]["id"] == store_id
        response = post(signed_in, f"/portal/stores/{store_id}",
                        {"name": "Corner Bikes Mission", "postal_code": "94110", "country": "US",
                         "service_radius_km": "12.5"}, token_from="/portal/stores")
        assert response.status_code == 302
        page = html(signed_in.get("/portal/stores"))
        assert "Corner Bikes Mission is saved (closed, 12.5 km around San Francisco, CA 941xx)" in page
        store = accounts.list_stores(ctx, portal.actor, PageRequest()).items[0]
        assert (store.name, store.service_radius_km, store.is_open) == ("Corner Bikes Mission", 12.5, False)

    @pytest.mark.parametrize("form, field", [
        ({"postal_code": "00000"}, "postal_code"),
        ({"service_radius_km": "far"}, "service_radius_km"),
        ({"service_radius_km": "0"}, "service_radius_km"),
        ({"name": " "}, "name"),
    ])
    def test_bad_store_input_is_shown_next_to_the_field(self, ctx, signed_in, portal, form, field):
        store_id = accounts.list_stores(ctx, portal.actor, PageRequest()).items[0].id
        data = {"name": "Corner Bikes", "postal_code": "", "country": "US", "service_radius_km": "50",
                "is_open": "on", **form}
        response = post(signed_in, f"/portal/stores/{store_id}", data, token_from="/portal/stores")
        assert response.status_code == 422
        assert f'id="store-{store_id}-{field}-error"' in html(response)

    def test_add_a_store(self, ctx, signed_in, portal):
        bad = post(signed_in, "/portal/stores", {"name": "Warehouse", "country": "US", "service_radius_km": "80"},
                   token_from="/portal/stores")
        assert bad.status_code == 422 and 'id="store-new-postal_code-error"' in html(bad)
        response = post(signed_in, "/portal/stores", {"name": "Warehouse", "postal_code": "94607", "country": "US",
                                                      "service_radius_km": "80"}, token_from="/portal/stores")
        assert response.status_code == 302
        page = html(signed_in.get("/portal/stores"))
        assert "Warehouse is added" in page
        assert [s["name"] for s in map_data(page, "stores-map-data")["stores"]] == ["Corner Bikes", "Warehouse"]

    def test_a_store_abroad_has_its_countrys_address_form_and_rules(self, ctx, signed_in, portal):
        store_id = accounts.list_stores(ctx, portal.actor, PageRequest()).items[0].id
        berlin = {"name": "Corner Bikes Berlin", "line1": "Invalidenstraße 1", "city": "Berlin", "country": "DE",
                  "service_radius_km": "20"}
        bad = post(signed_in, f"/portal/stores/{store_id}", {**berlin, "postal_code": "1011"},
                   token_from="/portal/stores")
        assert bad.status_code == 422
        page = html(bad)
        assert f'id="store-{store_id}-postal_code-error"' in page and "Enter a postal code like" in page
        # Germany's form: no state, and the postal code before the city, as Germany writes it.
        form = page[page.index(f'id="store-{store_id}"'):]
        form = form[:form.index("</form>")]
        assert f'id="store-{store_id}-region"' not in form
        assert form.index(f'id="store-{store_id}-postal_code"') < form.index(f'id="store-{store_id}-city"')
        good = post(signed_in, f"/portal/stores/{store_id}", {**berlin, "postal_code": "10115"},
                    token_from="/portal/stores")
        assert good.status_code == 302, re.findall(r"class=\"error\"[^>]*>([^<]*)", html(good))
        store = accounts.list_stores(ctx, portal.actor, PageRequest()).items[0]
        assert (store.line1, store.postal_code, store.city, store.country) == ("Invalidenstraße 1", "10115",
                                                                                  "Berlin", "DE")
        assert "10115 Berlin" in html(signed_in.get("/portal/stores"))

    def test_another_retailers_store_is_not_found(self, ctx, signed_in, portal):
        other = sign_up(ctx, company="Other Shop", email="other@shop.example")
        theirs = accounts.list_stores(ctx, other.actor, PageRequest()).items[0].id
        response = post(signed_in, f"/portal/stores/{theirs}", {"name": "Mine now", "service_radius_km": "5"},
                        token_from="/portal/stores")
        assert response.status_code == 404


class TestDealers:
    def test_apply_with_a_note(self, ctx, signed_in, portal):
        other = portal.world.manufacturer(products=())
        page = html(signed_in.get("/portal/dealers"))
        assert "authorised dealer" in page and f"Maker {other.slug}" in page
        response = post(signed_in, f"/portal/dealers/{other.id}/apply", {"note": "We stock your range."},
                        token_from="/portal/dealers")
        assert response.status_code == 302
        page = html(signed_in.get("/portal/dealers"))
        assert "Your application is sent" in page and "application pending" in page
        assert [a.note for a in applications.list_applications(ctx, other.actor)] == ["We stock your range."]

    @pytest.mark.parametrize("answer, status", [("accept", "authorised"), ("decline", "")])
    def test_answer_an_invitation_through_its_link(self, ctx, signed_in, portal, answer, status):
        other = portal.world.manufacturer(products=())
        invitations.invite(ctx, other.actor, "owner@corner.example")
        path = outbox_link(ctx, "owner@corner.example", "/invitations/")
        page = html(signed_in.get(path, follow_redirects=True))
        assert f"Maker {other.slug} invites you" in page and "Accept for Corner Bikes" in page
        response = post(signed_in, f"{path}/{answer}", token_from=path)
        assert response.status_code == 302
        assert next(c.status for c in applications.manufacturers_for(ctx, portal.actor) if c.id == other.id) == status
        assert post(signed_in, f"{path}/accept", token_from="/portal/").status_code == 422  # it worked once

    def test_an_invitation_is_not_listed_in_the_portal_of_its_address(self, ctx, signed_in, portal):
        other = portal.world.manufacturer(products=())
        invitations.invite(ctx, other.actor, "owner@corner.example")
        page = html(signed_in.get("/portal/dealers"))
        assert "invited" not in page and "Accept" not in page
        assert next(c.status for c in applications.manufacturers_for(ctx, portal.actor) if c.id == other.id) == ""
