"""Which email each business event sends, and to whom.

Every function here runs inside the transaction that decided the event and only
writes to the outbox (`send_email`), so an email exists if and only if its
event was committed; the `emails` job sends it afterwards. Each service calls
one of these in one line.

Who gets what:

* the customer: the order confirmation (once the payment is authorised and the
  order is on the board), where to collect a pickup order once a store has it
  (the store's address and hours), the shipment (carrier and tracking number), a new
  offer on their personal request (optional, at most one per request per hour),
  messages the fulfiller writes through the contact relay, the answer to a
  return (accepted with the refund, or refused with the note), and, once the
  order is delivered, an invitation to rate the store (optional, once);
* a retailer (every user of the company, see `company_addresses`): an order
  awarded outside a settlement run (an offer accepted, a re-route after a
  release or lapse, a request's expiry), a deadline warning, a lapse, a
  settlement run's summary, and the customer's messages;
* a manufacturer: each order that fell back to it outside a run, and a run's
  summary of fallbacks (both optional);
* whoever decides a return (the fulfiller's users, and the manufacturer's when
  it may decide it too): a return asked for, without the customer's reason (the
  portal and the console show it, and log the showing).

Retailers are never emailed a customer's name, email or address: an award says
what to ship and links to the portal, where the address is shown (and the
disclosure logged). Relay emails come from Broker, never from either party.

The order-status link needs the order's access token, which exists in clear
only while the order is placed (it is stored hashed). So the confirmation is
rendered at placement, with its link; when the payment is not authorised yet
(Stripe waits for a webhook) the email is written *held* (not due) and
`order_on_board` releases it when the order goes on the board. An order whose
payment never succeeds never sends it. Later emails to the customer cannot
rebuild the link and point back to the confirmation instead; all but the
invitation to rate the store, which is written with the confirmation, parked
too, and released when the order is delivered (`order_delivered`). It is given
up when the order is cancelled or refunded instead (`order_closed`), and an
erasure empties it like every email to the customer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker import languages
from broker.accounts.hours import Hours
from broker.accounts.hours import describe as describe_hours
from broker.accounts.models import Manufacturer, Retailer, Role, Store
from broker.accounts import addresses as store_addresses
from broker.addresses import address_lines, ship_to_address
from broker.orders.totals import order_totals
from broker.board.models import Bid, Listing
from broker.context import Context
from broker.fulfilment.models import Assignment
from broker.money import format_amount, format_money
from broker.notifications.services import (
    TOPIC_PREFIX,
    address_hash,
    companies_addresses,
    company_addresses,
    opted_out,
    send_email,
)
from broker.outbox.services import written_keys
from broker.fulfilment.money import PartLine, part_lines
from broker.orders.models import Delivery, Order, OrderLine, OrderStatus
from broker.outbox.models import OutboxMessage
from broker.outbox.queue import HELD, cancel, hold, release
from broker.personal.models import Message, PersonalRequest
from broker.returns.models import Return, ReturnStatus
from broker.settlement.labels import describe
from broker.settlement.models import FulfillerKind, SettlementDecision

# A run summary lists at most this many orders; the portal or console has the rest.
SUMMARY_LIST = 20


# --- the customer -------------------------------------------------------------


def order_placed(session: Session, ctx: Context, order: Order, access_token: str, pickup_code: str | None,
                 now: datetime) -> None:
    """The confirmation, with the order-status link (only known now). Held until
    the order is on the board if the payment is not authorised yet."""
    maker = session.get(Manufacturer, order.manufacturer_id) if order.manufacturer_id else None
    slug = maker.slug if maker else ""
    language = _language(order, maker)
    money = _money(language, maker)
    written = send_email(
        session, ctx, topic="order_confirmation", to=order.customer_email, template="order_confirmation",
        dedupe_key=f"order-{order.id}", now=now, name=order.customer_name, store=maker.name if maker else "Broker",
        order_id=order.id, lines=_lines(order.lines, order.currency, money),
        total=money(order.total, order.currency), totals=_totals(order, money, language), language=language,
        pickup=order.delivery == Delivery.PICKUP, pickup_code=pickup_code,
        ship_to=address_lines(ship_to_address(order), name=order.customer_name),
        status_path=f"/s/{slug}/o/{order.id}/{access_token}", from_store=maker,
    )
    if written and order.status != OrderStatus.OPEN:
        message = _confirmation(session, order.id)
        if message is not None:
            hold(message)
    # The invitation to rate the store needs the link too: written now, sent at delivery.
    if send_email(session, ctx, topic="review_invitation", to=order.customer_email, template="review_invitation",
                  dedupe_key=f"order-{order.id}", now=now, name=order.customer_name, order_id=order.id,
                  pickup=order.delivery == Delivery.PICKUP, status_path=f"/s/{slug}/o/{order.id}/{access_token}",
                  from_store=maker, language=language):
        invitation = _invitation(session, order.id)
        if invitation is not None:
            hold(invitation)


def _shop(session: Session, order: Order) -> Manufacturer | None:
    """The store a customer's email about `order` comes from (none for a personal
    request's order that no manufacturer's store took)."""
    return session.get(Manufacturer, order.manufacturer_id) if order.manufacturer_id else None


def _invitation(session: Session, order_id: int) -> OutboxMessage | None:
    session.flush()
    return session.scalar(select(OutboxMessage).where(
        OutboxMessage.topic == f"{TOPIC_PREFIX}review_invitation", OutboxMessage.dedupe_key == f"order-{order_id}"))


def order_delivered(session: Session, ctx: Context, order: Order, now: datetime) -> None:
    """The invitation to rate the store, once per order: the one held since
    placement (with the order's link), or, for an order placed without one (a
    personal request's, or one placed before invitations), one written now that
    points to the confirmation. Not for an erased order, nor to an address that
    unsubscribed from invitations."""
    if order.erased_at is not None or order.status != OrderStatus.DELIVERED:
        return
    held = _invitation(session, order.id)
    if held is None:
        send_email(session, ctx, topic="review_invitation", to=order.customer_email, template="review_invitation",
                   dedupe_key=f"order-{order.id}", now=now, name=order.customer_name, order_id=order.id,
                   pickup=order.delivery == Delivery.PICKUP, status_path=None, from_store=_shop(session, order),
                   language=_language(order, _shop(session, order)))
        return
    if held.sent_at is not None or held.next_attempt_at != HELD:
        return
    if opted_out(session, order.customer_email, "review_invitation"):
        cancel(session, held, now)
    else:
        release(held)


def order_closed(session: Session, order: Order, now: datetime) -> None:
    """The order was cancelled or refunded: the invitation held for its delivery
    will never go, and its text (with the order's link) goes now."""
    held = _invitation(session, order.id)
    if held is None or held.sent_at is not None or held.next_attempt_at != HELD:
        return
    held.payload = {**held.payload, "text": ""}
    cancel(session, held, now)


def order_on_board(session: Session, order: Order, now: datetime) -> None:
    """Release the confirmation held at placement (the payment was authorised later)."""
    message = _confirmation(session, order.id)
    if message is not None:
        release(message)


def _confirmation(session: Session, order_id: int) -> OutboxMessage | None:
    return session.scalar(select(OutboxMessage).where(
        OutboxMessage.topic == f"{TOPIC_PREFIX}order_confirmation", OutboxMessage.dedupe_key == f"order-{order_id}"))


def order_shipped(session: Session, ctx: Context, order: Order, assignment: Assignment, now: datetime) -> None:
    shipper = _fulfiller_name(session, assignment)
    maker = _shop(session, order)
    language = _language(order, maker)
    send_email(session, ctx, topic="order_shipped", to=order.customer_email, template="order_shipped",
               # Each part of a split order is a shipment of its own, and an email.
               dedupe_key=f"order-{order.id}" if assignment.lines is None else f"order-{order.id}-part-{assignment.id}",
               now=now, name=order.customer_name, order_id=order.id,
               shipper=shipper, carrier=assignment.carrier, tracking_number=assignment.tracking_number,
               lines=_lines(part_lines(order, assignment.lines), order.currency, _money(language, maker)),
               from_store=maker, language=language)


def pickup_ready(session: Session, ctx: Context, order: Order, assignment: Assignment, now: datetime) -> None:
    """A store has the customer's pickup order: where to go (the store's name,
    street address and opening hours) and the way back to the order page. The
    code is the one in the confirmation (and on the order page): it is stored
    only as a hash, so no later email can carry it."""
    if order.delivery != Delivery.PICKUP or order.erased_at is not None or assignment.store_id is None:
        return
    store = session.get(Store, assignment.store_id)
    maker = session.get(Manufacturer, order.manufacturer_id) if order.manufacturer_id else None
    language = _language(order, maker)
    locale = languages.money_locale(language, maker.locale if maker else "en_US")
    week = Hours.from_json(store.hours)
    send_email(session, ctx, topic="pickup_ready", to=order.customer_email, template="pickup_ready",
               dedupe_key=f"order-{order.id}-assignment-{assignment.id}", now=now, name=order.customer_name,
               order_id=order.id, store=store.name,
               address=store_addresses.lines(store_addresses.of(store)) if store.line1 else [store.area],
               hours=describe_hours(week, locale), timezone=store.timezone,
               collect_by=_when(ctx, assignment.due_at),
               # A part of a split order: what this store has (another has the rest).
               part=[f"{line.quantity} x {line.name}" for line in part_lines(order, assignment.lines)]
               if assignment.lines is not None else [],
               status_path=f"/s/{maker.slug}/o/{order.id}" if maker else None, from_store=maker, language=language)


def pickups_of_run(session: Session, ctx: Context, run_id: int, now: datetime) -> None:
    """`pickup_ready` for each pickup order a settlement run gave to a store."""
    rows = session.execute(
        select(Order, Assignment).join(Listing, Listing.order_id == Order.id)
        .join(SettlementDecision, SettlementDecision.listing_id == Listing.id)
        .join(Assignment, Assignment.decision_id == SettlementDecision.id)
        .where(SettlementDecision.run_id == run_id, Order.delivery == Delivery.PICKUP,
               Assignment.store_id.is_not(None))
    ).all()
    for order, assignment in rows:
        pickup_ready(session, ctx, order, assignment, now)


def return_requested(session: Session, ctx: Context, order: Order, ret: Return, assignment: Assignment, *,
                     manufacturer_decides: bool, now: datetime) -> None:
    """To whoever decides the return: the fulfiller's users, and the
    manufacturer's when it may decide it too. Without the customer's reason or
    details: the portal and the console show them, and log it."""
    values = dict(order_id=order.id, lines=_lines(order.lines, order.currency), requested=_when(ctx, ret.requested_at))
    key = f"order-{order.id}-return-{ret.id}"
    role, company = _fulfiller(assignment)
    path = f"/portal/orders/{assignment.id}" if role == Role.RETAILER else f"/console/orders/{order.id}"
    _to_company(session, ctx, role, company, topic="return_requested", template="return_requested", key=key,
                now=now, path=path, **values)
    if manufacturer_decides:
        _to_company(session, ctx, Role.MANUFACTURER, order.manufacturer_id, topic="return_requested",
                    template="return_requested", key=f"{key}-m", now=now, path=f"/console/orders/{order.id}",
                    **values)


def return_decided(session: Session, ctx: Context, order: Order, ret: Return, *, now: datetime) -> None:
    """The customer hears the answer: the refund, in the store's money format,
    or the note."""
    maker = session.get(Manufacturer, order.manufacturer_id) if order.manufacturer_id else None
    if ret.decided_by_kind == "retailer":
        store = session.scalar(select(Retailer.name).where(Retailer.id == ret.decided_by_id)) or "The store"
    else:
        store = maker.name if maker else "The store"
    language = _language(order, maker)
    values = dict(name=order.customer_name, order_id=order.id, store=store, note=ret.note or "", language=language)
    key = f"order-{order.id}-return-{ret.id}"
    if ret.status == ReturnStatus.ACCEPTED:
        send_email(session, ctx, topic="return_accepted", to=order.customer_email, template="return_accepted",
                   dedupe_key=key, now=now, refund=_refund_money(ret.refund_amount or 0, order.currency, language, maker),
                   from_store=maker, **values)
    elif ret.status == ReturnStatus.REFUSED:
        days = maker.return_window_days if maker else 30
        closes = order.shipped_at + timedelta(days=days) if order.shipped_at else None
        send_email(session, ctx, topic="return_refused", to=order.customer_email, template="return_refused",
                   dedupe_key=key, now=now, window_open=closes is not None and closes > now,
                   window_closes=_when(ctx, closes) if closes else "", from_store=maker, **values)


def offer_received(session: Session, ctx: Context, request: PersonalRequest, bid: Bid, retailer_name: str | None,
                   currency: str, now: datetime) -> None:
    """Optional; at most one per request per hour (the first offer of the hour
    says so; the request page shows them all)."""
    if not request.contact_email:
        return
    hour = now.astimezone(timezone.utc).strftime("%Y%m%d%H")
    send_email(session, ctx, topic="request_offer", to=request.contact_email, template="request_offer",
               dedupe_key=f"request-{request.id}-{hour}", now=now, request_id=request.id,
               description=request.description, price=format_amount(bid.price or 0, currency),
               ceiling=format_amount(request.max_price, currency), retailer=retailer_name or "A retailer",
               # To the customer: from their own place, to 100 m.
               distance_km=round(bid.exact_distance_km, 1), expires=_when(ctx, request.expires_at),
               language=languages.language_of(request.language, None))


def message_posted(session: Session, ctx: Context, order: Order, message: Message, now: datetime) -> None:
    """The contact relay: tell the other side, from Broker, without either address."""
    session.flush()  # the message's id names the email
    key = f"message-{message.id}"
    # The thread's own fulfiller: never one the order had before or after it.
    current = session.get(Assignment, message.assignment_id) if message.assignment_id is not None else None
    # A notice and a link only: never the message's text (an email is read by
    # whoever holds the mailbox, and kept by every relay on the way), never an
    # address. The link opens the thread, behind the reader's own sign-in or
    # the order's cookie.
    if message.sender == "customer":
        if current is None:
            return
        role, company = _fulfiller(current)
        path = (f"/portal/orders/{current.id}#messages" if role == Role.RETAILER
                else f"/console/orders/{order.id}#messages")
        _to_company(session, ctx, role, company, topic="message", template="message_to_fulfiller", key=key,
                    now=now, order_id=order.id, path=path)
    else:
        shipper = _fulfiller_name(session, current)
        send_email(session, ctx, topic="message", to=order.customer_email, template="message_to_customer",
                   dedupe_key=key, now=now, name=order.customer_name, order_id=order.id, shipper=shipper,
                   path=_customer_order_path(session, order) + "#messages", from_store=_shop(session, order),
                   language=_language(order, _shop(session, order)))


def _customer_order_path(session: Session, order: Order) -> str:
    """The customer's order page, without its token (only the hash is kept): it
    opens in the browser that holds the order's cookie; elsewhere it says to use
    the confirmation's link. A personal request's order: the request's page."""
    request_id = session.scalar(select(PersonalRequest.id).where(PersonalRequest.order_id == order.id))
    if request_id is not None:
        return f"/requests/{request_id}/order"
    slug = session.scalar(select(Manufacturer.slug).where(Manufacturer.id == order.manufacturer_id)) \
        if order.manufacturer_id else None
    return f"/s/{slug}/o/{order.id}" if slug else "/"


# --- fulfillers ---------------------------------------------------------------


def awarded(session: Session, ctx: Context, decision: SettlementDecision, now: datetime) -> None:
    """An order handed to a fulfiller outside a settlement run: one email per
    assignment. A run's awards are summarised by `run_finished_emails` instead."""
    if decision.run_id is not None:
        return
    listing = session.get(Listing, decision.listing_id)
    order = session.get(Order, listing.order_id)
    # Each part of a split order is an award of its own.
    part = f"-part-{decision.part}" if decision.part else ""
    key = f"listing-{listing.id}-round-{decision.round}{part}"
    due = _due_at(session, decision)
    values = dict(order_id=order.id, lines=_lines(part_lines(order, decision.lines), order.currency),
                  total=format_amount(order.total, order.currency), totals=_totals(order), area=order.area,
                  shipping_method=order.shipping_method_name,
                  pickup=order.delivery == Delivery.PICKUP, due=_when(ctx, due) if due else None,
                  cause=str(decision.cause))
    if decision.fulfiller_kind == FulfillerKind.RETAILER:
        if order.delivery == Delivery.PICKUP:
            assignment = session.scalar(select(Assignment).where(Assignment.decision_id == decision.id))
            if assignment is not None:
                pickup_ready(session, ctx, order, assignment, now)
        # The distance the winner bid at, as the board showed it; the address
        # itself is on the portal, where seeing it is logged.
        shown = session.scalar(select(Bid.distance_km).where(Bid.listing_id == listing.id,
                                                             Bid.retailer_id == decision.winner_retailer_id))
        _to_company(session, ctx, Role.RETAILER, decision.winner_retailer_id, topic="award", template="award",
                    key=key, now=now, distance_km=int(shown or 0), **values)
    elif order.manufacturer_id is not None:
        _to_company(session, ctx, Role.MANUFACTURER, order.manufacturer_id, topic="fallback",
                    template="fallback_order",
                    key=f"order-{order.id}" + (f"-round-{decision.round}{part}" if decision.round or part else ""),
                    now=now, **values)


def deadline_warning(session: Session, ctx: Context, assignment: Assignment, now: datetime) -> None:
    """Once per assignment (the dedupe key, and `warned_at`)."""
    _to_company(session, ctx, Role.RETAILER, assignment.retailer_id, topic="deadline_warning",
                template="deadline_warning", key=f"assignment-{assignment.id}", now=now,
                order_id=assignment.order_id, due=_when(ctx, assignment.due_at))


def lapsed(session: Session, ctx: Context, assignment: Assignment, now: datetime) -> None:
    _to_company(session, ctx, Role.RETAILER, assignment.retailer_id, topic="lapsed", template="lapsed",
                key=f"assignment-{assignment.id}", now=now, order_id=assignment.order_id,
                due=_when(ctx, assignment.due_at), outcome=_LAPSED.label, reason=_LAPSED.reason)


# The same words as the portal's and the API's bid outcomes.
_LAPSED = describe("lapsed")


def run_finished_emails(session: Session, ctx: Context, run_id: int) -> int:
    """A settlement run's summary: one email to each winning retailer ("you won N
    orders") and one to each manufacturer that orders fell back to (optional), in
    the caller's transaction. Safe to call again: each is written once per run.
    Returns how many emails were written."""
    rows = session.execute(
        select(SettlementDecision.fulfiller_kind, SettlementDecision.winner_retailer_id, Listing.manufacturer_id,
               Listing.order_id)
        .join(Listing, Listing.id == SettlementDecision.listing_id)
        .where(SettlementDecision.run_id == run_id)
        .order_by(SettlementDecision.id)
    ).all()
    won: dict[int, list[int]] = {}
    fell_back: dict[int, list[int]] = {}
    for kind, retailer_id, maker_id, order_id in rows:
        if kind == FulfillerKind.RETAILER and retailer_id is not None:
            won.setdefault(retailer_id, []).append(order_id)
        elif maker_id is not None:
            fell_back.setdefault(maker_id, []).append(order_id)
    now = ctx.now()
    pickups_of_run(session, ctx, run_id, now)
    return (_to_companies(session, ctx, Role.RETAILER, won, topic="run_awards", template="run_awards",
                          key=f"run-{run_id}", now=now)
            + _to_companies(session, ctx, Role.MANUFACTURER, fell_back, topic="fallback",
                            template="fallback_summary", key=f"run-{run_id}", now=now))


# --- helpers ------------------------------------------------------------------


def _to_company(session: Session, ctx: Context, role: Role, company_id: int | None, *, topic: str, template: str,
                key: str, now: datetime, **values) -> int:
    """The same email to everyone at a company, each written once (the key names the recipient)."""
    if company_id is None:
        return 0
    written = 0
    for user_id, address in company_addresses(session, role, company_id):
        written += send_email(session, ctx, topic=topic, to=address, template=template,
                              dedupe_key=_recipient_key(key, user_id, address), now=now, recipient_id=user_id,
                              **values)
    return written


def _recipient_key(key: str, user_id: int | None, address: str) -> str:
    return f"{key}-u{user_id}" if user_id is not None else f"{key}-a{address_hash(address)[:16]}"


def _to_companies(session: Session, ctx: Context, role: Role, orders_of: dict[int, list[int]], *, topic: str,
                  template: str, key: str, now: datetime) -> int:
    """`_to_company` for each company's summary of its orders, in a few queries
    for them all: a run has thousands of winners."""
    addresses = companies_addresses(session, role, orders_of)
    keys = {(company_id, user_id, address): _recipient_key(key, user_id, address)
            for company_id, found in addresses.items() for user_id, address in found}
    written_before = written_keys(session, f"{TOPIC_PREFIX}{topic}", [k[:120] for k in keys.values()])
    written = 0
    for (company_id, user_id, address), dedupe_key in keys.items():
        orders = orders_of[company_id]
        written += send_email(session, ctx, topic=topic, to=address, template=template, dedupe_key=dedupe_key,
                              now=now, recipient_id=user_id, written=written_before, count=len(orders),
                              orders=orders[:SUMMARY_LIST], more=max(0, len(orders) - SUMMARY_LIST))
    return written


def _fulfiller(assignment: Assignment) -> tuple[Role, int | None]:
    if assignment.fulfiller_kind == FulfillerKind.RETAILER:
        return Role.RETAILER, assignment.retailer_id
    return Role.MANUFACTURER, assignment.manufacturer_id


def _fulfiller_name(session: Session, assignment: Assignment | None) -> str:
    if assignment is None:
        return "the store"
    if assignment.retailer_id is not None:
        return session.scalar(select(Retailer.name).where(Retailer.id == assignment.retailer_id)) or "the store"
    return session.scalar(select(Manufacturer.name).where(Manufacturer.id == assignment.manufacturer_id)) or \
        "the store"


def _due_at(session: Session, decision: SettlementDecision) -> datetime | None:
    session.flush()  # the assignment is made with its decision, often not flushed yet
    return session.scalar(select(Assignment.due_at).where(Assignment.decision_id == decision.id))


def _totals(order: Order, money: Callable[[int, str], str] = format_amount, language: str = "en") -> list[dict]:
    """Subtotal, shipping, tax and total, as the email prints them (in the customer's language)."""
    translate = languages.translations(language).gettext
    return [{"label": line.label, "amount": line.amount}
            for line in order_totals(order, fmt=lambda amount, currency, _locale: money(amount, currency),
                                     translate=translate)]


def _lines(lines: Iterable[OrderLine | PartLine], currency: str,
           money: Callable[[int, str], str] = format_amount) -> list[dict]:
    return [{"quantity": line.quantity, "name": line.name, "total": money(line.line_total, currency)}
            for line in lines]


def _language(order: Order, maker: Manufacturer | None) -> str:
    """The language of the customer's emails about `order`: the one they ordered
    in; for an order that has none (placed through the API, or before languages),
    the store's; else English."""
    return languages.language_of(order.language, maker.locale if maker else None)


def _money(language: str, maker: Manufacturer | None) -> Callable[[int, str], str]:
    """How the customer's email writes money: in English as it always has
    ("19.99 USD"), in another language as that language writes it in the store's
    country ("19,99 €")."""
    if language == languages.DEFAULT:
        return format_amount
    locale = languages.money_locale(language, maker.locale if maker else None)
    return lambda amount, currency: format_money(amount, currency, locale)


def _refund_money(amount: int, currency: str, language: str, maker: Manufacturer | None) -> str:
    """A refund in the store's money format (the customer's language's, where it is not English)."""
    store_locale = maker.locale if maker else None
    if language == languages.DEFAULT:
        return format_money(amount, currency, store_locale)
    return format_money(amount, currency, languages.money_locale(language, store_locale))


def _when(ctx: Context, moment: datetime) -> str:
    local = moment.astimezone(ZoneInfo(ctx.settings.timezone))
    return local.strftime("%Y-%m-%d %H:%M %Z")



def cancelled_by_store(session: Session, ctx: Context, order: Order, refunded: int, *, now: datetime) -> None:
    """The manufacturer cancelled the order before it shipped: the customer is told
    (with what went back, in the store's money format, if the hold was captured early)."""
    maker = session.get(Manufacturer, order.manufacturer_id) if order.manufacturer_id else None
    send_email(session, ctx, topic="order_cancelled_by_store", to=order.customer_email,
               template="order_cancelled_by_store", dedupe_key=f"order-{order.id}-cancelled", now=now,
               name=order.customer_name, order_id=order.id, store=maker.name if maker else "The store",
               refunded=_refund_money(refunded, order.currency, _language(order, maker), maker) if refunded else "",
               language=_language(order, maker))


def refunded_by_store(session: Session, ctx: Context, order: Order, amount: int, total_refunded: int, *,
                      in_full: bool, now: datetime) -> None:
    """The manufacturer refunded (part of) a shipped order: the customer is told how much."""
    maker = session.get(Manufacturer, order.manufacturer_id) if order.manufacturer_id else None
    send_email(session, ctx, topic="order_refunded_by_store", to=order.customer_email,
               template="order_refunded_by_store", dedupe_key=f"order-{order.id}-refund-{total_refunded}", now=now,
               name=order.customer_name, order_id=order.id, store=maker.name if maker else "The store",
               refund=_refund_money(amount, order.currency, _language(order, maker), maker), in_full=in_full,
               language=_language(order, maker))
