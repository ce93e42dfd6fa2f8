"""A store's postal address: the fields an order's ship-to has (`line1`,
`line2`, `city`, `region`, `postal_code`, `country`), checked by one rule.

* `country`: two letters (ISO 3166-1 alpha-2), upper case;
* an address is either in full (`line1`, `city`, `postal_code`, `country`
  required), or, as a store made from a bare location at sign-up has it, only
  its `postal_code` and `country` until the retailer completes it: giving any
  of `line1`, `line2` or `city` asks for the full one;
* in the US, the postal code is a ZIP code (`94110` or `94110-1234`) that
  exists, and `region` is its state: derived from the ZIP when left out, and
  refused when it names another state (`zipcodes`, offline);
* elsewhere `region` is the state, province or county as the country writes it
  (optional);
* every field one line of text, without control characters.
"""

from __future__ import annotations

import dataclasses
import functools
import re

from broker.errors import Invalid

LIMITS = {"line1": 200, "line2": 200, "city": 120, "region": 60, "postal_code": 20, "country": 2}
_US_ZIP = re.compile(r"^(\d{5})(?:-?(\d{4}))?$")


@dataclasses.dataclass(frozen=True)
class PostalAddress:
    line1: str = ""
    line2: str = ""
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""

    @classmethod
    def of(cls, row) -> PostalAddress:
        """A row's address (a store's columns have these names)."""
        return cls(row.line1, row.line2, row.city, row.region, row.postal_code, row.country)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def complete(self) -> bool:
        """Enough to find the place: a street, a city and a country."""
        return bool(self.line1 and self.city and self.country)

    def lines(self) -> list[str]:
        """As printed on an envelope, in the US order (street; city, state ZIP; country)."""
        place = " ".join(p for p in (f"{self.city}," if self.city and (self.region or self.postal_code) else
                                     self.city, self.region, self.postal_code) if p)
        return [line for line in (self.line1, self.line2, place, self.country) if line]


def _one_line(value: object, name: str, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Invalid.field(f"{field}.{name}", "must be text")
    text = " ".join(value.split())
    if len(text) > LIMITS[name]:
        raise Invalid.field(f"{field}.{name}", f"at most {LIMITS[name]} characters")
    return text


def check_address(values: dict, *, field: str = "address", complete: bool | None = None) -> PostalAddress:
    """The address from a caller's values (a dict of the six fields), checked and
    normalised. `complete`: True, line1, city, postal code and country are
    required; False, only what is there is checked (a postal code and country
    given as a location); None (a caller's address), the postal code and country
    are required, and line1 and city too once any of the street is given.

    :raise 422: every wrong field at once, each under `<field>.<name>`.
    """
    errors: dict[str, list[str]] = {}
    clean: dict[str, str] = {}
    for name in LIMITS:
        try:
            clean[name] = _one_line(values.get(name), name, field)
        except Invalid as exc:
            errors.update(exc.errors)
            clean[name] = ""
    clean["country"] = clean["country"].upper()
    if clean["country"] and not re.fullmatch(r"[A-Z]{2}", clean["country"]):
        errors.setdefault(f"{field}.country", []).append("the two-letter ISO 3166 country code, like US or DE")
    needed = {"postal_code": "the postal code", "country": "the two-letter country code"}
    if complete or (complete is None and (clean["line1"] or clean["line2"] or clean["city"])):
        needed |= {"line1": "the street and number", "city": "the city"}
    for name, what in needed.items() if complete is not False else ():
        if not clean[name] and f"{field}.{name}" not in errors:
            errors[f"{field}.{name}"] = [f"{what} must not be blank"]
    if clean["country"] == "US" and clean["postal_code"] and f"{field}.postal_code" not in errors:
        zip5 = _US_ZIP.match(clean["postal_code"])
        state = zip5 and state_of_zip(zip5[1])
        if state is None:
            errors[f"{field}.postal_code"] = [f"{clean['postal_code']!r} is not a US ZIP code"]
        else:
            clean["postal_code"] = zip5[1] + (f"-{zip5[2]}" if zip5[2] else "")
            region = clean["region"].upper()
            if not region:
                clean["region"] = state
            elif region != state:
                errors[f"{field}.region"] = [f"ZIP code {zip5[1]} is in {state}, not {clean['region']}"]
            else:
                clean["region"] = region
    if errors:
        raise Invalid("the address has errors", errors=errors)
    return PostalAddress(**clean)


@functools.lru_cache(maxsize=4096)
def state_of_zip(zip5: str) -> str | None:
    """The US state (two letters) a five-digit ZIP code is in, from the bundled
    `zipcodes` data; None if there is no such ZIP."""
    import zipcodes  # loads its data file on first use, not at import time

    try:
        matches = zipcodes.matching(zip5)
    except (ValueError, TypeError):
        return None
    return next((m["state"] for m in matches if m.get("state")), None)
