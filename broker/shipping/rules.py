"""The shipping charge and which methods serve a destination: pure rules."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence


@dataclasses.dataclass(frozen=True)
class Method:
    """What the rules need of a shipping method (a model row, or a test's value)."""

    code: str
    name: str
    price: int
    per_item: int
    free_over: int | None
    ship_within_hours: int
    countries: Sequence[str]
    is_default: bool = False


def charge(method: Method, *, goods: int, items: int) -> int:
    """The method's charge for goods worth `goods` (minor units, as the customer
    sees their price) in `items` pieces."""
    if method.free_over is not None and goods >= method.free_over:
        return 0
    return method.price + method.per_item * items


def serves(method: Method, country: str) -> bool:
    return not method.countries or country.upper() in method.countries


def serving(methods: Iterable[Method], country: str) -> list[Method]:
    """The methods that ship to `country`, the default first, then by price."""
    found = [m for m in methods if serves(m, country)]
    return sorted(found, key=lambda m: (not m.is_default, m.price, m.code))


def choose(methods: Iterable[Method], country: str, code: str | None) -> Method | None:
    """The method named by `code` if it serves `country`; with no code, the default
    if it serves it, else the first that does. None: nothing named serves it."""
    found = serving(methods, country)
    if code:
        return next((m for m in found if m.code == code), None)
    return found[0] if found else None
