"""The storefront: a manufacturer's branded shop. Its look, its cart, and what a
customer may read about their own order."""

from __future__ import annotations

import dataclasses
from urllib.parse import quote, unquote

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from broker.accounts.models import Manufacturer
from broker.auth import Actor, ActorKind, digest, require, same
from broker.catalog.models import Product
from broker.context import Context
from broker.errors import Invalid, NotFound
from broker.grammar import GrammarError, parse_color, parse_display_name, parse_image_url, parse_origin
from broker.addresses import PostalAddress
from broker.orders import pricing
from broker.orders.models import Delivery, Order
from broker.privacy.models import Disclosure
from broker.storefront.domains import TAKEN, set_domain

MAX_CART_LINES = 50


@dataclasses.dataclass(frozen=True)
class Branding:
    logo_url: str | None = None
    color_primary: str | None = None
    color_accent: str | None = None
    locale: str | None = None
    custom_domain: str | None = None
    frame_origins: list[str] | None = None
    return_window_days: int | None = None
    name: str | None = None


def _origins(values: list[str]) -> list[str]:
    """The origins allowed to frame the store, parsed and serialised (sorted, no repeats)."""
    if not isinstance(values, list) or len(values) > 20:
        raise Invalid.field("frame_origins", "at most 20 origins")
    try:
        return sorted({str(parse_origin(value)) for value in values})
    except GrammarError as exc:
        raise Invalid.field("frame_origins", str(exc)) from None


def update_branding(ctx: Context, actor: Actor, changes: Branding) -> Manufacturer:
    """The manufacturer sets its store's look. Every value is parsed to its
    grammar (broker/grammar.py) and stored as the parsed value serialised, so that
    none can carry markup, script or a header's syntax into a page or a header.
    :raise 422: a value that does not fit, or a domain another store holds."""
    require(actor, ActorKind.MANUFACTURER)
    from babel import Locale, UnknownLocaleError

    with ctx.uow() as uow:
        maker = uow.session.get(Manufacturer, actor.id)
        if changes.name is not None:
            maker.name = _parsed("name", parse_display_name, changes.name)
        for field in ("color_primary", "color_accent"):
            value = getattr(changes, field)
            if value is not None:
                setattr(maker, field, _parsed(field, parse_color, value))
        if changes.logo_url is not None:
            url = changes.logo_url.strip()
            maker.logo_url = str(_parsed("logo_url", parse_image_url, url, https_only=ctx.settings.https)) \
                if url else None
        if changes.locale is not None:
            try:
                Locale.parse(changes.locale)
            except (UnknownLocaleError, ValueError):
                raise Invalid.field("locale", f"{changes.locale!r} is not a known locale (e.g. en_US, de_DE)") from None
            maker.locale = changes.locale
        domain_changed = False
        if changes.custom_domain is not None:
            domain_changed = set_domain(uow.session, ctx.settings, maker, changes.custom_domain)
        if changes.frame_origins is not None:
            maker.frame_origins = _origins(changes.frame_origins)
        if changes.return_window_days is not None:
            if not (0 <= changes.return_window_days <= 365):
                raise Invalid.field("return_window_days", "must be between 0 and 365")
            maker.return_window_days = changes.return_window_days
        store_id = maker.id
        uow.after_commit(lambda: ctx.domains_changed(store_id) if domain_changed else ctx.storefront_changed(store_id))
        try:
            uow.commit()
        except IntegrityError:
            # Another store claimed the same domain between our check and our commit.
            raise Invalid.field("custom_domain", TAKEN) from None
        return maker


def _parsed(field: str, parse, value, **options):
    try:
        return parse(value, **options)
    except GrammarError as exc:
        raise Invalid.field(field, str(exc)) from None


def store(ctx: Context, slug: str) -> Manufacturer:
    """:raise 404: no such store."""
    with ctx.uow() as uow:
        maker = uow.session.scalar(select(Manufacturer).where(Manufacturer.slug == slug))
        if maker is None:
            raise NotFound(f"no storefront {slug!r}")
        return maker


def own_store(ctx: Context, actor: Actor) -> Manufacturer:
    """The calling manufacturer's store: its slug, currency and look."""
    require(actor, ActorKind.MANUFACTURER)
    with ctx.uow() as uow:
        maker = uow.session.get(Manufacturer, actor.id)
        if maker is None:
            raise NotFound(f"no manufacturer {actor.id}")
        return maker


def product(ctx: Context, slug: str, sku: str) -> tuple[Manufacturer, Product]:
    with ctx.uow() as uow:
        row = uow.session.execute(
            select(Manufacturer, Product).join(Product, Product.manufacturer_id == Manufacturer.id)
            .where(Manufacturer.slug == slug, Product.sku == sku, Product.active.is_(True))
        ).first()
        if row is None:
            raise NotFound(f"no product {sku!r} at {slug!r}")
        return row[0], row[1]


# --- the cart: carried in the URL, so it needs no cookie (cookies are blocked in
# cross-site iframes) and no account -------------------------------------------


def parse_cart(text: str | None) -> dict[str, int]:
    """`"SKU-1:2,BOX%2F2:1"` → `{"SKU-1": 2, "BOX/2": 1}`; junk is dropped, not fatal."""
    cart: dict[str, int] = {}
    for part in (text or "").split(",")[:MAX_CART_LINES]:
        sku, _, qty = part.rpartition(":")
        if sku and qty.isdigit() and 0 < int(qty) <= 999:
            cart[unquote(sku)] = min(999, cart.get(unquote(sku), 0) + int(qty))
    return cart


def format_cart(cart: dict[str, int]) -> str:
    return ",".join(f"{quote(sku, safe='')}:{qty}" for sku, qty in cart.items() if qty > 0)


@dataclasses.dataclass(frozen=True)
class CartLine:
    product: Product
    quantity: int

    @property
    def total(self) -> int:
        return self.product.price * self.quantity


@dataclasses.dataclass(frozen=True)
class UnavailableLine:
    """A line the cart cannot be bought with: by the product's name when the
    catalog still has it (a customer does not know SKUs)."""

    sku: str
    name: str
    why: str  # "sold out", "no longer for sale"

    def __str__(self) -> str:
        return f"{self.name} ({self.why})"


@dataclasses.dataclass(frozen=True)
class Cart:
    maker: Manufacturer
    lines: list[CartLine]
    unavailable: list[UnavailableLine]  # lines no longer for sale, or sold out

    @property
    def total(self) -> int:
        return sum(line.total for line in self.lines)

    @property
    def count(self) -> int:
        return sum(line.quantity for line in self.lines)


def price_cart(ctx: Context, slug: str, cart: dict[str, int]) -> Cart:
    """The cart priced from the catalog (never from the URL)."""
    with ctx.uow() as uow:
        maker = uow.session.scalar(select(Manufacturer).where(Manufacturer.slug == slug))
        if maker is None:
            raise NotFound(f"no storefront {slug!r}")
        products = {p.sku: p for p in uow.session.scalars(select(Product).where(
            Product.manufacturer_id == maker.id, Product.sku.in_(list(cart))))} if cart else {}
        lines, unavailable = [], []
        for sku, qty in cart.items():
            p = products.get(sku)
            if p is None:
                unavailable.append(UnavailableLine(sku, f"Item {sku}", "no longer for sale"))
            elif not p.active or not p.in_stock:
                unavailable.append(UnavailableLine(sku, p.name, "sold out" if p.active else "no longer for sale"))
            else:
                lines.append(CartLine(p, qty))
        return Cart(maker, lines, unavailable)


def quote_cart(ctx: Context, cart: Cart, *, delivery: Delivery, method_code: str | None,
          to: PostalAddress) -> pricing.Priced:
    """What the cart would cost delivered to `to` (a checked address): goods, the
    shipping method's charge and the tax there, as placing the order would work
    them out (`orders.services.place_order`). Asks the tax provider: call it
    outside any transaction, and only when the address is complete enough for
    the tax (`tax_knowable`).

    :raise 422: a method that does not exist or does not ship there. :raise 503:
        the tax provider is not answering."""
    with ctx.uow() as uow:
        basis = pricing.basis_of(uow.session, cart.maker.id, cart.maker.currency)
    lines = [pricing.PricedLine(line.product.sku, line.product.price, line.quantity) for line in cart.lines]
    return pricing.price(basis, ctx.taxes(), currency=cart.maker.currency, lines=lines, delivery=delivery,
                         method_code=method_code, to=pricing.Destination(
                             country=to.country, region=to.region, postal_code=to.postal_code, city=to.city))


def tax_knowable(to: PostalAddress) -> bool:
    """Whether the address says enough to work out the tax: its country, and the
    region and postal code where the country's addresses have them required."""
    from broker.addresses.formats import country_format

    fmt = country_format(to.country)
    return not ((fmt.requires("region") and not to.region) or (fmt.requires("postal_code") and not to.postal_code))


def disclosure_log(ctx: Context, order_id: int, token: str) -> list[Disclosure]:
    """Who saw which of the customer's details, when and why; for the customer only."""
    with ctx.uow() as uow:
        order = uow.session.get(Order, order_id)
        if order is None or not same(order.access_token_hash, digest(token)):
            raise NotFound(f"no order {order_id}")
        return list(uow.session.scalars(select(Disclosure).where(Disclosure.order_id == order.id)
                                        .order_by(Disclosure.at, Disclosure.id)))


