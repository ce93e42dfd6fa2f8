"""The retailers' daily digest of new listings near their stores (the `digest` job).

Opt-in per user (`User.digest_opt_in`, set in the portal's account page), and an
optional email (unsubscribe link, List-Unsubscribe). Each opted-in user of an
active retailer gets one email a day listing the listings that appeared in the
last 24 hours that this retailer may bid on, as the board decides it (open,
from a manufacturer that authorised the retailer or naming none, inside the
service radius of one of its open stores), nearest first, at most
`MAX_LISTED`, with a link to the board. Nothing new, no email.

Once per user per local day (the dedupe key), so running the job twice, or in
two schedulers, sends one. One transaction per retailer.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from broker.accounts.models import DealerAuthorisation, Retailer, Role, Store
from broker.board.models import Listing, ListingKind, ListingStatus
from broker.board.services import nearest_covering_store
from broker.context import Context
from broker.geo.distance import bounding_box, shown_distance_km
from broker.identity.models import User
from broker.money import format_amount
from broker.notifications.services import TOPIC_PREFIX, send_email
from broker.orders.models import OrderLine
from broker.outbox.models import OutboxMessage
from broker.parking import services as parking
from broker.personal.models import PersonalRequest

MAX_LISTED = 20
WINDOW = timedelta(hours=24)


@dataclasses.dataclass(frozen=True)
class NewListing:
    listing: Listing
    # As the board shows it: from the listing's cell, in whole kilometres.
    distance_km: float


@dataclasses.dataclass
class DigestReport:
    sent: int = 0
    retailers: int = 0
    failed: int = 0  # retailers whose digest failed: tried again at the next run (broker.parking)
    parked: int = 0  # retailers whose digest failed too often: they wait for the operator


JOB = "digest"


def new_listings(session: Session, retailer_id: int, *, since: datetime, now: datetime) -> list[NewListing]:
    """Open listings listed in (since, now] that this retailer may bid on, in
    the board's order (the distance shown, then the id): the board's
    visibility rule (`broker.board.services.board`), with the listing time as
    the extra filter."""
    stores = list(session.scalars(
        select(Store).where(Store.retailer_id == retailer_id, Store.is_open.is_(True)).order_by(Store.id)))
    if not stores:
        return []
    makers = select(DealerAuthorisation.manufacturer_id).where(
        DealerAuthorisation.retailer_id == retailer_id, DealerAuthorisation.revoked_at.is_(None))
    boxes = []
    for store in stores:
        min_lat, max_lat, min_lon, max_lon = bounding_box(store.lat, store.lon, store.service_radius_km)
        boxes.append(and_(Listing.lat.between(min_lat, max_lat), Listing.lon.between(min_lon, max_lon)))
    found = []
    for listing in session.scalars(
        select(Listing).where(
            Listing.status == ListingStatus.OPEN,
            Listing.listed_at > since, Listing.listed_at <= now,
            or_(Listing.manufacturer_id.in_(makers), Listing.manufacturer_id.is_(None)),
            or_(*boxes),
        )
    ):
        covering = nearest_covering_store(stores, listing.lat, listing.lon)
        if covering is not None:
            found.append(NewListing(listing, shown_distance_km(covering[1])))
    found.sort(key=lambda item: (item.distance_km, item.listing.id))
    return found


def send_digests(ctx: Context) -> DigestReport:
    """The scheduled job: one digest per opted-in retailer user, if anything is new."""
    now = ctx.now()
    day = now.astimezone(ZoneInfo(ctx.settings.timezone)).date().isoformat()
    report = DigestReport()
    with ctx.uow() as uow:
        retailer_ids = list(uow.session.scalars(
            select(User.retailer_id).distinct()
            .join(Retailer, Retailer.id == User.retailer_id)
            .where(User.role == Role.RETAILER, User.digest_opt_in.is_(True), User.removed_at.is_(None),
                   User.verified_at.is_not(None), Retailer.active.is_(True),
                   parking.may_try(JOB, "retailer", User.retailer_id, now))
            .order_by(User.retailer_id)
        ))

    def digest(retailer_id: int) -> None:
        with ctx.uow() as uow:
            sent = _digest_for(uow.session, ctx, retailer_id, day=day, now=now)
            uow.commit()
        report.sent += sent
        report.retailers += 1

    # One retailer at a time: one whose digest cannot be made is recorded, and
    # the others still get theirs.
    rows = parking.each(ctx, JOB, "retailer", retailer_ids, digest)
    report.failed, report.parked = rows.failed, rows.parked
    return report


def _digest_for(session: Session, ctx: Context, retailer_id: int, *, day: str, now: datetime) -> int:
    users = [
        (user_id, email, name, f"user-{user_id}-{day}")
        for user_id, email, name in session.execute(
            select(User.id, User.email, User.name).where(
                User.retailer_id == retailer_id, User.role == Role.RETAILER, User.digest_opt_in.is_(True),
                User.removed_at.is_(None), User.verified_at.is_not(None)).order_by(User.id))
    ]
    done = set(session.scalars(select(OutboxMessage.dedupe_key).where(
        OutboxMessage.topic == f"{TOPIC_PREFIX}digest", OutboxMessage.dedupe_key.in_([u[3] for u in users]))))
    users = [u for u in users if u[3] not in done]
    if not users:
        return 0  # today's digests are written already: do not query the board again
    found = new_listings(session, retailer_id, since=now - WINDOW, now=now)
    if not found:
        return 0
    items = _describe(session, found[:MAX_LISTED])
    sent = 0
    for user_id, email, name, key in users:
        sent += send_email(session, ctx, topic="digest", to=email, template="digest", dedupe_key=key, now=now,
                           recipient_id=user_id, name=name, total=len(found), items=items,
                           more=max(0, len(found) - MAX_LISTED))
    return sent


def _describe(session: Session, found: list[NewListing]) -> list[dict]:
    """What each listing is, as the board shows it: the items, or the request's
    description; never who wants it."""
    order_ids = [f.listing.order_id for f in found if f.listing.order_id is not None]
    request_ids = [f.listing.request_id for f in found if f.listing.request_id is not None]
    lines: dict[int, list[str]] = {}
    for line in session.scalars(select(OrderLine).where(OrderLine.order_id.in_(order_ids)).order_by(OrderLine.id)):
        lines.setdefault(line.order_id, []).append(f"{line.quantity} x {line.name}")
    wanted = dict(session.execute(
        select(PersonalRequest.id, PersonalRequest.description).where(PersonalRequest.id.in_(request_ids))).all())
    out = []
    for f in found:
        listing = f.listing
        if listing.kind == ListingKind.REQUEST:
            what = f"Request: {_short(wanted.get(listing.request_id, ''))}"
            price = f"up to {format_amount(listing.price, listing.currency)}"
        else:
            what = _short(", ".join(lines.get(listing.order_id, [])))
            price = format_amount(listing.price, listing.currency)
        out.append({"what": what, "price": price, "distance_km": int(f.distance_km), "area": listing.area})
    return out


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"
