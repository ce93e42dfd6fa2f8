"""CSV cells a spreadsheet would run as a formula are written as text (broker/csvfiles.py)."""

import csv
import io
from decimal import Decimal

import pytest

from broker.csvfiles import Number, lines, major_units, safe_cell


@pytest.mark.parametrize("value, written", [
    ("=1+1", "'=1+1"),
    ("+33 1 23 45", "'+33 1 23 45"),
    ("-2+3", "'-2+3"),
    ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
    ("\t=cmd", "'\t=cmd"),
    ("\r=cmd", "'\r=cmd"),
    ('=HYPERLINK("http://evil.example","x")', '\'=HYPERLINK("http://evil.example","x")'),
    ("Ada Lovelace", "Ada Lovelace"),
    ("a=b", "a=b"),
    ("", ""),
    (None, ""),
])
def test_text_that_starts_a_formula_is_quoted(value, written):
    assert safe_cell(value) == written


def test_numbers_broker_wrote_stay_numbers():
    assert safe_cell(Number(Decimal("-12.50"))) == "-12.50"
    assert safe_cell(-3) == "-3"
    assert str(major_units(-1250, 2)) == "-12.50"
    assert str(major_units(1250, 0)) == "1250"
    assert str(major_units(5, 3)) == "0.005"


def test_lines_are_a_csv_a_row_at_a_time():
    produced = list(lines(["name", "total"], iter([["=1", major_units(100, 2)], ['a "quoted", name', 3]])))
    assert len(produced) == 3
    assert list(csv.reader(io.StringIO("".join(produced)))) == [["name", "total"], ["'=1", "1.00"],
                                                                ['a "quoted", name', "3"]]
