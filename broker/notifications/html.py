"""Every email's HTML part, beside its plain text: one base template
(`templates/email.html`, autoescaped) in the sender's brand, the text's
paragraphs and its links made clickable. The plain text stays the source: the
HTML says nothing the text does not.
"""

from __future__ import annotations

import dataclasses
import re

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from broker.grammar import header_text
from broker.storefront.contrast import darkened_to, text_on

_URL = re.compile(r"https?://[^\s<>\"']+")
_TRAILING = ".,;:!?)"

_environment: Environment | None = None


@dataclasses.dataclass(frozen=True)
class Brand:
    name: str
    color: str = "#1d4ed8"


BROKER = Brand("Broker", "#1d4ed8")


def _templates() -> Environment:
    global _environment
    if _environment is None:
        _environment = Environment(loader=PackageLoader("broker.notifications", "templates"),
                                   undefined=StrictUndefined, autoescape=select_autoescape(["html"]))
    return _environment


def _segments(line: str) -> list[tuple[str, str]]:
    """A line as ("text", ...) and ("link", url) pieces (a sentence's full stop
    after a URL is not part of it)."""
    pieces, at = [], 0
    for found in _URL.finditer(line):
        url = found.group(0)
        kept = url.rstrip(_TRAILING)
        pieces.append(("text", line[at:found.start()]))
        pieces.append(("link", kept))
        at = found.start() + len(kept)
    pieces.append(("text", line[at:]))
    return [piece for piece in pieces if piece[1]]


def paragraphs(text: str) -> list[list[list[tuple[str, str]]]]:
    """Paragraphs (split on blank lines) of lines of pieces."""
    blocks = re.split(r"\n\s*\n", text.strip("\n"))
    return [[_segments(line.rstrip()) for line in block.split("\n")] for block in blocks if block.strip()]


def html_part(text: str, *, subject: str, brand: Brand = BROKER) -> str:
    """The email's HTML, in `brand`'s colour with text that reads on it (WCAG AA)."""
    color = brand.color if re.fullmatch(r"#[0-9a-fA-F]{6}", brand.color or "") else BROKER.color
    return _templates().get_template("email.html").render(
        subject=header_text(subject), brand_name=header_text(brand.name), color=color,
        on_color=text_on(color).text, link_color=darkened_to(color, 4.5), paragraphs=paragraphs(text))


def sender_name(store_name: str | None) -> str | None:
    """`Northwind Cycles via Broker`, the store's name made safe for a From
    header's display name: one line, no control or bidirectional characters, none
    of the characters that would make it read as an address (`<>@"\\`), and at
    most 60 characters of it. None when nothing of the name is left."""
    if not store_name:
        return None
    name = header_text(store_name)
    name = " ".join("".join(" " if c in '<>@"\\,;:' else c for c in name).split())[:60].strip()
    return f"{name} via Broker" if name else None
