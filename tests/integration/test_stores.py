"""Stores in full: an address, opening hours and a time zone, through the API,
the services a sign-up and the operator use, and the portal's stores page."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from broker.accounts import services as accounts
from broker.accounts.models import Store
from broker.board.models import Bid
from broker.board.nearby import nearby
from broker.board.services import BoardFilter
from broker.fulfilment.models import Assignment
from broker.geo.geocoding import LocationQuery
from broker.identity import services as identity
from broker.orders import services as orders
from broker.orders.models import Delivery
from broker.pagination import PageRequest
from broker.settlement.services import settle
from tests.conftest import ADMIN_TOKEN
from tests.factories import HERE, north_of
from tests.pages import csrf, sign_up_verified

API = "/api/v1"
ADDRESS = {"line1": "1 Valencia St", "line2": "Unit 2", "city": "San Francisco", "postal_code": "94110",
           "country": "US"}
HOURS = {"mon": [{"opens": "09:00", "closes": "18:00"}], "tue": [{"opens": "09:00", "closes": "18:00"}],
         "wed": [{"opens": "09:00", "closes": "18:00"}], "thu": [{"opens": "09:00", "closes": "18:00"}],
         "fri": [{"opens": "09:00", "closes": "18:00"}], "sat": [{"opens": "10:00", "closes": "16:00"}],
         "note": "Closed on public holidays"}


@pytest.fixture
def shop(world):
    return world.retailer(north_of(HERE, 2))


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_a_store_has_an_address_hours_and_a_time_zone(client, shop, clock):
    # 2026-03-02 09:00 UTC is 01:00 on Monday in San Francisco: closed, opens at 09:00 there.
    made = client.post(f"{API}/stores", headers=auth(shop.key), json={
        "name": "Mission", "service_radius_km": 20, "address": ADDRESS, "hours": HOURS})
    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    assert body["address"] == {**ADDRESS, "region": "CA"}  # the state, from the ZIP code
    assert body["timezone"] == "America/Los_Angeles"  # where the store is
    assert (body["lat"], body["lon"]) == (37.7509, -122.4153) and body["area"] == "San Francisco, CA 941xx"
    assert body["hours"]["mon"] == [{"opens": "09:00", "closes": "18:00"}] and body["hours"]["sun"] == []
    assert body["hours_text"].startswith("Mon–Fri 9:00\u202fAM – 6:00\u202fPM · Sat") and "public holidays" in \
        body["hours_text"]
    assert body["open_now"] == {"open": False, "opens_at": "2026-03-02T09:00:00-08:00", "closes_at": None}
    clock.advance(hours=8)  # 09:00 in San Francisco
    listed = client.get(f"{API}/stores", headers=auth(shop.key)).get_json()
    mine = next(s for s in listed if s["id"] == body["id"])
    assert mine["open_now"] == {"open": True, "opens_at": None, "closes_at": "2026-03-02T18:00:00-08:00"}
    assert mine["address"] == body["address"] and mine["hours"] == body["hours"]

    changed = client.patch(f"{API}/stores/{body['id']}", headers=auth(shop.key), json={
        "hours": {"sun": [{"opens": "11:00", "closes": "15:00"}]}, "timezone": "america/new_york"})
    assert changed.status_code == 200
    assert changed.get_json()["hours_text"] == "Mon–Sat closed · Sun 11:00\u202fAM – 3:00\u202fPM"
    assert changed.get_json()["timezone"] == "America/New_York"
    assert changed.get_json()["address"] == body["address"]  # left as it was
    cleared = client.patch(f"{API}/stores/{body['id']}", headers=auth(shop.key), json={"hours": None})
    assert cleared.get_json()["hours"] is None and cleared.get_json()["open_now"] is None


@pytest.mark.parametrize("change, field", [
    ({"hours": {"mon": [{"opens": "18:00", "closes": "09:00"}]}}, "hours.mon.0.closes"),
    ({"hours": {"tue": [{"opens": "09:00", "closes": "13:00"}, {"opens": "12:00", "closes": "17:00"}]}},
     "hours.tue"),
    ({"hours": {"wed": [{"opens": "9am", "closes": "17:00"}]}}, "hours.wed.0.opens"),
    ({"hours": {"someday": []}}, "hours.someday"),
    ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ({"address": {**ADDRESS, "region": "NY"}}, "address.region"),
    ({"address": {**ADDRESS, "postal_code": "00000"}}, "address.postal_code"),
    ({"address": {"line1": "1 Main St", "country": "US", "postal_code": "94110"}}, "address.city"),
])
def test_bad_hours_are_a_422_with_the_field(client, shop, session, change, field):
    before = session.scalar(select(Store).where(Store.id == shop.store_id))
    snapshot = (before.hours, before.timezone, before.line1, before.postal_code)
    response = client.patch(f"{API}/stores/{shop.store_id}", headers=auth(shop.key), json=change)
    assert response.status_code == 422, response.get_json()
    problem = response.get_json()
    assert problem["type"] == "about:blank" and field in problem["errors"], problem
    after = session.scalar(select(Store).where(Store.id == shop.store_id).execution_options(populate_existing=True))
    assert (after.hours, after.timezone, after.line1, after.postal_code) == snapshot  # nothing half-written


def test_an_address_places_the_store_unless_a_location_is_given(client, shop):
    by_address = client.post(f"{API}/stores", headers=auth(shop.key), json={
        "name": "Oakland", "service_radius_km": 10, "address": {**ADDRESS, "city": "Oakland", "postal_code": "94607"}})
    assert by_address.status_code == 201 and by_address.get_json()["area"] == "Oakland, CA 946xx"
    exact = client.post(f"{API}/stores", headers=auth(shop.key), json={
        "name": "Exact", "service_radius_km": 10, "address": ADDRESS, "location": {"lat": 37.76, "lon": -122.42}})
    assert (exact.get_json()["lat"], exact.get_json()["lon"]) == (37.76, -122.42)
    neither = client.post(f"{API}/stores", headers=auth(shop.key), json={"name": "Nowhere", "service_radius_km": 10})
    assert neither.status_code == 422 and "location" in neither.get_json()["errors"]
    unknown = client.post(f"{API}/stores", headers=auth(shop.key), json={
        "name": "Nowhere", "service_radius_km": 10, "address": {"postal_code": "99999", "country": "DE"}})
    assert unknown.status_code == 422 and "address.postal_code" in unknown.get_json()["errors"]


def test_a_new_postal_code_moves_the_store_and_its_bids_and_a_corrected_street_does_not(client, world, shop,
                                                                                         session, ctx):
    maker = world.manufacturer()
    accounts.authorise_dealer(ctx, maker.actor, shop.id)
    placed = world.order(maker)
    world.bid(shop, placed.order.id)
    first = client.patch(f"{API}/stores/{shop.store_id}", headers=auth(shop.key), json={"address": ADDRESS})
    moved = first.get_json()
    assert (moved["lat"], moved["lon"]) == (37.7509, -122.4153) and moved["timezone"] == "America/Los_Angeles"
    bid = session.scalar(select(Bid).execution_options(populate_existing=True))
    assert bid.exact_distance_km == pytest.approx(2.7, abs=0.3)  # measured again from the new place
    street = client.patch(f"{API}/stores/{shop.store_id}", headers=auth(shop.key),
                          json={"address": {**ADDRESS, "line1": "3 Valencia St"}, "location": {"lat": 37.751,
                                                                                                 "lon": -122.4153}})
    assert (street.get_json()["lat"], street.get_json()["address"]["line1"]) == (37.751, "3 Valencia St")
    again = client.patch(f"{API}/stores/{shop.store_id}", headers=auth(shop.key),
                         json={"address": {**ADDRESS, "line1": "5 Valencia St"}})
    assert again.get_json()["lat"] == 37.751  # same postal code: the store stays where it was put


def test_a_store_made_from_a_postal_code_gets_it_as_its_address(client, ctx):
    made = client.post(f"{API}/retailers", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, json={
        "name": "Corner", "email": "hi@corner.example", "location": {"postal_code": "94110", "country": "us"},
        "service_radius_km": 25})
    assert made.status_code == 201
    with ctx.uow() as uow:
        store = uow.session.get(Store, made.get_json()["store_id"])
        assert (store.line1, store.city, store.region, store.postal_code, store.country) == ("", "", "CA", "94110",
                                                                                             "US")
        assert store.timezone == "America/Los_Angeles" and store.hours is None
    signed_up = sign_up_verified(ctx, identity.RetailerSignUp(
        company="Brooklyn Bikes", name="Bea", email="bea@brooklyn.example", password="a long enough password",
        location=LocationQuery(postal_code="11201", country="US"), service_radius_km=10))
    [store] = accounts.list_stores(ctx, signed_up.actor, PageRequest()).items
    assert (store.postal_code, store.region, store.country, store.timezone) == ("11201", "NY", "US",
                                                                                "America/New_York")


def test_a_store_given_by_coordinates_with_a_stray_postal_code_is_still_made(ctx, world):
    shop = world.retailer(HERE)
    store = accounts.add_store(ctx, shop.actor, accounts.NewStore(
        "Pier", LocationQuery(postal_code="ABCDE", country="US", lat=HERE[0], lon=HERE[1]), 5))
    assert (store.postal_code, store.country) == ("", "") and store.timezone == "America/Los_Angeles"


def test_the_default_time_zone_is_broker_s_where_the_map_names_none(ctx, world):
    shop = world.retailer(HERE)
    at_sea = accounts.add_store(ctx, shop.actor, accounts.NewStore("Boat", LocationQuery(lat=0.0, lon=-140.0), 5))
    assert at_sea.timezone.startswith("Etc/") or at_sea.timezone == ctx.settings.timezone


class TestPortal:
    @pytest.fixture
    def signed_in(self, client, ctx):
        sign_up_verified(ctx, identity.RetailerSignUp(
            company="Corner Bikes", name="Owner", email="owner@corner.example", password="a long enough password",
            location=LocationQuery(postal_code="94110", country="US"), service_radius_km=50))
        client.post("/signin", data={"email": "owner@corner.example", "password": "a long enough password",
                                     "csrf_token": csrf(client, "/signin")})
        return client

    def store_id(self, ctx) -> int:
        with ctx.uow() as uow:
            return uow.session.scalar(select(Store.id).order_by(Store.id.desc()))

    def post(self, client, path, data):
        return client.post(path, data={**data, "csrf_token": csrf(client, "/portal/stores")})

    def test_the_retailer_edits_the_address_hours_and_time_zone(self, signed_in, ctx):
        store_id = self.store_id(ctx)
        page = signed_in.get("/portal/stores").get_data(as_text=True)
        assert 'value="94110"' in page and "No opening hours yet" in page
        response = self.post(signed_in, f"/portal/stores/{store_id}", {
            "name": "Corner Bikes", "line1": "1 Valencia St", "city": "San Francisco", "postal_code": "94110",
            "country": "US", "service_radius_km": "50", "is_open": "on", "hours_mon": "9-18", "hours_tue": "9-18",
            "hours_wed": "9-18", "hours_thu": "9-18", "hours_fri": "9-18", "hours_sat": "10:00-16:00",
            "hours_sun": "closed", "hours_note": "Closed on public holidays", "timezone": ""})
        assert response.status_code == 302
        page = signed_in.get("/portal/stores").get_data(as_text=True)
        assert "Mon–Fri 9:00\u202fAM – 6:00\u202fPM · Sat 10:00\u202fAM – 4:00\u202fPM · Sun closed" in page
        assert 'value="09:00-18:00"' in page and 'value="1 Valencia St"' in page
        # Shown in full above the form: the street in the country's format, the
        # postal code, and whether it is open now in its own time zone (Monday
        # 01:00 in Los Angeles: closed, opens at 9).
        facts = re.search(rf'<dl class="console-facts store-facts" id="store-{store_id}-facts">(.*?)</dl>', page,
                          re.DOTALL).group(1)
        assert '<address class="portal-address">1 Valencia St<br>San Francisco, CA 94110<br>' in facts
        assert "<dt>Postal code</dt><dd>94110</dd>" in facts
        assert "<strong>closed now</strong>, opens Mon 09:00" in facts and "America/Los_Angeles" in facts
        assert "50 km around" in facts
        with ctx.uow() as uow:
            store = uow.session.get(Store, store_id)
            assert (store.line1, store.region, store.timezone) == ("1 Valencia St", "CA", "America/Los_Angeles")

    def test_errors_are_shown_next_to_each_field_and_nothing_is_saved(self, signed_in, ctx):
        store_id = self.store_id(ctx)
        response = self.post(signed_in, f"/portal/stores/{store_id}", {
            "name": "Corner Bikes", "line1": "1 Valencia St", "city": "", "postal_code": "94110", "country": "US",
            "service_radius_km": "50", "hours_mon": "9-", "hours_tue": "18-9", "timezone": "Nowhere/Land"})
        assert response.status_code == 422
        page = response.get_data(as_text=True)
        for field in ("hours_mon", "hours_tue"):
            assert f'id="store-{store_id}-{field}-error"' in page
        assert 'aria-describedby="store-{}-hours_mon-error"'.format(store_id) in page
        # The hours are read before the service is asked; once they are right the
        # address and the time zone are checked, each beside its own field.
        response = self.post(signed_in, f"/portal/stores/{store_id}", {
            "name": "Corner Bikes", "line1": "1 Valencia St", "city": "", "postal_code": "94110", "country": "US",
            "service_radius_km": "50", "hours_mon": "9-18", "timezone": "Nowhere/Land"})
        page = response.get_data(as_text=True)
        assert response.status_code == 422
        assert f'id="store-{store_id}-city-error"' in page and f'id="store-{store_id}-timezone-error"' in page
        with ctx.uow() as uow:
            assert uow.session.get(Store, store_id).hours is None

    def test_a_store_moved_through_the_form_takes_the_zone_of_its_new_place(self, signed_in, ctx):
        store_id = self.store_id(ctx)
        response = self.post(signed_in, f"/portal/stores/{store_id}", {
            "name": "Corner Bikes", "line1": "1 Court St", "city": "Brooklyn", "postal_code": "11201",
            "country": "US", "service_radius_km": "50", "is_open": "on",
            "timezone": "America/Los_Angeles"})  # the field as the page showed it
        assert response.status_code == 302
        with ctx.uow() as uow:
            store = uow.session.get(Store, store_id)
            assert (store.region, store.timezone) == ("NY", "America/New_York")
        self.post(signed_in, f"/portal/stores/{store_id}", {
            "name": "Corner Bikes", "line1": "1 Court St", "city": "Brooklyn", "postal_code": "11201",
            "country": "US", "service_radius_km": "50", "timezone": "Europe/London"})  # a choice: kept
        with ctx.uow() as uow:
            assert uow.session.get(Store, store_id).timezone == "Europe/London"

    def test_a_store_is_added_at_its_address(self, signed_in, ctx):
        response = self.post(signed_in, "/portal/stores", {
            "name": "Warehouse", "line1": "500 2nd St", "city": "Oakland", "postal_code": "94607", "country": "US",
            "service_radius_km": "80", "hours_mon": "8-12"})
        assert response.status_code == 302
        with ctx.uow() as uow:
            store = uow.session.scalar(select(Store).where(Store.name == "Warehouse"))
            assert store.area == "Oakland, CA 946xx" and store.hours["mon"] == [["08:00", "12:00"]]


def test_hours_do_not_change_what_the_board_shows_or_who_wins(ctx, world, clock):
    maker = world.manufacturer()
    shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
    accounts.update_store(ctx, shop.actor, shop.store_id, accounts.StoreChanges(hours={}))  # never open
    placed = world.order(maker)
    assert [i.listing.order_id for i in nearby(ctx, shop.actor, BoardFilter(), PageRequest()).listings.items] == \
        [placed.order.id]
    world.bid(shop, placed.order.id)
    clock.advance(hours=13)
    settle(ctx)
    with ctx.uow() as uow:
        assert uow.session.scalar(select(Assignment.retailer_id)) == shop.id


def test_a_pickup_customer_is_told_the_store_s_address_and_hours_once_it_has_the_order(ctx, world, clock, client):
    maker = world.manufacturer()
    shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
    accounts.update_store(ctx, shop.actor, shop.store_id, accounts.StoreChanges(address=ADDRESS, hours=HOURS,
                                                                                 location=LocationQuery(
                                                                                     lat=HERE[0] + 0.018,
                                                                                     lon=HERE[1])))
    placed = orders.place_order(ctx, maker.slug, orders.PlaceOrder(
        items=[orders.Item("SKU-1", 1)], customer=orders.Customer("Pat", "pat@example.com"),
        ship_to=orders.Address("", "", "94103", "US", lat=HERE[0], lon=HERE[1]), delivery=Delivery.PICKUP))
    token = {"X-Access-Token": placed.access_token}
    assert client.get(f"{API}/orders/{placed.order.id}", headers=token).get_json()["pickup_store"] is None
    world.bid(shop, placed.order.id)
    clock.advance(hours=13)  # Monday 22:00 UTC, 14:00 in San Francisco
    settle(ctx)
    body = client.get(f"{API}/orders/{placed.order.id}", headers=token).get_json()
    store = body["pickup_store"]
    assert store["name"].startswith("Retailer ")  # the factory's name for the store
    assert store["address"] == {**ADDRESS, "region": "CA"} and store["timezone"] == "America/Los_Angeles"
    assert store["open_now"] == {"open": True, "opens_at": None, "closes_at": "2026-03-02T18:00:00-08:00"}
    assert store["hours_text"].startswith("Mon–Fri 9:00\u202fAM")
    # Not to the store's other parties: the retailer's own view has no such block.
    assert client.get(f"{API}/orders/{placed.order.id}", headers=auth(shop.key)).get_json()["pickup_store"] is None
    page = client.get(f"/s/{maker.slug}/o/{placed.order.id}/{placed.access_token}", follow_redirects=True)
    text = page.get_data(as_text=True)
    assert "Collect it from" in text and "1 Valencia St" in text and "Open now, until 18:00" in text
