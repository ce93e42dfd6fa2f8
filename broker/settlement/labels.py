"""What a bid's outcome is called, and why, in words a retailer reads.

One place turns an outcome (`broker.settlement.reports.Outcome`, with the rule
that decided and the bid's eligibility) into its label and its reason, so the
portal, the API and the emails can never call the same thing by two names: a
request whose customer chose another offer is never "withdrawn", a lapsed
award never "won". Pure: no database, no Flask.
"""

from __future__ import annotations

import dataclasses

# The short name of each outcome (the API's `outcome` values are the keys).
LABELS = {
    "pending": "Open",
    "withdrawn": "Withdrawn",
    "won": "Won",
    "lapsed": "Lapsed",
    "released": "Released",
    "lost": "Lost",
    "customer_chose_another": "Customer chose another offer",
    "expired": "Expired",
    "cancelled": "Cancelled",
}

# Why a bid could not win (the settlement's eligibility reasons).
INELIGIBLE = {
    "outside_service_radius": "out of reach: outside your store's service radius",
    "store_closed": "your store was closed",
    "not_authorised": "you were no longer an authorised dealer",
    "retailer_inactive": "your account was not active",
    "out_of_stock": "not enough stock in your store",
}

# The rule that decided, as the reason a bid that was eligible lost.
LOST_BY_RULE = {
    "nearest": "a nearer bidder won",
    "lowest_price": "a lower offer won (the customer asked for the lowest price)",
    "customer_choice": "the customer chose another offer",
    "fulfilment_score": "an equally near bidder with a better fulfilment score won",
    "earliest_bid": "an equally near, equally rated bidder bid earlier",
    "lowest_retailer_id": "a full tie, decided by account number",
    "only_eligible_bid": "another bid was the only eligible one",
    "no_eligible_bids": "no bid was eligible, so the manufacturer ships it",
    "no_bids": "nobody bid",
}

WON_BY_RULE = {
    "nearest": "you were the nearest eligible bidder",
    "lowest_price": "yours was the lowest offer",
    "customer_choice": "the customer accepted your offer",
    "fulfilment_score": "equally near: your better fulfilment score won",
    "earliest_bid": "equally near and equally rated: your bid was earlier",
    "lowest_retailer_id": "a full tie, decided by account number",
    "only_eligible_bid": "yours was the only eligible bid",
}


@dataclasses.dataclass(frozen=True)
class OutcomeText:
    label: str  # e.g. "Lost"
    reason: str  # a sentence, e.g. "A nearer bidder won, under 5 km away."


def describe(outcome: str, *, kind: str = "order", rule: str | None = None, winner: str | None = None,
             winner_distance_band: str | None = None, my_eligibility: str | None = None,
             won_round: int | None = None) -> OutcomeText:
    """The label and reason of a bid's outcome; every `Outcome` has both."""
    thing = "request" if kind == "request" else "order"
    label = LABELS.get(outcome, outcome.replace("_", " ").capitalize())
    if outcome == "lost":
        if my_eligibility:
            reason = f"Lost: {INELIGIBLE.get(my_eligibility, my_eligibility.replace('_', ' '))}"
        else:
            reason = f"Lost: {LOST_BY_RULE.get(rule or '', 'another bid won')}"
        if winner == "another retailer" and winner_distance_band:
            reason += f"; the winner was {winner_distance_band} away"
        elif winner == "the manufacturer" and rule != "no_eligible_bids":
            reason += "; the manufacturer ships it"
        return OutcomeText(label, reason + ".")
    reasons = {
        "pending": "The listing is open; it is settled at the next run.",
        "withdrawn": "You withdrew your bid.",
        "won": (f"Won: {WON_BY_RULE.get(rule or '', 'your bid won')}"
                + (" (passed on to you after the first winner)" if won_round else "") + "."),
        "lapsed": "You won it but did not ship in time: it went on to the next bidder, and the lapse counts "
                  "in your score.",
        "released": "You won it and gave it back: it went on to the next bidder, and the release counts in "
                    "your score.",
        "customer_chose_another": "The customer accepted another retailer's offer.",
        "expired": "The request expired without an award.",
        "cancelled": (f"You won it, then the {thing} was cancelled." if won_round is not None
                      else f"Taken off the board: the {thing} was cancelled."),
    }
    return OutcomeText(label, reasons.get(outcome, label + "."))
