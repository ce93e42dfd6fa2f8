"""Pick up instead: the listing is placed where the customer is, the nearest
bidder wins, and the store hands over against a one-time code."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from broker.orders.models import Order
from broker.payments.models import Payment
from broker.settlement.services import settle
from tests.conftest import START
from tests.factories import HERE, World, north_of

LATER = START + timedelta(hours=13)


def auth(key):
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def scene(ctx):
    world = World(ctx)
    maker = world.manufacturer(slug="acme")
    near = world.retailer(north_of(HERE, 2), dealer_of=[maker])
    far = world.retailer(north_of(HERE, 8), dealer_of=[maker])
    return maker, near, far


def place(client, **over):
    body = {"items": [{"sku": "SKU-1", "quantity": 1}], "customer": {"name": "Ada", "email": "ada@example.com"},
            "ship_to": {"postal_code": "94103", "country": "US", "lat": HERE[0], "lon": HERE[1]},
            "delivery": "pickup", **over}
    response = client.post("/api/v1/storefronts/acme/orders", json=body)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def awarded(client, ctx, clock, near, far, placed):
    listing = client.get("/api/v1/board", headers=auth(near.key)).get_json()[0]["id"]
    for shop in (far, near):
        client.post(f"/api/v1/board/{listing}/bids", headers=auth(shop.key), json={})
    clock.now = LATER
    settle(ctx)
    [assignment] = client.get("/api/v1/assignments", headers=auth(near.key)).get_json()
    return assignment


def test_the_nearest_store_hands_over_against_the_code(client, ctx, clock, scene, session):
    maker, near, far = scene
    placed = place(client)
    assert re.fullmatch(r"\d{6}", placed["pickup_code"])
    assignment = awarded(client, ctx, clock, near, far, placed)
    assert assignment["order_id"] == placed["id"] and assignment["delivery"] == "pickup"
    # The store learns who comes for it, never where they live.
    assert assignment["ship_to"] is None and assignment["collected_by"] == {"name": "Ada"}

    wrong = client.post(f"/api/v1/assignments/{assignment['id']}/pickup", headers=auth(near.key),
                        json={"code": "000000" if placed["pickup_code"] != "000000" else "111111"})
    assert wrong.status_code == 422 and "4 tries left" in wrong.get_json()["errors"]["code"][0]
    ok = client.post(f"/api/v1/assignments/{assignment['id']}/pickup", headers=auth(near.key),
                     json={"code": placed["pickup_code"]})
    assert ok.status_code == 200
    view = client.get(f"/api/v1/orders/{placed['id']}", headers={"X-Access-Token": placed["access_token"]})
    assert view.get_json()["status"] == "delivered"
    assert session.scalar(select(Payment.status).execution_options(populate_existing=True)) == "captured"


def test_wrong_codes_are_limited(client, ctx, clock, scene):
    _, near, far = scene
    placed = place(client)
    assignment = awarded(client, ctx, clock, near, far, placed)
    wrong = "000000" if placed["pickup_code"] != "000000" else "111111"
    path = f"/api/v1/assignments/{assignment['id']}/pickup"
    for _ in range(5):
        assert client.post(path, headers=auth(near.key), json={"code": wrong}).status_code == 422
    locked = client.post(path, headers=auth(near.key), json={"code": placed["pickup_code"]})
    assert locked.status_code == 409


def test_a_pickup_order_cannot_be_marked_shipped_and_another_store_cannot_collect(client, ctx, clock, scene):
    _, near, far = scene
    placed = place(client)
    assignment = awarded(client, ctx, clock, near, far, placed)
    shipped = client.post(f"/api/v1/assignments/{assignment['id']}/shipment", headers=auth(near.key),
                          json={"carrier": "UPS", "tracking_number": "1"})
    assert shipped.status_code == 409
    other = client.post(f"/api/v1/assignments/{assignment['id']}/pickup", headers=auth(far.key),
                        json={"code": placed["pickup_code"]})
    assert other.status_code == 404


def test_an_uncollected_order_is_cancelled_and_refunded_without_counting_against_the_store(client, ctx, clock,
                                                                                             scene, session):
    from broker.fulfilment.services import check_deadlines
    from broker.reputation.services import fulfilment_scores

    _, near, far = scene
    placed = place(client)
    awarded(client, ctx, clock, near, far, placed)
    before = fulfilment_scores(session, [near.id])[near.id]
    clock.advance(hours=71)
    assert check_deadlines(ctx).pickups_expired == 0
    clock.advance(hours=2)
    report = check_deadlines(ctx)
    assert (report.pickups_expired, report.lapsed) == (1, 0)
    order = session.scalar(select(Order).execution_options(populate_existing=True))
    payment = session.scalar(select(Payment).execution_options(populate_existing=True))
    assert order.status == "cancelled" and payment.status == "released"
    assert fulfilment_scores(session, [near.id])[near.id] == before


def test_a_shipped_order_still_needs_a_street(client, scene):
    response = client.post("/api/v1/storefronts/acme/orders", json={
        "items": [{"sku": "SKU-1", "quantity": 1}], "customer": {"name": "Ada", "email": "ada@example.com"},
        "ship_to": {"postal_code": "94103", "country": "US"}})
    assert response.status_code == 422 and "ship_to.line1" in response.get_json()["errors"]


def test_the_storefront_shows_the_code_and_the_order_page_shows_it_again(client, scene):
    form = {"name": "Ada", "email": "ada@example.com", "line1": "", "line2": "", "city": "", "postal_code": "94103",
            "country": "US", "delivery": "pickup", "payment": "test-approve"}
    posted = client.post("/s/acme/checkout?cart=SKU-1:1", data=form)
    assert posted.status_code == 303  # post/redirect/get: a reload of the code's page places nothing
    response = client.get(posted.headers["Location"], follow_redirects=True)
    assert response.status_code == 200 and re.fullmatch(r"/s/acme/o/\d+/placed", response.request.path)
    code = re.search(rb'id="pickup-code">(\d{6})<', response.data).group(1)
    link = re.search(rb'href="(/s/acme/o/[^"]+)"', response.data).group(1).decode().replace("&amp;", "&")
    status = client.get(link, follow_redirects=True)
    assert status.status_code == 200 and b"your order is placed" in status.data
    assert re.search(rb'id="pickup-code">(\d{6})<', status.data).group(1) == code


def order_page(client, placed) -> str:
    return client.get(f"/s/acme/o/{placed['id']}/{placed['access_token']}", follow_redirects=True).get_data(
        as_text=True)


STORE_ADDRESS = {"line1": "1 Valencia St", "city": "San Francisco", "postal_code": "94110", "country": "US"}
STORE_HOURS = {"mon": [{"opens": "09:00", "closes": "18:00"}], "sat": [{"opens": "10:00", "closes": "16:00"}]}


def test_the_customer_is_told_where_to_collect_it_and_the_store_never_learns_the_street(client, ctx, clock, scene,
                                                                                       session):
    """Once a store wins: the order page and an email name the store, its street
    and hours; the page shows the code again; the store sees the name only."""
    from broker.outbox.models import OutboxMessage

    maker, near, far = scene
    assert client.patch(f"/api/v1/stores/{near.store_id}", headers=auth(near.key),
                        json={"address": STORE_ADDRESS, "hours": STORE_HOURS}).status_code == 200
    placed = place(client, ship_to={"line1": "77 Secret Lane", "postal_code": "94103", "country": "US",
                                    "lat": HERE[0], "lon": HERE[1]})
    board = client.get("/api/v1/board", headers=auth(near.key)).get_json()
    assert [item["delivery"] for item in board] == ["pickup"]
    page = order_page(client, placed)
    # Before the award: the code, and a promise, no store yet and no "Ship to".
    assert placed["pickup_code"] in page and "Ship to" not in page and 'id="pickup-pending"' in page

    assignment = awarded(client, ctx, clock, near, far, placed)
    page = order_page(client, placed)
    assert "1 Valencia St" in page and "Opening hours" in page and "Ready for pickup" in page
    assert placed["pickup_code"] in page and ">ready for pickup<" in page and "Shipped" not in page
    assert "Ship to" not in page and "77 Secret Lane" not in page  # the customer's own street is not repeated
    [ready] = session.scalars(select(OutboxMessage.payload).where(OutboxMessage.topic == "email.pickup_ready"))
    assert ready["to"] == "ada@example.com" and "1 Valencia St" in ready["text"] and "Mon" in ready["text"]
    assert f"/s/acme/o/{placed['id']}" in ready["text"] and placed["access_token"] not in ready["text"]

    # The store: the name, never the street, in the API and the portal's pages.
    assert assignment["ship_to"] is None and assignment["collected_by"] == {"name": "Ada"}
    as_store = client.get(f"/api/v1/orders/{placed['id']}", headers=auth(near.key)).get_json()
    assert as_store["customer"] == {"name": "Ada"} and as_store["ship_to"] is None
    assert "Secret" not in str(as_store) and "Secret" not in str(assignment)

    ok = client.post(f"/api/v1/assignments/{assignment['id']}/pickup", headers=auth(near.key),
                     json={"code": placed["pickup_code"]})
    assert ok.status_code == 200
    page = order_page(client, placed)
    assert 'data-status="delivered"' in page and ">collected<" in page and 'id="pickup-code"' not in page


def test_the_pickup_code_is_derived_from_the_link_and_checked_against_its_hash(ctx):
    from broker.orders.models import Delivery
    from broker.orders.services import pickup_code_for, pickup_digest, shown_pickup_code

    code = pickup_code_for("token-a")
    assert re.fullmatch(r"\d{6}", code) and code == pickup_code_for("token-a") != pickup_code_for("token-b")
    order = Order(delivery=Delivery.PICKUP, access_token_hash="h", pickup_code_hash=pickup_digest("h", code))
    assert shown_pickup_code(order, "token-a") == code
    assert shown_pickup_code(order, "token-b") is None  # a code drawn otherwise is never made up


def test_the_portal_labels_pickups_and_never_shows_the_street(client, ctx, clock, scene, session):
    """The board says Pickup; the winner's order page and packing slip show the
    customer's name, never their street or postal code."""
    from broker.accounts.models import Role
    from broker.fulfilment.models import Assignment
    from tests.pages import sign_in, user_for

    maker, near, far = scene
    placed = place(client, ship_to={"line1": "77 Secret Lane", "city": "San Francisco", "postal_code": "94103",
                                    "country": "US", "lat": HERE[0], "lon": HERE[1]})
    user_for(ctx, Role.RETAILER, near.id, "clerk@near.example")
    sign_in(client, "clerk@near.example")
    board_page = client.get("/portal/").get_data(as_text=True)
    assert '<span class="badge pickup">Pickup</span>' in board_page
    awarded(client, ctx, clock, near, far, placed)
    sign_in(client, "clerk@near.example")  # half a day later: the session has ended
    assignment_id = session.scalar(select(Assignment.id).where(Assignment.order_id == placed["id"]))
    for path in (f"/portal/orders/{assignment_id}", f"/portal/orders/{assignment_id}/slip", "/portal/orders"):
        text = client.get(path).get_data(as_text=True)
        assert "Ada" in text and "Secret Lane" not in text and "94103" not in text, path


def test_a_pickup_split_between_two_stores_names_both_with_what_each_has(client, ctx, clock):
    """Each store that has a part of a pickup order is named on the order page,
    with its address, hours and the lines it has; not only the latest one."""
    world = World(ctx)
    maker = world.manufacturer(slug="acme", products=[("BIKE", 90000), ("HELMET", 10000)])
    bikes = world.retailer(north_of(HERE, 2), dealer_of=[maker], name="Bike shop")
    helmets = world.retailer(north_of(HERE, 5), dealer_of=[maker], name="Helmet shop")
    assert client.patch(f"/api/v1/stores/{bikes.store_id}", headers=auth(bikes.key),
                        json={"address": STORE_ADDRESS, "hours": STORE_HOURS}).status_code == 200
    assert client.patch(f"/api/v1/stores/{helmets.store_id}", headers=auth(helmets.key),
                        json={"address": {**STORE_ADDRESS, "line1": "9 Guerrero St"}}).status_code == 200
    placed = place(client, items=[{"sku": "BIKE", "quantity": 1}, {"sku": "HELMET", "quantity": 2}])
    listing = client.get("/api/v1/board", headers=auth(bikes.key)).get_json()[0]["id"]
    assert client.post(f"/api/v1/board/{listing}/bids", headers=auth(bikes.key),
                       json={"items": [{"sku": "BIKE", "quantity": 1}]}).status_code == 201
    assert client.post(f"/api/v1/board/{listing}/bids", headers=auth(helmets.key),
                       json={"items": [{"sku": "HELMET", "quantity": 2}]}).status_code == 201
    clock.now = LATER
    settle(ctx)
    page = order_page(client, placed)
    assert 'id="pickup-store-1"' in page and 'id="pickup-store-2"' in page and 'id="pickup-store"' not in page
    first = page[page.index('id="pickup-store-1"'):page.index('id="pickup-store-2"')]
    second = page[page.index('id="pickup-store-2"'):]
    second = second[:second.index("</section>")]
    assert "Collect these from Bike shop" in first and "1 × Product BIKE" in first and "1 Valencia St" in first
    assert "Opening hours" in first and "HELMET" not in first
    assert "Collect these from Helmet shop" in second and "2 × Product HELMET" in second
    assert "9 Guerrero St" in second and "BIKE" not in second
    # And an email from each store, with what it has.
    from broker.outbox.models import OutboxMessage

    with ctx.uow() as uow:
        ready = [p["text"] for p in uow.session.scalars(
            select(OutboxMessage.payload).where(OutboxMessage.topic == "email.pickup_ready")
            .order_by(OutboxMessage.id))]
    assert len(ready) == 2
    assert "Bike shop" in ready[0] and "1 x Product BIKE" in ready[0] and "HELMET" not in ready[0]
    assert "Helmet shop" in ready[1] and "2 x Product HELMET" in ready[1] and "another store has the rest" in ready[1]
