"""A store's stock: snapshots and changes from its feed (API or CSV), what it
reads back, and where a manufacturer's products are in stock across its dealers.

A change to a store's stock is committed first, and only then are its standing
bids placed (`broker.stock.standing`), each listing in its own short lock: the
feed never waits for the board, and a stock row is never locked before a
listing (the order settlement locks them in).
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from broker.accounts.models import DealerAuthorisation, Manufacturer, Retailer, Store
from broker.auth import Actor, ActorKind, require
from broker.catalog.models import Product
from broker.context import Context
from broker.pagination import Page, PageRequest, paginate
from broker.errors import Invalid, NotFound
from broker.locks import lock
from broker.stock import standing
from broker.stock.models import StandingBid, StockFeed, StockLevel
from broker.stock.reserve import fresh_after

MAX_QUANTITY = 1_000_000
MAX_ITEMS = 10_000
MAX_SKU = 64


@dataclasses.dataclass(frozen=True)
class StockItem:
    sku: str
    quantity: int


@dataclasses.dataclass(frozen=True)
class StockLine:
    sku: str
    quantity: int
    reserved: int
    available: int


@dataclasses.dataclass(frozen=True)
class StockView:
    store_id: int
    # None: the store never sent a feed. Its age, and whether it is still
    # fresh enough to count (BROKER_STOCK_MAX_AGE_HOURS), as of `now`.
    updated_at: datetime | None
    age_hours: float | None
    fresh: bool
    items: list[StockLine]
    standing_bids_placed: int = 0


def check_items(items: Sequence[StockItem]) -> list[StockItem]:
    """Clean SKUs and quantities.

    :raise 422: every wrong item at once: a blank or over-long SKU, a quantity
        that is not a whole number from 0 to 1,000,000, a SKU named twice; too many items.
    """
    if len(items) > MAX_ITEMS:
        raise Invalid.field("items", f"at most {MAX_ITEMS} SKUs at a time")
    errors: dict[str, list[str]] = {}
    seen: dict[str, int] = {}
    clean = []
    for n, item in enumerate(items):
        sku = (item.sku or "").strip() if isinstance(item.sku, str) else ""
        if not sku or len(sku) > MAX_SKU or any(ord(ch) < 32 for ch in sku):
            errors.setdefault(f"items.{n}.sku", []).append(f"a SKU of 1 to {MAX_SKU} printable characters")
            continue
        if isinstance(item.quantity, bool) or not isinstance(item.quantity, int) or \
                not 0 <= item.quantity <= MAX_QUANTITY:
            errors.setdefault(f"items.{n}.quantity", []).append(f"a whole number from 0 to {MAX_QUANTITY}")
            continue
        if sku in seen:
            errors.setdefault(f"items.{n}.sku", []).append(f"{sku!r} is named twice (first as item {seen[sku]})")
            continue
        seen[sku] = n
        clean.append(StockItem(sku, item.quantity))
    if errors:
        raise Invalid("the stock has mistakes: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(errors.items())),
                      errors=errors)
    return clean


def parse_csv(text: str) -> list[StockItem]:
    """A stock CSV: a header row with `sku` and `quantity` columns (any others
    ignored), then one row per SKU.

    :raise 422: no such header, or rows whose quantity is not a whole number
        (every one named by its line number).
    """
    if len(text) > 2_000_000:
        raise Invalid.field("file", "the file is over 2 MB")
    rows = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = [cell.strip().lower() for cell in next(rows, [])]
    if "sku" not in header or "quantity" not in header:
        raise Invalid.field("file", "the first row must name the columns, with sku and quantity among them")
    at_sku, at_quantity = header.index("sku"), header.index("quantity")
    items, errors = [], []
    for number, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        sku = row[at_sku].strip() if at_sku < len(row) else ""
        raw = row[at_quantity].strip() if at_quantity < len(row) else ""
        if not raw.isdigit():
            errors.append(f"line {number}: the quantity {raw!r} is not a whole number")
            continue
        items.append(StockItem(sku, int(raw)))
    if errors:
        raise Invalid("; ".join(errors[:20]) + ("; ..." if len(errors) > 20 else ""), errors={"file": errors[:20]})
    return items


def _own_store(session: Session, actor: Actor, store_id: int) -> Store:
    store = session.scalar(select(Store).where(Store.id == store_id, Store.retailer_id == actor.id))
    if store is None:
        raise NotFound(f"no store {store_id} of yours")
    return store


def _upsert(session: Session, table, values: dict, keys: list[str], update: dict) -> None:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table).values(**values)
    session.execute(stmt.on_conflict_do_update(index_elements=keys, set_=update))


def set_stock(ctx: Context, actor: Actor, store_id: int, items: Sequence[StockItem], *,
              snapshot: bool) -> StockView:
    """Record a store's stock: `snapshot`, the whole of it (SKUs it does not name
    are out of stock), else changes to the SKUs it names. Either way the feed is
    fresh now. Then the store's standing bids are placed on the listings it now
    has in stock.

    :raise 404: not a store of the caller's. :raise 422: see `check_items`.
    """
    require(actor, ActorKind.RETAILER)
    clean = check_items(items)
    with ctx.uow() as uow:
        session = uow.session
        store = _own_store(session, actor, store_id)
        now = ctx.now()
        # Locked in (store, SKU) order, as settlement locks them.
        session.execute(lock(select(StockLevel.sku).where(StockLevel.store_id == store.id)
                             .order_by(StockLevel.sku))).all()
        for item in sorted(clean, key=lambda i: i.sku):
            _upsert(session, StockLevel.__table__,
                    dict(store_id=store.id, sku=item.sku, quantity=item.quantity, reserved=0, updated_at=now),
                    ["store_id", "sku"], dict(quantity=item.quantity, updated_at=now))
        if snapshot:
            named = [item.sku for item in clean]
            # A SKU the snapshot leaves out has none on the shelf; a row that still
            # holds reservations stays (at 0) until they ship or come back.
            session.execute(delete(StockLevel).where(StockLevel.store_id == store.id, StockLevel.sku.not_in(named),
                                                     StockLevel.reserved == 0)
                            .execution_options(synchronize_session=False))
            session.execute(StockLevel.__table__.update()
                            .where(StockLevel.store_id == store.id, StockLevel.sku.not_in(named))
                            .values(quantity=0, updated_at=now))
        _upsert(session, StockFeed.__table__, dict(store_id=store.id, updated_at=now), ["store_id"],
                dict(updated_at=now))
        uow.commit()
    placed = standing.place_for_store(ctx, store_id)
    view = get_stock(ctx, actor, store_id)
    return dataclasses.replace(view, standing_bids_placed=placed)


def get_stock(ctx: Context, actor: Actor, store_id: int) -> StockView:
    """:raise 404: not a store of the caller's."""
    require(actor, ActorKind.RETAILER)
    with ctx.uow() as uow:
        session = uow.session
        store = _own_store(session, actor, store_id)
        now = ctx.now()
        updated = session.scalar(select(StockFeed.updated_at).where(StockFeed.store_id == store.id))
        rows = session.execute(select(StockLevel.sku, StockLevel.quantity, StockLevel.reserved)
                               .where(StockLevel.store_id == store.id).order_by(StockLevel.sku)).all()
        return StockView(store.id, updated, _age(updated, now), _fresh(ctx, updated, now),
                         [StockLine(sku, q, r, max(q - r, 0)) for sku, q, r in rows])


def _age(updated: datetime | None, now: datetime) -> float | None:
    return None if updated is None else round(max((now - updated).total_seconds(), 0) / 3600, 2)


def _fresh(ctx: Context, updated: datetime | None, now: datetime) -> bool:
    return updated is not None and updated >= fresh_after(ctx, now)


@dataclasses.dataclass(frozen=True)
class DealerStock:
    retailer_id: int
    retailer_name: str
    store_id: int
    store_name: str
    area: str
    sku: str
    quantity: int
    available: int
    updated_at: datetime
    age_hours: float
    fresh: bool


def dealer_stock(ctx: Context, actor: Actor, page: PageRequest, sku: str | None = None) -> Page[DealerStock]:
    """Where the manufacturer's products are in stock across its dealers: per
    store and SKU of its catalog, with the feed's age (a stale feed shows, marked
    not fresh: it no longer counts at settlement). A page of it, by SKU, then
    dealer and store, with the total."""
    require(actor, ActorKind.MANUFACTURER)
    with ctx.uow() as uow:
        session = uow.session
        now = ctx.now()
        stmt = (
            select(Retailer.id, Retailer.name, Store.id, Store.name, Store.area, StockLevel.sku, StockLevel.quantity,
                   StockLevel.reserved, StockFeed.updated_at)
            .join(Store, Store.id == StockLevel.store_id)
            .join(Retailer, Retailer.id == Store.retailer_id)
            .join(StockFeed, StockFeed.store_id == Store.id)
            .join(DealerAuthorisation, (DealerAuthorisation.retailer_id == Retailer.id)
                  & (DealerAuthorisation.manufacturer_id == actor.id) & DealerAuthorisation.revoked_at.is_(None))
            .join(Product, (Product.manufacturer_id == actor.id) & (Product.sku == StockLevel.sku))
            .order_by(StockLevel.sku, Retailer.name, Store.id)
        )
        if sku:
            stmt = stmt.where(StockLevel.sku == sku)
        found = paginate(session, stmt, page, rows=True)
        return Page([DealerStock(rid, rname, sid, sname, area, s, q, max(q - r, 0), updated, _age(updated, now),
                                 _fresh(ctx, updated, now))
                     for rid, rname, sid, sname, area, s, q, r, updated in found.items], found.total)


# --- standing bids ----------------------------------------------------------------

MAX_STANDING_KM = 1000.0
MAX_STANDING_BIDS = 50


@dataclasses.dataclass(frozen=True)
class NewStandingBid:
    max_distance_km: float
    store_id: int | None = None
    # Slugs of manufacturers the retailer deals for; none: all of them.
    manufacturers: tuple[str, ...] = ()
    partial: bool = False


@dataclasses.dataclass(frozen=True)
class StandingBidView:
    rule: StandingBid
    manufacturer_slugs: tuple[str, ...]
    placed: int = 0  # bids placed when it was made


def create_standing_bid(ctx: Context, actor: Actor, cmd: NewStandingBid) -> StandingBidView:
    """A standing bid; it bids at once on the open listings it matches.

    :raise 422: a distance that is not a number over 0 and at most 1,000 km; a
        store that is not the caller's; a manufacturer it is not a dealer of; too many rules.
    """
    require(actor, ActorKind.RETAILER)
    km = cmd.max_distance_km
    errors: dict[str, list[str]] = {}
    if isinstance(km, bool) or not isinstance(km, (int, float)) or not 0 < km <= MAX_STANDING_KM:
        errors["max_distance_km"] = [f"a distance over 0 and at most {MAX_STANDING_KM:g} km"]
    with ctx.uow() as uow:
        session = uow.session
        if cmd.store_id is not None and session.scalar(select(Store.id).where(
                Store.id == cmd.store_id, Store.retailer_id == actor.id)) is None:
            errors["store_id"] = [f"store {cmd.store_id} is not one of yours"]
        slugs = sorted({slug.strip().lower() for slug in cmd.manufacturers})
        found = dict(session.execute(
            select(Manufacturer.slug, Manufacturer.id)
            .join(DealerAuthorisation, (DealerAuthorisation.manufacturer_id == Manufacturer.id)
                  & (DealerAuthorisation.retailer_id == actor.id) & DealerAuthorisation.revoked_at.is_(None))
            .where(Manufacturer.slug.in_(slugs))).tuples().all()) if slugs else {}
        unknown = [slug for slug in slugs if slug not in found]
        if unknown:
            errors["manufacturers"] = [f"you are not a dealer of {', '.join(map(repr, unknown))}"]
        count = session.scalar(select(func.count()).where(StandingBid.retailer_id == actor.id,
                                                          StandingBid.removed_at.is_(None)))
        if count >= MAX_STANDING_BIDS:
            errors["standing_bids"] = [f"at most {MAX_STANDING_BIDS} standing bids; remove one first"]
        if errors:
            raise Invalid("the standing bid has mistakes: " + "; ".join(
                f"{k}: {', '.join(v)}" for k, v in sorted(errors.items())), errors=errors)
        rule = StandingBid(retailer_id=actor.id, store_id=cmd.store_id, manufacturer_ids=sorted(found.values()),
                           max_distance_km=float(km), partial=bool(cmd.partial), created_at=ctx.now())
        session.add(rule)
        uow.commit()
        stores = [cmd.store_id] if cmd.store_id is not None else list(session.scalars(
            select(Store.id).where(Store.retailer_id == actor.id, Store.is_open.is_(True)).order_by(Store.id)))
        rule_id = rule.id
    placed = sum(standing.place_for_store(ctx, store_id) for store_id in stores)
    with ctx.uow() as uow:
        rule = uow.session.get(StandingBid, rule_id)
        return StandingBidView(rule, tuple(slugs), placed)


def list_standing_bids(ctx: Context, actor: Actor) -> list[StandingBidView]:
    require(actor, ActorKind.RETAILER)
    with ctx.uow() as uow:
        session = uow.session
        rules = list(session.scalars(select(StandingBid).where(
            StandingBid.retailer_id == actor.id, StandingBid.removed_at.is_(None)).order_by(StandingBid.id)))
        ids = {i for r in rules for i in (r.manufacturer_ids or [])}
        slugs = dict(session.execute(select(Manufacturer.id, Manufacturer.slug)
                                     .where(Manufacturer.id.in_(sorted(ids)))).tuples().all()) if ids else {}
        return [StandingBidView(r, tuple(slugs[i] for i in (r.manufacturer_ids or []) if i in slugs)) for r in rules]


def remove_standing_bid(ctx: Context, actor: Actor, rule_id: int) -> None:
    """It bids no more; the bids it placed stay, each the retailer's to withdraw.

    :raise 404: no standing bid of the caller's with that id."""
    require(actor, ActorKind.RETAILER)
    with ctx.uow() as uow:
        rule = uow.session.scalar(lock(select(StandingBid).where(
            StandingBid.id == rule_id, StandingBid.retailer_id == actor.id, StandingBid.removed_at.is_(None))))
        if rule is None:
            raise NotFound(f"no standing bid {rule_id} of yours")
        rule.removed_at = ctx.now()
        uow.commit()
