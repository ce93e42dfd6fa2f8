"""The manufacturer's catalog and the storefront's view of it."""

from __future__ import annotations

import dataclasses
from urllib.parse import urlsplit

from sqlalchemy import select

from broker.accounts.models import Manufacturer
from broker.auth import Actor, ActorKind, require
from broker.catalog.models import Product
from broker.context import Context
from broker.errors import Conflict, Invalid, NotFound
from broker.money import MAX_AMOUNT
from broker.pagination import Page, PageRequest, paginate


@dataclasses.dataclass(frozen=True)
class NewProduct:
    sku: str
    name: str
    price: int
    description: str = ""
    image_url: str | None = None


@dataclasses.dataclass(frozen=True)
class ProductChanges:
    name: str | None = None
    price: int | None = None
    description: str | None = None
    image_url: str | None = None
    active: bool | None = None
    in_stock: bool | None = None


def _check_price(price: int) -> int:
    if isinstance(price, bool) or not isinstance(price, int) or not (0 < price <= MAX_AMOUNT):
        raise Invalid.field("price", f"must be a whole number of minor units between 1 and {MAX_AMOUNT}")
    return price


def _check_image_url(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid.field("image_url", "must be an http or https URL")
    return url


@dataclasses.dataclass(frozen=True)
class ProductView:
    product: Product
    currency: str


def _currency(session, manufacturer_id: int) -> str:
    return session.scalar(select(Manufacturer.currency).where(Manufacturer.id == manufacturer_id))


def add_product(ctx: Context, actor: Actor, cmd: NewProduct) -> ProductView:
    """:raise 409: the SKU exists. :raise 422: bad input."""
    require(actor, ActorKind.MANUFACTURER)
    sku = cmd.sku.strip()
    if not sku:
        raise Invalid.field("sku", "must not be blank")
    name = cmd.name.strip()
    if not name:
        raise Invalid.field("name", "must not be blank")
    with ctx.uow() as uow:
        exists = uow.session.scalar(
            select(Product.id).where(Product.manufacturer_id == actor.id, Product.sku == sku)
        )
        if exists is not None:
            raise Conflict(f"SKU {sku!r} already exists", errors={"sku": ["already exists"]})
        now = ctx.now()
        product = Product(
            manufacturer_id=actor.id, sku=sku, name=name, price=_check_price(cmd.price),
            description=cmd.description or "", image_url=_check_image_url(cmd.image_url),
            active=True, created_at=now, updated_at=now,
        )
        uow.session.add(product)
        currency = _currency(uow.session, actor.id)
        uow.commit()
        return ProductView(product, currency)


def update_product(ctx: Context, actor: Actor, sku: str, changes: ProductChanges) -> ProductView:
    """:raise 404: not one of the caller's SKUs."""
    require(actor, ActorKind.MANUFACTURER)
    with ctx.uow() as uow:
        product = uow.session.scalar(
            select(Product).where(Product.manufacturer_id == actor.id, Product.sku == sku)
        )
        if product is None:
            raise NotFound(f"no product with SKU {sku!r}")
        if changes.name is not None:
            if not changes.name.strip():
                raise Invalid.field("name", "must not be blank")
            product.name = changes.name.strip()
        if changes.price is not None:
            product.price = _check_price(changes.price)
        if changes.description is not None:
            product.description = changes.description
        if changes.image_url is not None:
            product.image_url = _check_image_url(changes.image_url)
        if changes.active is not None:
            product.active = changes.active
        if changes.in_stock is not None:
            product.in_stock = changes.in_stock
        product.updated_at = ctx.now()
        currency = _currency(uow.session, actor.id)
        uow.commit()
        return ProductView(product, currency)


def list_products(ctx: Context, actor: Actor, page: PageRequest) -> Page[ProductView]:
    require(actor, ActorKind.MANUFACTURER)
    with ctx.uow() as uow:
        stmt = select(Product).where(Product.manufacturer_id == actor.id).order_by(Product.sku)
        found = paginate(uow.session, stmt, page)
        currency = _currency(uow.session, actor.id)
        return Page([ProductView(p, currency) for p in found.items], found.total)


@dataclasses.dataclass(frozen=True)
class Catalog:
    manufacturer: Manufacturer
    products: Page[Product]


def storefront_catalog(ctx: Context, slug: str, page: PageRequest) -> Catalog:
    """The active products of a store, for anyone. :raise 404: no such store."""
    with ctx.uow() as uow:
        maker = uow.session.scalar(select(Manufacturer).where(Manufacturer.slug == slug))
        if maker is None:
            raise NotFound(f"no storefront {slug!r}")
        stmt = (
            select(Product)
            .where(Product.manufacturer_id == maker.id, Product.active.is_(True))
            .order_by(Product.name, Product.sku)
        )
        return Catalog(maker, paginate(uow.session, stmt, page))
