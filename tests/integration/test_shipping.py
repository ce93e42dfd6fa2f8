"""Shipping methods: kept by the manufacturer, chosen at checkout, charged with the
goods, earned by the fulfiller, shown on the board, and lapsing by their window."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from broker.fulfilment import services as fulfilment
from broker.fulfilment.models import Assignment, AssignmentStatus
from broker.ledger import services as ledger
from broker.orders.models import Order
from broker.payouts.models import Earning
from broker.settlement.services import settle
from broker.shipping import rules
from broker.shipping import services as shipping_services
from broker.accounts.models import Role
from tests.conftest import START
from tests.factories import HERE, World, north_of
from tests.pages import delivered, post, sign_in, user_for

API = "/api/v1"
SETTLED_AT = START + timedelta(hours=13)
STANDARD = {"code": "standard", "name": "Standard", "price": 700, "free_over": 10000, "ship_within_hours": 72}
EXPRESS = {"code": "express", "name": "Express", "price": 1500, "per_item": 200, "ship_within_hours": 24,
           "countries": ["US", "CA"]}
SF = {"line1": "1 Secret Lane", "city": "San Francisco", "postal_code": "94103", "country": "US",
      "lat": HERE[0], "lon": HERE[1]}


@pytest.fixture
def world(ctx):
    return World(ctx)


def auth(key):
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def maker(world, client):
    maker = world.manufacturer(products=[("SKU-1", 5000), ("BIG", 12000)])
    for body in (STANDARD, EXPRESS):
        assert client.post(f"{API}/shipping-methods", json=body, headers=auth(maker.key)).status_code == 201
    return maker


def order(client, maker, *, sku="SKU-1", quantity=1, method=None, ship_to=SF):
    body = {"items": [{"sku": sku, "quantity": quantity}], "customer": {"name": "Ada", "email": "ada@example.com"},
            "ship_to": ship_to}
    if method is not None:
        body["shipping_method"] = method
    return client.post(f"{API}/storefronts/{maker.slug}/orders", json=body)


class TestRules:
    def test_the_charge_is_per_order_plus_per_item_and_free_over_the_threshold(self):
        method = rules.Method("std", "Standard", 700, 150, 10000, 72, ())
        assert rules.charge(method, goods=5000, items=3) == 700 + 3 * 150
        assert rules.charge(method, goods=9999, items=1) == 850
        assert rules.charge(method, goods=10000, items=1) == 0

    def test_a_method_with_countries_serves_only_those(self):
        eu = rules.Method("eu", "EU", 900, 0, None, 48, ("DE", "FR"))
        everywhere = rules.Method("std", "Standard", 500, 0, None, 72, (), is_default=True)
        assert rules.serving([eu, everywhere], "DE") == [everywhere, eu]
        assert rules.serving([eu, everywhere], "US") == [everywhere]
        assert rules.choose([eu, everywhere], "US", "eu") is None
        assert rules.choose([eu], "US", None) is None


class TestTheMethodsApi:
    def test_the_first_method_is_the_default_and_a_new_default_takes_over(self, maker, client):
        listed = client.get(f"{API}/shipping-methods", headers=auth(maker.key)).get_json()
        assert [(m["code"], m["default"]) for m in listed] == [("standard", True), ("express", False)]
        assert listed[1]["countries"] == ["CA", "US"] and listed[1]["currency"] == "USD"
        changed = client.patch(f"{API}/shipping-methods/express", json={"default": True}, headers=auth(maker.key))
        assert changed.status_code == 200 and changed.get_json()["default"] is True
        listed = client.get(f"{API}/shipping-methods", headers=auth(maker.key)).get_json()
        assert [m["default"] for m in listed] == [False, True]

    def test_disabling_the_default_makes_another_the_default(self, maker, client):
        off = client.patch(f"{API}/shipping-methods/standard", json={"active": False}, headers=auth(maker.key))
        assert off.get_json()["active"] is False and off.get_json()["default"] is False
        listed = client.get(f"{API}/shipping-methods", headers=auth(maker.key)).get_json()
        assert [(m["code"], m["default"]) for m in listed] == [("standard", False), ("express", True)]
        # A disabled method is not offered, and cannot be ordered by.
        offered = client.get(f"/api/v1/storefronts/{maker.slug}/shipping-methods?country=US").get_json()
        assert [m["code"] for m in offered] == ["express"]
        assert order(client, maker, method="standard").status_code == 422

    def test_every_bad_field_is_named_at_once(self, maker, client):
        bad = client.post(f"{API}/shipping-methods", headers=auth(maker.key), json={
            "code": "Not A Code", "name": " ", "price": -1, "ship_within_hours": 0, "countries": ["XX"]})
        assert bad.status_code == 422
        assert {"price", "ship_within_hours"} <= set(bad.get_json()["errors"])
        service = client.post(f"{API}/shipping-methods", headers=auth(maker.key), json={
            "code": "Not A Code", "name": " ", "price": 1, "ship_within_hours": 1, "countries": ["XX"]})
        assert service.status_code == 422
        assert {"code", "name", "countries"} <= set(service.get_json()["errors"])

    def test_a_code_is_one_method(self, maker, client):
        again = client.post(f"{API}/shipping-methods", json=STANDARD, headers=auth(maker.key))
        assert again.status_code == 409

    def test_free_over_can_be_removed(self, maker, client):
        changed = client.patch(f"{API}/shipping-methods/standard", json={"free_over": None}, headers=auth(maker.key))
        assert changed.get_json()["free_over"] is None
        assert order(client, maker, sku="BIG").get_json()["shipping"] == 700

    def test_the_storefront_offers_what_ships_there_with_this_carts_charge(self, maker, client):
        offered = client.get(f"{API}/storefronts/{maker.slug}/shipping-methods?country=CA&subtotal=5000&items=2")
        assert [(m["code"], m["charge"]) for m in offered.get_json()] == [("standard", 700), ("express", 1900)]
        abroad = client.get(f"{API}/storefronts/{maker.slug}/shipping-methods?country=DE").get_json()
        assert [m["code"] for m in abroad] == ["standard"]


class TestCheckout:
    def test_the_charge_is_in_the_total_that_is_held(self, maker, client, session):
        placed = order(client, maker, quantity=2, method="express")
        assert placed.status_code == 201, placed.get_json()
        body = placed.get_json()
        assert (body["subtotal"], body["shipping"], body["total"]) == (10000, 1500 + 2 * 200, 11900)
        assert body["payment"]["amount"] == 11900
        assert body["shipping_method"] == {"code": "express", "name": "Express", "ship_within_hours": 24}

    def test_an_old_client_that_names_no_method_gets_the_default(self, maker, client):
        body = order(client, maker).get_json()
        assert body["shipping_method"]["code"] == "standard"
        assert (body["shipping"], body["total"]) == (700, 5700)
        assert order(client, maker, sku="BIG").get_json()["shipping"] == 0  # free over 100.00

    def test_a_store_without_methods_ships_free_with_the_default_window(self, world, client):
        plain = world.manufacturer()
        body = order(client, plain).get_json()
        assert (body["shipping"], body["total"], body["shipping_method"]) == (0, 5000, None)

    def test_a_method_that_does_not_ship_there_is_refused(self, maker, client, session):
        berlin = {"line1": "Invalidenstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"}
        refused = order(client, maker, method="express", ship_to=berlin)
        assert refused.status_code == 422
        assert "does not ship in Germany" in refused.get_json()["errors"]["shipping_method"][0]
        assert order(client, maker, method="overnight").status_code == 422
        pickup = client.post(f"{API}/storefronts/{maker.slug}/orders", json={
            "items": [{"sku": "SKU-1", "quantity": 1}], "customer": {"name": "A", "email": "a@example.com"},
            "ship_to": SF, "delivery": "pickup", "shipping_method": "express"})
        assert pickup.status_code == 422
        assert session.scalar(select(Order.id)) is None  # nothing written

    def test_a_store_that_ships_nowhere_near_says_so(self, world, client):
        maker = world.manufacturer()
        client.post(f"{API}/shipping-methods", headers=auth(maker.key), json={**STANDARD, "countries": ["CA"]})
        refused = order(client, maker)
        assert refused.status_code == 422
        assert "does not ship in the United States" in refused.get_json()["errors"]["ship_to.country"][0]

    def test_a_pickup_is_free(self, maker, client):
        body = client.post(f"{API}/storefronts/{maker.slug}/orders", json={
            "items": [{"sku": "SKU-1", "quantity": 1}], "customer": {"name": "A", "email": "a@example.com"},
            "ship_to": SF, "delivery": "pickup"}).get_json()
        assert (body["shipping"], body["total"], body["shipping_method"]) == (0, 5000, None)


class TestFulfilment:
    def test_the_board_shows_the_method_and_the_fulfiller_earns_the_charge(self, world, maker, client, ctx, clock,
                                                                           session):
        shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        placed = order(client, maker, method="express").get_json()
        board = client.get(f"{API}/board", headers=auth(shop.key)).get_json()
        assert (board[0]["shipping_method"], board[0]["ship_within_hours"], board[0]["price"]) == \
            ("Express", 24, 6700)
        world.bid(shop, placed["id"])
        clock.now = SETTLED_AT
        settle(ctx)
        assignment = session.scalar(select(Assignment).where(Assignment.order_id == placed["id"]))
        assert assignment.due_at == SETTLED_AT + timedelta(hours=24)
        listed = client.get(f"{API}/assignments", headers=auth(shop.key)).get_json()
        assert listed[0]["shipping_method"]["name"] == "Express" and listed[0]["shipping"] == 1700
        fulfilment.record_shipment(ctx, shop.actor, assignment.id, fulfilment.RecordShipment("UPS", "1Z"))
        earning = session.scalar(select(Earning).where(Earning.order_id == placed["id"]))
        assert (earning.gross, earning.fee) == (6700, 670)  # goods and shipping, less the 10 % fee
        assert ledger.check(session).ok

    def test_express_lapses_by_its_shorter_window(self, world, maker, client, ctx, clock, session):
        shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        express = order(client, maker, method="express").get_json()["id"]
        standard = order(client, maker).get_json()["id"]
        for order_id in (express, standard):
            world.bid(shop, order_id)
        clock.now = SETTLED_AT
        settle(ctx)
        clock.now = SETTLED_AT + timedelta(hours=25)
        report = fulfilment.check_deadlines(ctx)
        assert report.lapsed == 1

        def state(order_id):
            return session.scalar(select(Assignment.status).where(Assignment.order_id == order_id)
                                  .order_by(Assignment.id).limit(1).execution_options(populate_existing=True))
        assert state(express) == AssignmentStatus.LAPSED
        assert state(standard) == AssignmentStatus.ACTIVE


class TestPages:
    FORM = {"name": "Ada Lovelace", "email": "ada@example.com", "line1": "12 Analytical Row", "line2": "",
            "city": "San Francisco", "postal_code": "94103", "country": "US", "payment": "test-approve"}

    def test_the_checkout_offers_the_methods_and_charges_the_one_chosen(self, maker, client, session):
        page = client.get(f"/s/{maker.slug}/checkout?cart=SKU-1:1")
        assert b'name="shipping_method" value="standard" checked' in page.data
        assert b"Express: <strong>$17.00</strong>" in page.data  # 15.00 + 2.00 for the one item
        done = client.post(f"/s/{maker.slug}/checkout?cart=SKU-1:1",
                           data={**self.FORM, "shipping_method": "express"})
        assert done.status_code == 303, done.data
        order_page = client.get(done.headers["Location"], follow_redirects=True)
        assert b"Shipping (Express)" in order_page.data and b"$67.00" in order_page.data
        assert session.scalar(select(Order.total)) == 6700

    def test_a_method_that_does_not_ship_there_comes_back_beside_its_field(self, maker, client, session):
        refused = client.post(f"/s/{maker.slug}/checkout?cart=SKU-1:1", data={
            **self.FORM, "country": "DE", "city": "Berlin", "postal_code": "10115", "shipping_method": "express"})
        assert refused.status_code == 422
        assert b'id="shipping_method-error"' in refused.data and b"does not ship in Germany" in refused.data
        assert session.scalar(select(Order.id)) is None

    def test_an_unplaced_address_offers_the_device_location_and_takes_its_point(self, maker, client, session):
        unplaced = {**self.FORM, "city": "Xyzzyhausen", "postal_code": "99999", "country": "DE"}
        refused = client.post(f"/s/{maker.slug}/checkout?cart=SKU-1:1", data=unplaced)
        assert refused.status_code == 422 and b"data-locate" in refused.data and b"Use my location" in refused.data
        wild = client.post(f"/s/{maker.slug}/checkout?cart=SKU-1:1", data={**unplaced, "lat": "91", "lon": "x"})
        assert wild.status_code == 422  # not a point: as if none were given
        done = client.post(f"/s/{maker.slug}/checkout?cart=SKU-1:1",
                           data={**unplaced, "lat": "52.52001", "lon": "13.40499"})
        assert done.status_code == 303, done.data
        order = session.scalar(select(Order))
        assert (order.ship_lat, order.ship_lon, order.location_precision) == (52.52001, 13.40499, "coordinates")

    def test_a_pickup_ignores_the_shipping_choice(self, maker, client, session):
        done = client.post(f"/s/{maker.slug}/checkout?cart=SKU-1:1",
                           data={**self.FORM, "delivery": "pickup", "shipping_method": "express"},
                           follow_redirects=True)
        assert done.status_code == 200 and b"pickup code" in done.data.lower()
        assert session.scalar(select(Order.shipping)) == 0

    def test_the_winners_order_page_packing_slip_and_email_show_the_method(self, world, maker, client, ctx, clock,
                                                                          mail_dir, session):
        shop = world.retailer(north_of(HERE, 2), dealer_of=[maker], email="shop@example.com")
        user_for(ctx, Role.RETAILER, shop.id, "owner@shop.example")
        placed = order(client, maker, method="express").get_json()
        world.bid(shop, placed["id"])
        clock.now = SETTLED_AT
        settle(ctx)
        assignment_id = session.scalar(select(Assignment.id).where(Assignment.order_id == placed["id"]))
        sign_in(client, "owner@shop.example")
        page = client.get(f"/portal/orders/{assignment_id}")
        assert b"Shipping (Express)" in page.data and b"within 24 hours" in page.data
        slip = client.get(f"/portal/orders/{assignment_id}/slip")
        assert b"<strong>Express</strong>" in slip.data and b"ship by" in slip.data
        confirmation = [m for m in delivered(ctx, mail_dir) if "is confirmed" in m["Subject"]][0].get_body(("plain",)).get_content()
        assert "Shipping (Express): 17.00 USD" in confirmation and "Total: 67.00 USD" in confirmation


class TestPortalBoard:
    def test_the_board_shows_each_orders_method_and_window(self, world, maker, client, ctx):
        shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        user_for(ctx, Role.RETAILER, shop.id, "owner@shop.example")
        order(client, maker, method="express")
        sign_in(client, "owner@shop.example")
        board = client.get("/portal/")
        assert b"Express: ship within 24 hours of winning" in board.data


class TestConsole:
    def test_a_manufacturer_adds_edits_and_disables_methods_and_keeps_its_tax_rates(self, world, client, ctx):
        maker = world.manufacturer()
        user_for(ctx, Role.MANUFACTURER, maker.id, "owner@maker.example")
        sign_in(client, "owner@maker.example")
        page = client.get("/console/shipping")
        assert page.status_code == 200 and b"No methods yet" in page.data
        bad = post(client, "/console/shipping/methods", {"code": "Bad Code", "name": "", "price": "seven",
                                                         "ship_within_hours": "soon", "countries": "ZZ"},
                   form="/console/shipping")
        assert bad.status_code == 422
        for field in (b'id="code-error"', b'id="name-error"', b'id="price-error"', b'id="ship_within_hours-error"',
                      b'id="countries-error"'):
            assert field in bad.data, field
        added = post(client, "/console/shipping/methods", {
            "code": "standard", "name": "Standard", "price": "7.00", "per_item": "0", "free_over": "100.00",
            "ship_within_hours": "72", "countries": ""}, form="/console/shipping")
        assert added.status_code == 302
        listed = client.get("/console/shipping").get_data(as_text=True)
        assert "Standard" in listed and "free from 100.00 USD" in listed and "default" in listed
        edit = post(client, "/console/shipping/methods/standard", {
            "name": "Standard", "price": "0", "per_item": "0", "free_over": "", "ship_within_hours": "48",
            "countries": "us ca", "default": "on", "active": "on"}, form="/console/shipping/methods/standard")
        assert edit.status_code == 302
        method = shipping_services.list_methods(ctx, maker.actor).methods[0]
        assert (method.price, method.free_over, method.ship_within_hours, method.countries) == (0, None, 48,
                                                                                                ["CA", "US"])
        assert client.get("/console/shipping/methods/overnight").status_code == 404

        rates = post(client, "/console/shipping/tax", {"rates": "US NY 8.875\nUS Atlantis 5\nDE 19.12345",
                                                       "shipping_taxed": "on"}, form="/console/shipping")
        assert rates.status_code == 422
        assert b"Line 2:" in rates.data and b"Line 3:" in rates.data
        rates = post(client, "/console/shipping/tax", {"rates": "US New York 8.875\nDE 19", "shipping_taxed": "on"},
                     form="/console/shipping")
        assert rates.status_code == 302
        page = client.get("/console/shipping").get_data(as_text=True)
        assert "US NY 8.875" in page and "DE 19" in page
        csv = client.get("/console/shipping/tax-report.csv?from=2026-01-01&to=2026-12-31")
        assert csv.status_code == 200 and csv.mimetype == "text/csv"
        assert csv.get_data(as_text=True).startswith("jurisdiction,period_start")

    def test_a_retailer_may_not_open_it(self, world, client, ctx):
        shop = world.retailer(HERE)
        user_for(ctx, Role.RETAILER, shop.id, "owner@shop.example")
        sign_in(client, "owner@shop.example")
        assert client.get("/console/shipping").status_code == 403
