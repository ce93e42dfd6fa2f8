"""Turning a location given by a caller into coordinates.

`Geocoder` is the interface. `OfflineZipGeocoder` (the default) resolves US ZIP
codes from the data bundled with the `zipcodes` package, so Broker works with no
network. `GeopyGeocoder` wraps any geopy geocoder for production, with a cache.
Explicit `lat`/`lon` always win and are never geocoded.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
from typing import Protocol

from broker.errors import Invalid
from broker.geo.distance import approximate_point


@dataclasses.dataclass(frozen=True)
class LocationQuery:
    postal_code: str | None = None
    country: str | None = None
    lat: float | None = None
    lon: float | None = None


@dataclasses.dataclass(frozen=True)
class GeocodeResult:
    lat: float
    lon: float
    # A coarse, non-identifying description: "San Francisco, CA 941xx".
    area: str


class Geocoder(Protocol):
    def geocode(self, postal_code: str, country: str) -> GeocodeResult | None:
        """Coordinates of a postal code's centre, or None if it is unknown."""


def coarse_area(city: str | None, region: str | None, postal_code: str | None) -> str:
    """City and region with the postal code cut to its prefix: never a street."""
    parts = [p for p in (city, region) if p]
    label = ", ".join(parts)
    if postal_code:
        prefix = postal_code.replace(" ", "")[:3]
        label = f"{label} {prefix}xx".strip()
    return label or "unknown area"


class OfflineZipGeocoder:
    """US ZIP codes from the bundled `zipcodes` data; no network, ever."""

    name = "offline"

    def geocode(self, postal_code: str, country: str) -> GeocodeResult | None:
        if country.upper() != "US":
            return None
        return _lookup_zip(postal_code.strip()[:5])


@functools.lru_cache(maxsize=65536)
def _lookup_zip(zip5: str) -> GeocodeResult | None:
    import zipcodes  # loads its data file on first use, not at import time

    if len(zip5) != 5 or not zip5.isdigit():
        return None
    try:
        matches = zipcodes.matching(zip5)
    except (ValueError, TypeError):
        return None
    for match in matches:
        try:
            lat, lon = float(match["lat"]), float(match["long"])
        except (KeyError, TypeError, ValueError):
            continue
        return GeocodeResult(lat, lon, coarse_area(match.get("city"), match.get("state"), zip5))
    return None


class GeopyGeocoder:
    """Any geopy geocoder (`BROKER_GEOCODER=nominatim`, options from
    `BROKER_GEOCODER_<OPTION>` variables), with an in-process cache of answers."""

    def __init__(self, name: str, options: dict[str, str] | None = None):
        from geopy.geocoders import get_geocoder_for_service

        try:
            cls = get_geocoder_for_service(name)
        except Exception as exc:  # geopy raises GeocoderNotFound
            from broker.config import ConfigError

            raise ConfigError(f"BROKER_GEOCODER {name!r} is not a geopy geocoder: {exc}") from None
        self.name = name
        self._geocoder = cls(**(options or {}))
        self._cache: dict[tuple[str, str], GeocodeResult | None] = {}
        self._lock = threading.Lock()

    def geocode(self, postal_code: str, country: str) -> GeocodeResult | None:
        key = (postal_code.strip().upper(), country.upper())
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        found = self._geocoder.geocode({"postalcode": key[0], "country": key[1]}, exactly_one=True)
        result = None
        if found is not None:
            result = GeocodeResult(found.latitude, found.longitude, coarse_area(None, key[1], key[0]))
        with self._lock:
            self._cache[key] = result
        return result


def make_geocoder(name: str, options: dict[str, str] | None = None) -> Geocoder:
    if name in ("", "offline"):
        return OfflineZipGeocoder()
    return GeopyGeocoder(name, dict(options or {}))


def resolve_location(geocoder: Geocoder, query: LocationQuery, *, field: str = "location") -> GeocodeResult:
    """Coordinates for a caller's location, or a 422 that says what is wrong.

    Explicit coordinates win; the postal code (if any) still gives the coarse area.
    """
    has_lat, has_lon = query.lat is not None, query.lon is not None
    if has_lat != has_lon:
        raise Invalid.field(field, "give both lat and lon, or neither")
    if has_lat:
        lat, lon = float(query.lat), float(query.lon)  # type: ignore[arg-type]
        if not (math.isfinite(lat) and -90 <= lat <= 90):
            raise Invalid.field(f"{field}.lat", "latitude must be between -90 and 90")
        if not (math.isfinite(lon) and -180 <= lon <= 180):
            raise Invalid.field(f"{field}.lon", "longitude must be between -180 and 180")
        area = None
        if query.postal_code and query.country:
            known = _safe_geocode(geocoder, query.postal_code, query.country)
            area = known.area if known else None
        if area is None and (query.postal_code or query.country):
            area = coarse_area(None, (query.country or "").upper() or None, query.postal_code)
        if area is None:
            # From the point's grid cell, not the point: the board shows this
            # text, and rounding the point itself would tell which side of a
            # rounding line inside the cell the customer is on.
            cell_lat, cell_lon = approximate_point(lat, lon)
            area = f"near {cell_lat:.1f}, {cell_lon:.1f}"
        return GeocodeResult(lat, lon, area)
    if not query.postal_code:
        raise Invalid.field(field, "give a postal_code and country, or lat and lon")
    if not query.country:
        raise Invalid.field(f"{field}.country", "a country is needed with a postal code")
    found = _safe_geocode(geocoder, query.postal_code, query.country)
    if found is None:
        raise Invalid.field(
            f"{field}.postal_code",
            f"unknown postal code {query.postal_code!r} in {query.country.upper()}; give lat and lon instead",
        )
    return found


def _safe_geocode(geocoder: Geocoder, postal_code: str, country: str) -> GeocodeResult | None:
    try:
        return geocoder.geocode(postal_code, country)
    except Exception as exc:  # a remote geocoder that is down must not become a 500
        if isinstance(exc, Invalid):
            raise
        from geopy.exc import GeopyError

        if isinstance(exc, GeopyError):
            raise Invalid.field("location", "the geocoder is unavailable; give lat and lon instead") from None
        raise
