"""What each part of an order shipped in parts is worth."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from fractions import Fraction

from broker.orders.models import Order


def part_value(order: Order, lines: Sequence[dict] | None) -> Fraction:
    """The part's share of the order, as a fraction of it: its lines' totals (a
    line shipped in part, in proportion to the quantity) over the order's."""
    if lines is None:
        return Fraction(1)
    by_id = {line.id: line for line in order.lines}
    subtotal = sum(line.line_total for line in order.lines)
    if subtotal <= 0:
        return Fraction(len(lines), max(len(by_id), 1))
    value = sum(Fraction(by_id[int(item["line_id"])].line_total * int(item["quantity"]),
                         by_id[int(item["line_id"])].quantity)
                for item in lines if int(item["line_id"]) in by_id)
    return Fraction(value, subtotal)


def part_shares(order: Order, parts: Sequence, captured: int | None = None, *,
                total: int | None = None) -> dict[int, int]:
    """{assignment_id: minor units} of `total` (the order's total, or what its
    fulfillers earn on: the total less its tax; shipping with it, in proportion)
    for these parts. With `captured` (the capture once every part has shipped,
    counted the same way) the last part takes what rounding left, so that the
    shares add up to exactly that."""
    ordered = sorted(parts, key=lambda part: part.id)
    whole = order.total if total is None else total
    shares = {part.id: int(whole * part_value(order, part.lines)) for part in ordered}
    if captured is not None and ordered:
        others = sum(amount for part_id, amount in shares.items() if part_id != ordered[-1].id)
        shares[ordered[-1].id] = captured - others
    return shares


@dataclasses.dataclass(frozen=True)
class PartLine:
    """An order line as far as one part ships it."""

    id: int
    sku: str
    name: str
    quantity: int
    unit_price: int
    line_total: int


def part_lines(order: Order, lines: Sequence[dict] | None) -> list[PartLine]:
    """What a part ships: the order's lines (None: all of them), each with the
    part's quantity, its total in proportion."""
    if lines is None:
        return [PartLine(l.id, l.sku, l.name, l.quantity, l.unit_price, l.line_total) for l in order.lines]
    by_id = {line.id: line for line in order.lines}
    found = []
    for item in lines:
        line = by_id.get(int(item["line_id"]))
        if line is not None:
            quantity = int(item["quantity"])
            found.append(PartLine(line.id, line.sku, line.name, quantity, line.unit_price,
                                  line.line_total * quantity // line.quantity if line.quantity else 0))
    return found
