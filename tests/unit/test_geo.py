import math

import pytest

from broker.errors import Invalid
from broker.geo.distance import bounding_box, distance_km
from broker.geo.geocoding import GeopyGeocoder, LocationQuery, OfflineGeocoder, Precision, Throttle, resolve_location

geocoder = OfflineGeocoder()

# City centres, written out here from an atlas rather than read from the data
# under test: a place found by name must be within 25 km of its centre.
CENTRES = {"Berlin": (52.5200, 13.4050), "Munich": (48.1351, 11.5820), "Cologne": (50.9375, 6.9603),
           "Toronto": (43.6532, -79.3832), "Tokyo": (35.6762, 139.6503), "Zurich": (47.3769, 8.5417),
           "Frankfurt am Main": (50.1109, 8.6821), "Springfield, Missouri": (37.2090, -93.2923),
           "Springfield, Illinois": (39.7817, -89.6501), "Vienna": (48.2082, 16.3738)}


def within(found, city: str, km: float = 25) -> bool:
    return distance_km(found.lat, found.lon, *CENTRES[city]) <= km


class TestResolveLocation:
    def test_us_zip_resolves_offline_with_coarse_area(self):
        found = resolve_location(geocoder, LocationQuery(postal_code="94103", country="US"))
        assert found.lat == pytest.approx(37.77, abs=0.05) and found.lon == pytest.approx(-122.41, abs=0.05)
        assert found.area == "San Francisco, CA 941xx"
        assert found.precision is Precision.POSTAL_CODE

    def test_explicit_coordinates_win_over_the_postal_code(self):
        found = resolve_location(geocoder, LocationQuery(postal_code="94103", country="US", lat=40.0, lon=-74.0))
        assert (found.lat, found.lon) == (40.0, -74.0)
        assert found.area == "San Francisco, CA 941xx"  # the area still comes from the postal code

    def test_coordinates_alone_need_no_geocoder(self):
        found = resolve_location(geocoder, LocationQuery(lat=-33.86, lon=151.21))
        assert (found.lat, found.lon) == (-33.86, 151.21)
        assert "1" in found.area  # "near -33.9, 151.2", never finer than a tenth of a degree
        assert found.precision is Precision.COORDINATES

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
            (LocationQuery(city="Berlin"), "location.country"),
            (LocationQuery(city="Berlin", country="XX"), "location.country"),
            (LocationQuery(city="Springfeld", country="DE"), "location.city"),
        ],
    )
    def test_bad_locations_are_422_naming_the_field(self, query, field):
        with pytest.raises(Invalid) as raised:
            resolve_location(geocoder, query)
        assert raised.value.status == 422
        assert list(raised.value.errors) == [field]


class TestPlacesByName:
    @pytest.mark.parametrize("typed, country, city", [
        ("Berlin", "DE", "Berlin"), ("berlin", "DE", "Berlin"), ("  BERLIN ", "DE", "Berlin"),
        ("München", "DE", "Munich"), ("Munich", "DE", "Munich"), ("MUNCHEN", "DE", "Munich"),
        ("Köln", "DE", "Cologne"), ("Cologne", "DE", "Cologne"), ("Koln", "DE", "Cologne"),
        ("Zürich", "CH", "Zurich"), ("zurich", "CH", "Zurich"),
        ("Wien", "AT", "Vienna"), ("Vienna", "AT", "Vienna"),
        ("Toronto", "CA", "Toronto"),
        ("Tokyo", "JP", "Tokyo"), ("東京", "JP", "Tokyo"), ("Chiyoda-ku", "JP", "Tokyo"), ("千代田区", "JP", "Tokyo"),
        ("Chiyoda-ku, Tokyo", "JP", "Tokyo"), ("Shibuya City", "JP", "Tokyo"),
    ])
    def test_a_city_is_found_by_any_of_its_names_accents_and_case_folded(self, typed, country, city):
        found = resolve_location(geocoder, LocationQuery(city=typed, country=country))
        assert found.precision is Precision.CITY
        assert within(found, city), (typed, found)

    def test_of_two_places_with_one_name_the_bigger_wins_unless_the_region_says(self):
        assert within(resolve_location(geocoder, LocationQuery(city="Frankfurt", country="DE")), "Frankfurt am Main")
        assert within(resolve_location(geocoder, LocationQuery(city="Springfield", country="US")),
                      "Springfield, Missouri")
        assert within(resolve_location(geocoder, LocationQuery(city="Springfield", country="US", region="IL")),
                      "Springfield, Illinois")

    def test_a_city_is_looked_for_only_in_its_country(self):
        with pytest.raises(Invalid):
            resolve_location(geocoder, LocationQuery(city="Berlin", country="FR"))

    def test_a_code_with_no_places_keeps_nothing_in_memory(self):
        from broker.geo import places

        assert places.find_city("Berlin", "QQ") is None
        assert "QQ" not in places._cities._by_country

    def test_the_area_is_named_from_the_data_never_from_what_was_typed(self):
        found = resolve_location(geocoder, LocationQuery(city="  münchen ", country="DE", postal_code="80331"))
        assert found.area == "Munich, DE 803xx"
        found = resolve_location(geocoder, LocationQuery(city="Toronto", country="CA", region="ON",
                                                         postal_code="M5V 2T6"))
        assert found.area == "Toronto, ON M5V"  # Canada's forward sortation area, never the whole code
        # A region that is not a short code is not quoted: the country is.
        found = resolve_location(geocoder, LocationQuery(city="Chiyoda-ku", country="JP", region="東京都",
                                                         postal_code="100-0005"))
        assert found.area == "Chiyoda, JP 100xx"

    def test_coordinates_with_a_city_keep_the_coordinates_and_name_the_area_by_the_city(self):
        found = resolve_location(geocoder, LocationQuery(city="Berlin", country="DE", lat=52.49, lon=13.38))
        assert (found.lat, found.lon, found.precision) == (52.49, 13.38, Precision.COORDINATES)
        assert found.area == "Berlin, DE"

    def test_an_unknown_city_is_refused_with_a_message_for_a_shopper(self):
        with pytest.raises(Invalid) as raised:
            resolve_location(geocoder, LocationQuery(city="Springfeld", country="DE", postal_code="10115"),
                             field="ship_to")
        assert raised.value.errors == {
            "ship_to.city": ["We could not find Springfeld in Germany: check the city, or use your location"]}
        with pytest.raises(Invalid) as raised:
            resolve_location(geocoder, LocationQuery(postal_code="00000", country="US"))
        assert raised.value.errors == {"location.postal_code": [
            "We could not find the ZIP code 00000 in the United States: check it, add the city, or use your "
            "location"]}


class FakeService:
    """Stands in for the geopy geocoder's network call."""

    def __init__(self, answers=None, fail: bool = False):
        self.asked: list = []
        self.answers = answers or {}
        self.fail = fail

    def geocode(self, query, exactly_one=True):
        from geopy.exc import GeocoderUnavailable
        from geopy.location import Location

        self.asked.append(query)
        if self.fail:
            raise GeocoderUnavailable("down")
        point = self.answers.get(tuple(sorted(query.items())) if isinstance(query, dict) else query)
        return None if point is None else Location("somewhere", point, {})


def remote(service: FakeService, **options) -> GeopyGeocoder:
    geocoder = GeopyGeocoder("nominatim", {"user_agent": "broker-test", **options})
    geocoder._geocoder.geocode = service.geocode
    return geocoder


class TestRemoteGeocoder:
    def test_it_is_asked_after_the_shipped_zip_codes_and_before_the_shipped_cities(self):
        service = FakeService({(("country", "DE"), ("postalcode", "10115")): (52.532, 13.384)})
        geocoder = remote(service, min_delay_seconds="0")
        us = resolve_location(geocoder, LocationQuery(postal_code="94103", country="US"))
        assert us.precision is Precision.POSTAL_CODE and service.asked == []  # a US ZIP code never leaves
        de = resolve_location(geocoder, LocationQuery(postal_code="10115", country="DE", city="berlin"))
        assert (de.lat, de.lon, de.precision) == (52.532, 13.384, Precision.POSTAL_CODE)
        assert de.area == "Berlin, DE 101xx"  # the shipped data's name for it, not the text typed
        assert service.asked == [{"postalcode": "10115", "country": "DE"}]
        # It knows no such postal code: asked for the city next, then the shipped cities answer.
        at = resolve_location(geocoder, LocationQuery(postal_code="1010", country="AT", city="Wien"))
        assert at.precision is Precision.CITY and within(at, "Vienna")
        assert service.asked[1:] == [{"postalcode": "1010", "country": "AT"}, {"city": "wien", "country": "AT"}]

    def test_a_service_that_is_down_leaves_the_shipped_data_to_answer(self):
        service = FakeService(fail=True)
        found = resolve_location(remote(service, min_delay_seconds="0"),
                                 LocationQuery(postal_code="M5V 2T6", country="CA", city="Toronto"))
        assert found.precision is Precision.CITY and within(found, "Toronto")
        assert len(service.asked) == 1  # down: not asked again for the city in the same lookup

    def test_answers_are_cached_and_the_cache_is_bounded(self):
        service = FakeService()
        geocoder = remote(service, min_delay_seconds="0", cache_size="2")
        for _ in range(3):
            resolve_location(geocoder, LocationQuery(city="Berlin", country="DE"))
        assert service.asked == [{"city": "berlin", "country": "DE"}]
        resolve_location(geocoder, LocationQuery(city="Munich", country="DE"))
        resolve_location(geocoder, LocationQuery(city="Hamburg", country="DE"))
        resolve_location(geocoder, LocationQuery(city="Berlin", country="DE"))  # pushed out: asked again
        assert len(service.asked) == 4

    def test_coordinates_never_call_the_service(self):
        service = FakeService()
        resolve_location(remote(service), LocationQuery(lat=52.5, lon=13.4, city="Berlin", country="DE",
                                                        postal_code="10115"))
        assert service.asked == []

    def test_nominatim_is_asked_at_most_once_a_second_from_a_process(self):
        assert remote(FakeService())._throttle.interval == 1.0
        now = [100.0]
        slept: list[float] = []

        def sleep(seconds):
            slept.append(seconds)
            now[0] += seconds

        throttle = Throttle(1.0, 10.0, clock=lambda: now[0], sleep=sleep)
        assert all(throttle.acquire() for _ in range(4))
        assert slept == [1.0, 1.0, 1.0]

    def test_its_settings_must_be_numbers(self):
        from broker.config import ConfigError

        with pytest.raises(ConfigError):
            GeopyGeocoder("nominatim", {"user_agent": "broker-test", "min_delay_seconds": "soon"})
        with pytest.raises(ConfigError):
            GeopyGeocoder("no-such-service")

    def test_a_call_that_would_wait_too_long_is_skipped_for_the_shipped_data(self):
        now = [0.0]
        throttle = Throttle(1.0, 2.5, clock=lambda: now[0], sleep=lambda s: None)
        # Three callers at one moment reserve 0 s, 1 s and 2 s; the fourth would wait 3 s.
        assert [throttle.acquire() for _ in range(4)] == [True, True, True, False]


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
