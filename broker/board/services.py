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
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from broker.accounts.models import DealerAuthorisation, Store
from broker.auth import Actor, ActorKind, require
from broker.board.models import Bid, BidStatus, Listing, ListingKind, ListingStatus
from broker.board.reach import Reach, merge_boxes
from broker.context import Context
from broker.errors import Conflict, Invalid, NotFound
from broker.geo.distance import bounding_box, distance_km, shown_distance_km, shown_upper_km
from broker.orders.models import Delivery, Order, OrderLine
from broker.pagination import Page, PageRequest
from broker.personal.models import PersonalRequest
from broker.personal.services import notify_offer
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


def nearest_covering_store(stores: Sequence[Store], lat: float, lon: float) -> tuple[Store, float] | None:
    """The store nearest to a listing's position (`Listing.lat/lon`, its cell's
    centre) among those whose radius covers it, with that distance to the metre;
    ties go to the lower store id."""
    best: tuple[Store, float] | None = None
    for store in stores:
        km = distance_km(store.lat, store.lon, lat, lon)
        if km <= store.service_radius_km and (best is None or (km, store.id) < (best[1], best[0].id)):
            best = (store, km)
    return best


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
    range scan each), and lists those maybes for the geodesic here.
    """
    if limit:
        # The widest reaches first; a few at most, since each try scans up to `limit`.
        for reach in sorted(reaches, key=lambda r: -r.radius_km)[:3]:
            for rectangle in reach.inner_rectangles()[:1]:
                sure_ones = select(literal(1)).where(*conditions, _in_box(rectangle)).limit(limit)
                if session.scalar(select(func.count()).select_from(sure_ones.subquery())) >= limit:
                    return limit, False
    sure, maybe = _verdicts(reaches)
    # One aggregate, so that each listing's verdict is worked out once: an empty
    # string for each sure one, the id of each maybe ("",,,"17",,...), NULL otherwise.
    verdict = case((sure, ""), (maybe, cast(Listing.id, String)))
    total, maybes = 0, []
    for box in merge_boxes([reach.box for reach in reaches]):
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
    after the other; the retailer's bid must be read after it (`_my_bid`): a
    bid read in the same statement would come from before the wait, and miss a
    bid that a racing request had just committed."""
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


def _my_bid(session: Session, listing_id: int, retailer_id: int) -> Bid | None:
    """The retailer's bid on the listing as committed now (not as this session
    last saw it)."""
    return session.scalar(select(Bid).where(Bid.listing_id == listing_id, Bid.retailer_id == retailer_id)
                          .execution_options(populate_existing=True))


def _insert_bid(session: Session, **values) -> bool:
    """Insert the retailer's bid unless it has one on the listing already: True
    if this call inserted it. INSERT ... ON CONFLICT DO NOTHING, so that two
    identical bids at once make one row and two answers, never a unique
    violation."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (insert(Bid.__table__).values(**values)
            .on_conflict_do_nothing(index_elements=["listing_id", "retailer_id"]).returning(Bid.__table__.c.id))
    return session.execute(stmt).first() is not None


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


def bid_lines(lines: Sequence[OrderLine], items: Sequence[BidItem] | None) -> list[dict] | None:
    """The bid's part of the order as stored ([{"line_id", "sku", "quantity"}],
    in line order), or None for the whole of it (no items, or items naming every
    line in full).

    :raise 422: every item that is wrong, at once: a line not in the order (by
        SKU or id), a SKU on several lines (name the line_id), a line named twice,
        a quantity under 1 or over the quantity ordered.
    """
    if items is None:
        return None
    if not items:
        raise Invalid.field("items", "name at least one line, or leave items out to bid on the whole order")
    by_id = {line.id: line for line in lines}
    by_sku: dict[str, list[OrderLine]] = {}
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


def place_bid(ctx: Context, actor: Actor, cmd: PlaceBid) -> tuple[Bid, bool]:
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
        session = uow.session
        listing = _lock_visible_listing(session, actor, cmd.listing_id)
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
        if listing.kind == ListingKind.ORDER and (cmd.shipping or cmd.tax):
            raise Invalid.field("shipping", "an order's shipping and tax are the customer's checkout's: send {}")
        if listing.kind == ListingKind.REQUEST:
            _check_offer(cmd.price, listing.price, cmd.shipping, cmd.tax)
            if cmd.items is not None:
                raise Invalid.field("items", "a personal request is offered on whole: send a price, no items")
            lines = None
        else:
            lines = bid_lines(list(session.scalars(select(OrderLine).where(OrderLine.order_id == listing.order_id)
                                                   .order_by(OrderLine.id))), cmd.items)
        store, cell_km = found
        distances = dict(distance_km=shown_distance_km(cell_km), cell_distance_km=cell_km,
                         exact_distance_km=distance_km(store.lat, store.lon, listing.exact_lat, listing.exact_lon))
        now = ctx.now()
        bid = _my_bid(session, listing.id, actor.id)
        if bid is None:
            created = _insert_bid(session, listing_id=listing.id, retailer_id=actor.id, store_id=store.id,
                                  price=cmd.price, shipping=cmd.shipping, tax=cmd.tax, status=BidStatus.ACTIVE,
                                  created_at=now, lines=lines, standing_bid_id=cmd.standing_bid_id, **distances)
            bid = _my_bid(session, listing.id, actor.id)
            if created:
                if listing.kind == ListingKind.REQUEST:
                    notify_offer(session, ctx, listing, bid, now)
                uow.commit()
                return bid, True
        if bid.status == BidStatus.ACTIVE:
            changed = False
            if cmd.store_id is not None and cmd.store_id != bid.store_id:
                bid.store_id, changed = store.id, True
                for name, value in distances.items():
                    setattr(bid, name, value)
            if listing.kind == ListingKind.ORDER and lines != bid.lines:
                # A bid names another part of the order (or all of it): it keeps its
                # time, as a store change does; it is the same offer, resized.
                bid.lines, changed = lines, True
            if listing.kind == ListingKind.REQUEST and cmd.price != bid.price:
                if cmd.price > bid.price:
                    raise Invalid.field("price", f"an offer can only be improved: yours is {bid.price}")
                # The time of an offer is when its price was made: an earlier
                # offer at the same price keeps its place.
                bid.price, bid.created_at, changed = cmd.price, now, True
            if listing.kind == ListingKind.REQUEST and (cmd.shipping, cmd.tax) != (bid.shipping, bid.tax):
                bid.shipping, bid.tax, changed = cmd.shipping, cmd.tax, True
            if changed:
                if listing.kind == ListingKind.REQUEST:
                    notify_offer(session, ctx, listing, bid, now)
                uow.commit()
            return bid, False
        # Withdrawn before: bid again, as new.
        bid.store_id, bid.price, bid.shipping, bid.tax, bid.lines = store.id, cmd.price, cmd.shipping, cmd.tax, lines
        bid.standing_bid_id = cmd.standing_bid_id
        for name, value in distances.items():
            setattr(bid, name, value)
        bid.status, bid.created_at, bid.withdrawn_at = BidStatus.ACTIVE, now, None
        if listing.kind == ListingKind.REQUEST:
            session.flush()
            notify_offer(session, ctx, listing, bid, now)
        uow.commit()
        return bid, True


def _check_offer(price: int | None, ceiling: int, shipping: int = 0, tax: int = 0) -> None:
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
