from broker.geo.geocoding import (
    GeocodeResult,
    Geocoder,
    GeopyGeocoder,
    LocationQuery,
    OfflineZipGeocoder,
    make_geocoder,
    resolve_location,
)
from broker.geo.distance import bounding_box, distance_km

__all__ = [
    "GeocodeResult",
    "Geocoder",
    "GeopyGeocoder",
    "LocationQuery",
    "OfflineZipGeocoder",
    "bounding_box",
    "distance_km",
    "make_geocoder",
    "resolve_location",
]
