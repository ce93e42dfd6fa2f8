"""Colours a store's pages can be read in: WCAG 2.2's relative luminance and
contrast ratio, and the text colour to put on a brand colour.

Text on the brand colour (the header, buttons) is white or the page's dark ink,
whichever passes AA for normal text (4.5:1); if neither does, the better one,
and the console warns. The brand colour as text on white (links) is darkened
just enough to pass, keeping its hue; the accent (focus rings) likewise to the
3:1 that non-text contrast asks for.
"""

from __future__ import annotations

import dataclasses
import functools

from broker.grammar import color_or

WHITE = "#ffffff"
INK = "#1d232a"  # the storefront's body text (store.css)
AA_TEXT = 4.5
AA_NON_TEXT = 3.0


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def _rgb(colour: str) -> tuple[int, int, int]:
    colour = colour.lstrip("#")
    return int(colour[0:2], 16), int(colour[2:4], 16), int(colour[4:6], 16)


def luminance(colour: str) -> float:
    """WCAG relative luminance of `#rrggbb`, 0 (black) to 1 (white)."""
    r, g, b = (_channel(v) for v in _rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """The WCAG contrast ratio of two colours, 1 to 21."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


@dataclasses.dataclass(frozen=True)
class TextOn:
    background: str
    text: str  # WHITE or INK
    ratio: float

    @property
    def passes(self) -> bool:
        return self.ratio >= AA_TEXT


# Pure, and asked again and again of the same few colours (every email of a
# settlement run's thousands, every storefront page).
@functools.lru_cache(maxsize=1024)
def text_on(background: str) -> TextOn:
    """White or dark text on `background`: the one that passes AA (white if both
    do, as brand buttons usually are), else the one with more contrast."""
    white, ink = contrast(background, WHITE), contrast(background, INK)
    if white >= AA_TEXT or white >= ink:
        return TextOn(background, WHITE, round(white, 2))
    return TextOn(background, INK, round(ink, 2))


@functools.lru_cache(maxsize=1024)
def darkened_to(colour: str, ratio: float, against: str = WHITE) -> str:
    """`colour`, mixed towards black just enough to reach `ratio` against `against`."""
    if contrast(colour, against) >= ratio:
        return colour
    r, g, b = _rgb(colour)
    lo, hi = 0.0, 1.0  # how much of the colour is kept: 0 is black, which always passes on white
    for _ in range(20):
        mid = (lo + hi) / 2
        candidate = "#{:02x}{:02x}{:02x}".format(int(r * mid), int(g * mid), int(b * mid))
        if contrast(candidate, against) >= ratio:
            lo = mid
        else:
            hi = mid
    return "#{:02x}{:02x}{:02x}".format(int(r * lo), int(g * lo), int(b * lo))


@dataclasses.dataclass(frozen=True)
class Palette:
    """Every colour a store's pages use, from its two brand colours."""

    brand: str
    on_brand: str
    brand_ink: str  # the brand as text (links) on white
    accent: str
    on_accent: str
    accent_ink: str  # the accent as a focus ring on white


def palette(primary: str | None, accent: str | None) -> Palette:
    primary, accent = color_or(primary, "#1d4ed8"), color_or(accent, "#f59e0b")
    return Palette(primary, text_on(primary).text, darkened_to(primary, AA_TEXT),
                   accent, text_on(accent).text, darkened_to(accent, AA_NON_TEXT))


def warnings(primary: str | None, accent: str | None) -> dict[str, str]:
    """For the console: what a colour means for the store's readability, by field."""
    found = {}
    for field, colour, use in (("color_primary", primary, "the header and buttons"),
                               ("color_accent", accent, "accent labels")):
        if not colour:
            continue
        colour = color_or(colour, "")
        if not colour:
            continue
        on = text_on(colour)
        if not on.passes:
            found[field] = (f"{colour} cannot carry readable text: neither white nor dark text reaches the 4.5:1 "
                            f"contrast that WCAG AA asks for on {use} (the better reaches {on.ratio}:1). "
                            "Choose a lighter or a darker shade.")
    return found
