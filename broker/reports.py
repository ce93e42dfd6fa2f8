"""Read-only summaries for the home page."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from sqlalchemy import func, select

from broker.accounts.models import Manufacturer
from broker.board.models import Listing, ListingStatus
from broker.context import Context
from broker.settlement.models import RunStatus, SettlementRun


@dataclasses.dataclass(frozen=True)
class HomeSummary:
    storefronts: list[tuple[str, str]]  # (slug, name)
    open_listings: int
    last_settlement: datetime | None


def home_summary(ctx: Context) -> HomeSummary:
    with ctx.uow() as uow:
        s = uow.session
        stores = [(slug, name) for slug, name in s.execute(
            select(Manufacturer.slug, Manufacturer.name).order_by(Manufacturer.name).limit(50))]
        open_listings = s.scalar(select(func.count()).where(Listing.status == ListingStatus.OPEN)) or 0
        last = s.scalar(select(func.max(SettlementRun.finished_at)).where(SettlementRun.status == RunStatus.COMPLETED))
        return HomeSummary(stores, open_listings, last)
