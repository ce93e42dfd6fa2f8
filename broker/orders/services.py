"""Placing, reading, listing and cancelling orders."""

from __future__ import annotations

import dataclasses
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from broker.accounts.models import Manufacturer, Store
from broker.addresses import PostalAddress, check_address
from broker.auth import Actor, ActorKind, digest, require, same
from broker.board.listings import new_listing
from broker.board.models import Listing, ListingKind, ListingStatus
from broker.catalog.models import Product
from broker.context import Context
from broker.email_address import email_address
from broker.errors import Conflict, Invalid, NotFound, PaymentRequired, Unauthenticated, Unavailable
from broker.fulfilment.models import Assignment, AssignmentStatus
from broker.geo.geocoding import LocationQuery, resolve_location
from broker.locks import lock
from broker.money import MAX_AMOUNT, format_amount
from broker.notifications import events
from broker.orders.models import Delivery, Order, OrderLine, OrderStatus
from broker.stock import reserve as stock
from broker.stock import standing
from broker.orders.rules import CANCELLABLE, move
from broker.pagination import Page, PageRequest, paginate
from broker.payments import services as payments
from broker.payments.models import Payment, PaymentStatus
from broker.payments.provider import PaymentError
from broker.personal.models import PersonalRequest
from broker.privacy.services import Disclosed, UnloggedDisclosure, disclose_to
from broker.returns.models import Return

MAX_QUANTITY = 999
MAX_LINES = 100


@dataclasses.dataclass(frozen=True)
class Item:
    sku: str
    quantity: int


@dataclasses.dataclass(frozen=True)
class Customer:
    name: str
    email: str


@dataclasses.dataclass(frozen=True)
class Address:
    """A ship-to as a client sends it; `check_address` decides what it must hold."""

    line1: str
    city: str
    postal_code: str
    country: str
    line2: str = ""
    lat: float | None = None
    lon: float | None = None
    region: str = ""
    city_area: str = ""


@dataclasses.dataclass(frozen=True)
class PlaceOrder:
    items: list[Item]
    customer: Customer
    ship_to: Address
    delivery: Delivery = Delivery.SHIP


@dataclasses.dataclass(frozen=True)
class PlacedOrder:
    order: Order
    access_token: str
    payment: Payment
    client_secret: str | None
    pickup_code: str | None = None  # shown to the customer once; stored only as a hash


def place_order(ctx: Context, slug: str, cmd: PlaceOrder) -> PlacedOrder:
    """Price the cart from the catalog, authorise the payment, and (once it is
    authorised) put the order on the board.

    :raise 404: no such storefront. :raise 422: empty cart, unknown or inactive
        SKU, bad quantity, bad address or location.
    """
    if not cmd.items:
        raise Invalid.field("items", "the cart is empty")
    if len(cmd.items) > MAX_LINES:
        raise Invalid.field("items", f"at most {MAX_LINES} lines")
    quantities: dict[str, int] = {}
    for i, item in enumerate(cmd.items):
        quantities[item.sku] = quantities.get(item.sku, 0) + item.quantity
        # Checked on the running total: the same SKU on two lines is one line.
        if not (1 <= item.quantity and quantities[item.sku] <= MAX_QUANTITY):
            raise Invalid.field(f"items.{i}.quantity", f"must be between 1 and {MAX_QUANTITY} per product")
    name = cmd.customer.name.strip()
    if not name:
        raise Invalid.field("customer.name", "must not be blank")
    email = email_address(cmd.customer.email, "customer.email")
    # For a pickup the address is only where the customer is: a postal code or a city will do.
    to = ship_to_address(cmd.ship_to, street=cmd.delivery != Delivery.PICKUP)
    place = resolve_location(ctx.geocoder, location_of(to), field="ship_to")
    with ctx.uow() as uow:
        session = uow.session
        maker = session.scalar(select(Manufacturer).where(Manufacturer.slug == slug))
        if maker is None:
            raise NotFound(f"no storefront {slug!r}")
        products = {
            p.sku: p
            for p in session.scalars(
                select(Product).where(Product.manufacturer_id == maker.id, Product.sku.in_(list(quantities)))
            )
        }
        for i, item in enumerate(cmd.items):
            product = products.get(item.sku)
            if product is None or not product.active:
                raise Invalid.field(f"items.{i}.sku", f"{item.sku!r} is not for sale in this store")
            if not product.in_stock:
                raise Invalid.field(f"items.{i}.sku", f"{product.name} is sold out")
        now = ctx.now()
        token = secrets.token_urlsafe(32)
        order = Order(
            manufacturer_id=maker.id, status=OrderStatus.AWAITING_PAYMENT, currency=maker.currency, total=0,
            delivery=cmd.delivery, customer_name=name, customer_email=email,
            ship_line1=to.line1, ship_line2=to.line2, ship_city=to.city, ship_city_area=to.city_area,
            ship_region=to.region, ship_postal_code=to.postal_code, ship_country=to.country,
            ship_lat=place.lat, ship_lon=place.lon, area=place.area, location_precision=place.precision,
            access_token_hash=digest(token), created_at=now, updated_at=now,
        )
        for sku, quantity in quantities.items():
            product = products[sku]
            order.lines.append(OrderLine(product_id=product.id, sku=sku, name=product.name,
                                         unit_price=product.price, quantity=quantity,
                                         line_total=product.price * quantity))
        order.total = sum(line.line_total for line in order.lines)
        if order.total > MAX_AMOUNT:
            raise Invalid.field("items", f"the order's total must be at most {format_amount(MAX_AMOUNT, maker.currency)}")
        pickup_code = None
        if cmd.delivery == Delivery.PICKUP:
            pickup_code = f"{secrets.randbelow(10**6):06d}"
            order.pickup_code_hash = pickup_digest(order.access_token_hash, pickup_code)
        session.add(order)
        session.flush()
        try:
            auth = ctx.payments.authorize(
                session, amount=order.total, currency=order.currency,
                idempotency_key=f"order-{order.id}-authorize", description=f"{maker.name} order {order.id}",
                metadata={"order_id": str(order.id), "transfer_group": f"order-{order.id}"},
            )
        except PaymentError as exc:
            if exc.retryable:
                raise Unavailable("the payment provider is not answering; nothing was charged, try again") from None
            raise PaymentRequired(f"the payment could not be set up: {exc}") from None
        payment = Payment(
            order_id=order.id, provider=ctx.payments.name, provider_ref=auth.ref, test_mode=ctx.payments.test_mode,
            status=PaymentStatus.PENDING, amount=order.total, currency=order.currency, created_at=now,
        )
        session.add(payment)
        session.flush()
        if auth.authorized:
            payments.record_authorized(session, payment, hold_hours=ctx.settings.auth_hold_hours, now=now)
            put_on_board(session, ctx, order, now)
        events.order_placed(session, ctx, order, token, pickup_code, now)
        uow.commit()
        return PlacedOrder(order, token, payment, auth.client_secret, pickup_code)


def ship_to_address(to: Address, *, street: bool = True) -> PostalAddress:
    """The client's ship-to checked against its country's rules (422 per field)."""
    return check_address(PostalAddress(
        country=to.country or "", line1=to.line1 or "", line2=to.line2 or "", city=to.city or "",
        city_area=to.city_area or "", region=to.region or "", postal_code=to.postal_code or "", lat=to.lat,
        lon=to.lon), field="ship_to", street=street)


def location_of(address: PostalAddress) -> LocationQuery:
    """Where an address is, for the geocoder: its coordinates if the customer's
    device gave them, else its postal code, else its city."""
    return LocationQuery(postal_code=address.postal_code or None, country=address.country, lat=address.lat,
                         lon=address.lon, city=address.city or None, region=address.region or None)


def pickup_digest(token_hash: str, code: str) -> str:
    """A six-digit code is guessable offline from a bare hash; salting it with the
    order's token hash at least makes each order's code its own search. Online,
    wrong tries are limited (MAX_PICKUP_ATTEMPTS)."""
    return digest(f"{token_hash}:{code}")


def put_on_board(session: Session, ctx: Context, order: Order, now: datetime) -> None:
    """The hold is in place: the order goes on the board, and the standing bids
    it matches are placed at once (caller's transaction)."""
    move(order, OrderStatus.OPEN, now)
    listing = new_listing(kind=ListingKind.ORDER, manufacturer_id=order.manufacturer_id, order_id=order.id,
                          status=ListingStatus.OPEN, lat=order.ship_lat, lon=order.ship_lon, area=order.area,
                          precision=order.location_precision, price=order.total, currency=order.currency,
                          listed_at=now)
    session.add(listing)
    standing.place_on_listing(session, ctx, listing, now)
    events.order_on_board(session, order, now)


class Party:
    CUSTOMER = "customer"
    MANUFACTURER = "manufacturer"
    FULFILLER = "fulfiller"


@dataclasses.dataclass(frozen=True)
class OrderView:
    """An order as one party may see it: `customer` and `ship_to` are None where
    that party may not see them. Anyone but the customer is shown them only with
    `disclosed`, the proof that the showing was logged (`privacy.disclose_to`):
    a view that would show them without it cannot be made."""

    order: Order
    party: str
    payment: Payment | None
    assignment: Assignment | None
    show_customer: bool
    show_email: bool
    disclosed: Disclosed | None = None
    # The returns this party may see (a fulfiller: its own assignment's), oldest first.
    returns: tuple[Return, ...] = ()
    # For the customer of a pickup order a store has: where to collect it, its
    # hours written in the storefront's locale, and open now as of `now`.
    pickup_store: Store | None = None
    locale: str = "en_US"
    now: datetime | None = None
    # The order's parts as this party may see them (the customer and the
    # manufacturer: every part still to ship or shipped; a fulfiller: its own).
    parts: tuple[Assignment, ...] = ()

    def __post_init__(self):
        if self.party == Party.CUSTOMER:
            return
        shown = set()
        if self.show_customer or self.show_email:
            shown = {"name", "address"} | ({"email"} if self.show_email else set())
        if self.returns:
            shown.add(RETURN_REASON)  # the customer's own words
        if shown and (self.disclosed is None or not self.disclosed.covers(shown)):
            raise UnloggedDisclosure(f"order {self.order.id} would show {sorted(shown)} to the {self.party} unlogged")


# What a manufacturer and a fulfiller are shown of the customer.
FOR_MANUFACTURER = ("name", "email", "address")
FOR_FULFILLER = ("name", "address")
# A return's reason and the note answering it: the customer's words, shown to
# the fulfiller and the manufacturer deciding it, each showing logged.
RETURN_REASON = "return_reason"


def returns_of(session: Session, order_ids: list[int], *, assignment_id: int | None = None) -> dict[int, tuple]:
    """The orders' returns (only those of `assignment_id`, if given), oldest first."""
    if not order_ids:
        return {}
    stmt = select(Return).where(Return.order_id.in_(order_ids)).order_by(Return.id)
    if assignment_id is not None:
        stmt = stmt.where(Return.assignment_id == assignment_id)
    found: dict[int, list[Return]] = {}
    for row in session.scalars(stmt):
        found.setdefault(row.order_id, []).append(row)
    return {order_id: tuple(rows) for order_id, rows in found.items()}


def _find_order(session: Session, order_id: int) -> Order | None:
    return session.scalar(select(Order).where(Order.id == order_id).options(selectinload(Order.lines)))


def _customer_may(order: Order | None, access_token: str | None) -> bool:
    return bool(order is not None and access_token and same(order.access_token_hash, digest(access_token)))


def get_order(ctx: Context, actor: Actor, order_id: int, access_token: str | None = None) -> OrderView:
    """The order for the customer (by token), its manufacturer or its current or past
    fulfiller. :raise 401: no credentials at all. :raise 404: anyone else."""
    if actor.kind is ActorKind.ANONYMOUS and not access_token:
        raise Unauthenticated("give the order's X-Access-Token, or an API key")
    with ctx.uow() as uow:
        session = uow.session
        order = _find_order(session, order_id)
        if order is None:
            raise NotFound(f"no order {order_id}")
        current = session.scalar(
            select(Assignment).where(Assignment.order_id == order.id).order_by(Assignment.id.desc()).limit(1)
        )
        parts = _parts(session, order.id)
        payment = session.scalar(select(Payment).where(Payment.order_id == order.id))
        now = ctx.now()
        if _customer_may(order, access_token):
            store, locale = _pickup_store(session, order, current)
            return OrderView(order, Party.CUSTOMER, payment, current, True, True,
                             returns=returns_of(session, [order.id]).get(order.id, ()), pickup_store=store,
                             locale=locale, now=now, parts=parts)
        if actor.kind is ActorKind.RETAILER:
            # A fulfiller of one part of a split order opens it through its own part.
            mine = session.scalar(select(Assignment).where(
                Assignment.order_id == order.id, Assignment.retailer_id == actor.id,
                Assignment.status.in_([AssignmentStatus.ACTIVE, AssignmentStatus.SHIPPED]))
                .order_by(Assignment.id.desc()).limit(1))
            current = mine or current
        if actor.kind is ActorKind.MANUFACTURER and order.manufacturer_id == actor.id:
            if not _manufacturer_sees_customer(current, order.id in _request_born(session, [order.id])):
                return OrderView(order, Party.MANUFACTURER, payment, current, False, False, parts=parts)
            returns = returns_of(session, [order.id]).get(order.id, ())
            disclosed = disclose_to(session, party_kind="manufacturer", party_id=actor.id,
                                    fields=FOR_MANUFACTURER + ((RETURN_REASON,) if returns else ()),
                                    purpose="manufacturer opened the order", now=now, order_ids=[order.id])
            uow.commit()
            return OrderView(order, Party.MANUFACTURER, payment, current, True, True, disclosed, returns,
                             parts=parts)
        if (
            actor.kind is ActorKind.RETAILER
            and current is not None
            and current.retailer_id == actor.id
            and current.status in (AssignmentStatus.ACTIVE, AssignmentStatus.SHIPPED)
        ):
            returns = returns_of(session, [order.id], assignment_id=current.id).get(order.id, ())
            disclosed = disclose_to(session, party_kind="retailer", party_id=actor.id,
                                    fields=FOR_FULFILLER + ((RETURN_REASON,) if returns else ()),
                                    purpose="fulfiller opened the order to ship it", now=now, order_ids=[order.id])
            uow.commit()
            return OrderView(order, Party.FULFILLER, None, current, True, False, disclosed, returns,
                             parts=(current,))
        raise NotFound(f"no order {order_id}")


def _parts(session: Session, order_id: int) -> tuple[Assignment, ...]:
    """The order's parts: the assignments still to ship or shipped, in the order made."""
    return tuple(session.scalars(select(Assignment).where(
        Assignment.order_id == order_id, Assignment.status.in_([AssignmentStatus.ACTIVE, AssignmentStatus.SHIPPED]))
        .order_by(Assignment.id)))


def _pickup_store(session: Session, order: Order, current: Assignment | None) -> tuple[Store | None, str]:
    """The store a pickup order is collected from, once a store has it (to collect,
    or collected), and the storefront's locale to write its hours in."""
    locale = session.scalar(select(Manufacturer.locale).where(Manufacturer.id == order.manufacturer_id)) \
        if order.manufacturer_id else None
    if (order.delivery != Delivery.PICKUP or current is None or current.store_id is None
            or current.status not in (AssignmentStatus.ACTIVE, AssignmentStatus.SHIPPED)):
        return None, locale or "en_US"
    return session.get(Store, current.store_id), locale or "en_US"


@dataclasses.dataclass(frozen=True)
class OrderFilter:
    status: OrderStatus | None = None
    # "retailer", "manufacturer", or a retailer id as text
    fulfiller: str | None = None


def list_orders(ctx: Context, actor: Actor, filters: OrderFilter, page: PageRequest) -> Page[OrderView]:
    """The manufacturer's own orders. Personal data is in each, so each listing is disclosed."""
    require(actor, ActorKind.MANUFACTURER)
    with ctx.uow() as uow:
        session = uow.session
        stmt = select(Order).where(Order.manufacturer_id == actor.id).options(selectinload(Order.lines))
        if filters.status:
            stmt = stmt.where(Order.status == filters.status)
        if filters.fulfiller:
            active = select(Assignment.order_id).where(
                Assignment.status.in_([AssignmentStatus.ACTIVE, AssignmentStatus.SHIPPED])
            )
            if filters.fulfiller == "manufacturer":
                active = active.where(Assignment.fulfiller_kind == "manufacturer")
            elif filters.fulfiller == "retailer":
                active = active.where(Assignment.fulfiller_kind == "retailer")
            elif filters.fulfiller.isascii() and filters.fulfiller.isdigit() and len(filters.fulfiller) <= 18:
                # isascii: str.isdigit() also accepts digits int() does not read ("¹").
                active = active.where(Assignment.retailer_id == int(filters.fulfiller))
            else:
                raise Invalid.field("fulfiller", "use manufacturer, retailer, or a retailer id")
            stmt = stmt.where(Order.id.in_(active))
        found = paginate(session, stmt.order_by(Order.id.desc()), page)
        ids = [o.id for o in found.items]
        payments = {p.order_id: p for p in session.scalars(select(Payment).where(Payment.order_id.in_(ids)))}
        assignments: dict[int, Assignment] = {}
        for a in session.scalars(select(Assignment).where(Assignment.order_id.in_(ids)).order_by(Assignment.id)):
            assignments[a.order_id] = a  # the latest wins
        now = ctx.now()
        from_requests = _request_born(session, ids)
        sees = {o.id: _manufacturer_sees_customer(assignments.get(o.id), o.id in from_requests) for o in found.items}
        returns = returns_of(session, [o.id for o in found.items if sees[o.id]])
        # One row per order shown, naming what it showed: the reason too where it has a return.
        plain = disclose_to(session, party_kind="manufacturer", party_id=actor.id, fields=FOR_MANUFACTURER,
                            purpose="manufacturer listed its orders", now=now,
                            order_ids=[o.id for o in found.items if sees[o.id] and o.id not in returns])
        with_returns = disclose_to(session, party_kind="manufacturer", party_id=actor.id,
                                   fields=FOR_MANUFACTURER + (RETURN_REASON,), purpose="manufacturer listed its orders",
                                   now=now, order_ids=[o.id for o in found.items if o.id in returns])
        uow.commit()
        views = [OrderView(o, Party.MANUFACTURER, payments.get(o.id), assignments.get(o.id), sees[o.id], sees[o.id],
                           (with_returns if o.id in returns else plain) if sees[o.id] else None,
                           returns.get(o.id, ()))
                 for o in found.items]
        return Page(views, found.total)


def _request_born(session: Session, order_ids: list[int]) -> set[int]:
    """Which of these orders were personal requests before they were awarded."""
    if not order_ids:
        return set()
    return set(session.scalars(select(PersonalRequest.order_id).where(PersonalRequest.order_id.in_(order_ids))))


def _manufacturer_sees_customer(current: Assignment | None, request_born: bool) -> bool:
    """A manufacturer sees the customer of what it sold on its storefront, and of
    what it ships itself. A personal request that named its product and that a
    retailer won is the anonymous requester's business with that retailer: the
    manufacturer sees the order (its product, price, area, state), not who."""
    return not request_born or (current is not None and current.fulfiller_kind == "manufacturer")


def cancel_order(ctx: Context, order_id: int, access_token: str | None) -> OrderView:
    """The customer cancels before shipment; the hold is released.

    :raise 401: no token. :raise 404: wrong token. :raise 409: already shipped or closed.
    """
    if not access_token:
        raise Unauthenticated("give the order's X-Access-Token")
    with ctx.uow() as uow:
        session = uow.session
        # Lock order: listing, order, assignment, payment (as every writer does).
        session.scalar(lock(select(Listing).where(Listing.order_id == order_id)))
        order = session.scalar(lock(select(Order).where(Order.id == order_id).options(selectinload(Order.lines))))
        if not _customer_may(order, access_token):
            raise NotFound(f"no order {order_id}")
        if order.status not in CANCELLABLE | {OrderStatus.PAYMENT_FAILED}:
            raise Conflict(f"the order is {order.status} and can no longer be cancelled")
        if session.scalar(select(Assignment.id).where(Assignment.order_id == order.id,
                                                      Assignment.status == AssignmentStatus.SHIPPED).limit(1)):
            raise Conflict("part of the order has shipped already; it can no longer be cancelled")
        now = ctx.now()
        ended = _close(session, order, now, give_back_stock=False)
        payment = session.scalar(lock(select(Payment).where(Payment.order_id == order.id)))
        if payment is not None:
            _give_back(session, ctx, payment, now)
        stock.give_back(session, ended)  # stock rows last (broker.locks)
        uow.commit()
        return OrderView(order, Party.CUSTOMER, payment, None, True, True)


def _give_back(session: Session, ctx: Context, payment: Payment, now: datetime) -> None:
    try:
        payments.give_back(session, ctx.payments, payment, now=now)
    except PaymentError as exc:
        raise Unavailable(f"the payment provider could not release the payment ({exc}); try again") from None


def payment_changed(session: Session, ctx: Context, order: Order, payment: Payment, changes: list[str],
                    now: datetime) -> None:
    """Move an order after its payment moved (a webhook), forward only (caller's transaction)."""
    if "authorized" in changes and order.status in (OrderStatus.AWAITING_PAYMENT, OrderStatus.PAYMENT_FAILED):
        put_on_board(session, ctx, order, now)
    if "failed" in changes and order.status == OrderStatus.AWAITING_PAYMENT:
        move(order, OrderStatus.PAYMENT_FAILED, now)
    if "released" in changes and order.status in CANCELLABLE | {OrderStatus.PAYMENT_FAILED}:
        # The hold was cancelled at the provider (it lapsed, or someone cancelled it
        # there): the order cannot be paid for any more, so it comes off the board.
        _close(session, order, now)
    if payment.status == PaymentStatus.REFUNDED and order.status in (OrderStatus.SHIPPED, OrderStatus.DELIVERED):
        move(order, OrderStatus.REFUNDED, now)
        events.order_closed(session, order, now)


def _close(session: Session, order: Order, now: datetime, *, give_back_stock: bool = True) -> list[int]:
    """Cancel the order, its listing and its active assignments (caller's
    transaction); their reserved stock is given back unless the caller does it
    after taking its other locks. Returns the assignments cancelled."""
    move(order, OrderStatus.CANCELLED, now)
    order.cancelled_at = now
    events.order_closed(session, order, now)
    listing = session.scalar(select(Listing).where(Listing.order_id == order.id))
    if listing is not None and listing.status == ListingStatus.OPEN:
        listing.status = ListingStatus.CLOSED
        listing.closed_at = now
    ended = []
    for assignment in session.scalars(
        select(Assignment).where(Assignment.order_id == order.id, Assignment.status == AssignmentStatus.ACTIVE)
    ):
        assignment.status = AssignmentStatus.CANCELLED
        assignment.ended_at = now
        ended.append(assignment.id)
    if ended and give_back_stock:
        stock.give_back(session, ended)
    return ended


def refund_order(ctx: Context, actor: Actor, order_id: int, amount: int | None = None) -> OrderView:
    """The manufacturer refunds a shipped order (a return), in full or in part.

    :raise 404: not the caller's order. :raise 409: nothing captured to refund.
    :raise 422: more than is left to refund.
    """
    require(actor, ActorKind.MANUFACTURER)
    with ctx.uow() as uow:
        session = uow.session
        # Lock order: order, payment, earning (broker.locks).
        order = session.scalar(lock(select(Order).where(Order.id == order_id, Order.manufacturer_id == actor.id)
                                    .options(selectinload(Order.lines))))
        if order is None:
            raise NotFound(f"no order {order_id}")
        payment = session.scalar(lock(select(Payment).where(Payment.order_id == order.id)))
        if payment is None or payment.status not in (PaymentStatus.CAPTURED,):
            raise Conflict("only a captured payment can be refunded; cancel an order that has not shipped")
        left = payment.captured_amount - payment.refunded_amount
        amount = left if amount is None else amount
        if not (0 < amount <= left):
            raise Invalid.field("amount", f"must be between 1 and {left}")
        now = ctx.now()
        try:
            ref = ctx.payments.refund(session, payment.provider_ref, amount=amount,
                                      idempotency_key=f"payment-{payment.id}-refund-{payment.refunded_amount + amount}")
        except PaymentError as exc:
            raise Unavailable(f"the payment provider refused the refund: {exc}") from None
        payments.record_refunded(session, payment, payment.refunded_amount + amount, now=now, reference=ref)
        payment_changed(session, ctx, order, payment, ["refunded"], now)
        # The answer shows the customer as opening the order would: to a manufacturer
        # that may see them (not a request's customer a retailer served), and logged.
        current = session.scalar(select(Assignment).where(Assignment.order_id == order.id)
                                 .order_by(Assignment.id.desc()).limit(1))
        disclosed, returns = None, ()
        if _manufacturer_sees_customer(current, order.id in _request_born(session, [order.id])):
            returns = returns_of(session, [order.id]).get(order.id, ())
            disclosed = disclose_to(session, party_kind="manufacturer", party_id=actor.id,
                                    fields=FOR_MANUFACTURER + ((RETURN_REASON,) if returns else ()),
                                    purpose="manufacturer refunded the order", now=now, order_ids=[order.id])
        uow.commit()
        return OrderView(order, Party.MANUFACTURER, payment, None, disclosed is not None, disclosed is not None,
                         disclosed, returns)
