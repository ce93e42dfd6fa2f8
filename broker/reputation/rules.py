"""Scores, shrunk toward a prior so that a short record does not make a star."""

from __future__ import annotations

# A new retailer starts as if it had shipped PRIOR_WEIGHT orders at PRIOR_MEAN.
PRIOR_MEAN = 0.9
PRIOR_WEIGHT = 5.0


def fulfilment_score(on_time: int, late: int, lapsed: int, released: int) -> float:
    """Share of its assignments a retailer shipped on time, shrunk toward the prior.

    A late shipment counts half; a lapse or a release counts as a failure.
    """
    good = on_time + 0.5 * late
    total = on_time + late + lapsed + released
    return (good + PRIOR_WEIGHT * PRIOR_MEAN) / (total + PRIOR_WEIGHT)
