"""The board: what a retailer may bid on, and its bids.

A retailer sees an open listing when the listing's manufacturer has authorised it
and one of its open stores covers the ship-to point. Visibility is decided here,
once, for the board and for bidding alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from broker.accounts.models import DealerAuthorisation, Store
from broker.auth import Actor, ActorKind, require
from broker.board.models import Bid, BidStatus, Listing, ListingKind, ListingStatus
from broker.context import Context
from broker.errors import Conflict, Invalid, NotFound
from broker.geo.distance import bounding_box, distance_km
from broker.orders.models import OrderLine
from broker.pagination import Page, PageRequest
from broker.personal.models import PersonalRequest
from broker.personal.services import notify_offer
from broker.reputation.rules import buyer_score
from broker.reputation.services import buyer_scores
from broker.settlement.schedule import closes_at


@dataclasses.dataclass(frozen=True)
class BoardItem:
    listing: Listing
    distance_km: float
    store_id: int
    closes_at: datetime
    items: list[OrderLine]
    my_bid: Bid | None
    # For a personal request: what is wanted, under its pseudonym, and the buyer's score.
    request: PersonalRequest | None = None
    buyer_score: float | None = None


@dataclasses.dataclass(frozen=True)
class BoardFilter:
    kind: ListingKind | None = None
    max_distance_km: float | None = None


def _open_stores(session: Session, retailer_id: int) -> list[Store]:
    return list(session.scalars(
        select(Store).where(Store.retailer_id == retailer_id, Store.is_open.is_(True)).order_by(Store.id)
    ))


def _authorising_manufacturers(session: Session, retailer_id: int) -> list[int]:
    return list(session.scalars(
        select(DealerAuthorisation.manufacturer_id).where(
            DealerAuthorisation.retailer_id == retailer_id, DealerAuthorisation.revoked_at.is_(None)
        )
    ))


def nearest_covering_store(stores: Sequence[Store], lat: float, lon: float) -> tuple[Store, float] | None:
    best: tuple[Store, float] | None = None
    for store in stores:
        km = distance_km(store.lat, store.lon, lat, lon)
        if km <= store.service_radius_km and (best is None or (km, store.id) < (best[1], best[0].id)):
            best = (store, km)
    return best


def board(ctx: Context, actor: Actor, filters: BoardFilter, page: PageRequest) -> Page[BoardItem]:
    """Open listings the retailer may bid on, nearest first.

    The database narrows the listings to bounding boxes around the retailer's
    stores (an indexed range scan on lat/lon); the exact geodesic check follows.
    """
    require(actor, ActorKind.RETAILER)
    if filters.max_distance_km is not None and filters.max_distance_km <= 0:
        raise Invalid.field("max_distance_km", "must be more than 0")
    with ctx.uow() as uow:
        session = uow.session
        stores = _open_stores(session, actor.id)
        makers = _authorising_manufacturers(session, actor.id)
        if not stores:
            return Page([], 0)
        boxes = []
        for store in stores:
            radius = store.service_radius_km
            if filters.max_distance_km is not None:
                radius = min(radius, filters.max_distance_km)
            min_lat, max_lat, min_lon, max_lon = bounding_box(store.lat, store.lon, radius)
            boxes.append(and_(Listing.lat.between(min_lat, max_lat), Listing.lon.between(min_lon, max_lon)))
        stmt = select(Listing).where(
            Listing.status == ListingStatus.OPEN,
            # A manufacturer's listings go to its dealers; a request naming no
            # catalog product goes to every retailer in range.
            or_(Listing.manufacturer_id.in_(makers), Listing.manufacturer_id.is_(None)),
            or_(*boxes),
        )
        if filters.kind is not None:
            stmt = stmt.where(Listing.kind == filters.kind)
        visible: list[tuple[float, int, Listing, Store]] = []
        for listing in session.scalars(stmt):
            found = nearest_covering_store(stores, listing.lat, listing.lon)
            if found is None:
                continue
            store, km = found
            if filters.max_distance_km is not None and km > filters.max_distance_km:
                continue
            visible.append((km, listing.id, listing, store))
        visible.sort(key=lambda row: (row[0], row[1]))
        window = visible[page.offset:page.offset + page.page_size]
        ids = [row[2].id for row in window]
        bids = {b.listing_id: b for b in session.scalars(
            select(Bid).where(Bid.retailer_id == actor.id, Bid.listing_id.in_(ids), Bid.status == BidStatus.ACTIVE)
        )}
        order_ids = [row[2].order_id for row in window if row[2].order_id is not None]
        lines: dict[int, list[OrderLine]] = {}
        for line in session.scalars(
            select(OrderLine).where(OrderLine.order_id.in_(order_ids)).order_by(OrderLine.id)
        ):
            lines.setdefault(line.order_id, []).append(line)
        requests = {r.id: r for r in session.scalars(select(PersonalRequest).where(
            PersonalRequest.id.in_([row[2].request_id for row in window if row[2].request_id is not None])))}
        scores = buyer_scores(session, {r.buyer_key for r in requests.values() if r.buyer_key})
        settings = ctx.settings
        items = [
            BoardItem(
                listing=listing,
                distance_km=km,
                store_id=store.id,
                closes_at=closes_at(listing.listed_at, cron=settings.settle_cron, timezone=settings.timezone,
                                    min_board_hours=settings.min_board_hours),
                items=lines.get(listing.order_id, []),
                my_bid=bids.get(listing.id),
                request=requests.get(listing.request_id),
                buyer_score=_buyer_score(requests.get(listing.request_id), scores),
            )
            for km, _, listing, store in window
        ]
        return Page(items, len(visible))


def _buyer_score(request: PersonalRequest | None, scores: dict[str, float]) -> float | None:
    if request is None:
        return None
    # A buyer with no record (or no contact to keep one by) has the prior score.
    return scores.get(request.buyer_key, buyer_score(0, 0, 0)) if request.buyer_key else buyer_score(0, 0, 0)


def _visible_listing(session: Session, actor: Actor, listing_id: int, *, lock: bool) -> Listing:
    stmt = select(Listing).where(Listing.id == listing_id)
    if lock:
        stmt = stmt.with_for_update()
    listing = session.scalar(stmt)
    if listing is None or (
        listing.manufacturer_id is not None
        and listing.manufacturer_id not in _authorising_manufacturers(session, actor.id)
    ):
        # Not authorised looks exactly like not there: a retailer learns nothing
        # about another manufacturer's orders.
        raise NotFound(f"no listing {listing_id} on your board")
    return listing


@dataclasses.dataclass(frozen=True)
class PlaceBid:
    listing_id: int
    store_id: int | None = None
    price: int | None = None


def place_bid(ctx: Context, actor: Actor, cmd: PlaceBid) -> tuple[Bid, bool]:
    """Bid on a listing from the nearest covering store, or the one named.

    Returns the bid and whether it is new; bidding again on a listing the retailer
    already bid on returns the same bid (safe to retry).

    :raise 404: not on this retailer's board. :raise 409: the listing is closed.
    :raise 422: a price on an order listing; a store that is not the caller's, is
        closed, or does not cover the listing.
    """
    require(actor, ActorKind.RETAILER)
    with ctx.uow() as uow:
        session = uow.session
        listing = _visible_listing(session, actor, cmd.listing_id, lock=True)
        stores = _open_stores(session, actor.id)
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
        if listing.kind == ListingKind.ORDER and cmd.price is not None:
            raise Invalid.field("price", "an order is bid at its fixed price; send {} without a price")
        if listing.kind == ListingKind.REQUEST:
            _check_offer(cmd.price, listing.price)
        store, km = found
        bid = session.scalar(select(Bid).where(Bid.listing_id == listing.id, Bid.retailer_id == actor.id))
        now = ctx.now()
        if bid is not None and bid.status == BidStatus.ACTIVE:
            changed = False
            if cmd.store_id is not None and cmd.store_id != bid.store_id:
                bid.store_id, bid.distance_km, changed = store.id, km, True
            if listing.kind == ListingKind.REQUEST and cmd.price != bid.price:
                if cmd.price > bid.price:
                    raise Invalid.field("price", f"an offer can only be improved: yours is {bid.price}")
                # The time of an offer is when its price was made: an earlier
                # offer at the same price keeps its place.
                bid.price, bid.created_at, changed = cmd.price, now, True
            if changed:
                if listing.kind == ListingKind.REQUEST:
                    notify_offer(session, ctx, listing, bid, now)
                uow.commit()
            return bid, False
        if bid is None:
            bid = Bid(listing_id=listing.id, retailer_id=actor.id)
            session.add(bid)
        bid.store_id, bid.distance_km, bid.price = store.id, km, cmd.price
        bid.status, bid.created_at, bid.withdrawn_at = BidStatus.ACTIVE, now, None
        if listing.kind == ListingKind.REQUEST:
            session.flush()
            notify_offer(session, ctx, listing, bid, now)
        uow.commit()
        return bid, True


def _check_offer(price: int | None, ceiling: int) -> None:
    if price is None:
        raise Invalid.field("price", "an offer on a personal request needs a price")
    if isinstance(price, bool) or not isinstance(price, int) or price < 1:
        raise Invalid.field("price", "must be a whole number of minor units, at least 1")
    if price > ceiling:
        raise Invalid.field("price", f"must be at most the request's ceiling, {ceiling}")





def withdraw_bid(ctx: Context, actor: Actor, listing_id: int) -> None:
    """:raise 404: no active bid of the caller's here. :raise 409: the listing is closed."""
    require(actor, ActorKind.RETAILER)
    with ctx.uow() as uow:
        session = uow.session
        listing = _visible_listing(session, actor, listing_id, lock=True)
        bid = session.scalar(select(Bid).where(
            Bid.listing_id == listing.id, Bid.retailer_id == actor.id, Bid.status == BidStatus.ACTIVE
        ))
        if bid is None:
            raise NotFound(f"you have no bid on listing {listing_id}")
        if listing.status != ListingStatus.OPEN:
            raise Conflict(f"listing {listing_id} is closed; its bids can no longer be withdrawn")
        bid.status = BidStatus.WITHDRAWN
        bid.withdrawn_at = ctx.now()
        uow.commit()
