from broker.geo.countries import country_choices, country_name, is_country
from broker.geo.distance import bounding_box, distance_km
from broker.geo.geocoding import (
    GeocodeResult,
    Geocoder,
    GeopyGeocoder,
    LocationQuery,
    OfflineGeocoder,
    OfflineZipGeocoder,
    Precision,
    make_geocoder,
    resolve_location,
)

__all__ = [
    "GeocodeResult",
    "Geocoder",
    "GeopyGeocoder",
    "LocationQuery",
    "OfflineGeocoder",
    "OfflineZipGeocoder",
    "Precision",
    "bounding_box",
    "country_choices",
    "country_name",
    "distance_km",
    "is_country",
    "make_geocoder",
    "resolve_location",
]
