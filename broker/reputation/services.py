from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from broker.fulfilment.models import Assignment, AssignmentStatus
from broker.reputation.rules import fulfilment_score


def fulfilment_scores(session: Session, retailer_ids: Collection[int]) -> dict[int, float]:
    """Scores of many retailers in one query (retailers with no record get the prior)."""
    scores = {rid: fulfilment_score(0, 0, 0, 0) for rid in retailer_ids}
    if not retailer_ids:
        return scores
    shipped = Assignment.status == AssignmentStatus.SHIPPED
    on_time = func.sum(case((shipped & (Assignment.shipped_at <= Assignment.due_at), 1), else_=0))
    late = func.sum(case((shipped & (Assignment.shipped_at > Assignment.due_at), 1), else_=0))
    lapsed = func.sum(case((Assignment.status == AssignmentStatus.LAPSED, 1), else_=0))
    released = func.sum(case((Assignment.status == AssignmentStatus.RELEASED, 1), else_=0))
    rows = session.execute(
        select(Assignment.retailer_id, on_time, late, lapsed, released)
        .where(Assignment.retailer_id.in_(list(retailer_ids)))
        .group_by(Assignment.retailer_id)
    )
    for rid, a, b, c, d in rows:
        scores[rid] = fulfilment_score(int(a or 0), int(b or 0), int(c or 0), int(d or 0))
    return scores
