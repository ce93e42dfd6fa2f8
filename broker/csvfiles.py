"""CSV files Broker writes for people to open in a spreadsheet.

A cell that begins with `=`, `+`, `-` or `@` (or a tab or carriage return,
which some spreadsheets skip before looking) is read by Excel, LibreOffice and
Google Sheets as a formula, so a customer named `=HYPERLINK("http://evil", "x")`
would run in the manufacturer's spreadsheet (OWASP "CSV injection"). Every text
cell is therefore written with a `'` in front when it starts with one of them;
the spreadsheet shows the text as typed. Numbers Broker computed (amounts,
ids) are written as numbers: `-12.50` is a refund, not a formula, and must stay
a number the spreadsheet can add up.

Rows are produced one at a time (`lines`), so an export of a million orders is
streamed, never held in memory.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from decimal import Decimal

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class Number:
    """A cell that is a number Broker wrote (not text someone typed)."""

    __slots__ = ("value",)

    def __init__(self, value: int | Decimal):
        self.value = value

    def __str__(self) -> str:
        return str(self.value)


def safe_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, Number | int | Decimal) and not isinstance(value, bool):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def major_units(amount: int, exponent: int) -> Number:
    """Minor units as a plain number in major units, for a spreadsheet: 1250 → 12.50."""
    return Number(Decimal(amount).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent)))


def lines(header: Iterable[str], rows: Iterable[Iterable]) -> Iterator[str]:
    """The CSV text, a line at a time (header first), every cell made safe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([safe_cell(c) for c in header])
    yield _take(buffer)
    for row in rows:
        writer.writerow([safe_cell(c) for c in row])
        yield _take(buffer)


def _take(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
