import random

import pytest

from broker.board.reach import Reach, merge_boxes
from broker.geo.distance import distance_km


class TestReach:
    @pytest.mark.parametrize("lat", [0.0, 25.8, 40.7, 61.2, 75.0, -45.0])
    @pytest.mark.parametrize("radius", [5.0, 50.0, 300.0])
    def test_the_approximation_stays_within_its_margin(self, lat, radius):
        rng = random.Random(f"{lat}-{radius}")
        reach = Reach.around(lat, 10.0, radius)
        assert reach.margin_km is not None
        min_lat, max_lat, min_lon, max_lon = reach.box
        for _ in range(300):
            p = (rng.uniform(min_lat, max_lat), rng.uniform(min_lon, max_lon))
            assert abs(reach.approx_km(*p) - distance_km(lat, 10.0, *p)) <= reach.margin_km

    def test_inner_rectangles_are_inside_the_radius(self):
        reach = Reach.around(40.71, -74.01, 50)
        for min_lat, max_lat, min_lon, max_lon in reach.inner_rectangles():
            for corner in ((min_lat, min_lon), (min_lat, max_lon), (max_lat, min_lon), (max_lat, max_lon)):
                assert distance_km(40.71, -74.01, *corner) < 50

    @pytest.mark.parametrize("lat, lon", [(85.0, 0.0), (10.0, 179.9)])
    def test_no_approximation_near_a_pole_or_across_the_antimeridian(self, lat, lon):
        assert Reach.around(lat, lon, 50).margin_km is None


def test_overlapping_boxes_merge_and_distant_ones_stay_apart():
    assert merge_boxes([(0, 1, 0, 1), (0.5, 2, 0.5, 2), (10, 11, 10, 11)]) == [(0, 2, 0, 2), (10, 11, 10, 11)]
