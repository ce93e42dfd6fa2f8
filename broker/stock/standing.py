"""Standing bids: a retailer's rules that bid for it from its stock.

A rule says "bid on every order listing of these manufacturers (or of every
manufacturer I deal for) within N km of my store, whose lines are in stock
there; on the lines in stock when not all are, if `partial`". Its bids are
placed when a listing is posted (`place_on_listing`, in the posting's own
transaction) and when a store's stock changes (`place_for_store`), not only at
settlement, and are ordinary bids: on the board as the retailer's, withdrawable,
and told their outcome. They carry the rule's id.

Placing is idempotent and race-safe: a bid is inserted with ON CONFLICT DO
NOTHING on (listing, retailer), so a rule never overrides a bid placed (or
withdrawn) by hand, two placements at once make one bid, and a listing is
locked before its bids are written, as the board does. Stock is known only from
a fresh feed: a store without one places no standing bids (it has said nothing
to bid from).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from broker.accounts.models import DealerAuthorisation, Retailer, Store
from broker.board.models import Bid, BidStatus, Listing, ListingKind, ListingStatus
from broker.context import Context
from broker.geo.distance import bounding_box, distance_km, shown_distance_km
from broker.locks import lock
from broker.orders.models import OrderLine
from broker.stock.models import StandingBid
from broker.stock.reserve import available_for


@dataclasses.dataclass(frozen=True)
class _Rule:
    id: int
    retailer_id: int
    store_id: int | None
    manufacturer_ids: tuple[int, ...]
    max_distance_km: float
    partial: bool


def _rules(session: Session, *, retailer_id: int | None = None, manufacturer_id: int | None = None) -> list[_Rule]:
    stmt = (select(StandingBid).join(Retailer, Retailer.id == StandingBid.retailer_id)
            .where(StandingBid.removed_at.is_(None), Retailer.active.is_(True)).order_by(StandingBid.id))
    if retailer_id is not None:
        stmt = stmt.where(StandingBid.retailer_id == retailer_id)
    if manufacturer_id is not None:
        stmt = stmt.where(StandingBid.retailer_id.in_(select(DealerAuthorisation.retailer_id).where(
            DealerAuthorisation.manufacturer_id == manufacturer_id, DealerAuthorisation.revoked_at.is_(None))))
    rules = [_Rule(r.id, r.retailer_id, r.store_id, tuple(r.manufacturer_ids or ()), r.max_distance_km, r.partial)
             for r in session.scalars(stmt)]
    if manufacturer_id is not None:
        rules = [r for r in rules if not r.manufacturer_ids or manufacturer_id in r.manufacturer_ids]
    return rules


def _dealer_of(session: Session, retailer_id: int) -> set[int]:
    return set(session.scalars(select(DealerAuthorisation.manufacturer_id).where(
        DealerAuthorisation.retailer_id == retailer_id, DealerAuthorisation.revoked_at.is_(None))))


def _stores(session: Session, rule: _Rule) -> list[Store]:
    stmt = select(Store).where(Store.retailer_id == rule.retailer_id, Store.is_open.is_(True)).order_by(Store.id)
    if rule.store_id is not None:
        stmt = stmt.where(Store.id == rule.store_id)
    return list(session.scalars(stmt))


def _insert(session: Session, **values) -> bool:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (insert(Bid.__table__).values(**values)
            .on_conflict_do_nothing(index_elements=["listing_id", "retailer_id"]).returning(Bid.__table__.c.id))
    return session.execute(stmt).first() is not None


def _bid(session: Session, ctx: Context, rule: _Rule, stores: Sequence[Store], listing: Listing,
         lines: Sequence[OrderLine], now: datetime) -> bool:
    """Place the rule's bid on the listing, if a store of its covers it within the
    rule's distance and has its lines (all, or with `partial` some) in stock.
    The nearest such store bids; True if a bid was placed."""
    reach = []
    for store in stores:
        km = distance_km(store.lat, store.lon, listing.lat, listing.lon)
        if km <= store.service_radius_km and shown_distance_km(km) <= rule.max_distance_km:
            reach.append((km, store.id, store))
    reach.sort(key=lambda found: found[:2])
    if not reach or not lines:
        return False
    stock = available_for(session, ctx, [store.id for _, _, store in reach], sorted({l.sku for l in lines}), now=now)
    best = None
    for km, _, store in reach:
        if not any(key[0] == store.id for key in stock):
            continue  # no fresh feed: nothing to bid from
        left = {}
        have = []
        for line in lines:
            count = left.setdefault(line.sku, stock.get((store.id, line.sku), 0))
            if count >= line.quantity:
                left[line.sku] = count - line.quantity
                have.append(line)
        if len(have) == len(lines):
            best = (km, store, None)
            break
        if have and rule.partial and best is None:
            best = (km, store, [{"line_id": l.id, "sku": l.sku, "quantity": l.quantity} for l in have])
    if best is None:
        return False
    km, store, part = best
    return _insert(session, listing_id=listing.id, retailer_id=rule.retailer_id, store_id=store.id,
                   distance_km=shown_distance_km(km), cell_distance_km=km,
                   exact_distance_km=distance_km(store.lat, store.lon, listing.exact_lat, listing.exact_lon),
                   price=None, status=BidStatus.ACTIVE, created_at=now, lines=part, standing_bid_id=rule.id)


def place_on_listing(session: Session, ctx: Context, listing: Listing, now: datetime) -> int:
    """A listing was just posted (caller's transaction, which holds it): the
    standing bids of its manufacturer's dealers that it matches are placed."""
    if listing.kind != ListingKind.ORDER or listing.manufacturer_id is None:
        return 0
    session.flush()
    lines = list(session.scalars(select(OrderLine).where(OrderLine.order_id == listing.order_id)
                                 .order_by(OrderLine.id)))
    placed = 0
    for rule in _rules(session, manufacturer_id=listing.manufacturer_id):
        placed += _bid(session, ctx, rule, _stores(session, rule), listing, lines, now)
    return placed


def place_for_store(ctx: Context, store_id: int) -> int:
    """A store's stock changed: its retailer's standing bids that may bid from
    it are placed on the open listings within their reach. One transaction;
    listings locked in id order."""
    with ctx.uow() as uow:
        session = uow.session
        store = session.get(Store, store_id)
        if store is None or not store.is_open:
            return 0
        rules = [r for r in _rules(session, retailer_id=store.retailer_id) if r.store_id in (None, store.id)]
        if not rules:
            return 0
        dealer_of = _dealer_of(session, store.retailer_id)
        now = ctx.now()
        placed = 0
        for rule in rules:
            makers = sorted(dealer_of & set(rule.manufacturer_ids) if rule.manufacturer_ids else dealer_of)
            if not makers:
                continue
            reach = min(rule.max_distance_km + 0.5, store.service_radius_km)
            min_lat, max_lat, min_lon, max_lon = bounding_box(store.lat, store.lon, reach)
            mine = select(Bid.listing_id).where(Bid.retailer_id == rule.retailer_id)
            ids = list(session.scalars(
                select(Listing.id).where(Listing.status == ListingStatus.OPEN, Listing.kind == ListingKind.ORDER,
                                         Listing.manufacturer_id.in_(makers), Listing.lat.between(min_lat, max_lat),
                                         Listing.lon.between(min_lon, max_lon), Listing.id.not_in(mine))
                .order_by(Listing.id).limit(2000)))
            if not ids:
                continue
            listings = list(session.scalars(lock(select(Listing).where(
                Listing.id.in_(ids), Listing.status == ListingStatus.OPEN).order_by(Listing.id))))
            lines: dict[int, list[OrderLine]] = {}
            for line in session.scalars(select(OrderLine).where(
                    OrderLine.order_id.in_([l.order_id for l in listings])).order_by(OrderLine.id)):
                lines.setdefault(line.order_id, []).append(line)
            stores = _stores(session, rule)
            for listing in listings:
                placed += _bid(session, ctx, rule, stores, listing, lines.get(listing.order_id, []), now)
        uow.commit()
        return placed
