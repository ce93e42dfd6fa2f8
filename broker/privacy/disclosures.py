"""The disclosure log: every showing of a customer's personal data to anyone but
the customer is written down (who, which fields, when, why), and the views that
carry such data must hold the proof that it was (`Disclosed`).

A module of its own because every service that shows a customer's details
(orders, fulfilment, returns, the operator's lookup) needs it, while erasure
and export need those services: one module for both was an import loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.orm import Session

from broker.privacy.models import Disclosure

_ISSUED = object()  # only disclose_to makes a Disclosed


class UnloggedDisclosure(RuntimeError):
    """A view was about to show a customer's details to another party without a
    disclosure-log row: a bug, refused rather than answered."""


@dataclasses.dataclass(frozen=True)
class Disclosed:
    """The proof, carried by a view, that showing these fields to this party was
    written to the disclosure log. The views that carry a customer's details to
    anyone but the customer (`orders.services.OrderView`,
    `fulfilment.services.AssignmentView`) show them only with one, and only
    `disclose_to` makes one: no answer can carry them unlogged."""

    party_kind: str
    party_id: int | None
    fields: frozenset[str]
    issued: object = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.issued is not _ISSUED:
            raise UnloggedDisclosure("a Disclosed comes from privacy.disclosures.disclose_to only")

    def covers(self, fields: Iterable[str]) -> bool:
        return set(fields) <= self.fields


def disclose_to(session: Session, *, party_kind: str, party_id: int | None, fields: Iterable[str], purpose: str,
                now: datetime, order_ids: Iterable[int] = (), request_ids: Iterable[int] = ()) -> Disclosed:
    """The one place a showing of a customer's personal data to anyone but the
    customer is logged: one row per order or request shown (who, which fields,
    when, why), in the caller's transaction and one statement however many.
    Returns the `Disclosed` the view that shows them must carry."""
    fields = sorted(set(fields))
    rows = [dict(order_id=order_id, request_id=None, party_kind=party_kind, party_id=party_id, fields=fields,
                 purpose=purpose, at=now) for order_id in order_ids]
    rows += [dict(order_id=None, request_id=request_id, party_kind=party_kind, party_id=party_id, fields=fields,
                  purpose=purpose, at=now) for request_id in request_ids]
    if rows:
        session.execute(insert(Disclosure), rows)
    return Disclosed(party_kind, party_id, frozenset(fields), issued=_ISSUED)
