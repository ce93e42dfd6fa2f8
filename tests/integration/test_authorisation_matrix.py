"""Every operation of the API, called as every kind of caller: the authorisation matrix.

The operations come from the OpenAPI document itself, so a new endpoint is in the
matrix the moment it exists, and fails here until someone says who may call it.
For each operation `MATRIX` names one or more targets (real objects in one world,
owned by the "right" parties) and which callers may act on each. Each case checks:

* a caller the matrix allows gets what it asked for (2xx, or the 4xx the target's
  state calls for, written down in the matrix: never 401/403/404);
* a caller it does not allow is refused (401/403/404: never 2xx), at the door
  (401/403) when its role is not in the operation's `x-roles` at all, and the
  refusal writes nothing;
* no response, to anyone, carries what that caller may not see: the sentinel
  strings put into customers' names, emails and streets, other retailers' names
  and offers, and another manufacturer's products (see `SENTINELS`).

`x-roles` (written by `api.auth`) must agree with the matrix: the roles it lists
are exactly the kinds of caller the matrix lets through somewhere.

The world is built once for the module; every call runs inside a savepoint that
is rolled back afterwards, so no call sees another's writes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from broker.accounts import services as accounts
from broker.auth import OPERATOR, Actor, ActorKind
from broker.board import services as board
from broker.board.models import Listing
from broker.catalog import services as catalog
from broker.clock import FrozenClock
from broker.context import Context
from broker.db import Base
from broker.fulfilment import services as fulfilment
from broker.fulfilment.models import Assignment
from broker.geo.geocoding import LocationQuery, OfflineGeocoder
from broker.orders import delivered
from broker.orders import services as orders
from broker.orders.models import Delivery
from broker.payments.offline import OfflineProvider
from broker.personal import services as personal
from broker.returns import services as returns
from broker.settlement.services import settle
from broker.shipping import services as shipping
from broker.stock import services as stock
from tests.conftest import ADMIN_TOKEN, START, make_settings
from tests.factories import HERE, north_of

API = "/api/v1"
LATER = START + timedelta(hours=13)  # the listings placed at START are due
NOW = LATER + timedelta(hours=1)  # when the matrix's calls are made
LOC = {"lat": HERE[0], "lon": HERE[1]}

ROLES = ("anonymous", "customer", "other_customer", "retailer", "other_retailer", "manufacturer",
         "other_manufacturer", "operator")
KIND = {"anonymous": "anonymous", "customer": "customer", "other_customer": "customer",
        "retailer": "retailer", "other_retailer": "retailer", "manufacturer": "manufacturer",
        "other_manufacturer": "manufacturer", "operator": "operator"}
EVERYONE = frozenset(ROLES)
# Who the role-named callers are in the world below (customers depend on the target).
WHO = {"anonymous": "anonymous", "retailer": "R1", "other_retailer": "R2", "manufacturer": "M1",
       "other_manufacturer": "M2", "operator": "operator"}


# --- the world ----------------------------------------------------------------

# Orders, each with its own customer. M1's: A (won by R1, to ship), B (open on the
# board; R1 and R3 bid), S1 (R1 shipped it, the customer confirmed delivery), S2 (R1 shipped it, return asked),
# P (a pickup won by R1), F (nobody bid: M1 ships), F2 (M1 shipped it, return
# asked, delivered), L (won by R1, released, now R3's). M2's: O2 (won by R2). Personal
# requests: Q (offers from R1 and R3), Q2.
ORDER_TAGS = ("A", "B", "S1", "S2", "P", "F", "F2", "L", "O2")
REQUEST_TAGS = ("Q", "Q2")
# Distinctive words that cannot occur by chance, one set per customer.
CODENAMES = {"A": "Quillfeather", "B": "Brackenridge", "S1": "Saltonstall", "S2": "Scrimgeour",
             "P": "Pettigrew", "F": "Featherstonehaugh", "F2": "Fothergill", "L": "Lethbridge",
             "O2": "Ottershaw",
             "Q": "Quenby", "Q2": "Quarrington"}
MAKER_OF = {tag: "M1" for tag in ORDER_TAGS} | {"O2": "M2"}
# Who may see where an order goes: R1 gave L back, so L is no longer any of its business.
FULFILLER_OF = {"A": "R1", "S1": "R1", "S2": "R1", "P": "R1", "F": "M1", "F2": "M1", "L": "R3", "O2": "R2"}

RETAILER_NAMES = {"R1": "Rhombus Sentinel Bikes", "R2": "Ozymandias Sentinel Supply",
                  "R3": "Ravenscroft Sentinel Cycles"}
PRODUCT_NAMES = {"M1": "Quasar Sentinel Kettle", "M2": "Nebula Sentinel Toaster"}
R1_OFFER, R3_OFFER, CEILING = 77719, 77731, 88888


def customer_name(tag: str) -> str:
    return f"Ottoline {CODENAMES[tag]}"


def customer_email(tag: str) -> str:
    return f"{CODENAMES[tag].lower()}@private.example"


def customer_street(tag: str) -> str:
    return f"17 {CODENAMES[tag]}shire Mews"


def return_reason(tag: str) -> str:
    return f"The {CODENAMES[tag]}ian kettle arrived broken"


@dataclasses.dataclass
class World:
    keys: dict[str, str] = dataclasses.field(default_factory=dict)  # R1, R2, R3, M1, M2 -> API key
    ids: dict[str, int] = dataclasses.field(default_factory=dict)  # R1.., M1.., R4 -> id
    slugs: dict[str, str] = dataclasses.field(default_factory=dict)
    store_of: dict[str, int] = dataclasses.field(default_factory=dict)
    order_id: dict[str, int] = dataclasses.field(default_factory=dict)
    token: dict[str, str] = dataclasses.field(default_factory=dict)  # order and request tags
    assignment_of: dict[str, int] = dataclasses.field(default_factory=dict)
    listing_of: dict[str, int] = dataclasses.field(default_factory=dict)
    request_id: dict[str, int] = dataclasses.field(default_factory=dict)
    offer: dict[str, int] = dataclasses.field(default_factory=dict)  # R1, R3 -> bid id on Q
    pickup_code: str = ""
    run_id: int = 0
    standing_bid: int = 0  # R1's


def build_world(ctx: Context, clock: FrozenClock) -> World:
    w = World()
    actors: dict[str, Actor] = {}

    def at(point):
        return LocationQuery(lat=point[0], lon=point[1])

    for name, slug in (("M1", "matrix-one"), ("M2", "matrix-two")):
        maker, key = accounts.create_manufacturer(
            ctx, OPERATOR, accounts.NewManufacturer(f"Maker {name}", slug, "USD", at(HERE)))
        w.keys[name], w.ids[name], w.slugs[name] = key, maker.id, maker.slug
        actors[name] = Actor(ActorKind.MANUFACTURER, maker.id)
        catalog.add_product(ctx, actors[name], catalog.NewProduct(f"{name}-1", PRODUCT_NAMES[name], 5000))
        catalog.add_product(ctx, actors[name], catalog.NewProduct(f"{name}-2", f"Plain {name} thing", 700))
        shipping.add_method(ctx, actors[name], shipping.NewMethod("standard", "Standard", 500, 72))

    # R2 is the nearest of all to the customers, but a dealer of M2 only.
    for name, km, makers in (("R1", 2, ["M1"]), ("R3", 4, ["M1"]), ("R2", 1, ["M2"]), ("R4", 3, [])):
        retailer, store, key = accounts.create_retailer(ctx, OPERATOR, accounts.NewRetailer(
            RETAILER_NAMES.get(name, "Free Agent Store"), f"{name.lower()}-desk@shop.example",
            at(north_of(HERE, km)), 50))
        w.keys[name], w.ids[name], w.store_of[name] = key, retailer.id, store.id
        actors[name] = Actor(ActorKind.RETAILER, retailer.id)
        for maker in makers:
            accounts.authorise_dealer(ctx, actors[maker], retailer.id)
    accounts.add_store(ctx, actors["R1"], accounts.NewStore("R1 warehouse", at(north_of(HERE, 30)), 80))

    def place(tag: str, *, delivery=Delivery.SHIP):
        maker = MAKER_OF[tag]
        placed = orders.place_order(ctx, w.slugs[maker], orders.PlaceOrder(
            items=[orders.Item(f"{maker}-1", 1)],
            customer=orders.Customer(customer_name(tag), customer_email(tag)),
            ship_to=orders.Address(customer_street(tag), "San Francisco", "94103", "US", lat=HERE[0], lon=HERE[1]),
            delivery=delivery,
        ))
        w.order_id[tag], w.token[tag] = placed.order.id, placed.access_token
        with ctx.uow() as uow:
            w.listing_of[tag] = uow.session.scalar(select(Listing.id).where(Listing.order_id == placed.order.id))
        return placed

    def bid(retailer: str, listing_id: int, price: int | None = None) -> int:
        made, _ = board.place_bid(ctx, actors[retailer], board.PlaceBid(listing_id, price=price))
        return made.id

    for tag in ("A", "S1", "S2", "F", "F2", "L", "O2"):
        place(tag)
    w.pickup_code = place("P", delivery=Delivery.PICKUP).pickup_code
    for tag in ("A", "S1", "S2", "P", "L"):
        bid("R1", w.listing_of[tag])
    bid("R3", w.listing_of["A"])
    bid("R3", w.listing_of["L"])
    bid("R2", w.listing_of["O2"])

    clock.now = LATER
    w.run_id = settle(ctx, as_of=LATER).run_id
    with ctx.uow() as uow:
        for tag in ("A", "S1", "S2", "P", "F", "F2", "L", "O2"):
            w.assignment_of[tag] = uow.session.scalar(
                select(Assignment.id).where(Assignment.order_id == w.order_id[tag]))
    fulfilment.release_assignment(ctx, actors["R1"], w.assignment_of["L"])
    for tag, fulfiller in (("S1", "R1"), ("S2", "R1"), ("F2", "M1")):
        fulfilment.record_shipment(ctx, actors[fulfiller], w.assignment_of[tag],
                                   fulfilment.RecordShipment("UPS", f"1Z{tag}"))
    for tag in ("S2", "F2"):
        returns.request_return(ctx, w.order_id[tag], w.token[tag], return_reason(tag))
    # Delivered: the customer and the fulfiller may review them.
    for tag in ("S1", "F2"):
        delivered.confirm_delivery(ctx, w.order_id[tag], w.token[tag])

    # On the board now, not due before the calls are made.
    place("B")
    bid("R1", w.listing_of["B"])
    bid("R3", w.listing_of["B"])
    for tag in REQUEST_TAGS:
        posted = personal.post_request(ctx, personal.PostRequest(
            description="a sturdy kettle, please", quantity=1, max_price=CEILING, currency="USD",
            location=at(HERE), contact=customer_email(tag),
            ship_to=personal.ShipTo(customer_name(tag), customer_street(tag), "San Francisco", "94103", "US"),
        ))
        w.request_id[tag], w.token[tag] = posted.request.id, posted.access_token
        with ctx.uow() as uow:
            w.listing_of[tag] = uow.session.scalar(
                select(Listing.id).where(Listing.request_id == posted.request.id))
    w.offer["R1"] = bid("R1", w.listing_of["Q"], R1_OFFER)
    w.offer["R3"] = bid("R3", w.listing_of["Q"], R3_OFFER)
    clock.now = NOW
    w.standing_bid = stock.create_standing_bid(ctx, actors["R1"], stock.NewStandingBid(max_distance_km=10)).rule.id
    return w


# --- what each caller may see ------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Sentinel:
    value: str | int
    what: str
    seen_by: frozenset[str]  # identities: "M1", "R1", "cust:A", "operator", ...
    public: bool = False  # anyone may see it through a public operation (a storefront's catalog)


def _sentinels() -> list[Sentinel]:
    found: list[Sentinel] = []
    for tag in ORDER_TAGS:
        owners = {f"cust:{tag}", MAKER_OF[tag]}
        shipper = {FULFILLER_OF[tag]} if tag in FULFILLER_OF else set()
        found += [Sentinel(customer_name(tag), f"order {tag}'s customer name", frozenset(owners | shipper)),
                  Sentinel(customer_street(tag), f"order {tag}'s street", frozenset(owners | shipper)),
                  Sentinel(customer_email(tag), f"order {tag}'s customer email", frozenset(owners)),
                  # Asked on S2 and F2: whoever decides it (the fulfiller, the manufacturer) reads it.
                  Sentinel(return_reason(tag), f"order {tag}'s return reason", frozenset(owners | shipper))]
    for tag in REQUEST_TAGS:
        for value, what in ((customer_name(tag), "name"), (customer_street(tag), "street"),
                            (customer_email(tag), "contact")):
            found.append(Sentinel(value, f"request {tag}'s {what}", frozenset({f"cust:{tag}"})))
    won_by = {r: {f"cust:{t}" for t, f in FULFILLER_OF.items() if f == r} for r in RETAILER_NAMES}
    found += [
        # Its manufacturer sees its dealers; the request's customer sees who offered.
        Sentinel(RETAILER_NAMES["R1"], "R1's name", frozenset({"R1", "M1", "operator", "cust:Q"} | won_by["R1"])),
        Sentinel(RETAILER_NAMES["R3"], "R3's name", frozenset({"M1", "operator", "cust:Q"} | won_by["R3"])),
        Sentinel(RETAILER_NAMES["R2"], "R2's name", frozenset({"R2", "M2", "operator"} | won_by["R2"])),
        Sentinel("r1-desk@shop.example", "R1's email", frozenset({"R1", "operator"})),
        Sentinel("r3-desk@shop.example", "R3's email", frozenset({"operator"})),
        Sentinel(R1_OFFER, "R1's offer on Q", frozenset({"R1", "cust:Q"})),
        Sentinel(R3_OFFER, "R3's offer on Q", frozenset({"cust:Q"})),
        # A manufacturer's orders and listings, wherever they appear, carry its product.
        Sentinel(PRODUCT_NAMES["M1"], "M1's product (an M1 order or listing)",
                 frozenset({"M1", "R1"} | {f"cust:{t}" for t in ORDER_TAGS if MAKER_OF[t] == "M1"}), public=True),
        Sentinel(PRODUCT_NAMES["M2"], "M2's product (an M2 order or listing)",
                 frozenset({"M2", "R2", "cust:O2"}), public=True),
    ]
    return found


SENTINELS = _sentinels()


def leaks(body, identity: str, public_operation: bool) -> list[str]:
    """What in a JSON body (or text) the caller `identity` may not see."""
    text_body = body if isinstance(body, str) else json.dumps(body)
    numbers = set(_numbers(body)) if not isinstance(body, str) else set()
    out = []
    for s in SENTINELS:
        if identity in s.seen_by or (s.public and public_operation):
            continue
        shown = (s.value in numbers) if isinstance(s.value, int) else (s.value.lower() in text_body.lower())
        if shown:
            out.append(s.what)
    return out


def _numbers(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, int) and not isinstance(value, bool):
        yield value


# --- the matrix ----------------------------------------------------------------

Params = Callable[[World], dict]


@dataclasses.dataclass(frozen=True)
class Target:
    """One object to call an operation on, and who may act on it."""

    label: str
    allowed: frozenset[str]
    params: Params = lambda w: {}  # noqa: E731
    body: Callable[[World], dict] | None = None  # merged over the minimal body from the schema
    customer: str = "A"  # whose access token the "customer" role holds
    other_customer: str = "O2"  # another order's (or request's) token
    # An allowed caller's status when the target's state answers it (not 2xx); default 2xx.
    status: dict[str, int] = dataclasses.field(default_factory=dict)


def T(label: str, allowed, params: Params | None = None, **kw) -> Target:
    return Target(label, frozenset(allowed), params or (lambda w: {}), **kw)


RETAILERS = {"retailer", "other_retailer"}
MANUFACTURERS = {"manufacturer", "other_manufacturer"}


def order(tag: str) -> Params:
    return lambda w: {"order_id": w.order_id[tag]}


def assignment(tag: str) -> Params:
    return lambda w: {"assignment_id": w.assignment_of[tag]}


def request(tag: str) -> Params:
    return lambda w: {"request_id": w.request_id[tag]}


NEW_ORDER = {"items": [{"sku": "M1-2", "quantity": 1}], "customer": {"name": "New Buyer", "email": "nb@example.com"},
             "ship_to": {"line1": "1 Main St", "city": "San Francisco", "postal_code": "94103", "country": "US",
                         **LOC}}
SHIPMENT = {"carrier": "UPS", "tracking_number": "1ZMATRIX"}

MATRIX: dict[tuple[str, str], list[Target]] = {
    # accounts
    ("POST", "/manufacturers"): [T("new", {"operator"}, body=lambda w: {
        "name": "New Maker", "slug": "matrix-new", "currency": "USD", "location": LOC})],
    ("POST", "/retailers"): [T("new", {"operator"}, body=lambda w: {
        "name": "New Shop", "email": "new@shop.example", "location": LOC, "service_radius_km": 10})],
    ("GET", "/stores"): [T("own", RETAILERS)],
    ("POST", "/stores"): [T("new", RETAILERS, body=lambda w: {
        "name": "Annex", "location": LOC, "service_radius_km": 10})],
    ("PATCH", "/stores/{store_id}"): [T("R1's store", {"retailer"}, lambda w: {"store_id": w.store_of["R1"]},
                                        body=lambda w: {"service_radius_km": 20})],
    ("GET", "/stores/{store_id}/stock"): [T("R1's store", {"retailer"}, lambda w: {"store_id": w.store_of["R1"]})],
    ("PUT", "/stores/{store_id}/stock"): [T("R1's store", {"retailer"}, lambda w: {"store_id": w.store_of["R1"]},
                                            body=lambda w: {"items": [{"sku": "M1-1", "quantity": 2}]})],
    ("PATCH", "/stores/{store_id}/stock"): [T("R1's store", {"retailer"}, lambda w: {"store_id": w.store_of["R1"]},
                                              body=lambda w: {"items": [{"sku": "M1-2", "quantity": 1}]})],
    ("GET", "/standing-bids"): [T("own", RETAILERS)],
    ("POST", "/standing-bids"): [T("new", RETAILERS, body=lambda w: {"max_distance_km": 10})],
    ("DELETE", "/standing-bids/{rule_id}"): [T("R1's", {"retailer"}, lambda w: {"rule_id": w.standing_bid})],
    ("GET", "/dealer-stock"): [T("own", MANUFACTURERS)],
    ("GET", "/dealers"): [T("own", MANUFACTURERS)],
    ("POST", "/dealers"): [T("free retailer", MANUFACTURERS, body=lambda w: {"retailer_id": w.ids["R4"]})],
    ("DELETE", "/dealers/{retailer_id}"): [T("R1, M1's dealer", {"manufacturer"},
                                             lambda w: {"retailer_id": w.ids["R1"]})],
    # catalog and storefront
    ("GET", "/products"): [T("own", MANUFACTURERS)],
    ("POST", "/products"): [T("new", MANUFACTURERS, body=lambda w: {"sku": "NEW-1", "name": "New", "price": 100})],
    ("PATCH", "/products/{sku}"): [T("M1's sku", {"manufacturer"}, lambda w: {"sku": "M1-1"},
                                     body=lambda w: {"price": 5100})],
    ("GET", "/storefronts/{slug}/products"): [T("M1's store", EVERYONE, lambda w: {"slug": w.slugs["M1"]})],
    ("POST", "/storefronts/{slug}/orders"): [T("M1's store", EVERYONE, lambda w: {"slug": w.slugs["M1"]},
                                               body=lambda w: NEW_ORDER)],
    ("PATCH", "/storefront"): [T("own", MANUFACTURERS, body=lambda w: {"color_primary": "#123456"})],
    # shipping methods and tax rates: each manufacturer's own; a store's methods are public
    ("GET", "/shipping-methods"): [T("own", MANUFACTURERS)],
    ("POST", "/shipping-methods"): [T("new", MANUFACTURERS, body=lambda w: {
        "code": "express", "name": "Express", "price": 1500, "ship_within_hours": 24})],
    ("PATCH", "/shipping-methods/{code}"): [
        # M2 has a "standard" too: its own, which it may edit (the path names a code, not an owner).
        T("own standard", MANUFACTURERS, lambda w: {"code": "standard"}, body=lambda w: {"price": 900}),
        T("nobody's", set(), lambda w: {"code": "overnight"}, body=lambda w: {"price": 900})],
    ("GET", "/storefronts/{slug}/shipping-methods"): [
        T("M1's store", EVERYONE, lambda w: {"slug": w.slugs["M1"]})],
    ("GET", "/tax-rates"): [T("own", MANUFACTURERS)],
    ("PUT", "/tax-rates"): [T("own", MANUFACTURERS, body=lambda w: {
        "prices_include_tax": False, "rates": [{"country": "US", "region": "CA", "rate": "8.625"}]})],
    # address formats: public data
    ("GET", "/address-formats"): [T("all", EVERYONE)],
    ("GET", "/address-formats/{country}"): [T("Canada", EVERYONE, lambda w: {"country": "CA"})],
    # orders
    ("GET", "/orders"): [T("own", MANUFACTURERS)],
    ("GET", "/orders/{order_id}"): [
        T("A, won by R1", {"customer", "retailer", "manufacturer"}, order("A")),
        T("B, open, R1 bid", {"customer", "manufacturer"}, order("B"), customer="B"),
    ],
    ("POST", "/orders/{order_id}/cancel"): [T("B, open", {"customer"}, order("B"), customer="B")],
    ("POST", "/orders/{order_id}/return"): [T("S1, shipped by R1", {"customer"}, order("S1"), customer="S1",
                                              body=lambda w: {"reason": "too small"})],
    # The fulfiller, or the manufacturer of an order it sold, decides a return.
    ("POST", "/orders/{order_id}/return/accept"): [
        T("S2, shipped by R1, return asked", {"retailer", "manufacturer"}, order("S2"), customer="S2"),
        T("F2, shipped by M1, return asked", {"manufacturer"}, order("F2"), customer="F2"),
    ],
    ("POST", "/orders/{order_id}/return/refuse"): [
        T("S2, shipped by R1, return asked", {"retailer", "manufacturer"}, order("S2"), customer="S2",
          body=lambda w: {"note": "send a photo first"}),
        T("F2, shipped by M1, return asked", {"manufacturer"}, order("F2"), customer="F2",
          body=lambda w: {"note": "send a photo first"}),
    ],
    ("GET", "/returns"): [T("own", RETAILERS | MANUFACTURERS)],
    ("POST", "/orders/{order_id}/delivered"): [T("S2, shipped by R1", {"customer"}, order("S2"), customer="S2")],
    ("POST", "/orders/{order_id}/refund"): [T("S1, shipped by R1", {"manufacturer"}, order("S1"), customer="S1")],
    # board
    ("GET", "/board"): [T("own", RETAILERS)],
    ("POST", "/board/{listing_id}/bids"): [T("B, R1 already bid", {"retailer"},
                                             lambda w: {"listing_id": w.listing_of["B"]}, customer="B")],
    ("DELETE", "/board/{listing_id}/bids"): [T("B, R1 bid", {"retailer"},
                                               lambda w: {"listing_id": w.listing_of["B"]}, customer="B")],
    ("GET", "/bids"): [T("own", RETAILERS)],
    # fulfilment
    ("GET", "/assignments"): [T("own", RETAILERS | MANUFACTURERS)],
    ("POST", "/assignments/{assignment_id}/shipment"): [
        T("A, R1's", {"retailer"}, assignment("A"), body=lambda w: SHIPMENT),
        T("F, M1's", {"manufacturer"}, assignment("F"), customer="F", body=lambda w: SHIPMENT),
    ],
    ("POST", "/assignments/{assignment_id}/pickup"): [
        T("P, R1's pickup", {"retailer"}, assignment("P"), customer="P", body=lambda w: {"code": w.pickup_code}),
        # Not a pickup order: the manufacturer is let in, and told so.
        T("F, M1's", {"manufacturer"}, assignment("F"), customer="F", body=lambda w: {"code": "123456"},
          status={"manufacturer": 409}),
    ],
    ("POST", "/assignments/{assignment_id}/release"): [
        T("A, R1's", {"retailer"}, assignment("A")),
        # The manufacturer is the last resort: let in, and told it cannot release.
        T("F, M1's", {"manufacturer"}, assignment("F"), customer="F", status={"manufacturer": 409}),
    ],
    # settlement
    ("GET", "/settlements"): [T("all", MANUFACTURERS | {"operator"})],
    ("POST", "/settlements"): [T("now", {"operator"})],
    ("GET", "/settlements/{run_id}"): [T("the run", MANUFACTURERS | {"operator"}, lambda w: {"run_id": w.run_id})],
    # money
    ("POST", "/connect"): [T("own", RETAILERS | MANUFACTURERS, body=lambda w: {"email": "payouts@example.com"})],
    ("GET", "/earnings"): [T("own", RETAILERS | MANUFACTURERS)],
    ("GET", "/earnings/summary"): [T("own", RETAILERS | MANUFACTURERS)],
    ("POST", "/payouts"): [T("all", {"operator"})],
    # personal requests
    ("POST", "/requests"): [T("new", EVERYONE, body=lambda w: {
        "description": "a teapot", "max_price": 3000, "currency": "USD", "location": LOC,
        "ship_to": {"name": "New Buyer", "line1": "1 Main St", "city": "San Francisco", "postal_code": "94103",
                    "country": "US"}})],
    ("GET", "/requests/{request_id}"): [T("Q", {"customer"}, request("Q"), customer="Q", other_customer="Q2")],
    ("POST", "/requests/{request_id}/accept"): [T("Q, R1's offer", {"customer"}, request("Q"), customer="Q",
                                                  other_customer="Q2",
                                                  body=lambda w: {"bid_id": w.offer["R1"]})],
    ("POST", "/requests/{request_id}/cancel"): [T("Q", {"customer"}, request("Q"), customer="Q",
                                                  other_customer="Q2")],
    # the customer's data: download and erase, the customer alone
    ("GET", "/orders/{order_id}/data"): [T("A, won by R1", {"customer"}, order("A"))],
    ("POST", "/orders/{order_id}/erase"): [T("B, open", {"customer"}, order("B"), customer="B")],
    ("GET", "/requests/{request_id}/data"): [T("Q", {"customer"}, request("Q"), customer="Q", other_customer="Q2")],
    ("POST", "/requests/{request_id}/erase"): [T("Q", {"customer"}, request("Q"), customer="Q",
                                                 other_customer="Q2")],
    # messages and reviews: the customer and the fulfiller, nobody else
    ("GET", "/orders/{order_id}/messages"): [
        T("A, won by R1", {"customer", "retailer"}, order("A")),
        T("F, M1 ships", {"customer", "manufacturer"}, order("F"), customer="F"),
    ],
    ("POST", "/orders/{order_id}/messages"): [
        T("A, won by R1", {"customer", "retailer"}, order("A"), body=lambda w: {"body": "hello"}),
        T("F, M1 ships", {"customer", "manufacturer"}, order("F"), customer="F", body=lambda w: {"body": "hello"}),
    ],
    ("GET", "/orders/{order_id}/reviews"): [
        T("S1, shipped by R1", {"customer", "retailer"}, order("S1"), customer="S1"),
        T("F2, shipped by M1", {"customer", "manufacturer"}, order("F2"), customer="F2"),
    ],
    ("POST", "/orders/{order_id}/reviews"): [
        T("S1, shipped by R1", {"customer", "retailer"}, order("S1"), customer="S1", body=lambda w: {"rating": 4}),
        T("F2, shipped by M1", {"customer", "manufacturer"}, order("F2"), customer="F2",
          body=lambda w: {"rating": 4}),
    ],
    ("GET", "/retailers/{retailer_id}/reputation"): [T("R1", EVERYONE, lambda w: {"retailer_id": w.ids["R1"]})],
}


# --- the OpenAPI document --------------------------------------------------------

METHODS = ("get", "put", "post", "patch", "delete")


def operations(doc: dict) -> dict[tuple[str, str], dict]:
    """(METHOD, path without the /api/v1 prefix) -> the operation object."""
    found = {}
    for path, item in doc["paths"].items():
        assert path.startswith(API + "/"), path
        for method, op in item.items():
            if method in METHODS:
                found[(method.upper(), path[len(API):])] = op
    return found


def _document_without_a_database() -> dict:
    """The OpenAPI document, for parametrising at collection time (no query is made)."""
    from web.app import create_app

    settings = make_settings("sqlite://")
    ctx = Context.from_settings(settings, geocoder=OfflineGeocoder(), payments=OfflineProvider())
    try:
        resp = create_app(context=ctx, test_config={"TESTING": True}).test_client().get(f"{API}/openapi.json")
        assert resp.status_code == 200
        return resp.get_json()
    finally:
        ctx.engine.dispose()


def pytest_generate_tests(metafunc):
    if "case" not in metafunc.fixturenames:
        return
    ops = operations(_document_without_a_database())
    cases, ids = [], []
    for key in ops:
        method, path = key
        targets = MATRIX.get(key)
        if targets is None:  # an operation nobody has given expectations for: fails below
            cases.append((key, None, None))
            ids.append(f"{method} {path} [NO EXPECTATION]")
            continue
        for target in targets:
            for role in ROLES:
                cases.append((key, target, role))
                ids.append(f"{method} {path} [{target.label}] {role}")
    metafunc.parametrize("case", cases, ids=ids)


# --- fixtures -------------------------------------------------------------------

@dataclasses.dataclass
class Matrix:
    world: World
    client: object
    connection: object
    doc: dict


@pytest.fixture(scope="module")
def matrix(engine, database_url):
    """One world for the module, in a transaction rolled back at the end."""
    from web.app import create_app

    with engine.connect() as connection:
        outer = connection.begin()
        clock = FrozenClock(START)
        factory = sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
        ctx = Context(settings=make_settings(database_url), engine=engine, session_factory=factory,
                      geocoder=OfflineGeocoder(), payments=OfflineProvider(), clock=clock)
        world = build_world(ctx, clock)
        client = create_app(context=ctx, test_config={"TESTING": True}).test_client()
        doc = client.get(f"{API}/openapi.json").get_json()
        yield Matrix(world, client, connection, doc)
        outer.rollback()


@pytest.fixture
def isolated(matrix):
    """Each call in its own savepoint: whatever it writes is gone before the next."""
    savepoint = matrix.connection.begin_nested()
    yield matrix
    savepoint.rollback()


# --- calling ------------------------------------------------------------------

def credentials(world: World, role: str, target: Target) -> tuple[dict, str]:
    """The headers a role sends, and who it is (for `SENTINELS`)."""
    if role in ("customer", "other_customer"):
        tag = target.customer if role == "customer" else target.other_customer
        return {"X-Access-Token": world.token[tag]}, f"cust:{tag}"
    if role == "anonymous":
        return {}, "anonymous"
    if role == "operator":
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}, "operator"
    who = WHO[role]
    return {"Authorization": f"Bearer {world.keys[who]}"}, who


def minimal(schema: dict, doc: dict):
    """The smallest body the schema accepts by shape: its required fields only."""
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    if "allOf" in schema:
        return minimal(schema["allOf"][0], doc)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if kind == "object":
        return {name: minimal(schema["properties"][name], doc) for name in schema.get("required", [])}
    if kind == "array":
        return [minimal(schema["items"], doc)]
    if kind == "string":
        return {"email": "someone@example.com", "date-time": NOW.isoformat()}.get(schema.get("format"), "x")
    if kind == "integer":
        return max(schema.get("minimum", 1), 1)
    if kind == "number":
        return 1.0
    return True


def body_for(op: dict, target: Target, world: World, doc: dict):
    if "requestBody" not in op:
        return None
    body = minimal(op["requestBody"]["content"]["application/json"]["schema"], doc)
    if target.body is not None:
        body.update(target.body(world))
    return body


def snapshot(connection) -> dict:
    """Every row of every table: a refused call must leave them all as they were."""
    return {table.name: sorted(map(repr, connection.execute(select(table)).all()))
            for table in Base.metadata.sorted_tables}


def _door(op: dict, role: str) -> set[int]:
    """The refusal a caller gets before any object is looked at."""
    schemes = {name for requirement in op.get("security", []) for name in requirement}
    if role == "anonymous":
        return {401}
    if KIND[role] == "customer":
        return {401}  # a token, where a key is needed
    if "bearer" not in schemes:
        return {401}  # a key, where the customer's token is needed
    return {403}


# --- the tests ----------------------------------------------------------------

def test_every_operation_in_the_document_has_expectations(matrix):
    documented = set(operations(matrix.doc))
    assert documented - set(MATRIX) == set(), "operations with no row in MATRIX"
    assert set(MATRIX) - documented == set(), "rows in MATRIX for operations that do not exist"


@pytest.mark.parametrize("key", sorted(MATRIX), ids=lambda k: f"{k[0]} {k[1]}")
def test_x_roles_agree_with_the_matrix(matrix, key):
    op = operations(matrix.doc).get(key)
    assert op is not None, f"{key} is not in the document"
    allowed = set().union(*(t.allowed for t in MATRIX[key]))
    if "anonymous" in allowed:
        assert allowed == EVERYONE, "an operation open to anyone is open to every role"
        assert "x-roles" not in op and not op.get("security"), "a public operation must not ask for credentials"
        return
    assert sorted(op.get("x-roles", [])) == sorted({KIND[r] for r in allowed})
    schemes = {name for requirement in op["security"] for name in requirement}
    assert ("accessToken" in schemes) == ("customer" in op["x-roles"])
    assert ("bearer" in schemes) == bool({"retailer", "manufacturer", "operator"} & set(op["x-roles"]))


def test_call(isolated, case):
    key, target, role = case
    assert target is not None, f"{key[0]} {key[1]} has no row in MATRIX: say who may call it"
    m = isolated
    w = m.world
    op = operations(m.doc)[key]
    public = not op.get("x-roles")
    path = API + key[1].format(**target.params(w))
    headers, identity = credentials(w, role, target)
    body = body_for(op, target, w, m.doc)
    before = None if role in target.allowed else snapshot(m.connection)

    resp = m.client.open(path, method=key[0], headers=headers, json=body)

    shown = resp.get_json(silent=True)
    shown = shown if shown is not None else resp.get_data(as_text=True)
    assert resp.status_code < 500, shown
    assert leaks(shown, identity, public) == [], f"{identity} was shown what it may not see: {shown}"
    if role in target.allowed:
        expected = target.status.get(role)
        if expected is None:
            assert 200 <= resp.status_code < 300, shown
        else:
            assert resp.status_code == expected, shown
        return
    assert resp.status_code in (401, 403, 404), shown
    if KIND[role] not in op.get("x-roles", []):
        assert resp.status_code in _door(op, role), f"refused at the door? {shown}"
    else:
        assert resp.status_code == 404, f"a caller of the right kind but the wrong party: {shown}"
    assert resp.mimetype == "application/problem+json"
    assert snapshot(m.connection) == before, "a refused call wrote something"


class TestTheSentinelsAreReal:
    """The control for the leak checks above: the data is there, and its owners see it."""

    def test_the_right_parties_see_their_data(self, isolated):
        m, w = isolated, isolated.world

        def get(path, role, target=T("x", set())):
            headers, _ = credentials(w, role, target)
            resp = m.client.get(API + path, headers=headers)
            assert resp.status_code == 200, resp.get_data(as_text=True)
            return resp.get_data(as_text=True)

        orders_of_m1 = get("/orders", "manufacturer")
        assert customer_email("B") in orders_of_m1 and customer_street("A") in orders_of_m1
        shipping = get("/assignments", "retailer")
        assert customer_name("A") in shipping and customer_street("A") in shipping
        assert customer_email("A") not in shipping
        assert PRODUCT_NAMES["M1"] in get("/board", "retailer")
        offers = get(f"/requests/{w.request_id['Q']}", "customer", T("x", set(), customer="Q"))
        assert RETAILER_NAMES["R3"] in offers and str(R3_OFFER) in offers
        assert RETAILER_NAMES["R3"] in get("/dealers", "manufacturer")
        assert customer_name("O2") in get("/orders", "other_manufacturer")


def test_a_manufacturer_does_not_learn_who_posted_a_request_that_a_retailer_won(isolated):
    """A personal request is anonymous; one naming M1's SKU becomes an M1 order when R1
    wins it. R1 needs the name and street to ship; M1 neither sells nor ships it."""
    m, w = isolated, isolated.world
    posted = m.client.post(f"{API}/requests", json={
        "description": "", "sku": "M1-1", "manufacturer": w.slugs["M1"], "max_price": 9000, "currency": "USD",
        "location": LOC, "contact": "thripp@private.example",
        "ship_to": {"name": "Quentin Thripp", "line1": "3 Thripp Row", "city": "San Francisco",
                    "postal_code": "94103", "country": "US"}}).get_json()
    r1 = {"Authorization": f"Bearer {w.keys['R1']}"}
    [listing] = [b for b in m.client.get(f"{API}/board", headers=r1).get_json() if b.get("max_price") == 9000]
    offer = m.client.post(f"{API}/board/{listing['id']}/bids", json={"price": 8000}, headers=r1).get_json()
    accepted = m.client.post(f"{API}/requests/{posted['id']}/accept", json={"bid_id": offer["id"]},
                             headers={"X-Access-Token": posted["access_token"]})
    assert accepted.status_code == 200, accepted.get_json()
    assert "Thripp" in m.client.get(f"{API}/orders/{accepted.get_json()['order_id']}", headers=r1).get_data(
        as_text=True)

    m1 = {"Authorization": f"Bearer {w.keys['M1']}"}
    seen = m.client.get(f"{API}/orders", headers=m1).get_data(as_text=True)
    opened = m.client.get(f"{API}/orders/{accepted.get_json()['order_id']}", headers=m1)

    assert "Thripp" not in seen and "thripp@private.example" not in seen
    assert opened.status_code == 200 and "Thripp" not in opened.get_data(as_text=True)
