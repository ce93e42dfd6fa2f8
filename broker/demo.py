"""Demo data for `broker run` and `broker demo`, made through the real services.

A bicycle maker in San Francisco, five retailers around the Bay Area and Los
Angeles, and a handful of orders: some already due for settlement (with bids),
one nobody bid on (it falls back to the manufacturer), some fresh on the board.
"""

from __future__ import annotations

import dataclasses
import secrets
from datetime import timedelta

from sqlalchemy import select

from broker.accounts import applications
from broker.accounts import services as accounts
from broker.accounts.models import Manufacturer, Role
from broker.auth import OPERATOR, Actor, ActorKind
from broker.board import services as board
from broker.board.models import Listing
from broker.catalog import services as catalog
from broker.clock import FrozenClock
from broker.context import Context
from broker.geo.geocoding import LocationQuery
from broker.identity import services as identity
from broker.orders import services as orders

SLUG = "northwind"

PRODUCTS = [
    ("NW-ROAD-1", "Aero road bike", 189900, "Carbon frame, 22 speeds."),
    ("NW-GRAVEL", "Terra gravel bike", 159900, "Wide tyres, mounts for everything."),
    ("NW-HELMET", "Commuter helmet", 7900, "With a rear light built in."),
    ("NW-LIGHTS", "Light set", 4900, "Front and rear, USB-C."),
    ("NW-LOCK", "U-lock", 5900, "Hardened steel, two keys."),
]

# name, ZIP, service radius (km), authorised by the manufacturer, street, city
RETAILERS = [
    ("Mission Bike Shop", "94110", 40, True, "3150 18th St", "San Francisco"),
    ("Oakland Spokes", "94607", 40, True, "522 Washington St", "Oakland"),
    ("Palo Alto Pedal", "94301", 50, True, "240 Hamilton Ave", "Palo Alto"),
    ("San Jose Cyclery", "95112", 30, False, "460 S 2nd St", "San Jose"),
    ("LA Wheelworks", "90012", 50, True, "300 N Main St", "Los Angeles"),
]
# Every demo store's opening hours (broker/accounts/hours.py's JSON).
HOURS = {**{day: [{"opens": "10:00", "closes": "19:00"}] for day in ("mon", "tue", "wed", "thu", "fri")},
         "sat": [{"opens": "10:00", "closes": "17:00"}], "note": "Closed on public holidays"}

# customer, ZIP, city, items, hours ago, retailers that bid (by index)
ORDERS = [
    ("Ada Park", "94103", "San Francisco", [("NW-ROAD-1", 1)], 13, [0, 1]),
    ("Ben Ortiz", "94612", "Oakland", [("NW-HELMET", 2), ("NW-LIGHTS", 1)], 13, [0, 1]),
    ("Chloe Wu", "94040", "Mountain View", [("NW-GRAVEL", 1)], 13, [2]),
    ("Dev Rao", "95014", "Cupertino", [("NW-LOCK", 1)], 13, []),
    ("Elena Cruz", "94107", "San Francisco", [("NW-LIGHTS", 2)], 1, [1]),
    ("Farid Haddad", "90012", "Los Angeles", [("NW-GRAVEL", 1), ("NW-LOCK", 1)], 1, []),
]


@dataclasses.dataclass
class DemoKeys:
    manufacturer: str
    retailers: dict[str, str]
    orders: dict[int, str]
    # Who can sign in to the console and the portal, all with one password made for this install.
    users: dict[str, str] = dataclasses.field(default_factory=dict)
    password: str = ""


def seed(ctx: Context, *, say=print) -> DemoKeys | None:
    """Create the demo data unless it is there already (returns None then)."""
    with ctx.uow() as uow:
        if uow.session.scalar(select(Manufacturer.id).where(Manufacturer.slug == SLUG)) is not None:
            return None
    say("Creating demo data: a manufacturer, five retailers, six orders ...")
    maker, maker_key = accounts.create_manufacturer(
        ctx, OPERATOR, accounts.NewManufacturer("Northwind Cycles", SLUG, "USD", LocationQuery("94107", "US"))
    )
    maker_actor = Actor(ActorKind.MANUFACTURER, maker.id)
    for sku, name, price, description in PRODUCTS:
        # The demo's pictures ship with Broker (web/static/products), so the shop
        # shows them offline.
        catalog.add_product(ctx, maker_actor, catalog.NewProduct(
            sku, name, price, description, image_url=f"/static/products/{sku.lower()}.svg"))
    password = secrets.token_urlsafe(9)
    users = {"Northwind Cycles (console)": _demo_user(ctx, Role.MANUFACTURER, maker.id, "owner@northwind.example",
                                                       "Nora Owner", password).email}
    retailer_actors, retailer_keys = [], {}
    for name, zip_code, radius, authorised, street, city in RETAILERS:
        retailer, store, key = accounts.create_retailer(
            ctx, OPERATOR,
            accounts.NewRetailer(name, f"hello@{name.lower().replace(' ', '')}.example", LocationQuery(zip_code, "US"),
                                 radius),
        )
        retailer_actors.append(Actor(ActorKind.RETAILER, retailer.id))
        accounts.update_store(ctx, retailer_actors[-1], store.id, accounts.StoreChanges(
            address={"line1": street, "city": city, "postal_code": zip_code, "country": "US"}, hours=HOURS))
        retailer_keys[name] = key
        owner = _demo_user(ctx, Role.RETAILER, retailer.id, f"hello@{name.lower().replace(' ', '')}.example",
                           "Shop Owner", password)
        users[f"{name} (portal)"] = owner.email
        if authorised:
            accounts.authorise_dealer(ctx, maker_actor, retailer.id)
        else:
            applications.apply(ctx, owner, maker.id, "We have stocked Northwind for ten years.")
    order_tokens = {}
    now = ctx.now()
    for i, (customer, zip_code, city, items, hours_ago, bidders) in enumerate(ORDERS, start=1):
        then = dataclasses.replace(ctx, clock=FrozenClock(now - timedelta(hours=hours_ago)))
        placed = orders.place_order(
            then, SLUG,
            orders.PlaceOrder(
                items=[orders.Item(sku, qty) for sku, qty in items],
                customer=orders.Customer(customer, f"{customer.split()[0].lower()}@customer.example"),
                ship_to=orders.Address(f"{100 + i} Market Street", city, zip_code, "US"),
            ),
        )
        order_tokens[placed.order.id] = placed.access_token
        listing_id = _listing_of(ctx, placed.order.id)
        for r in bidders:
            board.place_bid(then, retailer_actors[r], board.PlaceBid(listing_id))
    return DemoKeys(maker_key, retailer_keys, order_tokens, users, password)


def _demo_user(ctx: Context, role: Role, company_id: int, email: str, name: str,
               password: str) -> identity.SignedIn:
    """A user with the demo password, set through their welcome link as a person
    would: that verifies the address."""
    _, link = identity.add_user(ctx, role=role, company_id=company_id, email=email, name=name)
    user, _ = identity.reset_password(ctx, link.rsplit("/", 1)[1], password)
    return user


def _listing_of(ctx: Context, order_id: int) -> int:
    with ctx.uow() as uow:
        return uow.session.scalar(select(Listing.id).where(Listing.order_id == order_id))


def describe(keys: DemoKeys) -> str:
    lines = ["Demo API keys (test mode; shown once, also saved in broker-demo.txt):",
             f"  manufacturer Northwind Cycles: {keys.manufacturer}"]
    lines += [f"  retailer {name}: {key}" for name, key in keys.retailers.items()]
    if keys.users:
        lines += [f"Sign in at /signin with password {keys.password}:"]
        lines += [f"  {who}: {email}" for who, email in keys.users.items()]
    lines += ["Customer access tokens (X-Access-Token):"]
    lines += [f"  order {order_id}: {token}" for order_id, token in keys.orders.items()]
    return "\n".join(lines)
