"""What awards take from stores' stock, and give back.

Settlement reads what each store may still be awarded (`available`), decides,
and reserves what its plans use (`reserve`), all in its batch's transaction,
with the stock rows locked in one fixed order (store, SKU) so that two batches,
or a batch and a release, wait for each other rather than both award the last
one. A release, lapse or cancellation gives the reservation back (`give_back`);
a shipment consumes it (`consume`): the goods have left the shelf.

Stock is known only where the store's feed is fresh (BROKER_STOCK_MAX_AGE_HOURS):
a fresh feed names every SKU the store has (a SKU it does not name: none); a
store without one, or with a stale one, is taken at its word when it bids.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import case, select, tuple_, update
from sqlalchemy.orm import Session

from broker.context import Context
from broker.locks import lock
from broker.stock.models import StockFeed, StockLevel, StockReservation


def fresh_after(ctx: Context, now: datetime) -> datetime:
    return now - timedelta(hours=ctx.settings.stock_max_age_hours)


def available(session: Session, ctx: Context, candidates: Iterable, lines: Iterable, *,
              now: datetime) -> dict[tuple[int, str], int]:
    """{(store_id, sku): what it may still be awarded} for the bidders' stores
    with a fresh feed and the SKUs of `lines` (PlanLines, or anything with a
    `sku`); the rows read are locked until the caller's transaction ends."""
    stores = sorted({c.store_id for c in candidates})
    skus = sorted({line.sku for line in lines})
    return available_for(session, ctx, stores, skus, now=now)


def available_for(session: Session, ctx: Context, stores: Sequence[int], skus: Sequence[str], *,
                  now: datetime) -> dict[tuple[int, str], int]:
    if not stores or not skus:
        return {}
    fed = set(session.scalars(select(StockFeed.store_id).where(
        StockFeed.store_id.in_(list(stores)), StockFeed.updated_at >= fresh_after(ctx, now))))
    if not fed:
        return {}
    found = {(store_id, sku): 0 for store_id in fed for sku in skus}
    rows = session.execute(lock(
        select(StockLevel.store_id, StockLevel.sku, StockLevel.quantity, StockLevel.reserved)
        .where(StockLevel.store_id.in_(sorted(fed)), StockLevel.sku.in_(list(skus)))
        .order_by(StockLevel.store_id, StockLevel.sku)
    )).all()
    for store_id, sku, quantity, reserved in rows:
        found[(store_id, sku)] = max(quantity - reserved, 0)
    return found


def reserve(session: Session, assignment_id: int, store_id: int, items: Sequence[tuple[str, int]], *,
            now: datetime) -> None:
    """The assignment takes `items` [(sku, quantity)] from the store's stock,
    where the store keeps a row for the SKU (a store without a feed has none:
    nothing to reserve)."""
    wanted: dict[str, int] = {}
    for sku, quantity in items:
        wanted[sku] = wanted.get(sku, 0) + quantity
    if not wanted:
        return
    rows = set(session.scalars(select(StockLevel.sku).where(StockLevel.store_id == store_id,
                                                           StockLevel.sku.in_(sorted(wanted)))))
    for sku in sorted(rows):
        session.add(StockReservation(assignment_id=assignment_id, store_id=store_id, sku=sku, quantity=wanted[sku]))
        session.execute(update(StockLevel).where(StockLevel.store_id == store_id, StockLevel.sku == sku)
                        .values(reserved=StockLevel.reserved + wanted[sku]))
    session.flush()


def reserve_many(session: Session, rows: Sequence[tuple[int, int, str, int]]) -> None:
    """`reserve` for a settlement batch: rows of (assignment_id, store_id, sku, quantity)."""
    if not rows:
        return
    keys = sorted({(store_id, sku) for _, store_id, sku, _ in rows})
    kept = set(session.execute(select(StockLevel.store_id, StockLevel.sku)
                               .where(tuple_(StockLevel.store_id, StockLevel.sku).in_(keys))).tuples())
    totals: dict[tuple[int, str], int] = {}
    for assignment_id, store_id, sku, quantity in rows:
        if (store_id, sku) in kept:
            session.add(StockReservation(assignment_id=assignment_id, store_id=store_id, sku=sku, quantity=quantity))
            totals[(store_id, sku)] = totals.get((store_id, sku), 0) + quantity
    for (store_id, sku), quantity in sorted(totals.items()):
        session.execute(update(StockLevel).where(StockLevel.store_id == store_id, StockLevel.sku == sku)
                        .values(reserved=StockLevel.reserved + quantity))
    session.flush()


def _end(session: Session, assignment_ids: Sequence[int], how: str) -> None:
    held = session.execute(lock(
        select(StockReservation).where(StockReservation.assignment_id.in_(list(assignment_ids)),
                                       StockReservation.ended.is_(None))
        .order_by(StockReservation.store_id, StockReservation.sku)
    )).scalars().all()
    for reservation in held:
        values = {"reserved": case((StockLevel.reserved > reservation.quantity,
                                    StockLevel.reserved - reservation.quantity), else_=0)}
        if how == "shipped":
            values["quantity"] = case((StockLevel.quantity > reservation.quantity,
                                       StockLevel.quantity - reservation.quantity), else_=0)
        session.execute(update(StockLevel).where(StockLevel.store_id == reservation.store_id,
                                                 StockLevel.sku == reservation.sku).values(**values))
        reservation.ended = how
    session.flush()


def give_back(session: Session, assignment_ids: Sequence[int]) -> None:
    """Released, lapsed or cancelled: what the assignments reserved is the store's again."""
    _end(session, assignment_ids, "returned")


def consume(session: Session, assignment_ids: Sequence[int]) -> None:
    """Shipped (or handed over): the goods have left the store."""
    _end(session, assignment_ids, "shipped")
