"""Money is an integer number of minor units and an ISO 4217 currency."""

from __future__ import annotations

# Minor-unit exponents of the currencies Broker accepts (ISO 4217).
_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        "AED ARS AUD BRL CAD CHF CNY COP CZK DKK EGP EUR GBP HKD HUF IDR ILS INR MAD MXN "
        "MYR NOK NZD PEN PHP PLN QAR RON RUB SAR SEK SGD THB TRY TWD UAH USD ZAR".split(),
        2,
    ),
    **dict.fromkeys("CLP ISK JPY KRW VND XAF XOF".split(), 0),
    **dict.fromkeys("BHD JOD KWD OMR TND".split(), 3),
}

CURRENCIES = frozenset(_EXPONENTS)
# A sanity ceiling, and what the amount columns hold: they are 32-bit integers, so a
# larger price or total is refused (422) rather than failing in PostgreSQL (a 500).
MAX_AMOUNT = 2**31 - 1


def exponent(currency: str) -> int:
    return _EXPONENTS[currency]


def format_amount(amount: int, currency: str) -> str:
    """`1999, "USD"` → `"19.99 USD"` (locale-aware formatting belongs to the storefront)."""
    exp = _EXPONENTS.get(currency, 2)
    if exp == 0:
        return f"{amount} {currency}"
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(amount), 10**exp)
    return f"{sign}{major}.{minor:0{exp}d} {currency}"


def parse_amount(text: str, currency: str) -> int:
    """`"420.5", "USD"` → `42050`: what a person types, in minor units. :raise ValueError:"""
    from decimal import Decimal, InvalidOperation

    exp = _EXPONENTS.get(currency, 2)
    try:
        value = Decimal(text.strip().replace(",", ""))
    except (InvalidOperation, AttributeError):
        raise ValueError(f"{text!r} is not an amount") from None
    if not value.is_finite() or value <= 0:
        raise ValueError("must be more than 0")
    minor = value * (10**exp)
    if minor != minor.to_integral_value():
        raise ValueError(f"at most {exp} decimal places in {currency}")
    return int(minor)
