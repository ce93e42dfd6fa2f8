"""A store's postal address: the worldwide rules of `broker.addresses` (the
checkout's), applied to the six fields a retailer gives for a store (`line1`,
`line2`, `city`, `region`, `postal_code`, `country`).

* an address is either in full (street, city and whatever else the country
  requires), or, as a store made from a bare location at sign-up has it, only
  its postal code and country until the retailer completes it: giving any of
  `line1`, `line2` or `city` asks for the full one;
* the postal code is checked against the country's format, a region is one of
  the country's (derived from the postal code where that tells it: a US state
  from its ZIP code), as at checkout;
* every field is one line of text.
"""

from __future__ import annotations

from broker.addresses import PostalAddress, address_lines
from broker.addresses import check_address as check_postal_address
from broker.addresses.formats import country_format
from broker.errors import Invalid
from broker.geo.countries import is_country

FIELDS = ("line1", "line2", "city", "region", "postal_code", "country")


def of(row) -> PostalAddress:
    """A store row's address (its columns have these names)."""
    return PostalAddress(country=row.country or "", line1=row.line1 or "", line2=row.line2 or "",
                         city=row.city or "", region=row.region or "", postal_code=row.postal_code or "")


def to_json(address: PostalAddress) -> dict:
    """The six fields the API gives for a store's address."""
    return {name: getattr(address, name) for name in FIELDS}


def lines(address: PostalAddress) -> list[str]:
    """As its country prints it."""
    return address_lines(address)


def _one_line(value: object, name: str, field: str, errors: dict[str, list[str]]) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        errors.setdefault(f"{field}.{name}", []).append("must be text")
        return ""
    return " ".join("".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in value).split())


def check_address(values: dict, *, field: str = "address", complete: bool | None = None) -> PostalAddress:
    """The address from a caller's values (a dict of the six fields), checked and
    normalised by the country's rules. `complete`: True, the full address is
    required; False, only what is there is checked (a postal code and country
    given as a location); None (a caller's address), the country and, where the
    country has them, the postal code are required, and the full address once
    any of the street is given.

    :raise 422: every wrong field at once, each under `<field>.<name>`.
    """
    errors: dict[str, list[str]] = {}
    clean = {name: _one_line(values.get(name), name, field, errors) for name in FIELDS}
    if errors:
        raise Invalid("the address has errors", errors=errors)
    street = complete is True or (complete is None and any(clean[n] for n in ("line1", "line2", "city")))
    try:
        address = check_postal_address(PostalAddress(**clean), field=field, street=street)
    except Invalid as exc:
        errors.update(exc.errors)
        address = None
    country = clean["country"].upper()
    if (complete is None and not street and address is not None and is_country(country)
            and country_format(country).uses("postal_code") and not address.postal_code):
        # What places a store given no coordinates.
        errors[f"{field}.postal_code"] = [f"Enter the {country_format(country).postal_noun}"]
    if errors:
        raise Invalid("the address has errors", errors=errors)
    return address
