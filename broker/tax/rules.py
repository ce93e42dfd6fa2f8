"""Tax arithmetic and the rate table's lookups: pure, in minor units.

Rates are integers in thousandths of a percent (`RATE_SCALE` is 100 %), so a
rate like New York City's 8.875 % is exact. Amounts round half up, once, on
the order's taxable whole rather than per line (per-line rounding would make
a cart of many cheap things drift by cents).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

RATE_SCALE = 100_000  # 100 %
MAX_RATE = RATE_SCALE
_RATE = re.compile(r"^(\d{1,3})(?:\.(\d{1,3}))?$")

# Where prices are quoted before tax by custom: everywhere else a shopper expects
# the price on the shelf to be what they pay (VAT and GST countries).
EXCLUSIVE_CURRENCIES = frozenset({"USD", "CAD"})


def parse_rate(text: str) -> int:
    """"8.875" (a percentage as a decimal string) as 8875. :raise ValueError:
    not such a string, more than three decimals, or over 100."""
    match = _RATE.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError("a percentage as a decimal string, e.g. \"8.875\", with at most three decimals")
    whole, fraction = match.group(1), (match.group(2) or "").ljust(3, "0")
    rate = int(whole) * 1000 + int(fraction)
    if rate > MAX_RATE:
        raise ValueError("at most 100")
    return rate


def format_rate(rate: int) -> str:
    """8875 as "8.875", 19000 as "19"."""
    whole, fraction = divmod(rate, 1000)
    return f"{whole}.{fraction:03d}".rstrip("0").rstrip(".") if fraction else str(whole)


def _half_up(numerator: int, denominator: int) -> int:
    return (2 * numerator + denominator) // (2 * denominator)


def tax_on_top(amount: int, rate: int) -> int:
    """The tax to add to a price quoted before tax."""
    return _half_up(amount * rate, RATE_SCALE)


def tax_within(gross: int, rate: int) -> int:
    """The tax inside a price that includes it: 119.00 at 19 % holds 19.00."""
    return _half_up(gross * rate, RATE_SCALE + rate)


def default_inclusive(currency: str) -> bool:
    """Whether a store's prices include tax when its manufacturer has not said."""
    return currency.upper() not in EXCLUSIVE_CURRENCIES


def jurisdiction(country: str, region: str = "") -> str:
    """"US-NY" for a region's rate, "DE" for a country's."""
    return f"{country}-{region}" if region else country


@dataclasses.dataclass(frozen=True)
class Found:
    rate: int
    jurisdiction: str


def rate_for(rates: Mapping[tuple[str, str], int], country: str, region: str) -> Found:
    """The destination's rate: its region's where the table has one, else its
    country's, else none (0, under the country's name)."""
    country, region = country.upper(), (region or "").upper()
    if region and (country, region) in rates:
        return Found(rates[(country, region)], jurisdiction(country, region))
    return Found(rates.get((country, ""), 0), country)
