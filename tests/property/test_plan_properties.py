"""Plans, by property: random multi-line orders, part bids and stock, checked
against a brute-force oracle written from the product's words.

The oracle tries every way of giving each line to one of the bidders that bid on
it (or to nobody, the manufacturer), keeps those within every store's known
stock, and ranks them: the least left to the manufacturer (retailers ship what
any bid can), then the fewest retailers (shipments), then the nearest retailers
(compared nearest first, ties as for one winner: score, bid time, retailer id),
then each line with the nearer of them. Lines carry distinct SKUs here, so that
one line's stock never depends on another's.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.settlement.rules import OUT_OF_STOCK, Candidate, PlanLine, plan

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@st.composite
def worlds(draw):
    n_lines = draw(st.integers(1, 4))
    lines = [PlanLine(100 + i, f"SKU-{i}", draw(st.integers(1, 3))) for i in range(n_lines)]
    candidates = []
    for retailer in range(1, draw(st.integers(0, 6)) + 1):
        if draw(st.booleans()):
            bid_lines = None
        else:
            chosen = draw(st.lists(st.sampled_from(lines), min_size=1, unique=True))
            bid_lines = tuple(sorted((line.line_id, draw(st.integers(1, line.quantity))) for line in chosen))
        candidates.append(Candidate(
            bid_id=1000 + retailer, retailer_id=retailer, store_id=500 + retailer,
            distance_km=draw(st.sampled_from([1.0, 2.0, 2.0, 5.0, 9.5])),
            score=draw(st.sampled_from([0.5, 0.8])),
            bid_at=T0 + timedelta(minutes=draw(st.sampled_from([0, 10]))),
            eligible=draw(st.sampled_from([True, True, True, False])), lines=bid_lines,
        ))
    stock = {}
    for c in candidates:
        for line in lines:
            if draw(st.sampled_from([False, False, True])):
                stock[(c.store_id, line.sku)] = draw(st.integers(0, 3))
    return lines, candidates, stock


def _key(c: Candidate):
    return (c.distance_km, -c.score, c.bid_at, c.retailer_id)


def oracle(lines, candidates, stock):
    """{line_id: (retailer_id or None, quantity the retailer ships)} of the best plan."""
    eligible = [c for c in candidates if c.eligible]
    choices = []
    for line in lines:
        options = [(None, 0)]
        for c in eligible:
            offered = line.quantity if c.lines is None else dict(c.lines).get(line.line_id, 0)
            take = min(offered, line.quantity)
            if take and stock.get((c.store_id, line.sku), take) >= take:
                options.append((c, take))
        choices.append(options)
    best, best_rank = None, None
    for assignment in itertools.product(*choices):
        used = {c.retailer_id: c for c, _ in assignment if c is not None}
        rank = (
            sum(line.quantity - take for line, (_, take) in zip(lines, assignment)),
            len(used),
            tuple(sorted(_key(c) for c in used.values())),
            tuple(_key(c) if c is not None else (float("inf"),) for c, _ in assignment),
        )
        if best_rank is None or rank < best_rank:
            best, best_rank = assignment, rank
    return {line.line_id: (c.retailer_id if c else None, take) for line, (c, take) in zip(lines, best)}


def as_map(decided, lines):
    found = {line.line_id: (None, 0) for line in lines}
    for part in decided.parts:
        if part.candidate is not None:
            for line_id, quantity in part.lines:
                assert found[line_id] == (None, 0), "a line given twice"
                found[line_id] = (part.candidate.retailer_id, quantity)
    return found


@settings(max_examples=400, deadline=None)
@given(worlds())
def test_plans_match_the_oracle(world):
    lines, candidates, stock = world
    decided = plan(lines, candidates, stock)
    assert as_map(decided, lines) == oracle(lines, candidates, stock)


@settings(max_examples=300, deadline=None)
@given(worlds())
def test_never_more_than_stock_and_every_unit_shipped_once(world):
    lines, candidates, stock = world
    decided = plan(lines, candidates, stock)
    for key, quantity in decided.uses(lines).items():
        assert quantity <= stock.get(key, quantity)
    shipped = {line.line_id: 0 for line in lines}
    for part in decided.parts:
        for line_id, quantity in part.lines:
            shipped[line_id] += quantity
    assert shipped == {line.line_id: line.quantity for line in lines}
    retailers = [part.candidate.retailer_id for part in decided.parts if part.candidate is not None]
    assert len(retailers) == len(set(retailers))  # one shipment per retailer
    # A bidder the stock kept out of every line it bid on is told so.
    for c in decided.ineligible:
        if c.eligible is False and c.reason == OUT_OF_STOCK:
            assert all(p.candidate is None or p.candidate.bid_id != c.bid_id for p in decided.parts)


def test_one_bidder_able_to_fill_everything_beats_nearer_bidders_that_split_it():
    lines = [PlanLine(1, "A", 1), PlanLine(2, "B", 1)]
    near_a = Candidate(1, 1, 11, 1.0, 0.5, T0, True, lines=((1, 1),))
    near_b = Candidate(2, 2, 12, 1.5, 0.5, T0, True, lines=((2, 1),))
    far_whole = Candidate(3, 3, 13, 20.0, 0.5, T0, True)
    decided = plan(lines, [near_a, near_b, far_whole])
    assert [(p.candidate.retailer_id, p.lines) for p in decided.parts] == [(3, ((1, 1), (2, 1)))]
    # Without stock at the whole bidder's store, the split is next.
    decided = plan(lines, [near_a, near_b, far_whole], {(13, "B"): 0})
    assert [(p.candidate.retailer_id, p.lines) for p in decided.parts] == [(1, ((1, 1),)), (2, ((2, 1),))]
    assert decided.rule == "fewest_shipments"


def test_an_order_with_many_lines_and_many_part_bids_is_planned_quickly():
    import time

    lines = [PlanLine(i, f"SKU-{i}", 1) for i in range(8)]
    # 40 bidders, each with two lines: no one fills it whole, and four fill it at best.
    bidders = [Candidate(100 + n, n + 1, 500 + n, 1.0 + n / 10, 0.5, T0, True,
                         lines=((n % 8, 1), ((n + 3) % 8, 1))) for n in range(40)]
    started = time.perf_counter()
    decided = plan(lines, bidders)
    assert time.perf_counter() - started < 2.0
    shipped = sorted(line_id for part in decided.parts for line_id, _ in part.lines)
    assert shipped == list(range(8))
    assert all(part.candidate is not None for part in decided.parts)
