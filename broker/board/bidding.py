"""Placing a bid: the hot path of the API, in SQLAlchemy Core.

A retailer's integration posts bids by the thousand, so this path loads no ORM
object: each statement is built once per process (lazily, on first use: nothing
here touches a database at import time) with bound parameters, and runs on the
unit of work's connection. In the common case a bid costs three statements in
its transaction: the listing, locked, read with the retailer's open stores; the
INSERT ... ON CONFLICT DO NOTHING RETURNING of the bid; the COMMIT.

The rules are the board's (`broker.board.services` explains them): a listing
the retailer may not see looks like no listing; the bid comes from the nearest
open store that covers the listing's cell, or the one named; distances shown
are whole kilometres from the cell (`shown_distance_km`); one bid per retailer
and listing, so a repeat, or two at once, answers with the same bid.

Bids race: every write to a listing's bids locks the listing first, and the
retailer's bid is read or written only after that lock (a bid read in the same
statement as the lock would come from before the wait).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, and_, bindparam, exists, or_, select, text, update

from broker.accounts.models import DealerAuthorisation, Store
from broker.auth import Actor, ActorKind, require
from broker.board.models import Bid, BidStatus, Listing, ListingKind, ListingStatus
from broker.context import Context
from broker.errors import Conflict, Invalid, NotFound
from broker.geo.distance import distance_km, shown_distance_km
from broker.orders.models import OrderLine
from broker.personal.services import notify_offer


@dataclasses.dataclass(frozen=True)
class BidItem:
    """A line of an order a bid covers, named by its SKU or its line id; a
    quantity of None: all of the line (the portal's per-line checkboxes)."""

    quantity: int | None
    sku: str | None = None
    line_id: int | None = None


@dataclasses.dataclass(frozen=True)
class PlaceBid:
    listing_id: int
    store_id: int | None = None
    price: int | None = None
    # On a request: the parts of `price` that are shipping and tax.
    shipping: int = 0
    tax: int = 0
    # The lines bid on; None: the whole order.
    items: tuple[BidItem, ...] | None = None
    # Placed by this standing bid of the retailer's (broker.stock.standing), not by hand.
    standing_bid_id: int | None = None


@dataclasses.dataclass(frozen=True)
class PlacedBid:
    """A bid as stored (the `bids` row): what `place_bid` answers with."""

    id: int
    listing_id: int
    retailer_id: int
    store_id: int
    distance_km: float
    cell_distance_km: float
    exact_distance_km: float
    price: int | None
    shipping: int
    tax: int
    status: str
    created_at: datetime
    withdrawn_at: datetime | None
    lines: list[dict[str, Any]] | None
    standing_bid_id: int | None


_BID_COLUMNS = tuple(field.name for field in dataclasses.fields(PlacedBid))


def nearest_covering_store(stores: Sequence[Any], lat: float, lon: float) -> tuple[Any, float] | None:
    """The store nearest to a listing's position (`Listing.lat/lon`, its cell's
    centre) among those whose radius covers it, with that distance to the metre;
    ties go to the lower store id. A store is anything with `id`, `lat`, `lon`
    and `service_radius_km`."""
    best: tuple[Any, float] | None = None
    for store in stores:
        km = distance_km(store.lat, store.lon, lat, lon)
        if km <= store.service_radius_km and (best is None or (km, store.id) < (best[1], best[0].id)):
            best = (store, km)
    return best


def bid_lines(lines: Sequence[Any], items: Sequence[BidItem] | None) -> list[dict] | None:
    """The bid's part of the order as stored ([{"line_id", "sku", "quantity"}],
    in line order), or None for the whole of it (no items, or items naming every
    line in full). A line is anything with `id`, `sku` and `quantity`.

    :raise 422: every item that is wrong, at once: a line not in the order (by
        SKU or id), a SKU on several lines (name the line_id), a line named twice,
        a quantity under 1 or over the quantity ordered.
    """
    if items is None:
        return None
    if not items:
        raise Invalid.field("items", "name at least one line, or leave items out to bid on the whole order")
    by_id = {line.id: line for line in lines}
    by_sku: dict[str, list[Any]] = {}
    for line in lines:
        by_sku.setdefault(line.sku, []).append(line)
    errors: dict[str, list[str]] = {}
    chosen: dict[int, int] = {}
    for n, item in enumerate(items):
        where = f"items.{n}"
        line = None
        if item.line_id is not None:
            line = by_id.get(item.line_id)
            if line is None:
                errors.setdefault(f"{where}.line_id", []).append(f"line {item.line_id} is not in this order")
                continue
            if item.sku is not None and item.sku != line.sku:
                errors.setdefault(f"{where}.sku", []).append(f"line {item.line_id} is {line.sku!r}, not {item.sku!r}")
                continue
        elif item.sku is not None:
            found = by_sku.get(item.sku, [])
            if not found:
                errors.setdefault(f"{where}.sku", []).append(f"{item.sku!r} is not in this order")
                continue
            if len(found) > 1:
                errors.setdefault(f"{where}.sku", []).append(f"{item.sku!r} is on several lines: name the line_id")
                continue
            line = found[0]
        else:
            errors.setdefault(where, []).append("name the line by sku or line_id")
            continue
        if line.id in chosen:
            errors.setdefault(where, []).append(f"line {line.id} ({line.sku}) is named twice")
            continue
        if item.quantity is None:
            chosen[line.id] = line.quantity
            continue
        if isinstance(item.quantity, bool) or not isinstance(item.quantity, int) or \
                not 1 <= item.quantity <= line.quantity:
            errors.setdefault(f"{where}.quantity", []).append(f"must be from 1 to {line.quantity}, the quantity ordered")
            continue
        chosen[line.id] = item.quantity
    if errors:
        raise Invalid("the bid's items are not lines of this order: " +
                      "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(errors.items())), errors=errors)
    if all(chosen.get(line.id) == line.quantity for line in lines):
        return None
    return [{"line_id": line.id, "sku": line.sku, "quantity": chosen[line.id]} for line in lines if line.id in chosen]


def check_offer(price: int | None, ceiling: int, shipping: int = 0, tax: int = 0) -> None:
    """An offer is what the customer pays in all: at most the ceiling, and its
    shipping and tax are parts of it, leaving something for the goods."""
    if price is None:
        raise Invalid.field("price", "an offer on a personal request needs a price")
    if isinstance(price, bool) or not isinstance(price, int) or price < 1:
        raise Invalid.field("price", "must be a whole number of minor units, at least 1")
    if price > ceiling:
        raise Invalid.field("price", f"must be at most the request's ceiling, {ceiling}")
    errors = {}
    for name, part in (("shipping", shipping), ("tax", tax)):
        if isinstance(part, bool) or not isinstance(part, int) or part < 0:
            errors[name] = ["must be a whole number of minor units, 0 or more"]
    if not errors and shipping + tax >= price:
        errors["price"] = [f"the shipping and tax ({shipping + tax}) are parts of the price: it must be more"]
    if errors:
        raise Invalid("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()), errors=errors)


# --- the statements, built once ------------------------------------------------------

@functools.cache
def _listing_and_stores():
    """The listing, locked, whether its manufacturer lets the retailer see it,
    and the retailer's open stores: one row per store (one with no store when it
    has none open). Outer-joined, so a listing is found even then; locked OF the
    listing only (no one's store is locked by a bid)."""
    listings, stores, dealers = Listing.__table__, Store.__table__, DealerAuthorisation.__table__
    retailer_id = bindparam("retailer_id")
    authorised = or_(listings.c.manufacturer_id.is_(None), exists().where(
        dealers.c.manufacturer_id == listings.c.manufacturer_id,
        dealers.c.retailer_id == retailer_id, dealers.c.revoked_at.is_(None)))
    return (
        select(listings.c.id, listings.c.kind, listings.c.status, listings.c.lat, listings.c.lon,
               listings.c.exact_lat, listings.c.exact_lon, listings.c.price, listings.c.currency,
               listings.c.order_id, listings.c.request_id, authorised.label("authorised"),
               stores.c.id.label("store_id"), stores.c.lat.label("store_lat"), stores.c.lon.label("store_lon"),
               stores.c.service_radius_km)
        .select_from(listings.outerjoin(stores, and_(stores.c.retailer_id == retailer_id,
                                                     stores.c.is_open.is_(True))))
        .where(listings.c.id == bindparam("listing_id"))
        .order_by(stores.c.id)
        .with_for_update(of=listings)
    )


@functools.cache
def _order_lines():
    lines = OrderLine.__table__
    return (select(lines.c.id, lines.c.sku, lines.c.quantity)
            .where(lines.c.order_id == bindparam("order_id")).order_by(lines.c.id))


@functools.cache
def _insert_bid():
    """INSERT ... ON CONFLICT DO NOTHING RETURNING its id: two identical bids at
    once make one row and two answers, never a unique violation; no row back
    means the retailer had bid already.

    Textual, in the syntax PostgreSQL and SQLite share, with the columns' types
    on its parameters and results: SQLAlchemy compiles the dialects' own
    `insert().on_conflict_do_nothing()` afresh on every execution (it has no
    cache key), which cost more than the rest of the statement's work. It
    returns the id alone: the rest of the row is what was sent (the time as the
    column gives it back, in UTC)."""
    bids = Bid.__table__
    return (text("INSERT INTO bids (listing_id, retailer_id, store_id, distance_km, cell_distance_km, "
                 "exact_distance_km, price, shipping, tax, status, created_at, withdrawn_at, lines, standing_bid_id) "
                 "VALUES (:listing_id, :retailer_id, :store_id, :distance_km, :cell_distance_km, :exact_distance_km, "
                 ":price, :shipping, :tax, :status, :created_at, :withdrawn_at, :lines, :standing_bid_id) "
                 "ON CONFLICT (listing_id, retailer_id) DO NOTHING RETURNING id")
            .bindparams(*(bindparam(name, type_=bids.c[name].type) for name in _BID_COLUMNS if name != "id"))
            .columns(bids.c.id))


@functools.cache
def _my_bid():
    bids = Bid.__table__
    return select(*(bids.c[name] for name in _BID_COLUMNS)).where(
        bids.c.listing_id == bindparam("listing_id"), bids.c.retailer_id == bindparam("retailer_id"))


@functools.cache
def _update_bid():
    bids = Bid.__table__
    return update(bids).where(bids.c.id == bindparam("bid_id"))


class _Store:
    """A store as `nearest_covering_store` reads it, from a row of `_listing_and_stores`."""

    __slots__ = ("id", "lat", "lon", "service_radius_km")

    def __init__(self, row):
        self.id, self.lat, self.lon, self.service_radius_km = (row.store_id, row.store_lat, row.store_lon,
                                                               row.service_radius_km)


def place_bid(ctx: Context, actor: Actor, cmd: PlaceBid) -> tuple[PlacedBid, bool]:
    """Bid on a listing from the nearest covering store, or the one named.

    Returns the bid and whether it is new; bidding again on a listing the retailer
    already bid on returns the same bid (safe to retry, and to send twice at once).
    Its `distance_km` is what the board shows: from the listing's cell, in whole
    kilometres.

    :raise 404: not on this retailer's board. :raise 409: the listing is closed.
    :raise 422: a price on an order listing; a store that is not the caller's, is
        closed, or does not cover the listing.
    """
    require(actor, ActorKind.RETAILER)
    with ctx.uow() as uow:
        conn = uow.session.connection()
        rows = conn.execute(_listing_and_stores(), {"listing_id": cmd.listing_id, "retailer_id": actor.id}).all()
        if not rows or not rows[0].authorised:
            # Not authorised looks exactly like not there: a retailer learns nothing
            # about another manufacturer's orders.
            raise NotFound(f"no listing {cmd.listing_id} on your board")
        listing = rows[0]
        stores = [_Store(row) for row in rows if row.store_id is not None]
        if cmd.store_id is not None:
            named = [s for s in stores if s.id == cmd.store_id]
            if not named:
                raise Invalid.field("store_id", f"store {cmd.store_id} is not one of your open stores")
            found = nearest_covering_store(named, listing.lat, listing.lon)
            if found is None:
                raise Invalid.field("store_id", f"store {cmd.store_id} does not cover this listing's area")
        else:
            found = nearest_covering_store(stores, listing.lat, listing.lon)
            if found is None:
                raise NotFound(f"no listing {cmd.listing_id} on your board")
        if listing.status != ListingStatus.OPEN:
            raise Conflict(f"listing {listing.id} is closed for bids")
        is_request = listing.kind == ListingKind.REQUEST
        if not is_request and cmd.price is not None:
            raise Invalid.field("price", "an order is bid at its fixed price; send {} without a price")
        if not is_request and (cmd.shipping or cmd.tax):
            raise Invalid.field("shipping", "an order's shipping and tax are the customer's checkout's: send {}")
        lines = None
        if is_request:
            check_offer(cmd.price, listing.price, cmd.shipping, cmd.tax)
            if cmd.items is not None:
                raise Invalid.field("items", "a personal request is offered on whole: send a price, no items")
        elif cmd.items is not None:
            lines = bid_lines(conn.execute(_order_lines(), {"order_id": listing.order_id}).all(), cmd.items)
        store, cell_km = found
        distances = dict(distance_km=shown_distance_km(cell_km), cell_distance_km=cell_km,
                         exact_distance_km=distance_km(store.lat, store.lon, listing.exact_lat, listing.exact_lon))
        now = ctx.now().astimezone(timezone.utc)
        values = dict(listing_id=listing.id, retailer_id=actor.id, store_id=store.id, price=cmd.price,
                      shipping=cmd.shipping, tax=cmd.tax, status=BidStatus.ACTIVE.value, created_at=now,
                      withdrawn_at=None, lines=lines, standing_bid_id=cmd.standing_bid_id, **distances)
        inserted = conn.execute(_insert_bid(), values).scalar()
        if inserted is not None:
            bid = PlacedBid(id=inserted, **values)
            if is_request:
                notify_offer(uow.session, ctx, listing, bid, now)
            uow.commit()
            return bid, True
        bid = PlacedBid(*conn.execute(_my_bid(), {"listing_id": listing.id, "retailer_id": actor.id}).one())
        if bid.status == BidStatus.ACTIVE:
            changes: dict[str, Any] = {}
            if cmd.store_id is not None and cmd.store_id != bid.store_id:
                changes.update(store_id=store.id, **distances)
            if not is_request and lines != bid.lines:
                # A bid names another part of the order (or all of it): it keeps its
                # time, as a store change does; it is the same offer, resized.
                changes["lines"] = lines
            if is_request and cmd.price != bid.price:
                if cmd.price > bid.price:
                    raise Invalid.field("price", f"an offer can only be improved: yours is {bid.price}")
                # The time of an offer is when its price was made: an earlier
                # offer at the same price keeps its place.
                changes.update(price=cmd.price, created_at=now)
            if is_request and (cmd.shipping, cmd.tax) != (bid.shipping, bid.tax):
                changes.update(shipping=cmd.shipping, tax=cmd.tax)
            if changes:
                bid = _write(conn, bid, changes)
                if is_request:
                    notify_offer(uow.session, ctx, listing, bid, now)
                uow.commit()
            return bid, False
        # Withdrawn before: bid again, as new.
        bid = _write(conn, bid, dict(store_id=store.id, price=cmd.price, shipping=cmd.shipping, tax=cmd.tax,
                                     lines=lines, standing_bid_id=cmd.standing_bid_id, status=BidStatus.ACTIVE.value,
                                     created_at=now, withdrawn_at=None, **distances))
        if is_request:
            notify_offer(uow.session, ctx, listing, bid, now)
        uow.commit()
        return bid, True


def _write(conn: Connection, bid: PlacedBid, changes: dict[str, Any]) -> PlacedBid:
    conn.execute(_update_bid().values({name: bindparam(f"new_{name}") for name in changes}),
                 {"bid_id": bid.id, **{f"new_{name}": value for name, value in changes.items()}})
    return dataclasses.replace(bid, **changes)
