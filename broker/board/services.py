"""The board: what a retailer may bid on, and its bids.

A retailer sees an open listing when the listing's manufacturer has authorised it
and one of its open stores covers the listing: the listing's position (the
centre of the ship-to point's cell, `Listing.lat/lon`) is inside the store's
service radius. Visibility is decided here, once, for the board and for
bidding alike, and settlement judges a bid's coverage by the same rule.

Before the award a retailer learns nothing of where the customer is that the
cell does not already say: every distance it is shown is measured from the
cell's centre and rounded to whole kilometres (`shown_distance_km`), and the
board is sorted by that shown distance, then by listing id. Only a bid's
`exact_distance_km`, which no retailer is shown, is measured to the exact point,
for settlement to rank by.

Bids race: the same retailer may bid twice at once, or bid and withdraw at
once. Every write locks the listing first and reads the bid after the lock, and
a new bid is inserted with ON CONFLICT DO NOTHING, so a race between
well-formed requests gets an answer, never a 500.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import String, and_, case, cast, exists, false, func, literal, or_, select, union_all, update
from sqlalchemy.orm import Session

from broker.accounts.models import DealerAuthorisation, Store
from broker.auth import Actor, ActorKind, require
# Placing a bid is its own module (Core statements, the API's hot path); its
# names are the board's, so callers keep `services.place_bid` and the rest.
from broker.board.bidding import (BidItem, PlaceBid, PlacedBid, bid_lines,  # noqa: F401
                                  nearest_covering_store, place_bid)
from broker.board.models import Bid, BidStatus, Listing, ListingKind, ListingStatus
from broker.board.reach import Reach, merge_boxes
from broker.context import Context
from broker.errors import Conflict, Invalid, NotFound
from broker.geo.distance import bounding_box, distance_km, shown_distance_km, shown_upper_km
from broker.orders.models import Delivery, Order, OrderLine
from broker.pagination import Page, PageRequest
from broker.personal.models import PersonalRequest
from broker.reputation.rules import buyer_score
from broker.reputation.services import buyer_scores
from broker.settlement.schedule import closing_times, request_closes_at


@dataclasses.dataclass(frozen=True)
class BoardItem:
    listing: Listing
    # From the covering store to the listing's cell, as shown: whole kilometres.
    distance_km: float
    store_id: int
    closes_at: datetime
    items: list[OrderLine]
    my_bid: Bid | None
    # For a personal request: what is wanted, under its pseudonym, and the buyer's score.
    request: PersonalRequest | None = None
    buyer_score: float | None = None
    # An order's shipping method (its name; None: pickup, or the store has none)
    # and how long its winner has to ship it.
    shipping_method: str | None = None
    ship_within_hours: float | None = None
    # For an order: `ship`, or `pickup` (the customer collects it from the winning store).
    delivery: Delivery | None = None


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


def _reach_limit(max_km: float | None) -> float | None:
    """How far from a store, to the metre, a listing may be for its shown
    distance to pass the filter `max_km`: shown distances are whole kilometres,
    so one shown as N km is under N + 0.5 km away. None: no filter; 0: nothing
    passes (no distance is shown under 1 km)."""
    if max_km is None or math.isinf(max_km):
        return None
    whole = math.floor(max_km)
    return shown_upper_km(whole) if whole >= 1 else 0.0


def board(ctx: Context, actor: Actor, filters: BoardFilter, page: PageRequest) -> Page[BoardItem]:
    """Open listings the retailer may bid on, nearest first (by the distance shown,
    then by id), each with the distance from its nearest covering store.

    Deciding every listing in range with a geodesic is too slow for a metro
    (10^5 listings), so: the total is counted in the database with an
    approximate distance whose error is bounded (`broker.board.reach`), and only
    listings within that error of a store's edge get the exact check here; the
    page is the nearest ones, found in a box that grows until it holds the page.
    Both read only an index on (status, lat, lon) with the filtered columns.
    """
    require(actor, ActorKind.RETAILER)
    if filters.max_distance_km is not None and not filters.max_distance_km > 0:
        raise Invalid.field("max_distance_km", "must be more than 0")
    limit = _reach_limit(filters.max_distance_km)
    with ctx.uow() as uow:
        session = uow.session
        stores = _open_stores(session, actor.id)
        if not stores or limit == 0:
            return Page([], 0)
        makers = _authorising_manufacturers(session, actor.id)
        reaches = [Reach.around(s.lat, s.lon, s.service_radius_km if limit is None
                                else min(s.service_radius_km, limit)) for s in stores]
        conditions = [
            Listing.status == ListingStatus.OPEN,
            # A manufacturer's listings go to its dealers; a request naming no
            # catalog product goes to every retailer in range.
            or_(Listing.manufacturer_id.in_(makers), Listing.manufacturer_id.is_(None)),
        ]
        if filters.kind is not None:
            conditions.append(Listing.kind == filters.kind)
        total, exact = _count_visible(session, stores, reaches, conditions, filters.max_distance_km,
                                      ctx.settings.board_count_limit)
        need = page.offset + page.page_size
        # Past the count's limit the real total is unknown: guessing it too low
        # would fetch a box far bigger than the page needs, guessing high costs
        # at most a doubling or two of a small box.
        expected = total if exact else total * 16
        nearest = _nearest_visible(session, stores, reaches, conditions, filters.max_distance_km, need,
                                   expected) if total else []
        window = nearest[page.offset:need]
        ids = [listing_id for _, listing_id, _ in window]
        listings = {row.id: row for row in session.scalars(select(Listing).where(Listing.id.in_(ids)))}
        window = [(km, listings[listing_id], store) for km, listing_id, store in window]
        bids = {b.listing_id: b for b in session.scalars(
            select(Bid).where(Bid.retailer_id == actor.id, Bid.listing_id.in_(ids), Bid.status == BidStatus.ACTIVE)
        )} if ids else {}
        order_ids = [listing.order_id for _, listing, _ in window if listing.order_id is not None]
        lines: dict[int, list[OrderLine]] = {}
        if order_ids:
            for line in session.scalars(
                select(OrderLine).where(OrderLine.order_id.in_(order_ids)).order_by(OrderLine.id)
            ):
                lines.setdefault(line.order_id, []).append(line)
        shipping = {row.id: row for row in session.execute(
            select(Order.id, Order.delivery, Order.shipping_method_name, Order.ship_within_hours)
            .where(Order.id.in_(order_ids)))} if order_ids else {}
        request_ids = [listing.request_id for _, listing, _ in window if listing.request_id is not None]
        requests = {r.id: r for r in session.scalars(select(PersonalRequest).where(
            PersonalRequest.id.in_(request_ids)))} if request_ids else {}
        scores = buyer_scores(session, {r.buyer_key for r in requests.values() if r.buyer_key})
        settings = ctx.settings
        closing = closing_times((listing.listed_at for _, listing, _ in window), cron=settings.settle_cron,
                                timezone=settings.timezone, min_board_hours=settings.min_board_hours)
        items = [
            BoardItem(
                listing=listing,
                distance_km=shown_distance_km(km),
                store_id=store.id,
                closes_at=closing[listing.listed_at] if listing.request_id is None else request_closes_at(
                    closing[listing.listed_at], requests[listing.request_id].expires_at),
                items=lines.get(listing.order_id, []),
                my_bid=bids.get(listing.id),
                request=requests.get(listing.request_id),
                buyer_score=_buyer_score(requests.get(listing.request_id), scores),
                **_shipping(shipping.get(listing.order_id), settings),
                delivery=shipping[listing.order_id].delivery if listing.order_id in shipping else None,
            )
            for km, listing, store in window
        ]
        return Page(items, total, exact)


def _shipping(row, settings) -> dict:
    if row is None:
        return {}
    if row.delivery == Delivery.PICKUP:
        return {"ship_within_hours": settings.pickup_within_hours}
    return {"shipping_method": row.shipping_method_name,
            "ship_within_hours": row.ship_within_hours or settings.ship_within_hours}


def _approx_km2(reach: Reach):
    """The squared approximate distance from the store, as SQL: products and sums only."""
    u = Listing.lat - reach.lat0
    dy = u * (reach.m0 + reach.m1 * u)
    dx = (Listing.lon - reach.lon0) * (reach.q0 + u * (reach.q1 + reach.q2 * u))
    return dx * dx + dy * dy


def _in_box(box: tuple[float, float, float, float]):
    min_lat, max_lat, min_lon, max_lon = box
    return and_(Listing.lat.between(min_lat, max_lat), Listing.lon.between(min_lon, max_lon))


def _verdicts(reaches: Sequence[Reach]):
    """(sure, maybe) as SQL: a listing is surely in some reach, or maybe (near an
    edge, for the geodesic to decide), or neither."""
    rectangles, surely, maybe = [], [], []
    for reach in reaches:
        if reach.margin_km is None:
            maybe.append(_in_box(reach.box))
            continue
        inner = reach.radius_km - reach.margin_km
        if inner > 0:
            rectangles.extend(_in_box(rectangle) for rectangle in reach.inner_rectangles())
            surely.append(_approx_km2(reach) <= inner * inner)
        outer = reach.radius_km + reach.margin_km
        maybe.append(_approx_km2(reach) <= outer * outer)
    # The rectangles first: most listings are in one, and need no arithmetic.
    return (or_(*rectangles, *surely) if surely else false()), or_(*maybe)


# A box holding at most this many listings has them read and decided here rather
# than in the database.
DECIDED_HERE = 500
_SURE, _MAYBE = "sure", "maybe"


def _holds(outer: tuple[float, float, float, float], inner: tuple[float, float, float, float]) -> bool:
    return outer[0] <= inner[0] and inner[1] <= outer[1] and outer[2] <= inner[2] and inner[3] <= outer[3]


def _verdict(reaches: Sequence[tuple[Reach, list]], lat: float, lon: float) -> str | None:
    """`_verdicts` for one point, in Python: sure, maybe (for the geodesic), or
    None. `reaches`: each with its inner rectangles."""
    point, maybe = (lat, lat, lon, lon), False
    for reach, rectangles in reaches:
        if reach.margin_km is None:
            maybe = maybe or _holds(reach.box, point)
            continue
        if any(_holds(rectangle, point) for rectangle in rectangles):
            return _SURE
        km = reach.approx_km(lat, lon)
        if km <= reach.radius_km - reach.margin_km:
            return _SURE
        maybe = maybe or km <= reach.radius_km + reach.margin_km
    return _MAYBE if maybe else None


def _count_visible(session: Session, stores: Sequence[Store], reaches: Sequence[Reach], conditions,
                   max_km: float | None, limit: int) -> tuple[int, bool]:
    """How many listings the stores cover, and whether that is exact: past
    `limit` (when not 0) the count stops, and says "at least `limit`".

    A metro's board holds 10^5 listings, and counting them all was most of the
    board's time, for a figure nobody pages to the end of. So first the
    listings in a rectangle surely inside one store's reach are counted, up to
    `limit`: a plain index range scan, no arithmetic. Only a board where that
    stops short is counted exactly: the database decides all but the listings
    near an edge, with one statement per group of overlapping boxes (one index
    range scan each), and lists those maybes for the geodesic here. A box
    holding at most `DECIDED_HERE` listings has them read and decided here, by
    the same bounds: the statement for a chain's fifty stores took longer to
    build than its answer (about 0.15 s on SQLite, for a board of two listings).
    """
    if limit:
        # The widest reaches first; a few at most, since each try scans up to `limit`.
        for reach in sorted(reaches, key=lambda r: -r.radius_km)[:3]:
            for rectangle in reach.inner_rectangles()[:1]:
                sure_ones = select(literal(1)).where(*conditions, _in_box(rectangle)).limit(limit)
                if session.scalar(select(func.count()).select_from(sure_ones.subquery())) >= limit:
                    return limit, False
    total, maybes = 0, []
    for box in merge_boxes([reach.box for reach in reaches]):
        # The merged boxes are disjoint, so a listing in this one can only be in
        # the reaches whose boxes it holds.
        here = [reach for reach in reaches if _holds(box, reach.box)]
        in_box = select(Listing.id, Listing.lat, Listing.lon).where(*conditions, _in_box(box))
        few = select(func.count()).select_from(in_box.with_only_columns(literal(1)).limit(DECIDED_HERE + 1)
                                               .subquery())
        if session.scalar(few) <= DECIDED_HERE:
            # A few listings are decided here, by the same bounds: for a chain's
            # many stores the verdict's SQL took longer to build than this.
            rectangles = [(reach, reach.inner_rectangles()) for reach in here]
            for row in session.execute(in_box):
                verdict = _verdict(rectangles, row.lat, row.lon)
                if verdict == _SURE:
                    total += 1
                elif verdict == _MAYBE:
                    maybes.append(row.id)
            continue
        sure, maybe = _verdicts(here)
        # One aggregate, so that each listing's verdict is worked out once: an empty
        # string for each sure one, the id of each maybe ("",,,"17",,...), NULL otherwise.
        verdict = case((sure, ""), (maybe, cast(Listing.id, String)))
        found = session.scalar(select(func.aggregate_strings(verdict, ",")).where(*conditions, _in_box(box)))
        if found is not None:
            ids = found.replace(",", " ").split()
            total += found.count(",") + 1 - len(ids)
            maybes.extend(map(int, ids))
    for chunk in range(0, len(maybes), 5000):
        for row in session.execute(select(Listing.id, Listing.lat, Listing.lon)
                                   .where(Listing.id.in_(maybes[chunk:chunk + 5000]))):
            if _covering(stores, reaches, row.lat, row.lon, max_km) is not None:
                total += 1
    return total, True


def _nearest_visible(session: Session, stores: Sequence[Store], reaches: Sequence[Reach], conditions,
                     max_km: float | None, need: int, total: int) -> list[tuple[float, int, Store]]:
    """The `need` first visible listings as (km, listing id, store), in board
    order: by the distance shown (whole kilometres), then by listing id.

    Every visible listing within `rho` km of its store lies in the boxes of
    radius `rho` around the stores. Once those hold `need` of them, and `rho`
    reaches past every distance that shows as the last one's, no listing left
    outside can come before it, and the first `need` are exact. The first `rho`
    expects about twice the page if listings were spread evenly over the reach;
    it doubles until enough.
    """
    widest = max(reach.radius_km for reach in reaches)
    rho = min(widest, max(0.5, widest * math.sqrt(2 * need / total)))
    while True:
        boxes = [bounding_box(s.lat, s.lon, min(rho, reach.radius_km)) for s, reach in zip(stores, reaches)]
        # One SELECT per disjoint box, so that each is an index-only range scan
        # (an OR of boxes makes PostgreSQL fetch every row from the table).
        rows = session.execute(union_all(*(select(Listing.id, Listing.lat, Listing.lon).where(*conditions, _in_box(box))
                                           for box in merge_boxes(boxes)))).all()
        # Exact distances in order of their lower bounds, only until the page is settled.
        bounded = []
        for row in rows:
            low = min((max(0.0, reach.approx_km(row.lat, row.lon) - reach.margin_km)
                       if reach.margin_km is not None else 0.0) for reach in reaches)
            if low <= rho:
                bounded.append((low, row.id, row.lat, row.lon))
        bounded.sort()
        found: list[tuple[float, int, Store]] = []
        for low, listing_id, lat, lon in bounded:
            if len(found) >= need:
                found.sort(key=_board_order)
                del found[need:]
                # Nothing this far off shows as near as the last one kept.
                if low >= shown_upper_km(shown_distance_km(found[-1][0])):
                    break
            hit = _covering(stores, reaches, lat, lon, max_km)
            if hit is not None and hit[1] <= rho:
                found.append((hit[1], listing_id, hit[0]))
        found.sort(key=_board_order)
        if rho >= widest:
            return found[:need]
        if len(found) >= need:
            reach = shown_upper_km(shown_distance_km(found[need - 1][0]))
            if reach <= rho:
                return found[:need]
            rho = min(widest, max(reach, rho * 2))
        else:
            rho = min(widest, rho * 2)


def _board_order(found: tuple[float, int, Store]) -> tuple[float, int]:
    """The board's order: the distance shown, then the listing id. Not the
    distance to the metre: within a shown kilometre that would rank listings by
    something no retailer is shown."""
    return shown_distance_km(found[0]), found[1]


def _covering(stores: Sequence[Store], reaches: Sequence[Reach], lat: float, lon: float,
              max_km: float | None) -> tuple[Store, float] | None:
    """`nearest_covering_store`, then the filter on the distance shown: the
    board's verdict on one listing.

    The same answer with fewer geodesics: a store whose lower bound is past its
    radius cannot cover the listing, nor be nearer than a store already found
    closer than that bound. Ties between stores still go to the lower id.
    """
    best: tuple[Store, float] | None = None
    bounds = sorted(((reach.approx_km(lat, lon) - reach.margin_km if reach.margin_km is not None else 0.0), i)
                    for i, reach in enumerate(reaches))
    for low, i in bounds:  # nearest first: the others are mostly out of the running
        store = stores[i]
        if low > store.service_radius_km or (best is not None and low > best[1]):
            continue
        km = distance_km(store.lat, store.lon, lat, lon)
        if km <= store.service_radius_km and (best is None or (km, store.id) < (best[1], best[0].id)):
            best = (store, km)
    if best is None or (max_km is not None and shown_distance_km(best[1]) > max_km):
        return None
    return best


def _buyer_score(request: PersonalRequest | None, scores: dict[str, float]) -> float | None:
    if request is None:
        return None
    # A buyer with no record (or no contact to keep one by) has the prior score.
    return scores.get(request.buyer_key, buyer_score(0, 0, 0)) if request.buyer_key else buyer_score(0, 0, 0)


def _lock_visible_listing(session: Session, actor: Actor, listing_id: int) -> Listing:
    """The listing, locked, if its manufacturer lets this retailer see it (the
    stores are the caller's to check).

    Every write to a listing's bids takes this lock first, so they happen one
    after the other (placing a bid takes the same lock in its own statement,
    `broker.board.bidding`); the retailer's bid must be read after it: a bid
    read in the same statement would come from before the wait, and miss a bid
    that a racing request had just committed."""
    authorised = or_(Listing.manufacturer_id.is_(None), exists().where(
        DealerAuthorisation.manufacturer_id == Listing.manufacturer_id,
        DealerAuthorisation.retailer_id == actor.id, DealerAuthorisation.revoked_at.is_(None)))
    row = session.execute(select(Listing, authorised.label("authorised")).where(Listing.id == listing_id)
                          .with_for_update(of=Listing)).first()
    if row is None or not row.authorised:
        # Not authorised looks exactly like not there: a retailer learns nothing
        # about another manufacturer's orders.
        raise NotFound(f"no listing {listing_id} on your board")
    return row.Listing


def withdraw_bid(ctx: Context, actor: Actor, listing_id: int) -> None:
    """:raise 404: no active bid of the caller's here. :raise 409: the listing is closed."""
    require(actor, ActorKind.RETAILER)
    with ctx.uow() as uow:
        session = uow.session
        listing = _lock_visible_listing(session, actor, listing_id)
        mine = (Bid.listing_id == listing.id, Bid.retailer_id == actor.id, Bid.status == BidStatus.ACTIVE)
        if listing.status != ListingStatus.OPEN:
            if session.scalar(select(Bid.id).where(*mine)) is None:
                raise NotFound(f"you have no bid on listing {listing_id}")
            raise Conflict(f"listing {listing_id} is closed; its bids can no longer be withdrawn")
        # Only an active bid is withdrawn: a second withdrawal racing the first finds none.
        withdrawn = session.execute(update(Bid).where(*mine).values(status=BidStatus.WITHDRAWN,
                                                                    withdrawn_at=ctx.now()))
        if withdrawn.rowcount != 1:
            raise NotFound(f"you have no bid on listing {listing_id}")
        uow.commit()
