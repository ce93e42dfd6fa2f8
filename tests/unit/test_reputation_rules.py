from datetime import datetime, timedelta, timezone

import pytest

from broker.errors import Invalid
from broker.reputation.rules import (
    PRIOR_MEAN,
    REVEAL_AFTER,
    Ratings,
    Reputation,
    buyer_key,
    buyer_score,
    check_review,
    fulfilment_score,
    is_revealed,
    reputation,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def fives(n: int) -> Ratings:
    return Ratings(count=n, stars=5 * n)


def ones(n: int) -> Ratings:
    return Ratings(count=n, stars=n)


class TestRatings:
    def test_a_rating_is_worth_its_stars_as_a_share_of_one_good_event(self):
        assert Ratings(count=1, stars=5).points == 1
        assert Ratings(count=1, stars=1).points == 0
        assert Ratings(count=2, stars=3 + 4).points == pytest.approx(0.5 + 0.75)


class TestFulfilmentScore:
    def test_no_record_and_no_ratings_is_the_prior(self):
        assert fulfilment_score(0, 0, 0, 0) == pytest.approx(PRIOR_MEAN)

    def test_the_formula(self):
        # (on_time + late/2 + rating points + 5 * 0.9) / (events + ratings + 5)
        score = fulfilment_score(3, 2, 1, 1, ratings=Ratings(count=2, stars=4 + 2))
        assert score == pytest.approx((3 + 1 + (0.75 + 0.25) + 4.5) / (7 + 2 + 5))

    def test_one_rating_moves_a_newcomer_only_a_little(self):
        assert fulfilment_score(0, 0, 0, 0, ratings=fives(1)) == pytest.approx((1 + 4.5) / 6)
        assert fulfilment_score(0, 0, 0, 0, ratings=ones(1)) == pytest.approx(4.5 / 6)

    def test_one_five_star_rating_does_not_beat_a_long_excellent_record(self):
        newcomer = fulfilment_score(0, 0, 0, 0, ratings=fives(1))
        veteran = fulfilment_score(100, 0, 0, 0)
        assert newcomer < veteran

    def test_few_ratings_stay_near_the_prior_many_ratings_are_the_ratings(self):
        few, many = fulfilment_score(0, 0, 0, 0, ratings=ones(2)), fulfilment_score(0, 0, 0, 0, ratings=ones(500))
        assert few > 0.6  # two 1-star ratings: still well above the bottom
        assert many < 0.01  # five hundred: the ratings speak
        assert fulfilment_score(0, 0, 0, 0, ratings=fives(500)) > 0.999

    def test_shrinkage_weakens_as_ratings_grow(self):
        # All 1-star: the score falls from the prior toward 0 as the ratings add up.
        scores = [fulfilment_score(0, 0, 0, 0, ratings=ones(n)) for n in (0, 1, 5, 50, 500)]
        assert scores == sorted(scores, reverse=True)
        assert scores[0] == pytest.approx(PRIOR_MEAN) and scores[2] == pytest.approx(PRIOR_MEAN / 2)

    def test_bad_ratings_pull_down_a_good_record(self):
        assert fulfilment_score(20, 0, 0, 0, ratings=ones(20)) < fulfilment_score(20, 0, 0, 0)

    def test_without_ratings_the_record_alone_as_before(self):
        assert fulfilment_score(8, 2, 1, 1) == pytest.approx((8 + 1 + 4.5) / (12 + 5))


class TestBuyerScore:
    def test_no_record_is_the_prior(self):
        assert buyer_score(0, 0, 0) == pytest.approx(PRIOR_MEAN)

    def test_the_formula(self):
        score = buyer_score(6, 1, 1, ratings=Ratings(count=3, stars=5 + 5 + 3))
        assert score == pytest.approx((6 + 2.5 + 4.5) / (8 + 3 + 5))

    def test_cancellations_and_disputes_count_against(self):
        assert buyer_score(5, 2, 0) < buyer_score(5, 0, 0)
        assert buyer_score(5, 0, 2) < buyer_score(5, 0, 0)

    def test_one_rating_does_not_make_a_star_many_do(self):
        assert buyer_score(0, 0, 0, ratings=ones(1)) > 0.7
        assert buyer_score(0, 0, 0, ratings=ones(300)) < 0.02


class TestReputation:
    @pytest.mark.parametrize("score, stars", [(0.0, 1.0), (1.0, 5.0), (0.9, 4.6), (0.5, 3.0), (0.9166, 4.7)])
    def test_stars_run_from_1_to_5_to_one_decimal(self, score, stars):
        assert reputation(score, 3) == Reputation(score=score, stars=stars, ratings=3)


class TestBuyerKey:
    def test_case_and_surrounding_space_do_not_matter(self):
        assert buyer_key("  Ada.Lovelace@Example.COM \n") == buyer_key("ada.lovelace@example.com")

    def test_different_emails_differ_and_the_email_is_not_in_the_key(self):
        key = buyer_key("ada@example.com")
        assert key != buyer_key("grace@example.com")
        assert len(key) == 64 and "ada" not in key


class TestReveal:
    def test_nothing_to_reveal_before_any_review(self):
        assert not is_revealed(first_review_at=None, both_reviewed=False, now=T0 + timedelta(days=400))

    def test_one_review_stays_hidden_for_the_window(self):
        assert not is_revealed(first_review_at=T0, both_reviewed=False, now=T0 + REVEAL_AFTER - timedelta(seconds=1))
        assert is_revealed(first_review_at=T0, both_reviewed=False, now=T0 + REVEAL_AFTER)

    def test_both_reviews_reveal_at_once(self):
        assert is_revealed(first_review_at=T0, both_reviewed=True, now=T0)

    def test_the_window_is_fourteen_days(self):
        assert REVEAL_AFTER == timedelta(days=14)


class TestCheckReview:
    @pytest.mark.parametrize("rating", [0, 6, -1, True, 4.5])
    def test_rating_must_be_a_whole_number_from_1_to_5(self, rating):
        with pytest.raises(Invalid) as raised:
            check_review(rating, "")
        assert "rating" in raised.value.errors

    def test_comment_is_optional_and_stripped(self):
        assert check_review(5, None) == ""
        assert check_review(1, "  late and damaged \n") == "late and damaged"

    def test_comment_at_most_500_characters_after_stripping(self):
        assert check_review(3, "  " + "x" * 500 + "  ") == "x" * 500
        with pytest.raises(Invalid) as raised:
            check_review(3, "x" * 501)
        assert "comment" in raised.value.errors
