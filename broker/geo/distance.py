"""Geodesic distances, and the bounding box that prefilters them."""

from __future__ import annotations

import math

from geographiclib.geodesic import Geodesic
from geopy.distance import ELLIPSOIDS, geodesic

# A degree of latitude is at least 110.57 km anywhere on the WGS-84 ellipsoid.
_MIN_KM_PER_DEGREE_LAT = 110.5
_EARTH_EQUATORIAL_KM = 6378.137
# geopy's own WGS-84 solver (in kilometres), made once: `geodesic(...)` builds
# one per call, a third of the time of a distance, and the board and settlement
# measure thousands.
_WGS84_KM = Geodesic(ELLIPSOIDS["WGS-84"][0], ELLIPSOIDS["WGS-84"][2])


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Geodesic distance in kilometres, rounded to the metre.

    Rounding makes ties real ties: two stores at the same point must compare
    equal, not differ in the fifteenth digit.
    """
    if -90 <= lat1 <= 90 and -90 <= lat2 <= 90 and -180 <= lon1 <= 180 and -180 <= lon2 <= 180:
        # What geopy computes, without re-checking the points for every pair.
        return round(_WGS84_KM.Inverse(lat1, lon1, lat2, lon2, Geodesic.DISTANCE)["s12"], 3)
    return round(geodesic((lat1, lon1), (lat2, lon2)).km, 3)


def bounding_box(lat: float, lon: float, radius_km: float) -> tuple[float, float, float, float]:
    """(min_lat, max_lat, min_lon, max_lon) that contains every point within radius_km.

    It is generous on purpose (it is a prefilter for an indexed range scan; the
    exact geodesic check follows). Near the poles or across the antimeridian the
    longitude range becomes the whole circle.
    """
    dlat = radius_km / _MIN_KM_PER_DEGREE_LAT
    min_lat, max_lat = lat - dlat, lat + dlat
    if min_lat <= -90 or max_lat >= 90:
        return max(min_lat, -90.0), min(max_lat, 90.0), -180.0, 180.0
    # The parallel nearest the pole inside the box has the shortest degree of longitude.
    widest_lat = max(abs(min_lat), abs(max_lat))
    km_per_degree_lon = (math.pi / 180) * _EARTH_EQUATORIAL_KM * math.cos(math.radians(widest_lat))
    dlon = radius_km / (km_per_degree_lon * 0.99)
    if dlon >= 180 or lon - dlon < -180 or lon + dlon > 180:
        return min_lat, max_lat, -180.0, 180.0
    return min_lat, max_lat, lon - dlon, lon + dlon


# About 2.2 km of latitude (less of longitude away from the equator).
APPROXIMATE_CELL_DEGREES = 0.02


def approximate_point(lat: float, lon: float, cell: float = APPROXIMATE_CELL_DEGREES) -> tuple[float, float]:
    """The centre of the grid cell a point falls in: where a listing may be drawn
    on a retailer's map before it has won the order. The exact ship-to point is
    someone's door; the cell is about the size of the coarse area (a postal
    prefix) the board already shows. Every point in a cell maps to the same
    centre, so nothing of the exact point survives."""
    def snap(value: float) -> float:
        return round((math.floor(value / cell) + 0.5) * cell, 6)

    return max(-90.0, min(90.0, snap(lat))), max(-180.0, min(180.0, snap(lon)))


def shown_distance_km(km: float) -> float:
    """A distance as a retailer is shown it before the award: whole kilometres,
    and at least 1.

    It is measured from the listing's cell (`approximate_point`), whose centre
    can be over a kilometre from the customer: "0 km" would claim a precision
    the number does not have, so anything under 1.5 km reads 1 km. Halves round
    up, the same on every machine."""
    return float(max(1, math.floor(km + 0.5)))


def shown_upper_km(shown: float) -> float:
    """The distances that show as `shown` are those under this (and at least
    `shown` − 0.5, or 0 for 1 km): what a search by shown distance must reach."""
    return shown + 0.5
