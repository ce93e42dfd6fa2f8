import json
from datetime import datetime, timedelta, timezone

import pytest

from broker.settlement.models import Rule
from broker.settlement.rules import Candidate, choose, distance_band, eligibility, records_json

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def cand(retailer_id, km, *, score=0.9, minutes=0, eligible=True, reason=""):
    return Candidate(bid_id=retailer_id * 10, retailer_id=retailer_id, store_id=retailer_id * 100, distance_km=km,
                     score=score, bid_at=T0 + timedelta(minutes=minutes), eligible=eligible, reason=reason)


class TestChoose:
    def test_nearest_bidder_wins(self):
        choice = choose([cand(1, 12.0), cand(2, 3.5), cand(3, 8.0)])
        assert choice.winner.retailer_id == 2
        assert choice.rule is Rule.NEAREST
        assert [c.retailer_id for c in choice.ranked] == [2, 3, 1]

    def test_ineligible_bidders_never_win_however_near(self):
        choice = choose([cand(1, 0.1, eligible=False, reason="outside_service_radius"), cand(2, 30.0)])
        assert choice.winner.retailer_id == 2
        assert choice.rule is Rule.ONLY_ELIGIBLE_BID
        assert [c.retailer_id for c in choice.ineligible] == [1]

    def test_equal_distance_goes_to_better_fulfilment_score(self):
        choice = choose([cand(1, 5.0, score=0.80), cand(2, 5.0, score=0.95)])
        assert choice.winner.retailer_id == 2
        assert choice.rule is Rule.FULFILMENT_SCORE

    def test_equal_distance_and_score_goes_to_earlier_bid(self):
        choice = choose([cand(1, 5.0, minutes=30), cand(2, 5.0, minutes=10)])
        assert choice.winner.retailer_id == 2
        assert choice.rule is Rule.EARLIEST_BID

    def test_full_tie_goes_to_lower_retailer_id(self):
        choice = choose([cand(7, 5.0), cand(3, 5.0)])
        assert choice.winner.retailer_id == 3
        assert choice.rule is Rule.LOWEST_RETAILER_ID

    def test_outcome_does_not_depend_on_input_order(self):
        bids = [cand(5, 5.0), cand(3, 5.0, minutes=1), cand(4, 2.0, eligible=False, reason="x"), cand(9, 7.0)]
        winners = {choose(order).winner.retailer_id for order in (bids, bids[::-1], bids[1:] + bids[:1])}
        assert winners == {5}

    def test_no_bids_falls_back_to_manufacturer(self):
        choice = choose([])
        assert choice.winner is None
        assert choice.rule is Rule.NO_BIDS

    def test_no_eligible_bids_falls_back_to_manufacturer(self):
        choice = choose([cand(1, 1.0, eligible=False, reason="not_authorised")])
        assert choice.winner is None
        assert choice.rule is Rule.NO_ELIGIBLE_BIDS
        assert choice.candidates[0].reason == "not_authorised"


class TestEligibility:
    base = dict(retailer_active=True, authorised=True, store_open=True, distance_km=10.0, radius_km=25.0)

    def test_eligible(self):
        assert eligibility(**self.base) == ""

    @pytest.mark.parametrize(
        "change, reason",
        [
            ({"retailer_active": False}, "retailer_inactive"),
            ({"authorised": False}, "not_authorised"),
            ({"store_open": False}, "store_closed"),
            ({"distance_km": 25.001}, "outside_service_radius"),
        ],
    )
    def test_each_rule_excludes(self, change, reason):
        assert eligibility(**{**self.base, **change}) == reason

    def test_radius_boundary_is_inside(self):
        assert eligibility(**{**self.base, "distance_km": 25.0}) == ""


@pytest.mark.parametrize("km, band", [(0.4, "under 1 km"), (4.99, "under 5 km"), (60, "under 100 km"),
                                      (700, "500 km or more")])
def test_distance_band(km, band):
    assert distance_band(km) == band


class TestRecordsJson:
    """Settlement writes a decision's candidates with `records_json`, which must be
    exactly what json.dumps makes of their records (reports read them back)."""

    @pytest.mark.parametrize("candidates", [
        [],
        [cand(1, 12.0)],
        [cand(3, 0.1, score=0.123456789, minutes=7), cand(2, 30.5, eligible=False, reason="not_authorised"),
         cand(9, 1e-7, score=1.0, eligible=False, reason="outside_service_radius")],
        [Candidate(bid_id=2**40, retailer_id=7, store_id=8, distance_km=3, score=0.9,
                   bid_at=T0 + timedelta(microseconds=123456), eligible=True, price=12345)],
        [cand(5, 123456.78901234567, score=1), cand(6, 2.5)._replace(price=0)],
        [cand(4, 2.5, reason='a "quoted" reason \\ with a backslash', eligible=False)],
    ])
    def test_same_text_as_json_dumps(self, candidates):
        assert records_json(candidates) == json.dumps([c.as_record() for c in candidates])
