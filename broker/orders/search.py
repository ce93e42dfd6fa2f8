"""Finding a manufacturer's orders, and exporting what was found.

`parse` reads the console's search form (any mapping of strings, so no Flask
here) into an `OrderFilter`, collecting every error by field. `export` yields
the matching orders a batch at a time, newest first, with keyset paging (the
next batch starts below the last id), so an export of a million orders holds
one batch in memory and its cost does not grow with the page number. Each batch
is written to the customers' disclosure logs in its own transaction before it
is handed over: what was exported is what was logged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from broker.accounts.models import Retailer
from broker.auth import Actor, ActorKind, require
from broker.context import Context
from broker.fulfilment.models import Assignment
from broker.orders.models import Order, OrderStatus
from broker.orders.services import FOR_MANUFACTURER, OrderFilter, _filtered, _manufacturer_sees_customer, \
    _request_born
from broker.privacy.disclosures import disclose_to

MAX_TEXT = 120
MAX_DAYS = 3660  # ten years: a range wider than that is a typo


def _day(text: str, field: str, errors: dict[str, list[str]]) -> date | None:
    if not text:
        return None
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        errors[field] = [f"{text[:20]!r} is not a date; write it as YYYY-MM-DD"]
        return None


def parse(form: Mapping[str, str], timezone: str) -> tuple[OrderFilter, dict[str, str], dict[str, list[str]]]:
    """The search form → (filter, the form as typed, errors by field). A bad field
    is reported and left out; the dates are whole days on `timezone`'s clock."""
    typed = {k: (form.get(k) or "").strip()[:MAX_TEXT] for k in
             ("number", "customer", "sku", "status", "fulfiller", "from", "to")}
    errors: dict[str, list[str]] = {}
    number = None
    if typed["number"]:
        raw = typed["number"].removeprefix("#")
        if raw.isascii() and raw.isdigit() and len(raw) <= 18:
            number = int(raw)
        else:
            errors["number"] = ["an order number is digits only, like 1042"]
    status = None
    if typed["status"]:
        try:
            status = OrderStatus(typed["status"])
        except ValueError:
            errors["status"] = [f"{typed['status']!r} is not a state"]
    fulfiller = typed["fulfiller"] or None
    if fulfiller not in (None, "retailer", "manufacturer") and not (
            fulfiller.isascii() and fulfiller.isdigit() and len(fulfiller) <= 18):
        errors["fulfiller"] = ["choose retailers or you"]
        fulfiller = None
    first, last = _day(typed["from"], "from", errors), _day(typed["to"], "to", errors)
    if first and last and last < first:
        errors["to"] = ["must be on or after the first day"]
    elif first and last and (last - first).days > MAX_DAYS:
        errors["to"] = ["a range of at most ten years"]
    zone = ZoneInfo(timezone)
    starts = datetime.combine(first, time(0), zone) if first and "from" not in errors else None
    ends = datetime.combine(last + timedelta(days=1), time(0), zone) if last and "to" not in errors else None
    return OrderFilter(status=status, fulfiller=fulfiller, number=number, customer=typed["customer"],
                       sku=typed["sku"], placed_from=starts, placed_before=ends), typed, errors


@dataclasses.dataclass(frozen=True)
class ExportRow:
    order: Order
    assignment: Assignment | None
    fulfiller_name: str      # "you", the retailer's name, or "" before anyone has it
    shows_customer: bool     # False: a personal request a retailer won (who asked is not the manufacturer's)


def export(ctx: Context, actor: Actor, filters: OrderFilter, *, batch: int = 500) -> Iterator[ExportRow]:
    """Every order the filter matches, newest first, a batch at a time (see the module).

    :raise 422: a fulfiller that is not one (checked before the first row)."""
    require(actor, ActorKind.MANUFACTURER)
    base = _filtered(select(Order).where(Order.manufacturer_id == actor.id), filters)

    def batches() -> Iterator[ExportRow]:
        below: int | None = None
        while True:
            with ctx.uow() as uow:
                session = uow.session
                stmt = base.options(selectinload(Order.lines)).order_by(Order.id.desc()).limit(batch)
                if below is not None:
                    stmt = stmt.where(Order.id < below)
                found = list(session.scalars(stmt))
                if not found:
                    return
                ids = [o.id for o in found]
                latest: dict[int, Assignment] = {}
                for a in session.scalars(select(Assignment).where(Assignment.order_id.in_(ids))
                                         .order_by(Assignment.id)):
                    latest[a.order_id] = a
                names = dict(session.execute(select(Retailer.id, Retailer.name).where(Retailer.id.in_(
                    {a.retailer_id for a in latest.values() if a.retailer_id}))).all())
                born = _request_born(session, ids)
                sees = {o.id: _manufacturer_sees_customer(latest.get(o.id), o.id in born) for o in found}
                disclose_to(session, party_kind="manufacturer", party_id=actor.id, fields=FOR_MANUFACTURER,
                            purpose="manufacturer exported its orders", now=ctx.now(),
                            order_ids=[i for i in ids if sees[i]])
                uow.commit()
            for o in found:
                a = latest.get(o.id)
                name = "" if a is None else ("you" if a.fulfiller_kind == "manufacturer"
                                             else names.get(a.retailer_id, f"retailer {a.retailer_id}"))
                yield ExportRow(o, a, name, sees[o.id])
            below = found[-1].id

    return batches()

