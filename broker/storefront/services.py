"""The storefront: a manufacturer's branded shop. Its look, its cart, and what a
customer may read about their own order."""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import quote, unquote, urlsplit

from sqlalchemy import select

from broker.accounts.models import Manufacturer
from broker.auth import Actor, ActorKind, digest, require, same
from broker.catalog.models import Product
from broker.context import Context
from broker.errors import Invalid, NotFound
from broker.orders.models import Order
from broker.privacy.models import Disclosure

HEX_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$")
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


def _origin(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username:
        raise Invalid.field("frame_origins", f"{value!r} is not an origin like https://www.example.com")
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def update_branding(ctx: Context, actor: Actor, changes: Branding) -> Manufacturer:
    """The manufacturer sets its store's look. Everything is validated so that no
    value can carry markup or script into a page or a header."""
    require(actor, ActorKind.MANUFACTURER)
    from babel import Locale, UnknownLocaleError

    with ctx.uow() as uow:
        maker = uow.session.get(Manufacturer, actor.id)
        if changes.name is not None:
            if not changes.name.strip():
                raise Invalid.field("name", "must not be blank")
            maker.name = changes.name.strip()
        for field in ("color_primary", "color_accent"):
            value = getattr(changes, field)
            if value is not None:
                if not HEX_COLOR.match(value):
                    raise Invalid.field(field, "use a colour like #1d4ed8")
                setattr(maker, field, value.lower())
        if changes.logo_url is not None:
            url = changes.logo_url.strip()
            if url and (urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc):
                raise Invalid.field("logo_url", "must be an http or https URL")
            maker.logo_url = url or None
        if changes.locale is not None:
            try:
                Locale.parse(changes.locale)
            except (UnknownLocaleError, ValueError):
                raise Invalid.field("locale", f"{changes.locale!r} is not a known locale (e.g. en_US, de_DE)") from None
            maker.locale = changes.locale
        if changes.custom_domain is not None:
            domain = changes.custom_domain.strip().lower().rstrip(".") or None
            if domain is not None:
                if not HOSTNAME.match(domain):
                    raise Invalid.field("custom_domain", "must be a host name like shop.example.com")
                taken = uow.session.scalar(select(Manufacturer.id).where(Manufacturer.custom_domain == domain,
                                                                         Manufacturer.id != maker.id))
                if taken is not None:
                    raise Invalid.field("custom_domain", "another store uses this domain")
            maker.custom_domain = domain
        if changes.frame_origins is not None:
            if len(changes.frame_origins) > 20:
                raise Invalid.field("frame_origins", "at most 20 origins")
            maker.frame_origins = sorted({_origin(o) for o in changes.frame_origins})
        if changes.return_window_days is not None:
            if not (0 <= changes.return_window_days <= 365):
                raise Invalid.field("return_window_days", "must be between 0 and 365")
            maker.return_window_days = changes.return_window_days
        uow.after_commit(lambda: ctx.storefront_changed(maker.id))
        uow.commit()
        return maker


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


def slug_for_host(ctx: Context, host: str) -> str | None:
    """The store a custom domain belongs to, if any."""
    domain = host.split(":", 1)[0].lower().rstrip(".")
    with ctx.uow() as uow:
        return uow.session.scalar(select(Manufacturer.slug).where(Manufacturer.custom_domain == domain))


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
class Cart:
    maker: Manufacturer
    lines: list[CartLine]
    unavailable: list[str]  # SKUs in the cart no longer for sale, or sold out

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
            if p is None or not p.active or not p.in_stock:
                unavailable.append(sku)
            else:
                lines.append(CartLine(p, qty))
        return Cart(maker, lines, unavailable)


def disclosure_log(ctx: Context, order_id: int, token: str) -> list[Disclosure]:
    """Who saw which of the customer's details, when and why; for the customer only."""
    with ctx.uow() as uow:
        order = uow.session.get(Order, order_id)
        if order is None or not same(order.access_token_hash, digest(token)):
            raise NotFound(f"no order {order_id}")
        return list(uow.session.scalars(select(Disclosure).where(Disclosure.order_id == order.id)
                                        .order_by(Disclosure.at, Disclosure.id)))


