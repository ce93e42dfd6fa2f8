import math

import pytest

from broker.errors import Invalid
from broker.geo.distance import bounding_box, distance_km
from broker.geo.geocoding import LocationQuery, OfflineGeocoder, resolve_location

geocoder = OfflineGeocoder()


class TestResolveLocation:
    def test_us_zip_resolves_offline_with_coarse_area(self):
        found = resolve_location(geocoder, LocationQuery(postal_code="94103", country="US"))
        assert found.lat == pytest.approx(37.77, abs=0.05) and found.lon == pytest.approx(-122.41, abs=0.05)
        assert found.area == "San Francisco, CA 941xx"

    def test_explicit_coordinates_win_over_the_postal_code(self):
        found = resolve_location(geocoder, LocationQuery(postal_code="94103", country="US", lat=40.0, lon=-74.0))
        assert (found.lat, found.lon) == (40.0, -74.0)
        assert found.area == "San Francisco, CA 941xx"  # the area still comes from the postal code

    def test_coordinates_alone_need_no_geocoder(self):
        found = resolve_location(geocoder, LocationQuery(lat=-33.86, lon=151.21))
        assert (found.lat, found.lon) == (-33.86, 151.21)
        assert "1" in found.area  # "near -33.9, 151.2", never finer than a tenth of a degree

    @pytest.mark.parametrize(
        "query, field",
        [
            (LocationQuery(lat=91, lon=0), "location.lat"),
            (LocationQuery(lat=-90.5, lon=0), "location.lat"),
            (LocationQuery(lat=0, lon=180.01), "location.lon"),
            (LocationQuery(lat=math.nan, lon=0), "location.lat"),
            (LocationQuery(lat=10.0), "location"),
            (LocationQuery(), "location"),
            (LocationQuery(postal_code="00000", country="US"), "location.postal_code"),
            (LocationQuery(postal_code="SW1A 1AA", country="GB"), "location.postal_code"),
            (LocationQuery(postal_code="94103"), "location.country"),
        ],
    )
    def test_bad_locations_are_422_naming_the_field(self, query, field):
        with pytest.raises(Invalid) as raised:
            resolve_location(geocoder, query)
        assert raised.value.status == 422
        assert list(raised.value.errors) == [field]


class TestDistance:
    def test_geodesic_kilometres(self):
        # San Francisco to Los Angeles City Hall, about 559 km
        assert distance_km(37.7793, -122.4193, 34.0537, -118.2428) == pytest.approx(559, abs=2)

    def test_same_point_is_zero(self):
        assert distance_km(1.5, 2.5, 1.5, 2.5) == 0.0

    @pytest.mark.parametrize("lat, lon, radius", [
        (37.77, -122.41, 50), (64.1, -21.9, 200), (-33.9, 151.2, 10), (0.0, 179.9, 100), (89.5, 0.0, 100),
        (-45.0, -179.95, 30),
    ])
    def test_bounding_box_contains_every_point_within_the_radius(self, lat, lon, radius):
        min_lat, max_lat, min_lon, max_lon = bounding_box(lat, lon, radius)
        for bearing in range(0, 360, 15):
            from geopy.distance import geodesic

            point = geodesic(kilometers=radius * 0.999).destination((lat, lon), bearing)
            assert min_lat <= point.latitude <= max_lat
            assert min_lon <= point.longitude <= max_lon, (bearing, point)
