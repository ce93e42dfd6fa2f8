"""What text and JSON Broker takes from outside.

The input boundary (`web/boundary.py`) applies these rules to every request,
before any view, service or database sees it; the webhook handler applies them
to the provider's payloads too. They refuse what no field can hold:

* bytes that are not UTF-8, and lone surrogates (`"\\ud800"` in JSON): they
  are not text, and PostgreSQL cannot store them;
* NUL and the other C0 control characters, and DEL. PostgreSQL refuses NUL in
  text; the others end up in emails, CSV files and logs where they do harm.
  Tab is allowed in any value. Line breaks (LF, CR) are allowed only in the
  values of multi-line fields (`MULTILINE_FIELDS`: the ones a page shows as a
  text area); names, SKUs, addresses, slugs and everything else are one line;
* JSON nested deeper than `MAX_JSON_DEPTH`, non-finite numbers (`NaN`,
  `Infinity`, `1e999`) and integers longer than `MAX_JSON_INT_DIGITS` digits.

Each refusal says, for a person, where the bad input is and what it is.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_JSON_DEPTH = 32
MAX_JSON_INT_DIGITS = 30
# The fields whose values may span several lines: descriptions, messages, review
# comments, return reasons, application notes, and the console's list of origins
# (one a line). Keyed by the field's own name, wherever it is in a form or JSON.
MULTILINE_FIELDS = frozenset({"description", "body", "comment", "reason", "note", "frame_origins", "rates"})

_ONE_LINE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")
_MULTI_LINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_NAMES = {0x00: "a NUL character", 0x0A: "a line break", 0x0D: "a line break", 0x7F: "a DEL character"}


class BadInput(ValueError):
    """Input that is not text Broker can take (a 400); the message is for a person."""


class NotJSON(BadInput):
    """A body that is not JSON at all (a syntax error)."""


def is_multiline(field: str) -> bool:
    return field in MULTILINE_FIELDS


def text_problem(value: str, *, multiline: bool = False) -> str | None:
    """Why `value` cannot be taken as text, or None if it can."""
    found = (_MULTI_LINE if multiline else _ONE_LINE).search(value)
    if found is None:
        return None
    code = ord(found.group())
    if 0xD800 <= code <= 0xDFFF:
        return f"holds a lone surrogate (U+{code:04X}), which is not text"
    what = _NAMES.get(code, "a control character")
    return f"holds {what} (U+{code:04X}), which it cannot hold"


def check_text(value: str, where: str, *, multiline: bool = False) -> str:
    """`value`, if it is text Broker can take. :raise BadInput: naming `where`."""
    problem = text_problem(value, multiline=multiline)
    if problem:
        raise BadInput(f"{where} {problem}")
    return value


def decode_utf8(raw: bytes, where: str) -> str:
    """`raw` as text. :raise BadInput: not UTF-8 (Python's decoder also refuses encoded surrogates)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{where} is not valid UTF-8 (byte {exc.start + 1} of it)") from None


def _refuse_constant(name: str) -> Any:
    raise BadInput(f"the JSON body holds {name}, which is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadInput(f"the JSON body holds the number {text[:40]}, too large to be one")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_JSON_INT_DIGITS:
        raise BadInput(f"the JSON body holds a number of more than {MAX_JSON_INT_DIGITS} digits")
    return int(text)


def load_json(raw: bytes | str, *, multiline_everywhere: bool = False) -> Any:
    """Parse a JSON document that comes from outside, refusing what Broker cannot
    take (see the module's doc). `multiline_everywhere` lets every string value
    hold line breaks (a payment provider's payload, whose fields are not ours).

    :raise BadInput: with what is wrong and where.
    """
    text = decode_utf8(raw, "the JSON body") if isinstance(raw, bytes) else raw
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float,
                           parse_int=_bounded_int)
    except BadInput:
        raise
    except RecursionError:
        raise BadInput(f"the JSON body is nested too deeply (at most {MAX_JSON_DEPTH} levels)") from None
    except ValueError as exc:
        raise NotJSON(f"the body is not valid JSON: {exc}") from None
    check_json(value, multiline_everywhere=multiline_everywhere)
    return value


def check_json(value: Any, *, multiline_everywhere: bool = False) -> None:
    """Every key and string in a parsed JSON value is text Broker can take, and
    it nests at most MAX_JSON_DEPTH deep. Iterative: a deep value cannot
    exhaust the stack here. :raise BadInput:"""
    stack: list[tuple[Any, int, str, bool]] = [(value, 1, "", False)]
    while stack:
        node, depth, path, multiline = stack.pop()
        if isinstance(node, (dict, list)) and depth > MAX_JSON_DEPTH:
            raise BadInput(f"the JSON body is nested too deeply (at most {MAX_JSON_DEPTH} levels)")
        if isinstance(node, dict):
            for key, item in node.items():
                where = f"{path}.{key}" if path else str(key)
                check_text(key, f"the JSON key {_short(where)!r}")
                stack.append((item, depth + 1, where, multiline_everywhere or is_multiline(key)))
        elif isinstance(node, list):
            for index, item in enumerate(node):
                stack.append((item, depth + 1, f"{path}.{index}" if path else str(index), multiline))
        elif isinstance(node, str):
            check_text(node, f"the JSON field {_short(path or 'body')!r}", multiline=multiline)


def _short(name: str) -> str:
    """A field's name as an error message quotes it: not a whole hostile key."""
    return name if len(name) <= 80 else name[:77] + "..."
