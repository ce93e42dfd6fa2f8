"""Every bid outcome has one name and one reason (broker.settlement.labels)."""

import pytest

from broker.settlement.labels import LABELS, describe
from broker.settlement.reports import Outcome


class TestEveryOutcomeHasItsOwnWords:
    def test_every_outcome_has_a_label(self):
        assert set(LABELS) == {str(o) for o in Outcome}

    @pytest.mark.parametrize("outcome, label, reason", [
        ("pending", "Open", "The listing is open; it is settled at the next run."),
        ("withdrawn", "Withdrawn", "You withdrew your bid."),
        ("customer_chose_another", "Customer chose another offer", "The customer accepted another retailer's offer."),
        ("expired", "Expired", "The request expired without an award."),
        ("released", "Released", "You won it and gave it back: it went on to the next bidder, and the release "
                                 "counts in your score."),
    ])
    def test_simple_outcomes(self, outcome, label, reason):
        text = describe(outcome)
        assert (text.label, text.reason) == (label, reason)

    def test_a_lapsed_award_is_never_called_won(self):
        text = describe("lapsed", rule="nearest", winner="you", won_round=0)
        assert text.label == "Lapsed" and "did not ship in time" in text.reason and "Won" not in text.reason

    def test_won_says_which_rule_made_it_yours(self):
        assert describe("won", rule="nearest", winner="you", won_round=0).reason == (
            "Won: you were the nearest eligible bidder.")
        assert "passed on to you" in describe("won", rule="nearest", winner="you", won_round=1).reason
        assert describe("won", rule="customer_choice", kind="request").reason == (
            "Won: the customer accepted your offer.")

    def test_lost_to_a_nearer_bidder_gives_the_band(self):
        text = describe("lost", rule="nearest", winner="another retailer", winner_distance_band="under 5 km",
                        my_eligibility="")
        assert (text.label, text.reason) == ("Lost", "Lost: a nearer bidder won; the winner was under 5 km away.")

    @pytest.mark.parametrize("eligibility, words", [
        ("outside_service_radius", "out of reach"),
        ("store_closed", "your store was closed"),
        ("not_authorised", "no longer an authorised dealer"),
        ("out_of_stock", "not enough stock"),
    ])
    def test_lost_because_ineligible_says_why(self, eligibility, words):
        text = describe("lost", rule="no_eligible_bids", winner="the manufacturer", my_eligibility=eligibility)
        assert text.label == "Lost" and words in text.reason

    def test_lost_to_a_lower_offer(self):
        assert "a lower offer won" in describe("lost", kind="request", rule="lowest_price",
                                               winner="another retailer").reason

    def test_cancelled_before_and_after_the_award(self):
        assert describe("cancelled", kind="request").reason == "Taken off the board: the request was cancelled."
        assert describe("cancelled", won_round=0).reason == "You won it, then the order was cancelled."
