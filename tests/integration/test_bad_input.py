"""Bad input on every write endpoint: a clear problem-details error, and nothing written.

A body that is not JSON gets 400; a body that breaks the schema or a business rule
gets 422 naming the offending field in `errors`; a valid request the current state
forbids gets 404 or 409. In every case the database is exactly as it was: each
test compares every row of every table before and after the request.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from broker.clock import FrozenClock
from broker.context import Context
from broker.geo.geocoding import OfflineGeocoder
from broker.models import Assignment, Base, Product, Store
from broker.notifications.mailer import FolderMailer
from broker.payments.offline import OfflineProvider
from broker.settlement.services import settle
from tests.conftest import ADMIN_TOKEN, START, make_settings
from tests.factories import HERE, Maker, Shop, World, north_of

API = "/api/v1"
LATER = START + timedelta(hours=13)


# --- helpers ---------------------------------------------------------------

def problem(resp, status: int) -> dict:
    """Assert an RFC 9457 problem response with this status; return its body."""
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert body["status"] == status
    assert body["title"]
    return body


def invalid(resp, field: str) -> dict:
    """A 422 whose per-field `errors` name this field."""
    body = problem(resp, 422)
    assert field in body.get("errors", {}), body
    return body


def database(ctx) -> dict[str, list[tuple]]:
    """Every row of every table, in primary-key order."""
    with ctx.uow() as uow:
        return {
            table.name: [tuple(row) for row in uow.session.execute(
                select(table).order_by(*table.primary_key.columns))]
            for table in Base.metadata.sorted_tables
        }


def row_counts(state: dict[str, list[tuple]]) -> dict[str, int]:
    return {name: len(rows) for name, rows in state.items()}


def assert_unchanged(ctx, before: dict[str, list[tuple]]) -> None:
    after = database(ctx)
    assert row_counts(after) == row_counts(before)
    assert after == before


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


# --- the scene: one of everything a write endpoint can point at --------------

@dataclasses.dataclass
class Scene:
    maker: Maker
    rival: Maker  # another manufacturer, selling SKU-RIVAL
    shop: Shop  # a dealer of `maker` that won an order and has an open listing to bid on
    other: Shop  # another retailer, also a dealer of `maker`
    listing_id: int  # open, on `shop`'s board
    assignment_id: int  # `shop`'s, active
    order_id: int  # the open order behind `listing_id`
    access_token: str

    def headers(self, who: str) -> dict:
        return {
            "anyone": {},
            "operator": bearer(ADMIN_TOKEN),
            "maker": bearer(self.maker.key),
            "shop": bearer(self.shop.key),
        }[who]

    def path(self, template: str) -> str:
        return template.format(slug=self.maker.slug, store_id=self.shop.store_id, listing_id=self.listing_id,
                               assignment_id=self.assignment_id, order_id=self.order_id)


@pytest.fixture(scope="module")
def _module_connection(engine):
    """One transaction for the whole module, rolled back at its end."""
    with engine.connect() as connection:
        outer = connection.begin()
        yield connection
        outer.rollback()


@pytest.fixture(scope="module")
def _module_ctx(_module_connection, engine, database_url, tmp_path_factory):
    """One context and one app for the module, on the module's transaction:
    building them is most of a test's time, and these tests change neither."""
    from web.app import create_app

    settings = make_settings(database_url)
    factory = sessionmaker(bind=_module_connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    ctx = Context(settings=settings, engine=engine, session_factory=factory, geocoder=OfflineGeocoder(),
                  payments=OfflineProvider(), clock=FrozenClock(START),
                  mailer=FolderMailer(tmp_path_factory.mktemp("mail"), settings.mail_from))
    return ctx, create_app(context=ctx, test_config={"TESTING": True})


@pytest.fixture(scope="module")
def _scene(_module_ctx):
    """The scene, built once for the module."""
    ctx, app = _module_ctx
    client = app.test_client()
    world = World(ctx)
    maker = world.manufacturer(products=(("SKU-1", 5000), ("SKU-OFF", 700)))
    rival = world.manufacturer(products=(("SKU-RIVAL", 900),))
    shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
    other = world.retailer(north_of(HERE, 3), dealer_of=[maker])
    resp = client.patch(f"{API}/products/SKU-OFF", json={"active": False}, headers=bearer(maker.key))
    assert resp.status_code == 200 and resp.get_json()["active"] is False
    won = world.order(maker)
    world.bid(shop, won.order.id)
    settle(ctx, as_of=LATER)
    with ctx.uow() as uow:
        assignment_id = uow.session.scalar(select(Assignment.id).where(Assignment.order_id == won.order.id))
    placed = world.order(maker)
    return Scene(maker, rival, shop, other, world.listing_id(placed.order.id), assignment_id, placed.order.id,
                 placed.access_token)


@pytest.fixture
def connection(_module_connection, _scene):
    """Each test runs in a savepoint of the module's transaction, on top of the
    scene, and rolls back to it: every test sees the scene as built, and nothing
    another test wrote."""
    savepoint = _module_connection.begin_nested()
    yield _module_connection
    if savepoint.is_active:
        savepoint.rollback()


@pytest.fixture
def ctx(_module_ctx, connection):
    ctx, _ = _module_ctx
    ctx.clock.now = START
    return ctx


@pytest.fixture
def app(_module_ctx, ctx):
    _, app = _module_ctx
    app.extensions["limiter"].reset()  # no test inherits another's rate-limit counts
    return app


@pytest.fixture
def scene(_scene, connection):
    return _scene


# --- the cases ---------------------------------------------------------------

# Valid bodies, each case below breaks one thing in one of them.
LOCATION = {"lat": 37.78, "lon": -122.41}
MANUFACTURER = {"name": "Acme", "slug": "acme", "currency": "USD", "location": LOCATION}
RETAILER = {"name": "Corner Shop", "email": "corner@example.com", "location": LOCATION, "service_radius_km": 25}
STORE = {"name": "Warehouse", "location": LOCATION, "service_radius_km": 25}
PRODUCT = {"sku": "NEW-1", "name": "Widget", "price": 1999}
ORDER = {
    "items": [{"sku": "SKU-1", "quantity": 1}],
    "customer": {"name": "Ada Lovelace", "email": "ada@example.com"},
    "ship_to": {"line1": "1 Main St", "city": "San Francisco", "postal_code": "94103", "country": "US"},
}
SHIPMENT = {"carrier": "UPS", "tracking_number": "1Z999"}


def but(base: dict, **changes) -> dict:
    """`base` with some keys replaced; a value of `...` removes the key.
    A double underscore (`ship_to__country`) reaches into a nested dict."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in changes.items():
        *parents, leaf = key.split("__")
        target = out
        for parent in parents:
            target = target[parent]
        if value is ...:
            target.pop(leaf, None)
        else:
            target[leaf] = value
    return out


# (who, method, path, valid body): every write endpoint that takes a body.
ENDPOINTS = {
    "manufacturers": ("operator", "POST", "/manufacturers", MANUFACTURER),
    "retailers": ("operator", "POST", "/retailers", RETAILER),
    "add-store": ("shop", "POST", "/stores", STORE),
    "edit-store": ("shop", "PATCH", "/stores/{store_id}", {"name": "Renamed"}),
    "dealers": ("maker", "POST", "/dealers", {"retailer_id": 1}),
    "add-product": ("maker", "POST", "/products", PRODUCT),
    "edit-product": ("maker", "PATCH", "/products/SKU-1", {"price": 4500}),
    "order": ("anyone", "POST", "/storefronts/{slug}/orders", ORDER),
    "bid": ("shop", "POST", "/board/{listing_id}/bids", {}),
    "shipment": ("shop", "POST", "/assignments/{assignment_id}/shipment", SHIPMENT),
    "settlement": ("operator", "POST", "/settlements", {"as_of": LATER.isoformat()}),
}


def case(endpoint: str, body, field: str, id: str):
    who, method, path, _ = ENDPOINTS[endpoint]
    return pytest.param(who, method, path, body, field, id=f"{endpoint}:{id}")


INVALID = [
    # POST /manufacturers
    case("manufacturers", {}, "slug", "nothing"),
    case("manufacturers", but(MANUFACTURER, name=...), "name", "missing-name"),
    case("manufacturers", but(MANUFACTURER, name=42), "name", "name-not-a-string"),
    case("manufacturers", but(MANUFACTURER, name="   "), "name", "blank-name"),
    case("manufacturers", but(MANUFACTURER, slug="Not A Slug!"), "slug", "bad-slug"),
    case("manufacturers", but(MANUFACTURER, slug="-acme"), "slug", "slug-leading-hyphen"),
    case("manufacturers", but(MANUFACTURER, currency="XXX"), "currency", "unknown-currency"),
    case("manufacturers", but(MANUFACTURER, currency="DOLLARS"), "currency", "currency-too-long"),
    case("manufacturers", but(MANUFACTURER, location=...), "location", "missing-location"),
    case("manufacturers", but(MANUFACTURER, location={}), "location", "empty-location"),
    case("manufacturers", but(MANUFACTURER, location={"lat": 91, "lon": 0}), "location.lat", "lat-91"),
    case("manufacturers", but(MANUFACTURER, location={"lat": 0, "lon": 200}), "location.lon", "lon-200"),
    case("manufacturers", but(MANUFACTURER, location={"lat": 37.7}), "location", "lat-without-lon"),
    case("manufacturers", but(MANUFACTURER, location={"lat": "north", "lon": 0}), "location.lat", "lat-not-a-number"),
    case("manufacturers", but(MANUFACTURER, location={"postal_code": "00000", "country": "US"}),
         "location.postal_code", "unknown-postal-code"),
    case("manufacturers", but(MANUFACTURER, location={"postal_code": "94103"}), "location.country",
         "postal-code-without-country"),
    case("manufacturers", but(MANUFACTURER, owner="me"), "owner", "unknown-field"),
    # POST /retailers
    case("retailers", but(RETAILER, email="corner.example.com"), "email", "email-without-at"),
    case("retailers", but(RETAILER, service_radius_km=0), "service_radius_km", "radius-0"),
    case("retailers", but(RETAILER, service_radius_km=-5), "service_radius_km", "radius-negative"),
    case("retailers", but(RETAILER, service_radius_km=1e6), "service_radius_km", "radius-huge"),
    case("retailers", but(RETAILER, service_radius_km="ten"), "service_radius_km", "radius-not-a-number"),
    case("retailers", but(RETAILER, service_radius_km=True), "service_radius_km", "radius-boolean"),
    case("retailers", but(RETAILER, location=...), "location", "missing-location"),
    case("retailers", but(RETAILER, location={"lon": -122.4}), "location", "lon-without-lat"),
    case("retailers", but(RETAILER, location={"postal_code": "00000", "country": "US"}),
         "location.postal_code", "unknown-postal-code"),
    case("retailers", but(RETAILER, location={"postal_code": "94103", "country": "USA"}),
         "location.country", "three-letter-country"),
    case("retailers", but(RETAILER, api_key="mine"), "api_key", "unknown-field"),
    # POST /stores
    case("add-store", but(STORE, name=...), "name", "missing-name"),
    case("add-store", but(STORE, service_radius_km=0), "service_radius_km", "radius-0"),
    case("add-store", but(STORE, service_radius_km=-5), "service_radius_km", "radius-negative"),
    case("add-store", but(STORE, location={"lat": 91, "lon": 0}), "location.lat", "lat-91"),
    case("add-store", but(STORE, location={"lat": 0, "lon": 200}), "location.lon", "lon-200"),
    case("add-store", but(STORE, location=...), "location", "missing-location"),
    case("add-store", but(STORE, retailer_id=1), "retailer_id", "unknown-field"),
    # PATCH /stores/{id}
    case("edit-store", {"service_radius_km": 0}, "service_radius_km", "radius-0"),
    case("edit-store", {"service_radius_km": -5}, "service_radius_km", "radius-negative"),
    case("edit-store", {"name": "  "}, "name", "blank-name"),
    case("edit-store", {"is_open": "perhaps"}, "is_open", "is-open-not-a-boolean"),
    case("edit-store", {"location": {"lat": 91, "lon": 0}}, "location.lat", "lat-91"),
    case("edit-store", {"location": {"lat": 37.7}}, "location", "lat-without-lon"),
    case("edit-store", {"location": {"postal_code": "00000", "country": "US"}}, "location.postal_code",
         "unknown-postal-code"),
    case("edit-store", {"retailer_id": 1}, "retailer_id", "unknown-field"),
    # POST /dealers
    case("dealers", {}, "retailer_id", "missing-retailer-id"),
    case("dealers", {"retailer_id": "1"}, "retailer_id", "retailer-id-string"),
    case("dealers", {"retailer_id": 1.5}, "retailer_id", "retailer-id-float"),
    case("dealers", {"retailer_id": 999_999}, "retailer_id", "unknown-retailer"),
    case("dealers", {"retailer_id": 1, "note": "x"}, "note", "unknown-field"),
    # POST /products
    case("add-product", but(PRODUCT, sku=...), "sku", "missing-sku"),
    case("add-product", but(PRODUCT, price=...), "price", "missing-price"),
    case("add-product", but(PRODUCT, sku="   "), "sku", "blank-sku"),
    case("add-product", but(PRODUCT, price=12.5), "price", "float-price"),
    case("add-product", but(PRODUCT, price="1999"), "price", "string-price"),
    case("add-product", but(PRODUCT, price=True), "price", "boolean-price"),
    case("add-product", but(PRODUCT, price=0), "price", "zero-price"),
    case("add-product", but(PRODUCT, price=-100), "price", "negative-price"),
    case("add-product", but(PRODUCT, price=10**15), "price", "absurd-price"),
    case("add-product", but(PRODUCT, image_url="javascript:alert(1)"), "image_url", "image-url-not-http"),
    case("add-product", but(PRODUCT, currency="EUR"), "currency", "unknown-field"),
    # PATCH /products/{sku}
    case("edit-product", {"price": 12.5}, "price", "float-price"),
    case("edit-product", {"price": True}, "price", "boolean-price"),
    case("edit-product", {"price": 0}, "price", "zero-price"),
    case("edit-product", {"price": -1}, "price", "negative-price"),
    case("edit-product", {"name": " "}, "name", "blank-name"),
    case("edit-product", {"active": "perhaps"}, "active", "active-not-a-boolean"),
    case("edit-product", {"sku": "RENAMED"}, "sku", "unknown-field"),
    # POST /storefronts/{slug}/orders
    case("order", but(ORDER, items=...), "items", "missing-items"),
    case("order", but(ORDER, customer=...), "customer", "missing-customer"),
    case("order", but(ORDER, ship_to=...), "ship_to", "missing-ship-to"),
    case("order", but(ORDER, items=[]), "items", "empty-items"),
    case("order", but(ORDER, items="SKU-1"), "items", "items-not-a-list"),
    case("order", but(ORDER, items=[{"sku": "SKU-1", "quantity": 0}]), "items.0.quantity", "quantity-0"),
    case("order", but(ORDER, items=[{"sku": "SKU-1", "quantity": -1}]), "items.0.quantity", "quantity-negative"),
    case("order", but(ORDER, items=[{"sku": "SKU-1", "quantity": 1000}]), "items.0.quantity", "quantity-1000"),
    case("order", but(ORDER, items=[{"sku": "SKU-1", "quantity": "2"}]), "items.0.quantity", "quantity-string"),
    case("order", but(ORDER, items=[{"sku": "SKU-1", "quantity": 1.5}]), "items.0.quantity", "quantity-float"),
    case("order", but(ORDER, items=[{"sku": "SKU-1"}]), "items.0.quantity", "missing-quantity"),
    case("order", but(ORDER, items=[{"sku": "NOPE", "quantity": 1}]), "items.0.sku", "unknown-sku"),
    case("order", but(ORDER, items=[{"sku": "SKU-1", "quantity": 1}, {"sku": "SKU-RIVAL", "quantity": 1}]),
         "items.1.sku", "another-manufacturers-sku"),
    case("order", but(ORDER, items=[{"sku": "SKU-OFF", "quantity": 1}]), "items.0.sku", "inactive-product"),
    case("order", but(ORDER, items=[{"sku": "SKU-1", "quantity": 1, "price": 1}]), "items.0.price",
         "price-in-the-cart"),
    case("order", but(ORDER, customer__email="ada.example.com"), "customer.email", "email-without-at"),
    case("order", but(ORDER, customer__name=" "), "customer.name", "blank-customer-name"),
    case("order", but(ORDER, ship_to__country="USA"), "ship_to.country", "three-letter-country"),
    case("order", but(ORDER, ship_to__line1=" "), "ship_to.line1", "blank-street"),
    case("order", but(ORDER, ship_to__postal_code="00000"), "ship_to.postal_code", "unknown-postal-code"),
    case("order", but(ORDER, ship_to__lat=91, ship_to__lon=0), "ship_to.lat", "lat-91"),
    case("order", but(ORDER, ship_to__lat=0, ship_to__lon=200), "ship_to.lon", "lon-200"),
    case("order", but(ORDER, ship_to__lat=37.7), "ship_to", "lat-without-lon"),
    case("order", but(ORDER, delivery="drone"), "delivery", "unknown-delivery"),
    case("order", but(ORDER, coupon="FREE"), "coupon", "unknown-field"),
    # POST /board/{id}/bids
    case("bid", {"price": 5000}, "price", "price-on-an-order-listing"),
    case("bid", {"price": 12.5}, "price", "float-price"),
    case("bid", {"store_id": "1"}, "store_id", "store-id-string"),
    case("bid", {"store_id": 999_999}, "store_id", "unknown-store"),
    case("bid", {"message": "pick me"}, "message", "unknown-field"),
    # POST /assignments/{id}/shipment
    case("shipment", but(SHIPMENT, carrier=""), "carrier", "empty-carrier"),
    case("shipment", but(SHIPMENT, carrier="   "), "carrier", "blank-carrier"),
    case("shipment", but(SHIPMENT, carrier="U" * 61), "carrier", "carrier-too-long"),
    case("shipment", but(SHIPMENT, tracking_number=...), "tracking_number", "missing-tracking-number"),
    case("shipment", but(SHIPMENT, tracking_number=" "), "tracking_number", "blank-tracking-number"),
    case("shipment", but(SHIPMENT, tracking_number=12345), "tracking_number", "tracking-number-not-a-string"),
    case("shipment", but(SHIPMENT, status="delivered"), "status", "unknown-field"),
    # POST /settlements
    case("settlement", {"as_of": "tomorrow"}, "as_of", "as-of-not-a-date"),
    case("settlement", {"as_of": "2026-03-02T22:00:00"}, "as_of", "as-of-without-time-zone"),
    case("settlement", {"as_of": 1772442000}, "as_of", "as-of-a-number"),
    case("settlement", {"dry_run": True}, "dry_run", "unknown-field"),
]


@pytest.mark.parametrize("who, method, path, body, field", INVALID)
def test_invalid_body_is_refused_with_the_field_and_writes_nothing(client, ctx, scene, who, method, path, body,
                                                                   field):
    before = database(ctx)

    invalid(client.open(API + scene.path(path), method=method, json=body, headers=scene.headers(who)), field)

    assert_unchanged(ctx, before)


NOT_JSON = ['{"name": "x",', "{'name': 'x'}", "not json at all", b'{"name": "\xff"}']
NOT_AN_OBJECT = ["[]", "null", '"text"', "42"]


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_malformed_json_is_400_and_writes_nothing(client, ctx, scene, endpoint):
    who, method, path, _ = ENDPOINTS[endpoint]
    before = database(ctx)

    for text in NOT_JSON:
        resp = client.open(API + scene.path(path), method=method, data=text, content_type="application/json",
                           headers=scene.headers(who))
        assert problem(resp, 400)["detail"], text

    assert_unchanged(ctx, before)


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_json_that_is_not_an_object_is_422_and_writes_nothing(client, ctx, scene, endpoint):
    who, method, path, _ = ENDPOINTS[endpoint]
    before = database(ctx)

    for text in NOT_AN_OBJECT:
        resp = client.open(API + scene.path(path), method=method, data=text, content_type="application/json",
                           headers=scene.headers(who))
        assert resp.status_code == 422, (text, resp.get_data(as_text=True))
        problem(resp, 422)

    assert_unchanged(ctx, before)


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_the_valid_bodies_above_are_accepted(client, ctx, scene, endpoint):
    """The control for the cases above: each one broke a body that is otherwise fine."""
    who, method, path, body = ENDPOINTS[endpoint]
    if endpoint == "dealers":
        body = {"retailer_id": scene.other.id}

    resp = client.open(API + scene.path(path), method=method, json=body, headers=scene.headers(who))

    assert resp.status_code in (200, 201), resp.get_data(as_text=True)


# --- a valid request the current state refuses ----------------------------------

def refused(ctx, status: int, send) -> dict:
    """`send()` gets `status` as a problem and leaves every table as it was."""
    before = database(ctx)
    body = problem(send(), status)
    assert_unchanged(ctx, before)
    return body


class TestStateRefusals:
    def test_taken_slug_is_409(self, client, ctx, scene):
        taken = but(MANUFACTURER, slug=scene.maker.slug)
        body = refused(ctx, 409, lambda: client.post(f"{API}/manufacturers", json=taken,
                                                     headers=scene.headers("operator")))
        assert "slug" in body["errors"]

    def test_existing_sku_is_409(self, client, ctx, scene):
        body = refused(ctx, 409, lambda: client.post(f"{API}/products", json=but(PRODUCT, sku="SKU-1"),
                                                     headers=scene.headers("maker")))
        assert "sku" in body["errors"]

    def test_editing_an_unknown_product_or_store_is_404(self, client, ctx, scene):
        refused(ctx, 404, lambda: client.patch(f"{API}/products/NOPE", json={"price": 1},
                                               headers=scene.headers("maker")))
        refused(ctx, 404, lambda: client.patch(f"{API}/stores/999999", json={"name": "x"},
                                               headers=scene.headers("shop")))

    def test_revoking_a_retailer_that_is_not_a_dealer_is_404(self, client, ctx, scene, world):
        stranger = world.retailer(north_of(HERE, 1))
        refused(ctx, 404, lambda: client.delete(f"{API}/dealers/{stranger.id}", headers=scene.headers("maker")))

    def test_ordering_from_an_unknown_storefront_is_404(self, client, ctx, scene):
        refused(ctx, 404, lambda: client.post(f"{API}/storefronts/no-such-store/orders", json=ORDER))

    def test_bidding_on_an_unknown_listing_is_404(self, client, ctx, scene):
        refused(ctx, 404, lambda: client.post(f"{API}/board/999999/bids", json={}, headers=scene.headers("shop")))

    def test_withdrawing_a_bid_never_placed_is_404(self, client, ctx, scene):
        refused(ctx, 404, lambda: client.delete(f"{API}/board/{scene.listing_id}/bids",
                                                headers=scene.headers("shop")))

    def test_withdrawing_twice_is_404(self, client, ctx, scene):
        path, headers = f"{API}/board/{scene.listing_id}/bids", scene.headers("shop")
        assert client.post(path, json={}, headers=headers).status_code == 201
        assert client.delete(path, headers=headers).status_code == 204

        refused(ctx, 404, lambda: client.delete(path, headers=headers))

    def test_bidding_or_withdrawing_once_the_listing_is_settled_is_409(self, client, ctx, scene):
        path, headers = f"{API}/board/{scene.listing_id}/bids", scene.headers("shop")
        assert client.post(path, json={}, headers=headers).status_code == 201
        assert client.post(f"{API}/settlements", json={"as_of": LATER.isoformat()},
                           headers=scene.headers("operator")).status_code == 201

        refused(ctx, 409, lambda: client.delete(path, headers=headers))
        other = scene.other
        refused(ctx, 409, lambda: client.post(path, json={}, headers=bearer(other.key)))

    def test_shipping_twice_is_409(self, client, ctx, scene):
        path, headers = scene.path(f"{API}/assignments/{{assignment_id}}/shipment"), scene.headers("shop")
        assert client.post(path, json=SHIPMENT, headers=headers).status_code == 200

        refused(ctx, 409, lambda: client.post(path, json=but(SHIPMENT, tracking_number="2ND"), headers=headers))

    def test_releasing_a_shipped_assignment_is_409(self, client, ctx, scene):
        base, headers = scene.path(f"{API}/assignments/{{assignment_id}}"), scene.headers("shop")
        assert client.post(f"{base}/shipment", json=SHIPMENT, headers=headers).status_code == 200

        refused(ctx, 409, lambda: client.post(f"{base}/release", headers=headers))

    def test_releasing_twice_or_shipping_a_released_assignment_is_409(self, client, ctx, scene):
        base, headers = scene.path(f"{API}/assignments/{{assignment_id}}"), scene.headers("shop")
        assert client.post(f"{base}/release", headers=headers).status_code == 200

        refused(ctx, 409, lambda: client.post(f"{base}/release", headers=headers))
        refused(ctx, 409, lambda: client.post(f"{base}/shipment", json=SHIPMENT, headers=headers))

    def test_manufacturer_cannot_release_its_own_assignment(self, client, ctx, scene):
        assert client.post(f"{API}/settlements", json={"as_of": LATER.isoformat()},
                           headers=scene.headers("operator")).status_code == 201  # nobody bid: the maker ships
        with ctx.uow() as uow:
            fallback = uow.session.scalar(select(Assignment.id).where(Assignment.order_id == scene.order_id))

        refused(ctx, 409, lambda: client.post(f"{API}/assignments/{fallback}/release",
                                              headers=scene.headers("maker")))

    def test_shipping_or_releasing_an_unknown_assignment_is_404(self, client, ctx, scene):
        refused(ctx, 404, lambda: client.post(f"{API}/assignments/999999/shipment", json=SHIPMENT,
                                              headers=scene.headers("shop")))
        refused(ctx, 404, lambda: client.post(f"{API}/assignments/999999/release", headers=scene.headers("shop")))

    def test_cancelling_twice_is_409(self, client, ctx, scene):
        path, headers = f"{API}/orders/{scene.order_id}/cancel", {"X-Access-Token": scene.access_token}
        assert client.post(path, headers=headers).status_code == 200

        refused(ctx, 409, lambda: client.post(path, headers=headers))

    def test_cancelling_a_shipped_order_is_409(self, client, ctx, scene, world):
        placed = world.order(scene.maker)
        assert client.post(f"{API}/settlements", json={"as_of": LATER.isoformat()},
                           headers=scene.headers("operator")).status_code == 201
        with ctx.uow() as uow:
            fallback = uow.session.scalar(select(Assignment.id).where(Assignment.order_id == placed.order.id))
        assert client.post(f"{API}/assignments/{fallback}/shipment", json=SHIPMENT,
                           headers=scene.headers("maker")).status_code == 200

        refused(ctx, 409, lambda: client.post(f"{API}/orders/{placed.order.id}/cancel",
                                              headers={"X-Access-Token": placed.access_token}))

    def test_cancelling_without_a_token_is_401_and_with_a_wrong_one_404(self, client, ctx, scene):
        refused(ctx, 401, lambda: client.post(f"{API}/orders/{scene.order_id}/cancel"))
        refused(ctx, 404, lambda: client.post(f"{API}/orders/{scene.order_id}/cancel",
                                              headers={"X-Access-Token": "guess"}))


# --- an edit that fails halfway writes none of it -----------------------------

class TestNoHalfWrites:
    def test_store_edit_with_one_bad_field_changes_no_field(self, client, ctx, scene):
        before = database(ctx)

        invalid(client.patch(f"{API}/stores/{scene.shop.store_id}",
                             json={"name": "Renamed", "is_open": False, "service_radius_km": -5},
                             headers=scene.headers("shop")), "service_radius_km")

        assert_unchanged(ctx, before)
        with ctx.uow() as uow:
            store = uow.session.get(Store, scene.shop.store_id)
            assert (store.name != "Renamed", store.is_open, store.service_radius_km) == (True, True, 50)

    def test_product_edit_with_one_bad_field_changes_no_field(self, client, ctx, scene):
        before = database(ctx)

        invalid(client.patch(f"{API}/products/SKU-1", json={"name": "Renamed", "image_url": "ftp://x/y.png"},
                             headers=scene.headers("maker")), "image_url")

        assert_unchanged(ctx, before)
        with ctx.uow() as uow:
            product = uow.session.scalar(select(Product).where(Product.sku == "SKU-1"))
            assert product.name == "Product SKU-1"

    def test_order_with_one_bad_line_is_not_placed_at_all(self, client, ctx, scene):
        before = database(ctx)

        items = [{"sku": "SKU-1", "quantity": 1}, {"sku": "SKU-OFF", "quantity": 1}]
        invalid(client.post(scene.path(f"{API}/storefronts/{{slug}}/orders"), json=but(ORDER, items=items)),
                "items.1.sku")

        assert_unchanged(ctx, before)


# --- edge cases that once slipped through -----------------------------------------

@pytest.mark.parametrize("method, path, body, who", [
    pytest.param("POST", "/dealers", {"retailer_id": 2**63}, "maker", id="dealer-retailer-id"),
    pytest.param("POST", f"/board/{2**63}/bids", {}, "shop", id="bid-listing-id"),
    pytest.param("PATCH", f"/stores/{2**63}", {"name": "x"}, "shop", id="store-id"),
    pytest.param("POST", f"/assignments/{2**63}/shipment", SHIPMENT, "shop", id="assignment-id"),
    pytest.param("POST", f"/orders/{2**63}/cancel", None, "anyone", id="cancel-order-id"),
    pytest.param("GET", f"/orders?fulfiller={2**63}", None, "maker", id="orders-fulfiller-query"),
])
def test_out_of_range_ids_are_refused_not_500(client, ctx, scene, method, path, body, who):
    headers = scene.headers(who) | ({"X-Access-Token": "x"} if who == "anyone" else {})
    before = database(ctx)

    resp = client.open(API + path, method=method, json=body, headers=headers)

    assert resp.status_code in (404, 422), resp.get_data(as_text=True)
    assert_unchanged(ctx, before)


def test_as_of_at_the_edge_of_time_is_422(client, ctx, scene):
    before = database(ctx)

    invalid(client.post(f"{API}/settlements", json={"as_of": "0001-01-01T00:00:00+00:00"},
                        headers=scene.headers("operator")), "as_of")

    assert_unchanged(ctx, before)


def test_same_sku_twice_cannot_pass_the_quantity_limit(client, ctx, scene):
    before = database(ctx)

    invalid(client.post(scene.path(f"{API}/storefronts/{{slug}}/orders"),
                        json=but(ORDER, items=[{"sku": "SKU-1", "quantity": 999}, {"sku": "SKU-1", "quantity": 999}])),
            "items.1.quantity")

    assert_unchanged(ctx, before)


def test_a_product_that_can_be_created_can_be_edited(client, scene):
    headers = scene.headers("maker")
    created = client.post(f"{API}/products", json=but(PRODUCT, sku="BOX/2"), headers=headers)
    if created.status_code == 422:
        return  # refusing such a SKU is a fine answer too

    assert created.status_code == 201
    assert client.patch(f"{API}/products/BOX%2F2", json={"price": 1}, headers=headers).status_code == 200
