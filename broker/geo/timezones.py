"""The IANA time zone of a point, offline, and the check of a zone's name.

`timezonefinder` answers from the time zones' boundaries, which ship inside the
package (no network, ever). It is loaded on first use, not at import time, and
kept for the process: the first answer takes a few tenths of a second, the
next ones microseconds.
"""

from __future__ import annotations

import atexit
import re
import threading
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from broker.errors import Invalid

# IANA names: Area/Location[/Sublocation], or UTC, Etc/GMT+5 and the like.
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+){0,2}$")
MAX_NAME = 64

_finder = None
_lock = threading.Lock()


def _timezone_finder():
    global _finder
    with _lock:
        if _finder is None:
            from timezonefinder import TimezoneFinder

            _finder = TimezoneFinder()
            # Its files are mapped, not read: unmapped at exit explicitly, as
            # its own finaliser would, less tidily, with a ResourceWarning.
            atexit.register(_finder.cleanup)
        return _finder


def timezone_at(lat: float, lon: float, default: str) -> str:
    """The time zone in force at the point; `default` (BROKER_TIMEZONE) if the
    boundaries name none there."""
    try:
        found = _timezone_finder().timezone_at(lng=lon, lat=lat)
    except ValueError:  # a point off the map: the caller checked it already
        found = None
    return found if found and is_known(found) else default


def is_known(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def parse_timezone(value: object, field: str = "timezone") -> str:
    """An IANA time zone name as given ("Europe/Berlin"), in its canonical
    spelling. :raise 422: not a name of the time zone database."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid.field(field, "an IANA time zone name, like America/Los_Angeles or Europe/Berlin")
    name = value.strip()
    if len(name) > MAX_NAME or not _NAME.match(name):
        raise Invalid.field(field, "an IANA time zone name, like America/Los_Angeles or Europe/Berlin")
    # The database's own spelling: `europe/berlin` is Europe/Berlin, and a name
    # that reads as a path never reaches ZoneInfo's file lookup.
    canonical = _by_lowercase().get(name.lower())
    if canonical is None:
        raise Invalid.field(field, f"{name!r} is not a time zone; use an IANA name like America/Los_Angeles")
    return canonical


_names: dict[str, str] | None = None


def _by_lowercase() -> dict[str, str]:
    global _names
    if _names is None:
        _names = {name.lower(): name for name in available_timezones()}
    return _names
