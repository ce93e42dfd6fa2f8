"""Reviews after delivery, blind until both sides have spoken, and the scores built from them."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import BindParameter, and_, bindparam, case, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from broker import formkeys
from broker.accounts.models import Retailer
from broker.auth import ANONYMOUS, Actor, ActorKind, digest, require, same
from broker.clock import utcnow
from broker.context import Context
from broker.errors import Conflict, NotFound, Unauthenticated
from broker.fulfilment.models import Assignment, AssignmentStatus
from broker.orders.models import Order, OrderStatus
from broker.payments.models import Payment
from broker.reputation import rules
from broker.reputation.models import Author, Review, SubjectKind
from broker.reputation.rules import NO_RATINGS, REVEAL_AFTER, Ratings, Reputation

# Both sides review once the order is delivered (the customer confirmed it, it
# was collected, or BROKER_DELIVERED_AFTER_DAYS passed after shipment), not
# between shipment and delivery: a customer cannot judge what has not arrived,
# and the blind window (14 days from the first review) must not start before
# the customer can write theirs, or a fulfiller reviewing at shipment would
# leave them only the days after delivery.
REVIEWABLE = (OrderStatus.DELIVERED,)


@dataclasses.dataclass(frozen=True)
class ReviewView:
    order_id: int
    author: Author
    rating: int
    comment: str
    created_at: datetime


@dataclasses.dataclass(frozen=True)
class OrderReviews:
    """An order's reviews as one party may see them.

    `theirs` is None until the reviews are revealed, whether or not the other side
    has reviewed: `reveal_pending` says only that the blind window is still open,
    never whether the other side has written anything yet.
    """

    order_id: int
    party: Author
    mine: ReviewView | None
    theirs: ReviewView | None
    reveal_pending: bool


def _view(review: Review | None) -> ReviewView | None:
    if review is None:
        return None
    return ReviewView(review.order_id, Author(review.author), review.rating, review.comment, review.created_at)


# --- writing reviews --------------------------------------------------------

def _is_customer(order: Order | None, access_token: str | None) -> bool:
    # As the orders service checks it: the token is stored only as its digest.
    return bool(order is not None and access_token and same(order.access_token_hash, digest(access_token)))


def _current_assignment(session: Session, order_id: int) -> Assignment | None:
    """The order's fulfiller, to ship or shipped (an order has at most one such
    assignment; released and lapsed ones belong to fulfillers who gave it up)."""
    return session.scalar(
        select(Assignment)
        .where(Assignment.order_id == order_id,
               Assignment.status.in_([AssignmentStatus.ACTIVE, AssignmentStatus.SHIPPED]))
        .order_by(Assignment.id.desc())
        .limit(1)
    )


def _is_fulfiller(actor: Actor, assignment: Assignment | None) -> bool:
    if assignment is None:
        return False
    if actor.kind is ActorKind.RETAILER:
        return assignment.fulfiller_kind == SubjectKind.RETAILER and assignment.retailer_id == actor.id
    if actor.kind is ActorKind.MANUFACTURER:
        return assignment.fulfiller_kind == SubjectKind.MANUFACTURER and assignment.manufacturer_id == actor.id
    return False


def _ensure_delivered(order: Order, assignment: Assignment | None) -> Assignment:
    if order.status not in REVIEWABLE or assignment is None or assignment.status != AssignmentStatus.SHIPPED:
        raise Conflict(f"order {order.id} is {order.status}; it can be reviewed once it has been delivered")
    return assignment


def _add(session: Session, review: Review) -> None:
    """:raise 409: this side has already reviewed the order (checked here, and
        again by the unique constraint for two submissions at once), or the other
        side's review is already revealed: a side that could read the other's
        review first could answer it in kind, so the blind window is also the
        window to review in.
    """
    earlier = {Author(r.author): r for r in session.scalars(select(Review).where(Review.order_id == review.order_id))}
    if review.author in earlier:
        raise Conflict(f"you have already reviewed order {review.order_id}; reviews cannot be changed")
    first = min((r.created_at for r in earlier.values()), default=None)
    if rules.is_revealed(first_review_at=first, both_reviewed=False, now=review.created_at):
        raise Conflict(f"the time to review order {review.order_id} has passed")
    session.add(review)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"you have already reviewed order {review.order_id}; reviews cannot be changed") from None


def review_as_customer(ctx: Context, order_id: int, access_token: str | None, rating: int,
                       comment: str | None = None, *, once: formkeys.Once | None = None) -> ReviewView:
    """The customer (by the order's access token) rates the order's fulfiller.
    With `once`, a repeat of the same form raises `formkeys.AlreadyDone`.

    :raise 401: no token. :raise 404: not this order's token. :raise 409: not
        shipped yet, already reviewed, or the fulfiller's review is already
        revealed. :raise 422: rating not 1..5, comment longer than 500 characters.
    """
    text = rules.check_review(rating, comment)
    if not access_token:
        raise Unauthenticated("give the order's X-Access-Token")
    with ctx.uow() as uow:
        session = uow.session
        formkeys.claim(session, once, now=ctx.now())
        order = session.get(Order, order_id)
        if not _is_customer(order, access_token):
            raise NotFound(f"no order {order_id}")
        formkeys.record(session, once, {"order_id": order.id})
        fulfiller = _ensure_delivered(order, _current_assignment(session, order.id))
        if fulfiller.fulfiller_kind == SubjectKind.RETAILER:
            subject_kind, subject_id = SubjectKind.RETAILER, fulfiller.retailer_id
        else:
            subject_kind, subject_id = SubjectKind.MANUFACTURER, fulfiller.manufacturer_id
        review = Review(order_id=order.id, author=Author.CUSTOMER, subject_kind=subject_kind, subject_id=subject_id,
                        rating=rating, comment=text, created_at=ctx.now())
        _add(session, review)
        uow.commit()
        return _view(review)


def review_as_fulfiller(ctx: Context, actor: Actor, order_id: int, rating: int,
                        comment: str | None = None) -> ReviewView:
    """The retailer or manufacturer that shipped the order rates its buyer.

    :raise 404: not the order's fulfiller. :raise 409: not shipped yet, already
        reviewed, or the customer's review is already revealed. :raise 422:
        rating not 1..5, comment longer than 500 characters.
    """
    require(actor, ActorKind.RETAILER, ActorKind.MANUFACTURER)
    text = rules.check_review(rating, comment)
    with ctx.uow() as uow:
        session = uow.session
        order = session.get(Order, order_id)
        assignment = _current_assignment(session, order_id) if order is not None else None
        if not _is_fulfiller(actor, assignment):
            raise NotFound(f"no order {order_id}")
        _ensure_delivered(order, assignment)
        review = Review(order_id=order.id, author=Author.FULFILLER, subject_kind=SubjectKind.BUYER,
                        subject_buyer_key=rules.buyer_key(order.customer_email), rating=rating, comment=text,
                        created_at=ctx.now())
        _add(session, review)
        uow.commit()
        return _view(review)


def reviews_for_order(ctx: Context, order_id: int, *, actor: Actor | None = None,
                      access_token: str | None = None) -> OrderReviews:
    """The order's reviews for one of its two parties: its own always, the other
    side's once revealed.

    :raise 401: no credentials at all. :raise 404: anyone but the customer (by
        token) and the order's fulfiller.
    """
    actor = actor or ANONYMOUS
    if actor.kind is ActorKind.ANONYMOUS and not access_token:
        raise Unauthenticated("give the order's X-Access-Token, or an API key")
    with ctx.uow() as uow:
        session = uow.session
        order = session.get(Order, order_id)
        if _is_customer(order, access_token):
            party, other = Author.CUSTOMER, Author.FULFILLER
        elif order is not None and _is_fulfiller(actor, _current_assignment(session, order.id)):
            party, other = Author.FULFILLER, Author.CUSTOMER
        else:
            raise NotFound(f"no order {order_id}")
        reviews = {Author(r.author): r for r in session.scalars(select(Review).where(Review.order_id == order.id))}
        revealed = rules.is_revealed(
            first_review_at=min((r.created_at for r in reviews.values()), default=None),
            both_reviewed=len(reviews) == 2, now=ctx.now(),
        )
        return OrderReviews(order.id, party, _view(reviews.get(party)),
                            _view(reviews.get(other)) if revealed else None, reveal_pending=not revealed)


# --- scores -----------------------------------------------------------------

def _revealed(now: datetime):
    """`rules.is_revealed` for each review row, in SQL.

    A side reviews an order at most once, so "both reviewed" is "the other side's
    review exists"; and when it does not, the first review is this one.
    """
    other = aliased(Review)
    both = exists().where(other.order_id == Review.order_id, other.author != Review.author)
    return both | (Review.created_at <= now - REVEAL_AFTER)


def _written_in(keys: list) -> BindParameter:
    """The values of an IN list written into the statement rather than bound one
    parameter each: settlement asks for thousands of retailers at a time, and
    binding them took longer than the query."""
    return bindparam(None, list(keys), literal_execute=True)


def _ratings_by(session: Session, key, condition, keys: list, now: datetime) -> dict:
    """Revealed ratings grouped by `key`, in one query: a hidden review must not
    show through a score before it shows on the order."""
    rows = session.execute(
        select(key, func.count(Review.id), func.sum(Review.rating))
        .where(condition, key.in_(_written_in(keys)), _revealed(now))
        .group_by(key)
    )
    return {k: Ratings(int(n), int(total or 0)) for k, n, total in rows}


def retailer_ratings_by(session: Session, retailer_id: int, group, now: datetime) -> dict:
    """A retailer's revealed ratings grouped by `group(Review.created_at)` (its
    scorecard groups them by week; NULL groups are left out), in one query.
    Hidden reviews stay hidden here as everywhere."""
    rated = (
        select(group(Review.created_at).label("grp"), Review.rating)
        .where(Review.subject_kind == SubjectKind.RETAILER, Review.subject_id == retailer_id, _revealed(now))
        .subquery()
    )
    rows = session.execute(
        select(rated.c.grp, func.count(), func.sum(rated.c.rating))
        .where(rated.c.grp.is_not(None))
        .group_by(rated.c.grp)
    )
    return {k: Ratings(int(n), int(total or 0)) for k, n, total in rows}


def _fulfilment_records(session: Session, retailer_ids: list[int]) -> dict[int, tuple[int, int, int, int]]:
    """(on time, late, lapsed, released) per retailer, in one query."""
    shipped = Assignment.status == AssignmentStatus.SHIPPED
    on_time = func.sum(case((shipped & (Assignment.shipped_at <= Assignment.due_at), 1), else_=0))
    late = func.sum(case((shipped & (Assignment.shipped_at > Assignment.due_at), 1), else_=0))
    lapsed = func.sum(case((Assignment.status == AssignmentStatus.LAPSED, 1), else_=0))
    released = func.sum(case((Assignment.status == AssignmentStatus.RELEASED, 1), else_=0))
    # Only the statuses that count: a retailer's active assignments (every award of
    # a settlement run in progress) would be read and summed as zeros.
    counted = (AssignmentStatus.SHIPPED, AssignmentStatus.LAPSED, AssignmentStatus.RELEASED)
    rows = session.execute(
        select(Assignment.retailer_id, on_time, late, lapsed, released)
        .where(Assignment.retailer_id.in_(_written_in(retailer_ids)), Assignment.status.in_(counted))
        .group_by(Assignment.retailer_id)
    )
    return {rid: (int(a or 0), int(b or 0), int(c or 0), int(d or 0)) for rid, a, b, c, d in rows}


def fulfiller_reputations(session: Session, retailer_ids: Collection[int], *,
                          now: datetime | None = None) -> dict[int, Reputation]:
    """Retailers' reputations in two queries whatever their number (retailers with
    no record and no ratings get the prior)."""
    ids = list(retailer_ids)
    if not ids:
        return {}
    now = now or utcnow()
    records = _fulfilment_records(session, ids)
    ratings = _ratings_by(session, Review.subject_id, Review.subject_kind == SubjectKind.RETAILER, ids, now)
    result = {}
    for rid in ids:
        theirs = ratings.get(rid, NO_RATINGS)
        score = rules.fulfilment_score(*records.get(rid, (0, 0, 0, 0)), ratings=theirs)
        result[rid] = rules.reputation(score, theirs.count)
    return result


def fulfilment_scores(session: Session, retailer_ids: Collection[int], *,
                      now: datetime | None = None) -> dict[int, float]:
    """Scores of many retailers (ratings and shipping record) in a fixed number of
    queries: settlement calls it once per batch, for its first tie-break.

    Reviews count once revealed as at `now` (default: the wall clock).
    """
    return {rid: rep.score for rid, rep in fulfiller_reputations(session, retailer_ids, now=now).items()}


def reputation_of_retailer(ctx: Context, retailer_id: int) -> Reputation:
    """A retailer's public reputation. :raise 404: no such retailer."""
    with ctx.uow() as uow:
        session = uow.session
        if session.get(Retailer, retailer_id) is None:
            raise NotFound(f"no retailer {retailer_id}")
        return fulfiller_reputations(session, [retailer_id], now=ctx.now())[retailer_id]


def _buyer_records(session: Session, keys: set[str]) -> dict[str, tuple[int, int, int]]:
    """(paid, cancelled, disputed) per buyer key, in one query.

    Orders store the customer's email, not its key, so this reads one row per
    distinct email and keeps the ones whose key was asked for. (An indexed
    `orders.buyer_key` column would let the database pick them instead.)
    """
    disputed = Payment.disputed.is_(True)
    awarded = exists().where(Assignment.order_id == Order.id)
    paid = func.sum(case((disputed, 0), (Order.shipped_at.is_not(None), 1), else_=0))
    cancelled = func.sum(case((and_(Order.status == OrderStatus.CANCELLED, awarded), 1), else_=0))
    disputes = func.sum(case((disputed, 1), else_=0))
    rows = session.execute(
        select(Order.customer_email, paid, cancelled, disputes)
        .outerjoin(Payment, Payment.order_id == Order.id)
        .group_by(Order.customer_email)
    )
    records: dict[str, tuple[int, int, int]] = {}
    for email, p, c, d in rows:
        key = rules.buyer_key(email)
        if key in keys:
            # Emails differing only in case are one buyer: add them up.
            before = records.get(key, (0, 0, 0))
            records[key] = (before[0] + int(p or 0), before[1] + int(c or 0), before[2] + int(d or 0))
    return records


def buyer_reputations(session: Session, keys: Collection[str], *,
                      now: datetime | None = None) -> dict[str, Reputation]:
    """Buyers' reputations (by `rules.buyer_key`) in two queries whatever their number."""
    wanted = set(keys)
    if not wanted:
        return {}
    now = now or utcnow()
    records = _buyer_records(session, wanted)
    ratings = _ratings_by(session, Review.subject_buyer_key, Review.subject_kind == SubjectKind.BUYER,
                          list(wanted), now)
    result = {}
    for key in wanted:
        theirs = ratings.get(key, NO_RATINGS)
        score = rules.buyer_score(*records.get(key, (0, 0, 0)), ratings=theirs)
        result[key] = rules.reputation(score, theirs.count)
    return result


def buyer_scores(session: Session, keys: Collection[str], *, now: datetime | None = None) -> dict[str, float]:
    return {key: rep.score for key, rep in buyer_reputations(session, keys, now=now).items()}


def buyer_score(session: Session, buyer_key: str, *, now: datetime | None = None) -> float:
    return buyer_scores(session, [buyer_key], now=now)[buyer_key]
