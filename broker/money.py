"""Money is an integer number of minor units and an ISO 4217 currency."""

from __future__ import annotations

import re
from decimal import Decimal

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
_DIGITS = frozenset("0123456789")


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


# Broker's own pages (the portal, the request page) are in English; a store's
# pages and its catalog import use the store's locale.
DEFAULT_LOCALE = "en_US"


def _locale(locale: str | None) -> str:
    from babel import Locale, UnknownLocaleError

    try:
        return str(Locale.parse(locale or DEFAULT_LOCALE))
    except (UnknownLocaleError, ValueError, TypeError):
        return DEFAULT_LOCALE


def format_money(amount: int, currency: str, locale: str | None = DEFAULT_LOCALE) -> str:
    """Minor units as the store writes money (Babel): 4599 USD in en_US is
    "$45.99", 4599 EUR in de_DE "45,99 €"."""
    from babel.numbers import format_currency

    return format_currency(Decimal(amount).scaleb(-_EXPONENTS.get(currency, 2)), currency, locale=_locale(locale))


def amount_examples(currency: str, locale: str | None = DEFAULT_LOCALE) -> str:
    """How an amount is written in this locale, for messages: "12.50 or 1,250.00"
    (en_US), "12,50 or 1.250,00" (de_DE), "12 or 1,250" (JPY)."""
    from babel.numbers import format_decimal

    exp = _EXPONENTS.get(currency, 2)
    pattern = "#,##0" + ("." + "0" * exp if exp else "")
    locale = _locale(locale)
    return " or ".join(format_decimal(Decimal(n), format=pattern, locale=locale) for n in (12.5, 1250))


def amount_input(amount: int | None, currency: str, locale: str | None = DEFAULT_LOCALE) -> str:
    """Minor units as a person types them back into a form, in the locale:
    12900 USD → "129.00" (en_US), "129,00" (de_DE). `parse_amount` reads it back."""
    from babel.numbers import format_decimal

    if amount is None:
        return ""
    exp = _EXPONENTS.get(currency, 2)
    return format_decimal(Decimal(amount).scaleb(-exp), format="0" + ("." + "0" * exp if exp else ""),
                          locale=_locale(locale))


def parse_amount(text: str, currency: str, locale: str | None = DEFAULT_LOCALE) -> int:
    """What a person types as an amount in major units, read in the locale's format,
    → minor units: `"12.50", "USD", "en_US"` → 1250; `"12,50", "EUR", "de_DE"` → 1250.

    The one parser for every form and file that takes money in major units (the
    API takes integer minor units). Babel's `parse_decimal(strict=True)` reads
    the number, so a group separator in the wrong place is refused, not guessed
    at: `12,50` in en_US (1,250? 12.50?) and `12.50` in de_DE are errors. Also
    refused: anything but digits and the locale's separators (`1e3`, `-1`, other
    currencies' symbols; the store's own symbol or code around the number is
    fine), zero, and more decimal places than the currency has (`12.5` JPY,
    `9.999` USD): never rounded. Plain spaces may stand for a locale's
    space-like group separator (fr_FR's `1 250,00`).

    :raise ValueError: what is wrong, with the amount written as this locale writes it.
    """
    from babel.numbers import NumberFormatError, get_currency_symbol, get_decimal_symbol, get_group_symbol
    from babel.numbers import parse_decimal

    if currency not in _EXPONENTS:
        raise ValueError(f"{currency!r} is not a currency Broker takes")
    locale = _locale(locale)
    exp = _EXPONENTS[currency]
    typed = (text or "").strip()
    hint = f"write it like {amount_examples(currency, locale)}"
    if not typed:
        raise ValueError(f"enter an amount in {currency}; {hint}")
    number = typed
    for mark in sorted({currency, get_currency_symbol(currency, locale=locale)}, key=len, reverse=True):
        if number.startswith(mark) or number.endswith(mark):
            number = number.removeprefix(mark).removesuffix(mark).strip()
            break
    if number.startswith(("-", "\u2212")):
        raise ValueError("must be more than 0")
    decimal, group = get_decimal_symbol(locale), get_group_symbol(locale)
    if group.isspace():
        number = re.sub(r"\s", group, number)
    if not number or any(ch not in _DIGITS and ch not in (decimal, group) for ch in number):
        raise ValueError(f"{typed[:40]!r} is not an amount in {currency}; {hint}")
    try:
        value = parse_decimal(number, locale=locale, strict=True)
    except NumberFormatError:
        raise ValueError(f"{typed[:40]!r} is ambiguous here; {hint}") from None
    places = len(number.rsplit(decimal, 1)[1]) if decimal in number else 0
    if places > exp:
        raise ValueError(f"{currency} has no decimal places; {hint}" if exp == 0 else
                         f"at most {exp} decimal places in {currency}; {hint}")
    if value <= 0:
        raise ValueError("must be more than 0")
    minor = int(value.scaleb(exp))
    if minor > MAX_AMOUNT:
        raise ValueError(f"at most {format_amount(MAX_AMOUNT, currency)}")
    return minor
