"""Every access rule of the API, each as a test that tries to break it over HTTP.

Who may call what (operator, manufacturer, retailer, customer), and what each
party may see: a manufacturer only its own orders, products and dealers; a
retailer only the board near its stores, never who the customer is before it
wins, never another retailer's bids, and only what it needs to ship once it has
won; a customer only the order whose access token it holds.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from broker.geo.distance import approximate_point, distance_km, shown_distance_km
from broker.models import Assignment, Manufacturer, Order, Product, Retailer, SettlementRun
from tests.conftest import ADMIN_TOKEN, START
from tests.factories import HERE, north_of

API = "/api/v1"
LATER = START + timedelta(hours=13)  # a listing placed at START is due for settlement

# Distinctive personal data: none of it may leak to anyone but the customer
# (and, once it has won, the fulfiller: the name and address, never the email).
CUSTOMER_NAME = "Zebediah Quillfeather"
CUSTOMER_EMAIL = "zeb.quillfeather@private.example"
STREET = "742 Evergreen Terrace"
STREET_2 = "Flat 9 Hidden Wing"
POSTAL_CODE = "94103"


# --- helpers ---------------------------------------------------------------

def problem(resp, status: int) -> dict:
    """Assert an RFC 9457 problem response with this status; return its body."""
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert body["status"] == status
    assert body["title"]
    return body


def ok(resp, status: int = 200):
    assert resp.status_code == status, resp.get_data(as_text=True)
    return resp.get_json() if status != 204 else None


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


OPERATOR = bearer(ADMIN_TOKEN)


def place_order(client, slug: str, *, to=HERE, name=CUSTOMER_NAME, email=CUSTOMER_EMAIL) -> dict:
    """A storefront order through the API, as a customer places it."""
    return ok(client.post(f"{API}/storefronts/{slug}/orders", json={
        "items": [{"sku": "SKU-1", "quantity": 2}],
        "customer": {"name": name, "email": email},
        "ship_to": {"line1": STREET, "line2": STREET_2, "city": "San Francisco", "postal_code": POSTAL_CODE,
                    "country": "US", "lat": to[0], "lon": to[1]},
    }), 201)


def settle(client) -> dict:
    return ok(client.post(f"{API}/settlements", json={"as_of": LATER.isoformat()}, headers=OPERATOR), 201)


def board(client, shop) -> list[dict]:
    return ok(client.get(f"{API}/board", headers=bearer(shop.key)))


def bid(client, shop, listing_id: int, **body):
    return client.post(f"{API}/board/{listing_id}/bids", json=body, headers=bearer(shop.key))


def assignment_id_of(session, order_id: int) -> int:
    return session.scalars(
        select(Assignment.id).where(Assignment.order_id == order_id).order_by(Assignment.id.desc())
    ).first()


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


# --- fixtures --------------------------------------------------------------


@pytest.fixture
def maker(world):
    return world.manufacturer()


@pytest.fixture
def rival(world):
    """Another manufacturer, selling a product with the same SKU."""
    return world.manufacturer()


@pytest.fixture
def shop(world, maker):
    """An authorised dealer of `maker`, 2 km from the usual ship-to point."""
    return world.retailer(north_of(HERE, 2), dealer_of=[maker])


# --- who may call what -----------------------------------------------------

OPERATOR_ONLY = [
    pytest.param(f"{API}/manufacturers",
                 {"name": "New Maker", "slug": "new-maker", "currency": "USD", "location": {"lat": 1, "lon": 2}},
                 id="manufacturers"),
    pytest.param(f"{API}/retailers",
                 {"name": "New Shop", "email": "shop@example.com", "location": {"lat": 1, "lon": 2},
                  "service_radius_km": 10},
                 id="retailers"),
    pytest.param(f"{API}/settlements", {"as_of": LATER.isoformat()}, id="settlements"),
]

MANUFACTURER_ONLY = [
    pytest.param("GET", f"{API}/dealers", None, id="list-dealers"),
    pytest.param("POST", f"{API}/dealers", {"retailer_id": 1}, id="authorise-dealer"),
    pytest.param("DELETE", f"{API}/dealers/1", None, id="revoke-dealer"),
    pytest.param("GET", f"{API}/products", None, id="list-products"),
    pytest.param("POST", f"{API}/products", {"sku": "NEW-1", "name": "New", "price": 100}, id="add-product"),
    pytest.param("PATCH", f"{API}/products/SKU-1", {"name": "Renamed"}, id="edit-product"),
    pytest.param("GET", f"{API}/orders", None, id="list-orders"),
]

RETAILER_ONLY = [
    pytest.param("GET", f"{API}/board", None, id="board"),
    pytest.param("POST", f"{API}/board/1/bids", {}, id="bid"),
    pytest.param("DELETE", f"{API}/board/1/bids", None, id="withdraw"),
    pytest.param("GET", f"{API}/stores", None, id="list-stores"),
    pytest.param("POST", f"{API}/stores",
                 {"name": "Warehouse", "location": {"lat": 1, "lon": 2}, "service_radius_km": 10}, id="add-store"),
    pytest.param("PATCH", f"{API}/stores/1", {"name": "Renamed"}, id="edit-store"),
]


class TestOperatorOnly:
    @pytest.mark.parametrize("path, body", OPERATOR_ONLY)
    def test_anonymous_caller_gets_401(self, client, session, path, body):
        resp = client.post(path, json=body)

        problem(resp, 401)
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert count(session, Manufacturer) == count(session, Retailer) == count(session, SettlementRun) == 0

    @pytest.mark.parametrize("role", ["manufacturer", "retailer"])
    @pytest.mark.parametrize("path, body", OPERATOR_ONLY)
    def test_manufacturer_or_retailer_key_gets_403(self, client, session, maker, shop, path, body, role):
        key = maker.key if role == "manufacturer" else shop.key
        before = (count(session, Manufacturer), count(session, Retailer), count(session, SettlementRun))

        problem(client.post(path, json=body, headers=bearer(key)), 403)

        assert (count(session, Manufacturer), count(session, Retailer), count(session, SettlementRun)) == before

    @pytest.mark.parametrize("path, body", OPERATOR_ONLY)
    def test_wrong_bearer_gets_401(self, client, path, body):
        for key in ("nope", "bk_m_" + "A" * 43, "bk_r_" + "A" * 43,  # made up, shaped like real keys
                    ADMIN_TOKEN + "x", ADMIN_TOKEN[:-1], ADMIN_TOKEN.upper()):  # near misses
            problem(client.post(path, json=body, headers=bearer(key)), 401)

    @pytest.mark.parametrize("path, body", OPERATOR_ONLY)
    def test_malformed_authorization_header_gets_401(self, client, path, body):
        for header in ("Basic xyz", f"Basic {ADMIN_TOKEN}", ADMIN_TOKEN, "Bearer", "Bearer    ",
                       f"Token {ADMIN_TOKEN}"):
            problem(client.post(path, json=body, headers={"Authorization": header}), 401)

    @pytest.mark.parametrize("path, body", [
        pytest.param(f"{API}/manufacturers", {}, id="manufacturers"),
        pytest.param(f"{API}/retailers", {}, id="retailers"),
        pytest.param(f"{API}/settlements", {"as_of": "not a date"}, id="settlements"),
    ])
    def test_caller_without_the_right_key_is_refused_before_the_body_is_read(self, client, shop, path, body):
        """No validation error (which would describe the schema) for a caller who may not call at all."""
        problem(client.post(path, json=body), 401)
        problem(client.post(path, json=body, headers=bearer(shop.key)), 403)
        problem(client.post(path, data="{not json", content_type="application/json"), 401)

    def test_operator_token_is_accepted(self, client):
        """The control for the refusals above: the same call with the right token works."""
        ok(client.post(f"{API}/settlements", json={}, headers=OPERATOR), 201)


class TestRoles:
    @pytest.mark.parametrize("method, path, body", MANUFACTURER_ONLY)
    def test_manufacturer_endpoints_refuse_a_retailer_key(self, client, shop, method, path, body):
        problem(client.open(path, method=method, json=body, headers=bearer(shop.key)), 403)

    @pytest.mark.parametrize("method, path, body", MANUFACTURER_ONLY)
    def test_manufacturer_endpoints_refuse_the_operator_token(self, client, method, path, body):
        problem(client.open(path, method=method, json=body, headers=OPERATOR), 403)

    @pytest.mark.parametrize("method, path, body", MANUFACTURER_ONLY)
    def test_manufacturer_endpoints_refuse_an_anonymous_caller(self, client, method, path, body):
        problem(client.open(path, method=method, json=body), 401)

    @pytest.mark.parametrize("method, path, body", RETAILER_ONLY)
    def test_retailer_endpoints_refuse_a_manufacturer_key(self, client, maker, method, path, body):
        problem(client.open(path, method=method, json=body, headers=bearer(maker.key)), 403)

    @pytest.mark.parametrize("method, path, body", RETAILER_ONLY)
    def test_retailer_endpoints_refuse_the_operator_token(self, client, method, path, body):
        problem(client.open(path, method=method, json=body, headers=OPERATOR), 403)

    @pytest.mark.parametrize("method, path, body", RETAILER_ONLY)
    def test_retailer_endpoints_refuse_an_anonymous_caller(self, client, method, path, body):
        problem(client.open(path, method=method, json=body), 401)

    @pytest.mark.parametrize("headers, status", [
        pytest.param({}, 401, id="anonymous"),
        pytest.param(OPERATOR, 403, id="operator"),
    ])
    def test_assignments_are_for_fulfillers_only(self, client, headers, status):
        problem(client.get(f"{API}/assignments", headers=headers), status)

    def test_a_deactivated_retailers_key_is_refused_and_a_revoked_key_too(self, ctx, client, shop):
        assert client.get(f"{API}/board", headers=bearer(shop.key)).status_code == 200
        with ctx.uow() as uow:
            uow.session.execute(update(Retailer).where(Retailer.id == shop.id).values(active=False))
            uow.commit()
        problem(client.get(f"{API}/board", headers=bearer(shop.key)), 401)
        problem(client.get(f"{API}/board", headers=bearer(shop.key[:-1] + "x")), 401)

    def test_retailer_cannot_edit_another_retailers_store(self, client, world, shop):
        other = world.retailer(north_of(HERE, 5))

        problem(client.patch(f"{API}/stores/{other.store_id}", json={"service_radius_km": 1},
                             headers=bearer(shop.key)), 404)

        stores = ok(client.get(f"{API}/stores", headers=bearer(other.key)))
        assert [s["service_radius_km"] for s in stores] == [50]
        assert other.store_id not in [s["id"] for s in ok(client.get(f"{API}/stores", headers=bearer(shop.key)))]


# --- a manufacturer sees only its own ---------------------------------------

class TestManufacturersAreSeparate:
    def test_manufacturer_cannot_read_another_manufacturers_order(self, client, maker, rival):
        order = place_order(client, maker.slug)

        body = problem(client.get(f"{API}/orders/{order['id']}", headers=bearer(rival.key)), 404)

        assert CUSTOMER_NAME not in str(body) and CUSTOMER_EMAIL not in str(body)
        assert ok(client.get(f"{API}/orders/{order['id']}", headers=bearer(maker.key)))["id"] == order["id"]

    def test_manufacturer_order_list_has_only_its_own_orders(self, client, maker, rival):
        mine = place_order(client, maker.slug)
        theirs = place_order(client, rival.slug, name="Rival Customer", email="rival@example.com")

        for who, own, other in ((maker, mine, theirs), (rival, theirs, mine)):
            resp = client.get(f"{API}/orders", headers=bearer(who.key))
            listed = ok(resp)
            assert [o["id"] for o in listed] == [own["id"]]
            assert json.loads(resp.headers["X-Pagination"])["total"] == 1
            for status in ("open", "awarded"):
                filtered = ok(client.get(f"{API}/orders?status={status}", headers=bearer(who.key)))
                assert other["id"] not in [o["id"] for o in filtered]
        assert CUSTOMER_EMAIL not in client.get(f"{API}/orders", headers=bearer(rival.key)).get_data(as_text=True)

    def test_manufacturer_cannot_edit_another_manufacturers_product(self, client, world, maker, session):
        rival = world.manufacturer(products=(("SKU-OWN", 100),))  # has no SKU-1 of its own

        problem(client.patch(f"{API}/products/SKU-1", json={"price": 1, "name": "Hijacked"},
                             headers=bearer(rival.key)), 404)

        product = session.scalar(select(Product).where(Product.manufacturer_id == maker.id))
        assert (product.name, product.price) == ("Product SKU-1", 5000)
        assert [p["sku"] for p in ok(client.get(f"{API}/products", headers=bearer(rival.key)))] == ["SKU-OWN"]

    def test_editing_a_shared_sku_changes_only_the_callers_product(self, client, maker, rival, session):
        ok(client.patch(f"{API}/products/SKU-1", json={"price": 1234}, headers=bearer(rival.key)))

        prices = dict(session.execute(select(Product.manufacturer_id, Product.price)).all())
        assert prices == {maker.id: 5000, rival.id: 1234}

    def test_manufacturer_cannot_revoke_another_manufacturers_dealer(self, client, maker, rival, shop):
        problem(client.delete(f"{API}/dealers/{shop.id}", headers=bearer(rival.key)), 404)

        assert [d["retailer_id"] for d in ok(client.get(f"{API}/dealers", headers=bearer(maker.key)))] == [shop.id]
        assert ok(client.get(f"{API}/dealers", headers=bearer(rival.key))) == []


# --- the board: nothing about who, only where one may bid --------------------

BOARD_ITEM_FIELDS = {"id", "kind", "items", "price", "currency", "distance_km", "store_id", "area", "precision",
                     "closes_at", "my_bid", "delivery", "shipping_method", "ship_within_hours"}


def assert_no_personal_data(text: str) -> None:
    for secret in (CUSTOMER_NAME, "Quillfeather", CUSTOMER_EMAIL, "private.example", STREET, "Evergreen",
                   STREET_2, POSTAL_CODE):
        assert secret.lower() not in text.lower(), f"{secret!r} leaked"


class TestBoardPrivacy:
    def test_board_and_bid_show_nothing_about_the_customer(self, client, maker, shop):
        place_order(client, maker.slug)

        resp = client.get(f"{API}/board", headers=bearer(shop.key))
        [item] = ok(resp)
        assert_no_personal_data(resp.get_data(as_text=True))
        assert set(item) == BOARD_ITEM_FIELDS
        assert item["area"] == "San Francisco, CA 941xx"
        assert item["precision"] == "coordinates"  # how well the point is known, not where it is

        placed = bid(client, shop, item["id"])
        ok(placed, 201)
        assert_no_personal_data(placed.get_data(as_text=True))
        again = client.get(f"{API}/board", headers=bearer(shop.key))
        assert_no_personal_data(again.get_data(as_text=True))
        assert again.get_json()[0]["my_bid"]["id"] == placed.get_json()["id"]

    def test_bidder_cannot_read_the_order_before_winning(self, client, maker, shop):
        order = place_order(client, maker.slug)
        [item] = board(client, shop)
        ok(bid(client, shop, item["id"]), 201)

        body = problem(client.get(f"{API}/orders/{order['id']}", headers=bearer(shop.key)), 404)

        assert_no_personal_data(str(body))
        assert ok(client.get(f"{API}/assignments", headers=bearer(shop.key))) == []


class TestBoardVisibility:
    def test_retailer_that_is_not_a_dealer_cannot_see_or_bid(self, client, world, maker, session):
        stranger = world.retailer(north_of(HERE, 1))  # close by, but not authorised
        order = place_order(client, maker.slug)
        listing_id = world.listing_id(order["id"])

        assert board(client, stranger) == []
        problem(bid(client, stranger, listing_id), 404)
        problem(bid(client, stranger, listing_id, store_id=stranger.store_id), 404)
        problem(client.delete(f"{API}/board/{listing_id}/bids", headers=bearer(stranger.key)), 404)

    def test_unauthorised_retailer_gets_the_same_404_as_for_a_listing_that_does_not_exist(self, client, world,
                                                                                          maker):
        stranger = world.retailer(north_of(HERE, 1))
        order = place_order(client, maker.slug)

        real = problem(bid(client, stranger, world.listing_id(order["id"])), 404)
        missing = problem(bid(client, stranger, 999_999), 404)

        assert (real["title"], set(real)) == (missing["title"], set(missing))

    def test_dealer_out_of_radius_cannot_see_or_bid(self, client, world, maker):
        far = world.retailer(north_of(HERE, 80), radius=50, dealer_of=[maker])
        order = place_order(client, maker.slug)
        listing_id = world.listing_id(order["id"])

        assert board(client, far) == []
        problem(bid(client, far, listing_id), 404)
        body = problem(bid(client, far, listing_id, store_id=far.store_id), 422)
        assert "store_id" in body["errors"]

    def test_retailer_cannot_bid_from_another_retailers_store(self, client, world, maker, shop):
        other = world.retailer(north_of(HERE, 1), dealer_of=[maker])
        order = place_order(client, maker.slug)

        body = problem(bid(client, shop, world.listing_id(order["id"]), store_id=other.store_id), 422)

        assert "store_id" in body["errors"]
        assert board(client, shop)[0]["my_bid"] is None

    def test_revoked_dealer_no_longer_sees_or_bids(self, client, world, maker, shop):
        order = place_order(client, maker.slug)
        listing_id = world.listing_id(order["id"])
        assert [i["id"] for i in board(client, shop)] == [listing_id]

        ok(client.delete(f"{API}/dealers/{shop.id}", headers=bearer(maker.key)), 204)

        assert board(client, shop) == []
        problem(bid(client, shop, listing_id), 404)

    def test_closed_store_does_not_see_the_board(self, client, world, maker, shop):
        order = place_order(client, maker.slug)
        ok(client.patch(f"{API}/stores/{shop.store_id}", json={"is_open": False}, headers=bearer(shop.key)))

        assert board(client, shop) == []
        problem(bid(client, shop, world.listing_id(order["id"])), 404)


class TestBidsArePrivate:
    def test_retailer_never_sees_another_retailers_bid(self, client, world, maker, shop):
        other = world.retailer(north_of(HERE, 4), dealer_of=[maker])
        place_order(client, maker.slug)
        [item] = board(client, shop)
        listing_id = item["id"]

        mine = ok(bid(client, shop, listing_id), 201)
        [seen_by_other] = board(client, other)
        assert seen_by_other["my_bid"] is None
        assert set(seen_by_other) == BOARD_ITEM_FIELDS

        theirs = ok(bid(client, other, listing_id), 201)
        assert theirs["id"] != mine["id"]

        seen = {}
        for who, own, rival_bid in ((shop, mine, theirs), (other, theirs, mine)):
            [entry] = board(client, who)
            assert entry["my_bid"]["id"] == own["id"]
            assert entry["my_bid"]["store_id"] == who.store_id
            again = ok(bid(client, who, listing_id), 200)  # bidding again returns one's own bid
            assert again["id"] == own["id"] != rival_bid["id"]
            seen[who.id] = entry["my_bid"]["distance_km"]
        # As the board shows them: from the listing's cell, in whole kilometres.
        assert seen == {who.id: shown_distance_km(distance_km(*where, *approximate_point(*HERE)))
                        for who, where in ((shop, north_of(HERE, 2)), (other, north_of(HERE, 4)))}

    def test_withdrawing_touches_only_ones_own_bid(self, client, world, maker, shop):
        other = world.retailer(north_of(HERE, 4), dealer_of=[maker])
        place_order(client, maker.slug)
        listing_id = board(client, shop)[0]["id"]
        ok(bid(client, other, listing_id), 201)

        # shop has no bid of its own: withdrawing must not touch other's
        problem(client.delete(f"{API}/board/{listing_id}/bids", headers=bearer(shop.key)), 404)

        assert board(client, other)[0]["my_bid"] is not None


# --- after settlement --------------------------------------------------------

@pytest.fixture
def settled(client, world, maker, shop, session):
    """One order, two bidders: `shop` (2 km) wins, `loser` (6 km) loses."""
    loser = world.retailer(north_of(HERE, 6), dealer_of=[maker])
    order = place_order(client, maker.slug)
    listing_id = world.listing_id(order["id"])
    ok(bid(client, shop, listing_id), 201)
    ok(bid(client, loser, listing_id), 201)
    assert settle(client)["to_retailers"] == 1
    return {"order": order, "loser": loser, "assignment_id": assignment_id_of(session, order["id"])}


@pytest.fixture
def fallback(client, maker):
    """An order nobody bid on: after settlement the manufacturer must ship it."""
    return place_order(client, maker.slug, name="Other Customer", email="other@example.com")


class TestAfterSettlement:
    def test_losing_bidder_cannot_read_the_order_or_its_assignment(self, client, settled):
        loser, order_id = settled["loser"], settled["order"]["id"]

        body = problem(client.get(f"{API}/orders/{order_id}", headers=bearer(loser.key)), 404)

        assert_no_personal_data(str(body))
        resp = client.get(f"{API}/assignments", headers=bearer(loser.key))
        assert ok(resp) == []
        assert_no_personal_data(resp.get_data(as_text=True))

    def test_winner_sees_ship_to_name_and_street_but_not_the_email(self, client, shop, settled):
        resp = client.get(f"{API}/orders/{settled['order']['id']}", headers=bearer(shop.key))

        order = ok(resp)
        assert order["customer"] == {"name": CUSTOMER_NAME}
        assert (order["ship_to"]["name"], order["ship_to"]["line1"], order["ship_to"]["line2"]) == (
            CUSTOMER_NAME, STREET, STREET_2)
        assert order["payment"] is None
        assert CUSTOMER_EMAIL not in resp.get_data(as_text=True)

    def test_winner_lists_its_assignment_with_the_address(self, client, shop, settled):
        resp = client.get(f"{API}/assignments", headers=bearer(shop.key))

        [assignment] = ok(resp)
        assert (assignment["id"], assignment["order_id"]) == (settled["assignment_id"], settled["order"]["id"])
        assert assignment["ship_to"]["line1"] == STREET and assignment["ship_to"]["name"] == CUSTOMER_NAME
        assert CUSTOMER_EMAIL not in resp.get_data(as_text=True)

    def test_retailer_cannot_ship_or_release_another_retailers_assignment(self, client, shop, settled):
        loser, assignment_id = settled["loser"], settled["assignment_id"]

        problem(client.post(f"{API}/assignments/{assignment_id}/shipment",
                            json={"carrier": "UPS", "tracking_number": "1Z"}, headers=bearer(loser.key)), 404)
        problem(client.post(f"{API}/assignments/{assignment_id}/release", headers=bearer(loser.key)), 404)

        [still] = ok(client.get(f"{API}/assignments", headers=bearer(shop.key)))
        assert (still["id"], still["status"], still["carrier"]) == (assignment_id, "active", None)

    def test_retailer_cannot_ship_or_release_the_manufacturers_assignment(self, client, maker, shop, fallback,
                                                                          session):
        settle(client)
        assignment_id = assignment_id_of(session, fallback["id"])

        problem(client.post(f"{API}/assignments/{assignment_id}/shipment",
                            json={"carrier": "UPS", "tracking_number": "1Z"}, headers=bearer(shop.key)), 404)
        problem(client.post(f"{API}/assignments/{assignment_id}/release", headers=bearer(shop.key)), 404)

        [still] = ok(client.get(f"{API}/assignments", headers=bearer(maker.key)))
        assert (still["id"], still["fulfiller"], still["status"]) == (assignment_id, "manufacturer", "active")
        problem(client.get(f"{API}/orders/{fallback['id']}", headers=bearer(shop.key)), 404)

    def test_manufacturer_cannot_ship_or_release_a_retailers_assignment(self, client, maker, shop, settled):
        assignment_id = settled["assignment_id"]

        problem(client.post(f"{API}/assignments/{assignment_id}/shipment",
                            json={"carrier": "UPS", "tracking_number": "1Z"}, headers=bearer(maker.key)), 404)
        problem(client.post(f"{API}/assignments/{assignment_id}/release", headers=bearer(maker.key)), 404)

        assert ok(client.get(f"{API}/assignments", headers=bearer(maker.key))) == []
        assert ok(client.get(f"{API}/assignments", headers=bearer(shop.key)))[0]["status"] == "active"

    def test_manufacturer_cannot_see_or_ship_another_manufacturers_fallback(self, client, rival, fallback, session):
        settle(client)
        assignment_id = assignment_id_of(session, fallback["id"])

        assert ok(client.get(f"{API}/assignments", headers=bearer(rival.key))) == []
        problem(client.post(f"{API}/assignments/{assignment_id}/shipment",
                            json={"carrier": "UPS", "tracking_number": "1Z"}, headers=bearer(rival.key)), 404)

    def test_winner_that_releases_the_order_no_longer_sees_the_customer(self, client, shop, settled):
        order_id, loser = settled["order"]["id"], settled["loser"]

        ok(client.post(f"{API}/assignments/{settled['assignment_id']}/release", headers=bearer(shop.key)))

        problem(client.get(f"{API}/orders/{order_id}", headers=bearer(shop.key)), 404)
        assert ok(client.get(f"{API}/assignments", headers=bearer(shop.key))) == []
        # ... and the next-nearest bidder now does
        assert ok(client.get(f"{API}/orders/{order_id}", headers=bearer(loser.key)))["ship_to"]["line1"] == STREET

    def test_winner_no_longer_sees_the_customer_once_the_order_is_cancelled(self, client, shop, settled):
        order = settled["order"]
        ok(client.post(f"{API}/orders/{order['id']}/cancel", headers={"X-Access-Token": order["access_token"]}))

        problem(client.get(f"{API}/orders/{order['id']}", headers=bearer(shop.key)), 404)
        assert ok(client.get(f"{API}/assignments", headers=bearer(shop.key))) == []


# --- the customer ------------------------------------------------------------

class TestCustomer:
    def test_order_without_credentials_is_401(self, client, maker):
        order = place_order(client, maker.slug)

        problem(client.get(f"{API}/orders/{order['id']}"), 401)
        problem(client.get(f"{API}/orders/{order['id']}", headers={"X-Access-Token": ""}), 401)

    def test_another_orders_token_is_404(self, client, maker):
        mine = place_order(client, maker.slug)
        other = place_order(client, maker.slug, name="Someone Else", email="else@example.com")

        body = problem(client.get(f"{API}/orders/{mine['id']}", headers={"X-Access-Token": other["access_token"]}),
                       404)

        assert_no_personal_data(str(body))
        problem(client.get(f"{API}/orders/{mine['id']}", headers={"X-Access-Token": "guessed"}), 404)

    def test_right_token_shows_the_order_with_the_email(self, client, maker):
        placed = place_order(client, maker.slug)

        order = ok(client.get(f"{API}/orders/{placed['id']}", headers={"X-Access-Token": placed["access_token"]}))

        assert order["customer"] == {"name": CUSTOMER_NAME, "email": CUSTOMER_EMAIL}
        assert order["ship_to"]["line1"] == STREET

    def test_token_is_not_an_api_key(self, client, maker):
        placed = place_order(client, maker.slug)

        problem(client.get(f"{API}/orders/{placed['id']}", headers=bearer(placed["access_token"])), 401)

    @pytest.mark.parametrize("token, status", [
        pytest.param(None, 401, id="no-token"),
        pytest.param("guessed", 404, id="made-up-token"),
        pytest.param("other", 404, id="another-orders-token"),
    ])
    def test_cancel_without_the_right_token_changes_nothing(self, client, world, maker, shop, session, token,
                                                            status):
        placed = place_order(client, maker.slug)
        other = place_order(client, maker.slug, name="Someone Else", email="else@example.com")
        headers = {} if token is None else {"X-Access-Token": other["access_token"] if token == "other" else token}

        problem(client.post(f"{API}/orders/{placed['id']}/cancel", headers=headers), status)

        order = ok(client.get(f"{API}/orders/{placed['id']}", headers={"X-Access-Token": placed["access_token"]}))
        assert (order["status"], order["payment"]["status"]) == ("open", "authorized")
        assert world.listing_id(placed["id"]) in [i["id"] for i in board(client, shop)]
        assert session.get(Order, other["id"]).status == "open"
