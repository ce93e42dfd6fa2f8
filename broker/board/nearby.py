"""The board as a retailer's map shows it: the listings near its stores, the
stores themselves with their service radius, and where each listing may be drawn.

A listing is drawn at the centre of its grid cell (`approximate_point`), never
at the ship-to point: before the win a retailer learns what is wanted and
roughly where, not whose door it goes to.
"""

from __future__ import annotations

import dataclasses

from sqlalchemy import select

from broker.accounts.models import Store
from broker.auth import Actor, ActorKind, require
from broker.board.services import BoardFilter, BoardItem, board
from broker.context import Context
from broker.geo.distance import approximate_point
from broker.pagination import Page, PageRequest


@dataclasses.dataclass(frozen=True)
class Nearby:
    listings: Page[BoardItem]
    stores: list[Store]
    # listing id -> (lat, lon) to draw it at
    points: dict[int, tuple[float, float]]


def nearby(ctx: Context, actor: Actor, filters: BoardFilter, page: PageRequest) -> Nearby:
    """One page of the retailer's board, its stores, and where to draw each listing.

    :raise 422: a bad filter (as `board`).
    """
    require(actor, ActorKind.RETAILER)
    listings = board(ctx, actor, filters, page)
    with ctx.uow() as uow:
        stores = list(uow.session.scalars(select(Store).where(Store.retailer_id == actor.id).order_by(Store.id)))
    points = {item.listing.id: approximate_point(item.listing.lat, item.listing.lon) for item in listings.items}
    return Nearby(listings, stores, points)
