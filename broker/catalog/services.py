"""The manufacturer's catalog and the storefront's view of it."""

from __future__ import annotations

import dataclasses
import functools

from sqlalchemy import or_, select

from broker.accounts.models import Manufacturer
from broker.auth import Actor, ActorKind, require
from broker.catalog.models import Product
from broker.context import Context
from broker.db import insert_if_absent
from broker.errors import Conflict, Invalid, NotFound
from broker.grammar import GrammarError, parse_image_url
from broker.money import MAX_AMOUNT
from broker.pagination import Page, PageRequest, paginate


@dataclasses.dataclass(frozen=True)
class NewProduct:
    sku: str
    name: str
    price: int
    description: str = ""
    image_url: str | None = None
    in_stock: bool = True


@dataclasses.dataclass(frozen=True)
class ProductChanges:
    name: str | None = None
    price: int | None = None
    description: str | None = None
    image_url: str | None = None
    active: bool | None = None
    in_stock: bool | None = None


# The columns' sizes (catalog/models.py) and the API's limits (api/schemas.py):
# checked here too, so that a page or an import never reaches the database with
# a value PostgreSQL would refuse.
MAX_SKU = 64
MAX_NAME = 200
MAX_DESCRIPTION = 5000
MAX_IMAGE_URL = 500


def _check_sku(sku: str) -> str:
    sku = (sku or "").strip()
    if not sku:
        raise Invalid.field("sku", "must not be blank")
    if len(sku) > MAX_SKU:
        raise Invalid.field("sku", f"at most {MAX_SKU} characters")
    return sku


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise Invalid.field("name", "must not be blank")
    if len(name) > MAX_NAME:
        raise Invalid.field("name", f"at most {MAX_NAME} characters")
    return name


def _check_price(price: int) -> int:
    if isinstance(price, bool) or not isinstance(price, int) or not (0 < price <= MAX_AMOUNT):
        raise Invalid.field("price", f"must be a whole number of minor units between 1 and {MAX_AMOUNT}")
    return price


def _check_description(description: str) -> str:
    description = description or ""
    if len(description) > MAX_DESCRIPTION:
        raise Invalid.field("description", f"at most {MAX_DESCRIPTION} characters")
    return description


def _check_image_url(url: str | None, *, https_only: bool) -> str | None:
    """The image's URL parsed (broker/grammar.py) and stored as serialised:
    https on an HTTPS deployment, a public host, no credentials."""
    url = (url or "").strip()
    if not url:
        return None
    if len(url) > MAX_IMAGE_URL:
        raise Invalid.field("image_url", f"at most {MAX_IMAGE_URL} characters")
    try:
        return str(parse_image_url(url, https_only=https_only, max_length=MAX_IMAGE_URL))
    except GrammarError as exc:
        raise Invalid.field("image_url", str(exc)) from None


def _check_flag(field: str):
    def check(value: bool) -> bool:
        if not isinstance(value, bool):
            raise Invalid.field(field, "must be true or false")
        return value

    return check


# Every rule a product's fields obey, in one place: adding, editing (the API and
# the console) and the CSV import (catalog/imports.py) all go through `validate`.
_CHECKS = {
    "sku": _check_sku,
    "name": _check_name,
    "price": _check_price,
    "description": _check_description,
    "active": _check_flag("active"),
    "in_stock": _check_flag("in_stock"),
}


def validate(values: dict, *, https_only: bool) -> dict:
    """The given fields, cleaned. `https_only`: Broker is served over HTTPS, so
    images must be too (`settings.https`).
    :raise 422: with a message for every bad field, not only the first."""
    # The image's rule depends on the deployment.
    checks = {**_CHECKS, "image_url": functools.partial(_check_image_url, https_only=https_only)}
    clean, errors = {}, {}
    for field, value in values.items():
        try:
            clean[field] = checks[field](value)
        except Invalid as exc:
            for name, messages in exc.errors.items():
                errors.setdefault(name, []).extend(messages)
    if errors:
        detail = "; ".join(f"{name}: {', '.join(messages)}" for name, messages in errors.items())
        raise Invalid(detail, errors=errors)
    return clean


def check_new(cmd: NewProduct, *, https_only: bool) -> dict:
    """A new product's fields, cleaned. :raise 422:"""
    return validate(dataclasses.asdict(cmd), https_only=https_only)


def check_changes(changes: ProductChanges, *, https_only: bool) -> dict:
    """The fields an edit sets (None: left alone), cleaned. :raise 422:"""
    return validate({k: v for k, v in dataclasses.asdict(changes).items() if v is not None}, https_only=https_only)


def new_product(manufacturer_id: int, clean: dict, now) -> Product:
    """A product from `check_new`'s output (caller's session adds it)."""
    return Product(manufacturer_id=manufacturer_id, active=True, created_at=now, updated_at=now, **clean)


def apply_changes(product: Product, clean: dict, now) -> None:
    """`check_changes`'s output onto a product: validated first, so a bad field never half-edits it."""
    for field, value in clean.items():
        setattr(product, field, value)
    product.updated_at = now


@dataclasses.dataclass(frozen=True)
class ProductView:
    product: Product
    currency: str


def _currency(session, manufacturer_id: int) -> str:
    return session.scalar(select(Manufacturer.currency).where(Manufacturer.id == manufacturer_id))


def add_product(ctx: Context, actor: Actor, cmd: NewProduct) -> ProductView:
    """:raise 409: the SKU exists. :raise 422: bad input."""
    require(actor, ActorKind.MANUFACTURER)
    clean = check_new(cmd, https_only=ctx.settings.https)
    with ctx.uow() as uow:
        # ON CONFLICT: of two requests adding one SKU at once, the second waits
        # for the first and is told it exists.
        now = ctx.now()
        product_id = insert_if_absent(uow.session, Product, dict(
            manufacturer_id=actor.id, active=True, created_at=now, updated_at=now, **clean),
            unique=["manufacturer_id", "sku"])
        if product_id is None:
            raise Conflict(f"SKU {clean['sku']!r} already exists", errors={"sku": ["already exists"]})
        product = uow.session.get_one(Product, product_id)
        currency = _currency(uow.session, actor.id)
        uow.after_commit(lambda: ctx.storefront_changed(actor.id))
        uow.commit()
        return ProductView(product, currency)


def update_product(ctx: Context, actor: Actor, sku: str, changes: ProductChanges) -> ProductView:
    """:raise 404: not one of the caller's SKUs. :raise 422: bad input."""
    require(actor, ActorKind.MANUFACTURER)
    clean = check_changes(changes, https_only=ctx.settings.https)
    with ctx.uow() as uow:
        product = uow.session.scalar(
            select(Product).where(Product.manufacturer_id == actor.id, Product.sku == sku)
        )
        if product is None:
            raise NotFound(f"no product with SKU {sku!r}")
        apply_changes(product, clean, ctx.now())
        currency = _currency(uow.session, actor.id)
        uow.after_commit(lambda: ctx.storefront_changed(actor.id))
        uow.commit()
        return ProductView(product, currency)


def get_product(ctx: Context, actor: Actor, sku: str) -> ProductView:
    """One of the caller's products, active or not. :raise 404: not one of its SKUs."""
    require(actor, ActorKind.MANUFACTURER)
    with ctx.uow() as uow:
        product = uow.session.scalar(
            select(Product).where(Product.manufacturer_id == actor.id, Product.sku == sku)
        )
        if product is None:
            raise NotFound(f"no product with SKU {sku!r}")
        return ProductView(product, _currency(uow.session, actor.id))


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


MAX_SEARCH = 100


def storefront_catalog(ctx: Context, slug: str, page: PageRequest, query: str = "") -> Catalog:
    """The active products of a store, for anyone; with `query`, those whose name,
    SKU or description holds every word of it (case-insensitive).
    :raise 404: no such store."""
    words = query.split()[:10] if query else []
    with ctx.uow() as uow:
        maker = uow.session.scalar(select(Manufacturer).where(Manufacturer.slug == slug))
        if maker is None:
            raise NotFound(f"no storefront {slug!r}")
        stmt = (
            select(Product)
            .where(Product.manufacturer_id == maker.id, Product.active.is_(True))
            .order_by(Product.name, Product.sku)
        )
        for word in words:
            # LIKE's own wildcards in a word are literal characters.
            pattern = "%" + word[:MAX_SEARCH].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            stmt = stmt.where(or_(Product.name.ilike(pattern, escape="\\"), Product.sku.ilike(pattern, escape="\\"),
                                  Product.description.ilike(pattern, escape="\\")))
        return Catalog(maker, paginate(uow.session, stmt, page))
