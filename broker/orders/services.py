"""Placing, reading, listing and cancelling orders."""

from __future__ import annotations

import dataclasses
import logging
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from broker.accounts.models import Manufacturer, Retailer, Store
from broker.addresses import PostalAddress, check_address
from broker.auth import Actor, ActorKind, digest, require, same
from broker.board.listings import new_listing
from broker.board.models import Listing, ListingKind, ListingStatus
from broker.catalog.models import Product
from broker.context import Context
from broker.email_address import email_address
from broker import formkeys
from broker.languages import supported
from broker.errors import Conflict, Invalid, NotFound, Unauthenticated, Unavailable
from broker.fulfilment.models import Assignment, AssignmentStatus
from broker.geo.geocoding import LocationQuery, resolve_location
from broker.locks import lock
from broker.notifications import events
from broker.orders import pricing
from broker.orders.models import Delivery, Order, OrderLine, OrderStatus
from broker.orders.pricing import PricedLine
from broker.stock import reserve as stock
from broker.stock import standing
from broker.orders.rules import CANCELLABLE, move
from broker.pagination import Page, PageRequest, paginate
from broker.payments import holds
from broker.payments import services as payments
from broker.payments.models import Payment, PaymentStatus
from broker.payments.provider import PaymentError
from broker.personal.models import PersonalRequest
from broker.privacy.disclosures import Disclosed, UnloggedDisclosure, disclose_to
from broker.returns.models import Return

MAX_QUANTITY = 999
MAX_LINES = 100

log = logging.getLogger(__name__)


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
    # A shipping method's code; None: the store's default.
    shipping_method: str | None = None
    # The language the customer ordered in (broker.languages); None: the store's.
    language: str | None = None


@dataclasses.dataclass(frozen=True)
class PlacedOrder:
    order: Order
    access_token: str
    payment: Payment
    client_secret: str | None
    pickup_code: str | None = None  # shown to the customer once; stored only as a hash


def place_order(ctx: Context, slug: str, cmd: PlaceOrder, *, once: formkeys.Once | None = None) -> PlacedOrder:
    """Price the cart from the catalog (goods, the shipping method's charge, tax
    at the destination), authorise the payment for the total, and (once it is
    authorised) put the order on the board. With `once` (a checkout form's key), a
    second call with the same key places nothing and raises
    `formkeys.AlreadyDone` with what the first recorded (order_id, token,
    pickup_code, client_secret).

    The tax provider is asked between two transactions (it may be Stripe Tax,
    over the network): the first reads the catalog, the store's shipping methods
    and tax table; the second checks they are still what was priced and writes.

    :raise 404: no such storefront. :raise 409: the store changed its prices
        meanwhile. :raise 422: empty cart, unknown or inactive SKU, bad
        quantity, bad address or location, a shipping method that does not ship
        there. :raise 503: the tax or payment provider is not answering.
    """
    errors: dict[str, list[str]] = {}
    quantities, name, email, to, place = _check_fields(ctx, cmd, errors)
    method_code = (cmd.shipping_method or "").strip().lower() or None
    with ctx.uow() as uow:
        maker = _storefront(uow.session, slug)
        products = _check_products(uow.session, maker, cmd, quantities, errors)
        if errors:  # every wrong field at once, nothing written
            raise _all_invalid(errors)
        currency = maker.currency
        lines = [PricedLine(sku, products[sku].price, quantity) for sku, quantity in quantities.items()]
        basis = pricing.basis_of(uow.session, maker.id, currency)
        # Refused before the tax provider is asked: a method that does not ship there.
        pricing.choose_method(basis, to_country=to.country, delivery=cmd.delivery, method_code=method_code)
    priced = pricing.price(basis, ctx.taxes(), currency=currency, lines=lines, delivery=cmd.delivery,
                           method_code=method_code,
                           to=pricing.Destination(country=to.country, region=to.region, postal_code=to.postal_code,
                                                  city=to.city, line1=to.line1))
    # Reserve: the order, awaiting its payment, committed before the provider is asked.
    with ctx.uow() as uow:
        session = uow.session
        formkeys.claim(session, once, now=ctx.now())
        maker = _storefront(session, slug)
        products = _check_products(session, maker, cmd, quantities, errors)
        if errors:
            raise _all_invalid(errors)
        if ([PricedLine(sku, products[sku].price, q) for sku, q in quantities.items()] != lines
                or pricing.basis_of(session, maker.id, currency) != basis):
            raise Conflict("the store changed its prices or shipping while you checked out: look again and retry")
        now = ctx.now()
        token = secrets.token_urlsafe(32)
        method = priced.method
        order = Order(
            manufacturer_id=maker.id, status=OrderStatus.AWAITING_PAYMENT, currency=maker.currency,
            total=priced.total, subtotal=priced.subtotal, shipping=priced.shipping, tax=priced.tax,
            tax_included=priced.tax_included, tax_jurisdiction=priced.jurisdiction, tax_rate=priced.rate,
            shipping_method=method.code if method else None, shipping_method_name=method.name if method else None,
            ship_within_hours=method.ship_within_hours if method else None,
            delivery=cmd.delivery, customer_name=name, customer_email=email, language=supported(cmd.language),
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
        pickup_code = None
        if cmd.delivery == Delivery.PICKUP:
            pickup_code = pickup_code_for(token)
            order.pickup_code_hash = pickup_digest(order.access_token_hash, pickup_code)
        session.add(order)
        session.flush()
        order_id, maker_name = order.id, maker.name
        hold = _hold(order_id, maker_name, priced.total, currency)
        if not holds.remote(ctx):
            # Broker's own offline provider: no network to wait on, one transaction.
            auth = holds.authorize(ctx, session=session, **hold)
            placed = _record_hold(session, ctx, order, auth, token, pickup_code, now, once)
            uow.commit()
            return placed
        # What a repeat of this form learns while the payment is being set up.
        formkeys.record(session, once, {"order_id": order_id, "token": token, "pickup_code": pickup_code,
                                        "client_secret": None})
        uow.commit()
    # Ask, outside any transaction of ours; then record.
    auth = None
    try:
        auth = holds.authorize(ctx, **hold)
        with ctx.uow() as uow:
            session = uow.session
            order = session.scalar(lock(select(Order).where(Order.id == order_id).options(selectinload(Order.lines))))
            placed = _record_hold(session, ctx, order, auth, token, pickup_code, now, once)
            uow.commit()
            return placed
    except BaseException:
        holds.give_up(ctx, auth, idempotency_key=f"order-{order_id}-release-unrecorded")
        _drop_reservation(ctx, order_id, once)
        raise


def _hold(order_id: int, maker_name: str, total: int, currency: str) -> dict:
    """What the provider is asked for an order's card hold: the same each time it
    is asked (its idempotency key says so), by checkout and by the sweep."""
    return dict(amount=total, currency=currency, idempotency_key=f"order-{order_id}-authorize",
                description=f"{maker_name} order {order_id}",
                metadata={"order_id": str(order_id), "transfer_group": f"order-{order_id}"})


# How long an order may wait for its payment to be recorded before the sweep
# takes it for a checkout whose process stopped: far longer than any request.
UNRECORDED_AFTER = timedelta(minutes=30)


def sweep_unrecorded(ctx: Context) -> int:
    """Orders reserved by a checkout that stopped (a crash, a kill) between asking
    the provider for the card hold and recording it: no payment row, still
    awaiting payment, older than UNRECORDED_AFTER. Each hold is asked for again
    under its idempotency key and released, and the reservation goes, as when
    asking failed (`_drop_reservation`): the customer was never given its link.
    With the offline provider the hold and the order commit together, so there
    is nothing to sweep. Safe in two schedulers at once. Returns how many went."""
    now = ctx.now()
    with ctx.uow() as uow:
        stale = uow.session.execute(
            select(Order.id, Manufacturer.name, Order.total, Order.currency)
            .join(Manufacturer, Manufacturer.id == Order.manufacturer_id)
            .where(Order.status == OrderStatus.AWAITING_PAYMENT, Order.created_at < now - UNRECORDED_AFTER,
                   ~select(Payment.id).where(Payment.order_id == Order.id).exists())
            .order_by(Order.id)).all()
    swept = 0
    for order_id, maker_name, total, currency in stale:
        if holds.release_unrecorded(ctx, release_key=f"order-{order_id}-release-unrecorded",
                                    **_hold(order_id, maker_name, total, currency)):
            swept += _drop_reservation(ctx, order_id, None)
    if swept:
        log.warning("swept %s orders whose payment was never recorded", swept,
                    extra={"event": "orders.unrecorded_swept", "count": swept})
    return swept


def _record_hold(session: Session, ctx: Context, order: Order, auth, token: str, pickup_code: str | None,
                 now: datetime, once: formkeys.Once | None) -> PlacedOrder:
    payment = holds.record(session, ctx, auth, amount=order.total, currency=order.currency, order_id=order.id,
                           tax_amount=order.tax, tax_jurisdiction=order.tax_jurisdiction, now=now)
    if auth.authorized:
        put_on_board(session, ctx, order, now)
    events.order_placed(session, ctx, order, token, pickup_code, now)
    formkeys.record(session, once, {"order_id": order.id, "token": token, "pickup_code": pickup_code,
                                    "client_secret": auth.client_secret})
    return PlacedOrder(order, token, payment, auth.client_secret, pickup_code)


def _drop_reservation(ctx: Context, order_id: int, once: formkeys.Once | None) -> bool:
    """The order whose payment could not be set up goes, with its lines: the
    customer was told nothing was charged, and was never given its link. Its
    form's key goes too, so the form may be sent again."""
    with ctx.uow() as uow:
        session = uow.session
        formkeys.forget(session, once)
        order = session.scalar(lock(select(Order).where(Order.id == order_id, Order.status ==
                                                        OrderStatus.AWAITING_PAYMENT)))
        if order is None or session.scalar(select(Payment.id).where(Payment.order_id == order_id)) is not None:
            return False
        session.delete(order)
        uow.commit()
        return True


def _storefront(session: Session, slug: str) -> Manufacturer:
    """:raise 404: no such storefront."""
    maker = session.scalar(select(Manufacturer).where(Manufacturer.slug == slug))
    if maker is None:
        raise NotFound(f"no storefront {slug!r}")
    return maker


def check_order(ctx: Context, slug: str, cmd: PlaceOrder) -> None:
    """What `place_order` would refuse in `cmd`, all at once, placing nothing (a
    form refused for a reason of its own still shows every other error).

    :raise 404: no such storefront. :raise 422: as `place_order`.
    """
    errors: dict[str, list[str]] = {}
    quantities, *_ = _check_fields(ctx, cmd, errors)
    with ctx.uow() as uow:
        _check_products(uow.session, _storefront(uow.session, slug), cmd, quantities, errors)
    if errors:
        raise _all_invalid(errors)


def _check_fields(ctx: Context, cmd: PlaceOrder, errors: dict[str, list[str]]):
    """The order's quantities, name, email, address and place; what is wrong, into `errors`."""
    quantities = _check_items(cmd, errors)
    name = cmd.customer.name.strip()
    if not name:
        errors.setdefault("customer.name", []).append("enter your name")
    email = _collect(errors, lambda: email_address(cmd.customer.email, "customer.email"))
    # For a pickup the address is only where the customer is: a postal code or a city will do.
    to = _collect(errors, lambda: ship_to_address(cmd.ship_to, street=cmd.delivery != Delivery.PICKUP))
    place = None if to is None else _collect(
        errors, lambda: resolve_location(ctx.geocoder, location_of(to), field="ship_to"))
    return quantities, name, email, to, place


def _check_products(session: Session, maker: Manufacturer, cmd: PlaceOrder, quantities: dict[str, int],
                    errors: dict[str, list[str]]) -> dict[str, Product]:
    """The cart's products; a line not for sale or sold out, by its name, into `errors`."""
    products = {
        p.sku: p
        for p in session.scalars(
            select(Product).where(Product.manufacturer_id == maker.id, Product.sku.in_(list(quantities)))
        )
    } if quantities else {}
    for i, item in enumerate(cmd.items if quantities else []):
        product = products.get(item.sku)
        if product is None:
            errors.setdefault(f"items.{i}.sku", []).append(f"{item.sku!r} is not for sale in this store")
        elif not product.active:
            errors.setdefault(f"items.{i}.sku", []).append(f"{product.name} is no longer for sale")
        elif not product.in_stock:
            errors.setdefault(f"items.{i}.sku", []).append(f"{product.name} is sold out")
    return products


def _check_items(cmd: PlaceOrder, errors: dict[str, list[str]]) -> dict[str, int]:
    """The cart's quantities by SKU; what is wrong with it, into `errors`."""
    if not cmd.items:
        errors.setdefault("items", []).append("the cart is empty")
    if len(cmd.items) > MAX_LINES:
        errors.setdefault("items", []).append(f"at most {MAX_LINES} lines")
        return {}
    quantities: dict[str, int] = {}
    for i, item in enumerate(cmd.items):
        quantities[item.sku] = quantities.get(item.sku, 0) + item.quantity
        # Checked on the running total: the same SKU on two lines is one line.
        if not (1 <= item.quantity and quantities[item.sku] <= MAX_QUANTITY):
            errors.setdefault(f"items.{i}.quantity", []).append(f"must be between 1 and {MAX_QUANTITY} per product")
    return quantities


def _collect(errors: dict[str, list[str]], check):
    """`check()`'s value, or None with its Invalid's errors added to `errors`."""
    try:
        return check()
    except Invalid as exc:
        for field, messages in (exc.errors or {"": [exc.detail]}).items():
            errors.setdefault(field, []).extend(messages)
        return None


def _all_invalid(errors: dict[str, list[str]]) -> Invalid:
    detail = "; ".join(f"{field}: {messages[0]}" if field else messages[0] for field, messages in errors.items())
    return Invalid(detail, errors=errors)


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


def pickup_code_for(access_token: str) -> str:
    """The order's six-digit pickup code, derived from its access token: whoever
    holds the order's link (the customer, on the order page) can be shown it
    again, while Broker keeps only the token's hash and the code's, and a store
    that learns the code learns nothing of the token."""
    mac = hmac.new(access_token.encode(), b"broker pickup code", hashlib.sha256).digest()
    return f"{int.from_bytes(mac[:8], 'big') % 10**6:06d}"


def shown_pickup_code(order: Order, access_token: str | None) -> str | None:
    """The pickup code for the customer's order page: None if not a pickup, or
    if the code was drawn at random (orders placed before codes were derived:
    their code is in the confirmation email only)."""
    if order.delivery != Delivery.PICKUP or not access_token or not order.pickup_code_hash:
        return None
    code = pickup_code_for(access_token)
    return code if same(order.pickup_code_hash, pickup_digest(order.access_token_hash, code)) else None


def put_on_board(session: Session, ctx: Context, order: Order, now: datetime) -> None:
    """The hold is in place: the order goes on the board, and the standing bids
    it matches are placed at once (caller's transaction). The board's price is
    the goods and the shipping, the fulfiller's to earn (less the fee); the tax
    in the total is the jurisdiction's, not theirs."""
    move(order, OrderStatus.OPEN, now)
    listing = new_listing(kind=ListingKind.ORDER, manufacturer_id=order.manufacturer_id, order_id=order.id,
                          status=ListingStatus.OPEN, lat=order.ship_lat, lon=order.ship_lon, area=order.area,
                          precision=order.location_precision, price=order.total - order.tax, currency=order.currency,
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
    # The storefront's locale, for a customer's store hours; `now`, for open now.
    locale: str = "en_US"
    now: datetime | None = None
    # The fulfilling retailer's name, for its manufacturer's pages (None: the
    # manufacturer itself, or nobody yet).
    fulfiller_name: str | None = None
    # The order's parts as this party may see them (the customer and the
    # manufacturer: every part still to ship or shipped; a fulfiller: its own).
    parts: tuple[Assignment, ...] = ()
    # For the customer of a pickup order: every store that has a part of it, with
    # its part, in the order the parts were made (one, unless the order was split).
    pickup_stores: tuple[tuple[Assignment, Store], ...] = ()

    @property
    def pickup_store(self) -> Store | None:
        """Where the customer collects (the latest part's store, for a split order)."""
        return self.pickup_stores[-1][1] if self.pickup_stores else None

    def __post_init__(self):
        if self.party == Party.CUSTOMER:
            return
        shown = set()
        if self.show_customer or self.show_email:
            shown = {"name", "address"} | ({"email"} if self.show_email else set())
            if self.party == Party.FULFILLER and self.order.delivery == Delivery.PICKUP:
                shown = {"name"}  # a pickup's store is shown the name, never the street
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
            return OrderView(order, Party.CUSTOMER, payment, current, True, True,
                             returns=returns_of(session, [order.id]).get(order.id, ()),
                             locale=_storefront_locale(session, order), now=now, parts=parts,
                             pickup_stores=_pickup_stores(session, order, parts))
        if actor.kind is ActorKind.RETAILER:
            # A fulfiller of one part of a split order opens it through its own part.
            mine = session.scalar(select(Assignment).where(
                Assignment.order_id == order.id, Assignment.retailer_id == actor.id,
                Assignment.status.in_([AssignmentStatus.ACTIVE, AssignmentStatus.SHIPPED]))
                .order_by(Assignment.id.desc()).limit(1))
            current = mine or current
        if actor.kind is ActorKind.MANUFACTURER and order.manufacturer_id == actor.id:
            if not _manufacturer_sees_customer(current, order.id in _request_born(session, [order.id])):
                return OrderView(order, Party.MANUFACTURER, payment, current, False, False, parts=parts,
                                 fulfiller_name=_retailer_names(session, [current]).get(current.retailer_id)
                                 if current else None)
            returns = returns_of(session, [order.id]).get(order.id, ())
            disclosed = disclose_to(session, party_kind="manufacturer", party_id=actor.id,
                                    fields=FOR_MANUFACTURER + ((RETURN_REASON,) if returns else ()),
                                    purpose="manufacturer opened the order", now=now, order_ids=[order.id])
            uow.commit()
            return OrderView(order, Party.MANUFACTURER, payment, current, True, True, disclosed, returns,
                             parts=parts, fulfiller_name=_retailer_names(session, [current]).get(current.retailer_id)
                             if current else None)
        if (
            actor.kind is ActorKind.RETAILER
            and current is not None
            and current.retailer_id == actor.id
            and current.status in (AssignmentStatus.ACTIVE, AssignmentStatus.SHIPPED)
        ):
            returns = returns_of(session, [order.id], assignment_id=current.id).get(order.id, ())
            disclosed = disclose_to(session, party_kind="retailer", party_id=actor.id,
                                    fields=((("name",) if order.delivery == Delivery.PICKUP else FOR_FULFILLER)
                                            + ((RETURN_REASON,) if returns else ())),
                                    purpose="fulfiller opened the order to ship it", now=now, order_ids=[order.id])
            uow.commit()
            return OrderView(order, Party.FULFILLER, None, current, True, False, disclosed, returns,
                             parts=(current,))
        raise NotFound(f"no order {order_id}")


def _retailer_names(session: Session, assignments: list[Assignment]) -> dict[int | None, str]:
    """The names of the retailers fulfilling these assignments, by id: a
    manufacturer knows its dealers by name."""
    ids = {a.retailer_id for a in assignments if a is not None and a.retailer_id is not None}
    return dict(session.execute(select(Retailer.id, Retailer.name).where(Retailer.id.in_(ids))).tuples().all()) \
        if ids else {}


def _parts(session: Session, order_id: int) -> tuple[Assignment, ...]:
    """The order's parts: the assignments still to ship or shipped, in the order made."""
    return tuple(session.scalars(select(Assignment).where(
        Assignment.order_id == order_id, Assignment.status.in_([AssignmentStatus.ACTIVE, AssignmentStatus.SHIPPED]))
        .order_by(Assignment.id)))


def _storefront_locale(session: Session, order: Order) -> str:
    """The storefront's locale, to write a pickup store's hours in."""
    locale = session.scalar(select(Manufacturer.locale).where(Manufacturer.id == order.manufacturer_id)) \
        if order.manufacturer_id else None
    return locale or "en_US"


def _pickup_stores(session: Session, order: Order,
                   parts: tuple[Assignment, ...]) -> tuple[tuple[Assignment, Store], ...]:
    """Each part of a pickup order a store has, with that store."""
    if order.delivery != Delivery.PICKUP:
        return ()
    ids = {part.store_id for part in parts if part.store_id is not None}
    stores = {store.id: store for store in session.scalars(select(Store).where(Store.id.in_(ids)))} if ids else {}
    return tuple((part, stores[part.store_id]) for part in parts if part.store_id in stores)


@dataclasses.dataclass(frozen=True)
class OrderFilter:
    status: OrderStatus | None = None
    # "retailer", "manufacturer", or a retailer id as text
    fulfiller: str | None = None
    # The search (broker/orders/search.py reads it from a form): an order number,
    # part of the customer's name or email, a SKU, and when it was placed.
    number: int | None = None
    customer: str = ""
    sku: str = ""
    placed_from: datetime | None = None  # included
    placed_before: datetime | None = None  # excluded


def _like(text: str) -> str:
    """`text` as a LIKE pattern that matches it anywhere, its own % and _ literal."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _filtered(stmt, filters: OrderFilter):
    """The manufacturer's orders `stmt` narrowed by the filters.

    A customer search never matches a personal request's order: who asked is
    not the manufacturer's to see when a retailer won it, so it must not learn
    it by searching either (an order it may not open looks like none)."""
    if filters.status:
        stmt = stmt.where(Order.status == filters.status)
    if filters.number is not None:
        stmt = stmt.where(Order.id == filters.number)
    if filters.customer:
        pattern = _like(filters.customer.lower())
        stmt = stmt.where(
            (func.lower(Order.customer_name).like(pattern, escape="\\"))
            | (func.lower(Order.customer_email).like(pattern, escape="\\")),
            Order.id.not_in(select(PersonalRequest.order_id).where(PersonalRequest.order_id.is_not(None))))
    if filters.sku:
        stmt = stmt.where(Order.id.in_(select(OrderLine.order_id).where(
            func.lower(OrderLine.sku) == filters.sku.lower())))
    if filters.placed_from is not None:
        stmt = stmt.where(Order.created_at >= filters.placed_from)
    if filters.placed_before is not None:
        stmt = stmt.where(Order.created_at < filters.placed_before)
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
    return stmt


def list_orders(ctx: Context, actor: Actor, filters: OrderFilter, page: PageRequest) -> Page[OrderView]:
    """The manufacturer's own orders. Personal data is in each, so each listing is disclosed."""
    require(actor, ActorKind.MANUFACTURER)
    with ctx.uow() as uow:
        session = uow.session
        stmt = select(Order).where(Order.manufacturer_id == actor.id).options(selectinload(Order.lines))
        stmt = _filtered(stmt, filters)
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
        names = _retailer_names(session, list(assignments.values()))
        uow.commit()
        views = [OrderView(o, Party.MANUFACTURER, payments.get(o.id), assignments.get(o.id), sees[o.id], sees[o.id],
                           (with_returns if o.id in returns else plain) if sees[o.id] else None,
                           returns.get(o.id, ()),
                           fulfiller_name=names.get(assignments[o.id].retailer_id) if o.id in assignments else None)
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


def cancel_order(ctx: Context, order_id: int, access_token: str | None, *,
                 once: formkeys.Once | None = None) -> OrderView:
    """The customer cancels before shipment; the hold is released. With `once`,
    a repeat of the same form raises `formkeys.AlreadyDone`.

    :raise 401: no token. :raise 404: wrong token. :raise 409: already shipped or closed.
    """
    if not access_token:
        raise Unauthenticated("give the order's X-Access-Token")
    with ctx.uow() as uow:
        session = uow.session
        formkeys.claim(session, once, now=ctx.now())
        # Lock order: listing, order, assignment, payment (as every writer does).
        session.scalar(lock(select(Listing).where(Listing.order_id == order_id)))
        order = session.scalar(lock(select(Order).where(Order.id == order_id).options(selectinload(Order.lines))))
        if not _customer_may(order, access_token):
            raise NotFound(f"no order {order_id}")
        formkeys.record(session, once, {"order_id": order.id})
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


def cancel_for_manufacturer(ctx: Context, actor: Actor, order_id: int) -> OrderView:
    """The manufacturer cancels one of its storefront's orders before it ships (out
    of stock, a suspected fraud): as the customer's cancel, the order comes off the
    board, any assignment ends and the hold is released.

    :raise 404: not one of the caller's orders, or a personal request a retailer
        won (that is between the customer and the retailer).
    :raise 409: shipped or closed already.
    """
    require(actor, ActorKind.MANUFACTURER)
    with ctx.uow() as uow:
        session = uow.session
        # Lock order: listing, order, assignment, payment (as every writer does).
        session.scalar(lock(select(Listing).where(Listing.order_id == order_id)))
        order = session.scalar(lock(select(Order).where(Order.id == order_id, Order.manufacturer_id == actor.id)
                                    .options(selectinload(Order.lines))))
        if order is None or order.id in _request_born(session, [order.id]):
            raise NotFound(f"no order {order_id}")
        if order.status not in CANCELLABLE | {OrderStatus.PAYMENT_FAILED}:
            raise Conflict(f"the order is {order.status} and can no longer be cancelled")
        now = ctx.now()
        _close(session, order, now)
        payment = session.scalar(lock(select(Payment).where(Payment.order_id == order.id)))
        if payment is not None:
            _give_back(session, ctx, payment, now)
        events.cancelled_by_store(session, ctx, order, payment.refunded_amount if payment else 0, now=now)
        uow.commit()
        return OrderView(order, Party.MANUFACTURER, payment, None, False, False)


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


def refund_order(ctx: Context, actor: Actor, order_id: int, amount: int | None = None, *,
                 refunded_before: int | None = None) -> OrderView:
    """The manufacturer refunds a shipped order (a return), in full or in part.

    `refunded_before`: what the caller saw refunded already when it decided (the
    console's confirmation page). If more has been refunded since (the same form
    sent twice, a colleague, a return), nothing is refunded: a double click must
    not refund twice.

    :raise 404: not the caller's order. :raise 409: nothing captured to refund,
        or refunded meanwhile. :raise 422: more than is left to refund.
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
        if refunded_before is not None and payment.refunded_amount != refunded_before:
            raise Conflict("the order was refunded meanwhile: nothing more was refunded; look at it again")
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
        events.refunded_by_store(session, ctx, order, amount, payment.refunded_amount,
                                 in_full=payment.status == PaymentStatus.REFUNDED, now=now)
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
