"""Building test worlds through the real services (no rows written by hand)."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import datetime

from sqlalchemy import select

from broker.accounts import services as accounts
from broker.auth import OPERATOR, Actor, ActorKind
from broker.board import services as board
from broker.board.models import Listing
from broker.catalog import services as catalog
from broker.clock import FrozenClock
from broker.context import Context
from broker.geo.geocoding import LocationQuery
from broker.orders import services as orders

# The ship-to point most tests use, and handy points near it (lat, lon).
HERE = (37.7749, -122.4194)  # San Francisco
KM = 1 / 111.2  # about one kilometre of latitude, in degrees

_names = itertools.count(1)


def north_of(point: tuple[float, float], km: float) -> tuple[float, float]:
    return (point[0] + km * KM, point[1])


@dataclasses.dataclass
class Maker:
    id: int
    slug: str
    actor: Actor
    key: str


@dataclasses.dataclass
class Shop:
    id: int
    store_id: int
    actor: Actor
    key: str


class World:
    def __init__(self, ctx: Context):
        self.ctx = ctx

    def at(self, when: datetime | None) -> Context:
        if when is None:
            return self.ctx
        return dataclasses.replace(self.ctx, clock=FrozenClock(when))

    def manufacturer(self, slug: str | None = None, *, currency: str = "USD", products=(("SKU-1", 5000),)) -> Maker:
        slug = slug or f"maker-{next(_names)}"
        maker, key = accounts.create_manufacturer(
            self.ctx, OPERATOR,
            accounts.NewManufacturer(f"Maker {slug}", slug, currency, LocationQuery(lat=HERE[0], lon=HERE[1])),
        )
        result = Maker(maker.id, maker.slug, Actor(ActorKind.MANUFACTURER, maker.id), key)
        for sku, price in products:
            self.product(result, sku, price)
        return result

    def product(self, maker: Maker, sku: str, price: int):
        return catalog.add_product(self.ctx, maker.actor, catalog.NewProduct(sku, f"Product {sku}", price))

    def retailer(self, at: tuple[float, float], *, radius: float = 50, dealer_of=(), name: str | None = None,
                 email: str = "shop@example.com") -> Shop:
        name = name or f"Retailer {next(_names)}"
        retailer, store, key = accounts.create_retailer(
            self.ctx, OPERATOR,
            accounts.NewRetailer(name, email, LocationQuery(lat=at[0], lon=at[1]), radius),
        )
        shop = Shop(retailer.id, store.id, Actor(ActorKind.RETAILER, retailer.id), key)
        for maker in dealer_of:
            accounts.authorise_dealer(self.ctx, maker.actor, retailer.id)
        return shop

    def order(self, maker: Maker, *, to: tuple[float, float] = HERE, sku: str = "SKU-1", quantity: int = 1,
              when: datetime | None = None, name: str = "Ada Lovelace",
              email: str = "ada@example.com", items=None) -> orders.PlacedOrder:
        """An order of `quantity` of `sku`, or of `items` [(sku, quantity), ...]."""
        return orders.place_order(
            self.at(when), maker.slug,
            orders.PlaceOrder(
                items=[orders.Item(s, q) for s, q in items] if items else [orders.Item(sku, quantity)],
                customer=orders.Customer(name, email),
                ship_to=orders.Address("1 Secret Lane", "San Francisco", "94103", "US", lat=to[0], lon=to[1]),
            ),
        )

    def listing_id(self, order_id: int) -> int:
        with self.ctx.uow() as uow:
            return uow.session.scalar(select(Listing.id).where(Listing.order_id == order_id))

    def bid(self, shop: Shop, order_id: int, *, when: datetime | None = None, store_id: int | None = None,
            items=None):
        """A bid on the whole order, or on `items` [(sku, quantity), ...]."""
        bid, _ = board.place_bid(self.at(when), shop.actor,
                                 board.PlaceBid(self.listing_id(order_id), store_id=store_id,
                                                items=None if items is None else
                                                tuple(board.BidItem(quantity=q, sku=s) for s, q in items)))
        return bid

    def payouts_ready(self, actor: Actor, email: str = "payouts@example.com"):
        """The fulfiller connects a payout account and finishes the (offline) onboarding."""
        from broker.payouts import onboarding, services as payouts

        connected = payouts.connect(self.ctx, actor, email=email)
        return onboarding.complete_offline(self.ctx, actor, connected.account.account_ref)
