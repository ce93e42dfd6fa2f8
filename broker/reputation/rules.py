"""Scores, shrunk toward a prior so that a short record does not make a star.

Every score is a share of good events in [0, 1]. A rating is one event worth
(stars - 1) / 4 of a good one, so a 5 is as good as an order shipped on time and a
1 as bad as a lapse. The prior counts as PRIOR_WEIGHT events at PRIOR_MEAN: with
few events a score stays near the prior, with many it is the record itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime, timedelta
from typing import ClassVar

from broker.errors import Invalid

# A newcomer starts as if it had PRIOR_WEIGHT events at PRIOR_MEAN.
PRIOR_MEAN = 0.9
PRIOR_WEIGHT = 5.0

MIN_RATING = 1
MAX_RATING = 5
MAX_COMMENT = 500

# Reviews are blind until both sides have reviewed or this long after the first
# review, so neither side can rate in retaliation for what the other wrote.
REVEAL_AFTER = timedelta(days=14)


@dataclasses.dataclass(frozen=True)
class Ratings:
    """Revealed ratings of one subject, as a count and a sum of stars (1..5)."""

    count: int = 0
    stars: int = 0

    @property
    def points(self) -> float:
        """The ratings as good events: each rating's (stars - 1) / 4, summed."""
        return (self.stars - MIN_RATING * self.count) / (MAX_RATING - MIN_RATING)


NO_RATINGS = Ratings()


def _shrunk(good: float, events: float) -> float:
    return (good + PRIOR_WEIGHT * PRIOR_MEAN) / (events + PRIOR_WEIGHT)


def fulfilment_score(on_time: int, late: int, lapsed: int, released: int,
                     ratings: Ratings = NO_RATINGS) -> float:
    """A fulfiller's score: its customers' ratings and its shipping record, shrunk
    toward the prior.

    On time counts as one good event, late as half, a lapse or a release as a
    failure; each rating counts as one event worth (stars - 1) / 4.
    """
    good = on_time + 0.5 * late + ratings.points
    events = on_time + late + lapsed + released + ratings.count
    return _shrunk(good, events)


def buyer_score(paid: int, cancelled: int, disputed: int, ratings: Ratings = NO_RATINGS) -> float:
    """A buyer's score: fulfillers' ratings and its record as a customer, shrunk
    toward the prior.

    An order paid for (shipped, not disputed) is a good event; an order cancelled
    after it was awarded, or a disputed payment, a bad one.
    """
    good = paid + ratings.points
    events = paid + cancelled + disputed + ratings.count
    return _shrunk(good, events)


# With fewer revealed ratings than this a shop is shown as new, not by stars:
# its stars would be mostly the prior (4.6 for a shop nobody has rated yet),
# which reads as a verdict customers never gave.
NEW_BELOW = 3


@dataclasses.dataclass(frozen=True)
class Reputation:
    """A score as shown: `stars` from 1 to 5 to one decimal, and how many ratings it has."""

    score: float
    stars: float
    ratings: int
    new_below: ClassVar[int] = NEW_BELOW

    @property
    def is_new(self) -> bool:
        return self.ratings < NEW_BELOW

    @property
    def text(self) -> str:
        """How every page shows it: "4.7★ (12 ratings)", or "New: no ratings yet"."""
        return rating_text(self.stars, self.ratings)


def rating_text(stars: float, ratings: int) -> str:
    """A shop's rating with its count; below NEW_BELOW ratings, that it is new."""
    if ratings == 0:
        return "New: no ratings yet"
    count = f"{ratings} rating{'' if ratings == 1 else 's'}"
    if ratings < NEW_BELOW:
        return f"New: {count} so far"
    return f"{stars:.1f}★ ({count})"


def reputation(score: float, ratings: int) -> Reputation:
    return Reputation(score=score, stars=round(MIN_RATING + (MAX_RATING - MIN_RATING) * score, 1), ratings=ratings)


def buyer_key(email: str) -> str:
    """Who a customer is for its buyer record: a hash of its email, case and
    surrounding space ignored.

    Not a secret (anyone who knows an email can compute it), which is why it is
    only stored, to group one customer's orders and ratings, and never shown. It
    is not keyed by the settings' secret because that may change between runs,
    which would split a buyer's record.
    """
    return hashlib.sha256(("broker-buyer:" + email.strip().lower()).encode()).hexdigest()


def is_revealed(*, first_review_at: datetime | None, both_reviewed: bool, now: datetime) -> bool:
    """Whether an order's reviews may be shown: both sides have reviewed, or the
    blind window since the first review has closed."""
    if both_reviewed:
        return True
    return first_review_at is not None and now >= first_review_at + REVEAL_AFTER


def check_review(rating: int, comment: str | None) -> str:
    """The comment as stored. :raise 422: rating not 1..5, comment too long."""
    if isinstance(rating, bool) or not isinstance(rating, int) or not MIN_RATING <= rating <= MAX_RATING:
        raise Invalid.field("rating", f"must be a whole number from {MIN_RATING} to {MAX_RATING}")
    text = (comment or "").strip()
    if len(text) > MAX_COMMENT:
        raise Invalid.field("comment", f"at most {MAX_COMMENT} characters")
    return text
