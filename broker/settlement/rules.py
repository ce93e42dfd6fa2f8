"""Who wins a listing. Pure functions: no database, no clock.

The winner is the eligible bidder nearest to the ship-to point. Ties go to the
better fulfilment score, then the earlier bid, then the lower retailer id, so the
outcome never depends on the order rows come back in.

An order is settled as a plan (`plan`): a bid may cover only some of its lines,
so the order may go out in parts. In order of precedence:

1. Retailers ship as much as any eligible bid can: each line goes to a bidder
   offering the most of it (within the store's known stock); what no bidder
   offers goes to the manufacturer.
2. Fewest shipments: one bidder able to fill everything within reach beats any
   split, two beat three.
3. Nearest: among plans with as few parts, the one whose bidders, taken nearest
   first, are nearer (compared as `choose` compares two bidders, ties as today);
   and within the plan each line goes to the nearest of its bidders that offers it.
"""

from __future__ import annotations

import dataclasses
import json
import itertools
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import NamedTuple

from broker.settlement.models import Rule


class Candidate(NamedTuple):
    """One bid as settlement sees it.

    A named tuple rather than a frozen dataclass: a run makes one per bid (a
    million for 100,000 listings), and a frozen dataclass takes several times as
    long to build."""

    bid_id: int
    retailer_id: int
    store_id: int
    # From the bidding store to the ship-to point itself: what bids are ranked
    # by. No retailer is shown it.
    distance_km: float
    score: float
    bid_at: datetime
    eligible: bool
    # Why a candidate is not eligible ("", when it is).
    reason: str = ""
    price: int | None = None
    # The part of the order bid on: ((line_id, quantity), ...); None: all of it.
    lines: tuple[tuple[int, int], ...] | None = None

    def as_record(self) -> dict:
        return {
            "bid_id": self.bid_id,
            "retailer_id": self.retailer_id,
            "store_id": self.store_id,
            "distance_km": self.distance_km,
            "score": round(self.score, 4),
            "bid_at": self.bid_at.isoformat(),
            "eligible": self.eligible,
            "reason": self.reason,
            "price": self.price,
            "lines": None if self.lines is None else [{"line_id": i, "quantity": q} for i, q in self.lines],
        }


# One record of `Candidate.as_record` as json.dumps writes it: json writes ints
# and finite floats as repr() does, and settlement's ids, prices, distances and
# scores are nothing else.
_RECORD_JSON = ('{"bid_id": %r, "retailer_id": %r, "store_id": %r, "distance_km": %r, "score": %r, '
                '"bid_at": "%s", "eligible": %s, "reason": %s, "price": %s, "lines": %s}')
_JSON_STRINGS: dict[str, str] = {}


def records_json(candidates: Iterable[Candidate]) -> str:
    """`json.dumps([c.as_record() for c in candidates])`, written directly in half
    the time: a settlement run writes one record per bid, a million per 100,000
    listings."""
    return "[" + ", ".join([
        _RECORD_JSON % (c.bid_id, c.retailer_id, c.store_id, c.distance_km, round(c.score, 4), c.bid_at.isoformat(),
                        "true" if c.eligible else "false", _json_string(c.reason),
                        "null" if c.price is None else repr(c.price), _lines_json(c.lines))
        for c in candidates
    ]) + "]"


def _lines_json(lines: tuple[tuple[int, int], ...] | None) -> str:
    if lines is None:
        return "null"
    return "[" + ", ".join(['{"line_id": %r, "quantity": %r}' % line for line in lines]) + "]"


def _json_string(value: str) -> str:
    # Reasons are a handful of words, each quoted once.
    quoted = _JSON_STRINGS.get(value)
    if quoted is None:
        quoted = _JSON_STRINGS[value] = json.dumps(value)
    return quoted


@dataclasses.dataclass(frozen=True)
class Choice:
    winner: Candidate | None
    rule: Rule
    ranked: tuple[Candidate, ...]  # eligible candidates, best first
    ineligible: tuple[Candidate, ...] = ()  # kept with their reasons, to explain the outcome

    @property
    def candidates(self) -> tuple[Candidate, ...]:
        return self.ranked + self.ineligible


def eligibility(*, retailer_active: bool, authorised: bool, store_open: bool, distance_km: float,
                radius_km: float) -> str:
    """The reason a bid cannot win, or "" if it can. `distance_km` is from the
    store to the listing's cell (its position on the board): coverage is judged
    as the board judges it, so that "outside_service_radius" says nothing finer."""
    if not retailer_active:
        return "retailer_inactive"
    if not authorised:
        return "not_authorised"
    if not store_open:
        return "store_closed"
    if distance_km > radius_km:
        return "outside_service_radius"
    return ""


def _nearest_key(c: Candidate):
    return (c.distance_km, -c.score, c.bid_at, c.retailer_id)


def _lowest_price_key(c: Candidate):
    return (c.price if c.price is not None else float("inf"), c.distance_km, -c.score, c.bid_at, c.retailer_id)


_ORDERINGS = {
    "nearest": (_nearest_key, (Rule.NEAREST, Rule.FULFILMENT_SCORE, Rule.EARLIEST_BID, Rule.LOWEST_RETAILER_ID)),
    # A personal request may prefer the lowest price; equal prices go to the
    # nearer offer, then as for orders.
    "lowest_price": (_lowest_price_key, (Rule.LOWEST_PRICE, Rule.NEAREST, Rule.FULFILMENT_SCORE,
                                         Rule.EARLIEST_BID, Rule.LOWEST_RETAILER_ID)),
}


def choose(candidates: Iterable[Candidate], prefer: str = "nearest") -> Choice:
    """The best eligible candidate by `prefer`, and the rule that set it apart from the runner-up."""
    key, rules = _ORDERINGS[str(prefer)]
    everyone = list(candidates)
    ranked = tuple(sorted((c for c in everyone if c.eligible), key=key))
    ineligible = tuple(sorted((c for c in everyone if not c.eligible), key=_nearest_key))
    if not ranked:
        return Choice(None, Rule.NO_BIDS if not everyone else Rule.NO_ELIGIBLE_BIDS, (), ineligible)
    if len(ranked) == 1:
        return Choice(ranked[0], Rule.ONLY_ELIGIBLE_BID, ranked, ineligible)
    return Choice(ranked[0], _deciding_rule(rules, key(ranked[0]), key(ranked[1])), ranked, ineligible)


def _deciding_rule(rules: Sequence[Rule], best: Sequence, runner_up: Sequence) -> Rule:
    for rule, a, b in zip(rules, best, runner_up):
        if a != b:
            return rule
    return Rule.LOWEST_RETAILER_ID  # identical keys cannot happen: retailer ids are unique


def distance_band(distance_km: float) -> str:
    """A coarse band, for telling a losing bidder how near the winner was without
    telling it who won."""
    for limit in (1, 5, 10, 25, 50, 100, 250, 500):
        if distance_km < limit:
            return f"under {limit} km"
    return "500 km or more"


# --- plans: an order settled in parts -------------------------------------------------

OUT_OF_STOCK = "out_of_stock"


class PlanLine(NamedTuple):
    line_id: int
    sku: str
    quantity: int


@dataclasses.dataclass(frozen=True)
class Part:
    """One shipment of a plan: a bidder's (or, `candidate` None, the manufacturer's)."""

    candidate: Candidate | None
    lines: tuple[tuple[int, int], ...]  # (line_id, quantity), in line order


@dataclasses.dataclass(frozen=True)
class Plan:
    parts: tuple[Part, ...]
    rule: Rule
    ranked: tuple[Candidate, ...]  # eligible candidates, nearest first
    ineligible: tuple[Candidate, ...] = ()  # with their reasons (out_of_stock among them)
    whole: bool = True  # one part with every line in full: no split

    @property
    def candidates(self) -> tuple[Candidate, ...]:
        return self.ranked + self.ineligible

    @property
    def winners(self) -> tuple[Candidate, ...]:
        return tuple(part.candidate for part in self.parts if part.candidate is not None)

    def uses(self, lines: Sequence[PlanLine]) -> dict[tuple[int, str], int]:
        """What the plan takes from each store's stock: {(store_id, sku): quantity}."""
        skus = {line.line_id: line.sku for line in lines}
        used: dict[tuple[int, str], int] = {}
        for part in self.parts:
            if part.candidate is not None:
                for line_id, quantity in part.lines:
                    key = (part.candidate.store_id, skus[line_id])
                    used[key] = used.get(key, 0) + quantity
        return used


def offer_of(candidate: Candidate, lines: Sequence[PlanLine],
             stock: Mapping[tuple[int, str], int]) -> tuple[dict[int, int], bool]:
    """What a bidder can fill of the order, {line_id: quantity}, and whether
    stock cut it short. A whole-order bid offers every line in full; a part bid
    its lines, at most as many as ordered. `stock` is what each store may still
    be awarded of a SKU; a (store, SKU) it does not name is unknown, and the
    bid is taken at its word. Lines are taken in order while the stock lasts."""
    ordered = {line.line_id: line for line in lines}
    wanted = ([(line.line_id, line.quantity) for line in lines] if candidate.lines is None else
              [(i, min(q, ordered[i].quantity)) for i, q in candidate.lines if i in ordered and q > 0])
    left: dict[str, int] = {}
    offer: dict[int, int] = {}
    short = False
    for line_id, quantity in wanted:
        sku = ordered[line_id].sku
        have = stock.get((candidate.store_id, sku))
        if have is not None:
            have = left.setdefault(sku, have)
            if quantity > have:
                short = True
                continue
            left[sku] = have - quantity
        offer[line_id] = quantity
    return offer, short


def plan(lines: Sequence[PlanLine], candidates: Iterable[Candidate],
         stock: Mapping[tuple[int, str], int] | None = None) -> Plan:
    """The order's fulfilment plan (see the module's docstring). `stock` as in
    `offer_of`; a bidder whose stock cannot fill any line it bid on is not
    eligible, with the reason `out_of_stock`."""
    stock = stock or {}
    everyone = list(candidates)
    ordered = sorted(lines, key=lambda line: line.line_id)
    offers: dict[int, dict[int, int]] = {}
    eligible, ineligible = [], [c for c in everyone if not c.eligible]
    for c in sorted((c for c in everyone if c.eligible), key=_nearest_key):
        offer, short = offer_of(c, ordered, stock)
        if not offer:
            ineligible.append(c._replace(eligible=False, reason=OUT_OF_STOCK if short else "no_lines_of_this_order"))
            continue
        offers[c.bid_id] = offer
        eligible.append(c)
    ranked = tuple(eligible)
    rest = tuple(sorted(ineligible, key=_nearest_key))
    best = {line.line_id: max((offers[c.bid_id].get(line.line_id, 0) for c in ranked), default=0) for line in ordered}
    needed = [line.line_id for line in ordered if best[line.line_id] > 0]
    to_maker = tuple((line.line_id, line.quantity - best[line.line_id]) for line in ordered
                     if line.quantity > best[line.line_id])
    if not needed:
        rule = Rule.NO_BIDS if not everyone else Rule.NO_ELIGIBLE_BIDS
        return Plan((Part(None, tuple((line.line_id, line.quantity) for line in ordered)),), rule, ranked, rest)
    # Who offers the most of each line: only they keep retailers' share at its largest.
    fills = {c.bid_id: {i for i in needed if offers[c.bid_id].get(i, 0) == best[i]} for c in ranked}
    useful = [c for c in ranked if fills[c.bid_id]]
    chosen = _fewest_nearest(useful, fills, set(needed), ordered, best, stock)
    parts = []
    for c in chosen:
        mine = tuple((i, best[i]) for i in needed
                     if next(o for o in chosen if i in fills[o.bid_id]) is c)
        if mine:
            parts.append(Part(c, mine))
    if to_maker:
        parts.append(Part(None, to_maker))
    whole = len(parts) == 1 and parts[0].candidate is not None
    if whole:
        able = [c for c in useful if fills[c.bid_id] == set(needed)]
        if len(able) == 1:
            rule = Rule.ONLY_ELIGIBLE_BID if len(ranked) == 1 else Rule.FEWEST_SHIPMENTS
        else:
            rule = _deciding_rule(_ORDERINGS["nearest"][1], _nearest_key(able[0]), _nearest_key(able[1]))
    else:
        rule = Rule.FEWEST_SHIPMENTS
    return Plan(tuple(parts), rule, ranked, rest, whole)


def _fewest_nearest(useful: Sequence[Candidate], fills: Mapping[int, set[int]], needed: set[int],
                    lines: Sequence[PlanLine], best: Mapping[int, int], stock) -> tuple[Candidate, ...]:
    """The fewest bidders that fill every needed line between them; of those,
    the nearest. `useful` is nearest first, so combinations come in the order
    plans are ranked: the first that covers the lines (and fits every store's
    stock as its lines are given out) is the one."""
    tried = 0
    for k in range(1, len(needed) + 1):
        for group in itertools.combinations(useful, k):
            tried += 1
            if tried > MAX_GROUPS:
                return _greedy(useful, fills, needed)
            if set().union(*(fills[c.bid_id] for c in group)) != needed:
                continue
            if _fits(group, fills, needed, lines, best, stock):
                return group
    # Unreachable: each needed line has a bidder offering its most, and those together fit
    # (each one's offer was within its stock); kept as a plain answer all the same.
    return tuple(useful)


# How many groups of bidders a plan tries before it settles for a greedy cover.
# Orders have a few lines and few part bidders; this bounds the rare order with
# many lines and dozens of part bids (C(40, 4) is 91,390) to milliseconds.
MAX_GROUPS = 20_000


def _greedy(useful: Sequence[Candidate], fills: Mapping[int, set[int]], needed: set[int]) -> tuple[Candidate, ...]:
    """A cover by the bidder who fills the most lines still open, nearest first
    among equals: not always the fewest parts, but near it, and quick."""
    left, chosen = set(needed), []
    while left:
        best = max(useful, key=lambda c: (len(fills[c.bid_id] & left), -useful.index(c)))
        chosen.append(best)
        left -= fills[best.bid_id]
    return tuple(sorted(chosen, key=_nearest_key))


def _fits(group: Sequence[Candidate], fills, needed: set[int], lines: Sequence[PlanLine], best: Mapping[int, int],
          stock) -> bool:
    if not stock:
        return True
    used: dict[tuple[int, str], int] = {}
    for line in lines:
        if line.line_id in needed:
            c = next(o for o in group if line.line_id in fills[o.bid_id])
            key = (c.store_id, line.sku)
            if key in stock:
                used[key] = used.get(key, 0) + best[line.line_id]
                if used[key] > stock[key]:
                    return False
    return True
