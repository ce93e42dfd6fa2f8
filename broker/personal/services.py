"""Personal requests: a customer (or an agent acting for one) casts "I want this,
here, for at most that", anonymously; retailers in range offer; the customer
accepts one, or the daily settlement awards by the request's preference; with no
offer by the expiry, a catalog product within the ceiling goes to its
manufacturer, and anything else expires and the hold is released.

The award becomes an ordinary order (same assignment, shipment, capture, rating),
whose customer token is the request's token.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import socket
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker import formkeys
from broker.accounts.models import Manufacturer, Retailer, Store
from broker.addresses import PostalAddress, check_address
from broker.auth import Actor, ActorKind, digest, same
from broker.board.listings import new_listing
from broker.board.models import Bid, BidStatus, Listing, ListingKind, ListingStatus
from broker.catalog.models import Product
from broker.context import Context
from broker.email_address import email_address
from broker.languages import supported
from broker.errors import Conflict, Invalid, NotFound, Unauthenticated, Unavailable
from broker.fulfilment.models import Assignment, AssignmentStatus
from broker.geo.geocoding import LocationQuery, resolve_location
from broker.locks import lock as lock_rows
from broker.money import CURRENCIES, MAX_AMOUNT
from broker.notifications import events
from broker.orders.models import Order, OrderLine, OrderStatus
from broker.orders.rules import move
from broker.outbox.destinations import check_destination
from broker.outbox.services import enqueue
from broker.parking import services as parking
from broker.payments import holds
from broker.payments import services as payments
from broker.payments.models import Payment, PaymentStatus
from broker.payments.provider import PaymentError
from broker.personal.models import Message, PersonalRequest, Prefer, RequestStatus
from broker.reputation.rules import Reputation, buyer_key, rating_text
from broker.tax import rules as tax_rules
from broker.settlement.models import Cause, Rule, SettlementDecision
from broker.settlement.rules import Choice, choose
from broker.settlement.schedule import closes_at, request_closes_at
from broker.settlement.awarding import Planned, award, candidates_for, decisions_of, plan_of

log = logging.getLogger(__name__)

MAX_QUANTITY = 999
MAX_MESSAGE = 2000


@dataclasses.dataclass(frozen=True)
class ShipTo:
    name: str
    line1: str
    city: str
    postal_code: str
    country: str
    line2: str = ""
    region: str = ""
    city_area: str = ""


@dataclasses.dataclass(frozen=True)
class PostRequest:
    description: str
    quantity: int
    max_price: int
    currency: str
    location: LocationQuery
    ship_to: ShipTo
    sku: str | None = None
    manufacturer: str | None = None  # the storefront slug whose catalog `sku` is from
    prefer: Prefer = Prefer.NEAREST
    expires_at: datetime | None = None
    callback_url: str | None = None
    contact: str | None = None  # an email, for notices; never shown to retailers
    language: str | None = None  # the language it is posted in (broker.languages): its emails'


@dataclasses.dataclass(frozen=True)
class PostedRequest:
    request: PersonalRequest
    access_token: str
    payment: Payment
    client_secret: str | None
    closes_at: datetime | None = None  # as RequestView's, once it is on the board


def _pseudonym(session: Session) -> str:
    while True:
        name = f"Customer {secrets.token_hex(2).upper()}"
        if session.scalar(select(PersonalRequest.id).where(PersonalRequest.pseudonym == name)) is None:
            return name


def post_request(ctx: Context, cmd: PostRequest, *, once: formkeys.Once | None = None) -> PostedRequest:
    """Post a request: the ceiling is authorised on the card now. With `once`, a
    repeat of the same form raises `formkeys.AlreadyDone` (one request, one hold).

    :raise 422: bad fields, unknown SKU, a SKU whose list price alone exceeds no
        ceiling is fine; an expiry in the past or too far ahead; a private callback URL.
    """
    settings = ctx.settings
    description = (cmd.description or "").strip()
    if not description and not cmd.sku:
        raise Invalid.field("description", "describe what you want, or name a catalog sku")
    if not (1 <= cmd.quantity <= MAX_QUANTITY):
        raise Invalid.field("quantity", f"must be between 1 and {MAX_QUANTITY}")
    if not (1 <= cmd.max_price <= MAX_AMOUNT):
        raise Invalid.field("max_price", f"must be a whole number of minor units between 1 and {MAX_AMOUNT}")
    currency = cmd.currency.strip().upper()
    if currency not in CURRENCIES:
        raise Invalid.field("currency", f"{cmd.currency!r} is not a supported ISO 4217 currency")
    now = ctx.now()
    expires_at = cmd.expires_at or now + timedelta(hours=settings.request_default_hours)
    if expires_at <= now + timedelta(hours=1):
        raise Invalid.field("expires_at", "must be at least an hour from now")
    if expires_at > now + timedelta(hours=settings.request_max_hours):
        raise Invalid.field("expires_at", f"must be within {settings.request_max_hours:g} hours from now")
    contact = email_address(cmd.contact, "contact") if (cmd.contact or "").strip() else None
    callback = (cmd.callback_url or "").strip() or None
    if callback is not None:
        refused = check_destination(callback, allow_private=settings.allow_private_callbacks,
                                    resolver=_unresolved)
        if refused:
            raise Invalid.field("callback_url", refused)
    if not (cmd.ship_to.name or "").strip():
        raise Invalid.field("ship_to.name", "Enter the name to ship to")
    to = check_address(PostalAddress(
        country=cmd.ship_to.country or "", line1=cmd.ship_to.line1 or "", line2=cmd.ship_to.line2 or "",
        city=cmd.ship_to.city or "", city_area=cmd.ship_to.city_area or "", region=cmd.ship_to.region or "",
        postal_code=cmd.ship_to.postal_code or "", name=cmd.ship_to.name or ""), field="ship_to")
    place = resolve_location(ctx.geocoder, cmd.location)
    with ctx.uow() as uow:
        session = uow.session
        formkeys.claim(session, once, now=ctx.now())
        maker_id = product_id = None
        sku = (cmd.sku or "").strip() or None
        if sku is not None:
            if not cmd.manufacturer:
                raise Invalid.field("manufacturer", "name the storefront (its slug) whose catalog the sku is from")
            maker = session.scalar(select(Manufacturer).where(Manufacturer.slug == cmd.manufacturer))
            if maker is None:
                raise Invalid.field("manufacturer", f"no storefront {cmd.manufacturer!r}")
            product = session.scalar(select(Product).where(Product.manufacturer_id == maker.id, Product.sku == sku,
                                                           Product.active.is_(True)))
            if product is None:
                raise Invalid.field("sku", f"{sku!r} is not for sale at {maker.slug}")
            if maker.currency != currency:
                raise Invalid.field("currency", f"{maker.slug} sells in {maker.currency}")
            maker_id, product_id = maker.id, product.id
            description = description or product.name
        token = secrets.token_urlsafe(32)
        request = PersonalRequest(
            pseudonym=_pseudonym(session), description=description, manufacturer_id=maker_id, product_id=product_id,
            sku=sku, quantity=cmd.quantity, max_price=cmd.max_price, currency=currency, prefer=Prefer(cmd.prefer),
            status=RequestStatus.AWAITING_PAYMENT, lat=place.lat, lon=place.lon, area=place.area,
            location_precision=place.precision, expires_at=expires_at, access_token_hash=digest(token),
            buyer_key=_buyer_key(contact), contact_email=contact, callback_url=callback, language=supported(cmd.language),
            ship_name=to.name, ship_line1=to.line1, ship_line2=to.line2, ship_city=to.city,
            ship_city_area=to.city_area, ship_region=to.region, ship_postal_code=to.postal_code,
            ship_country=to.country, created_at=now,
        )
        session.add(request)
        session.flush()
        request_id = request.id
        uow.commit()  # reserved: the provider is asked outside any transaction (broker.payments.holds)
    auth = None
    try:
        auth = holds.authorize(ctx, **_hold(request_id, cmd.max_price, currency))
        with ctx.uow() as uow:
            session = uow.session
            request = session.scalar(lock_rows(select(PersonalRequest).where(PersonalRequest.id == request_id)))
            payment = holds.record(session, ctx, auth, amount=request.max_price, currency=currency,
                                   request_id=request.id, now=now)
            closes = None
            if auth.authorized:
                put_on_board(session, request, now)
                closes = _closes_at(settings, now, request.expires_at)
            formkeys.record(session, once, {"request_id": request.id, "token": token,
                                            "client_secret": auth.client_secret})
            uow.commit()
            return PostedRequest(request, token, payment, auth.client_secret, closes)
    except BaseException:
        holds.give_up(ctx, auth, idempotency_key=f"request-{request_id}-release-unrecorded")
        _drop_reservation(ctx, request_id, once)
        raise


def _hold(request_id: int, max_price: int, currency: str) -> dict:
    """What the provider is asked for a request's card hold, the same each time."""
    return dict(amount=max_price, currency=currency, idempotency_key=f"request-{request_id}-authorize",
                description=f"Personal request {request_id}", metadata={"request_id": str(request_id)})


def _drop_reservation(ctx: Context, request_id: int, once: formkeys.Once | None) -> bool:
    """The request whose payment could not be set up (or was never recorded)
    goes; its form's key goes too, so the form may be sent again."""
    with ctx.uow() as uow:
        reserved = uow.session.scalar(lock_rows(select(PersonalRequest).where(PersonalRequest.id == request_id)))
        if reserved is None or reserved.status != RequestStatus.AWAITING_PAYMENT or uow.session.scalar(
                select(Payment.id).where(Payment.request_id == request_id)) is not None:
            return False
        uow.session.delete(reserved)
        formkeys.forget(uow.session, once)
        uow.commit()
        return True


# As orders.services.UNRECORDED_AFTER.
UNRECORDED_AFTER = timedelta(minutes=30)


def sweep_unrecorded(ctx: Context) -> int:
    """Requests reserved by a post that stopped between asking for the card hold
    and recording it (as `orders.services.sweep_unrecorded`): the hold asked for
    again under its idempotency key and released, the reservation dropped."""
    now = ctx.now()
    with ctx.uow() as uow:
        stale = uow.session.execute(
            select(PersonalRequest.id, PersonalRequest.max_price, PersonalRequest.currency)
            .where(PersonalRequest.status == RequestStatus.AWAITING_PAYMENT,
                   PersonalRequest.created_at < now - UNRECORDED_AFTER,
                   ~select(Payment.id).where(Payment.request_id == PersonalRequest.id).exists())
            .order_by(PersonalRequest.id)).all()
    swept = 0
    for request_id, max_price, currency in stale:
        if holds.release_unrecorded(ctx, release_key=f"request-{request_id}-release-unrecorded",
                                    **_hold(request_id, max_price, currency)):
            swept += _drop_reservation(ctx, request_id, None)
    if swept:
        log.warning("swept %s personal requests whose payment was never recorded", swept,
                    extra={"event": "requests.unrecorded_swept", "count": swept})
    return swept


def _unresolved(host, port, *args, **kwargs):
    """Posting a request never waits on DNS: a hostname passes here as if public,
    and delivery resolves it and checks every address right before connecting.
    Literal addresses and `localhost` are judged here without a lookup."""
    return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("8.8.8.8", port or 443))]


def _buyer_key(contact: str | None) -> str | None:
    return buyer_key(contact) if contact else None


def put_on_board(session: Session, request: PersonalRequest, now: datetime) -> None:
    request.status = RequestStatus.OPEN
    session.add(new_listing(kind=ListingKind.REQUEST, manufacturer_id=request.manufacturer_id,
                            request_id=request.id, status=ListingStatus.OPEN, lat=request.lat, lon=request.lon,
                            area=request.area, precision=request.location_precision, price=request.max_price, currency=request.currency, listed_at=now))


def request_payment_changed(session: Session, payment: Payment, changes: list[str], now: datetime) -> None:
    """A request's hold moved at the provider (Stripe's webhook): once authorised,
    a request waiting for its card goes on the board (caller's transaction)."""
    request = session.scalar(lock_rows(select(PersonalRequest).where(PersonalRequest.id == payment.request_id)))
    if request is not None and "authorized" in changes and request.status == RequestStatus.AWAITING_PAYMENT:
        put_on_board(session, request, now)


@dataclasses.dataclass(frozen=True)
class Offer:
    bid: Bid
    retailer_name: str
    # From the retailer's store to the customer's own place, to 100 m: the
    # customer may know it finer than any retailer, it is where they are.
    distance_km: float
    reputation: Reputation | None

    @property
    def rating(self) -> float | None:
        return self.reputation.stars if self.reputation else None

    @property
    def ratings(self) -> int:
        return self.reputation.ratings if self.reputation else 0

    @property
    def rating_text(self) -> str:
        return self.reputation.text if self.reputation else rating_text(0, 0)


@dataclasses.dataclass(frozen=True)
class RequestView:
    request: PersonalRequest
    offers: list[Offer]
    payment: Payment | None
    order: Order | None
    # The offer that won (accepted, or chosen at the settlement); None before, or the manufacturer's.
    winner_bid_id: int | None = None
    # When offers close: the settlement that will decide it (as the board shows it), or
    # the expiry if that comes first.
    closes_at: datetime | None = None
    # The return window of the order it became (its manufacturer's, or the default).
    window_days: int = 30


def _mine(session: Session, request_id: int, token: str | None, *, lock: bool = False) -> PersonalRequest:
    if not token:
        raise Unauthenticated("give the request's X-Access-Token")
    stmt = select(PersonalRequest).where(PersonalRequest.id == request_id)
    request = session.scalar(lock_rows(stmt) if lock else stmt)
    if request is None or not same(request.access_token_hash, digest(token)):
        raise NotFound(f"no request {request_id}")
    return request


def _view(session: Session, request: PersonalRequest, settings=None) -> RequestView:
    listing = session.scalar(select(Listing).where(Listing.request_id == request.id))
    offers: list[Offer] = []
    if listing is not None:
        rows = session.execute(
            select(Bid, Retailer.name).join(Retailer, Retailer.id == Bid.retailer_id)
            .where(Bid.listing_id == listing.id, Bid.status == BidStatus.ACTIVE)
            .order_by(Bid.price, Bid.exact_distance_km, Bid.id)
        ).all()
        ratings = _ratings(session, [bid.retailer_id for bid, _ in rows])
        offers = [Offer(bid, name, round(bid.exact_distance_km, 1), ratings.get(bid.retailer_id))
                  for bid, name in rows]
    payment = session.scalar(select(Payment).where(Payment.request_id == request.id))
    order = session.get(Order, request.order_id) if request.order_id else None
    winner = None
    if listing is not None and request.status == RequestStatus.AWARDED:
        won_by = session.scalar(select(SettlementDecision.winner_retailer_id).where(
            SettlementDecision.listing_id == listing.id).order_by(SettlementDecision.round).limit(1))
        winner = next((o.bid.id for o in offers if won_by is not None and o.bid.retailer_id == won_by), None)
    days = session.scalar(select(Manufacturer.return_window_days).where(
        Manufacturer.id == request.manufacturer_id)) if request.manufacturer_id else None
    return RequestView(request, offers, payment, order, winner,
                       _closes_at(settings, listing.listed_at, request.expires_at)
                       if settings is not None and listing is not None and listing.status == ListingStatus.OPEN
                       else None,
                       30 if days is None else days)


def _closes_at(settings, listed_at: datetime, expires_at: datetime) -> datetime:
    """When the board says the request closes (broker.settlement.schedule)."""
    return request_closes_at(closes_at(listed_at, cron=settings.settle_cron, timezone=settings.timezone,
                                       min_board_hours=settings.min_board_hours), expires_at)


def _ratings(session: Session, retailer_ids: list[int]) -> dict[int, Reputation]:
    """Each retailer's reputation (stars 1-5 and how many ratings), as the customer is shown it."""
    from broker.reputation.services import fulfiller_reputations

    return fulfiller_reputations(session, set(retailer_ids))


def get_request(ctx: Context, request_id: int, token: str | None) -> RequestView:
    """The request with its offers (price, distance, retailer and rating). :raise 401/404:"""
    with ctx.uow() as uow:
        return _view(uow.session, _mine(uow.session, request_id, token), ctx.settings)


def _lock_listing(session: Session, request_id: int) -> Listing | None:
    return session.scalar(lock_rows(select(Listing).where(Listing.request_id == request_id)))


def accept_offer(ctx: Context, request_id: int, token: str | None, bid_id: int, *,
                 once: formkeys.Once | None = None) -> RequestView:
    """The customer takes an offer now; it becomes an order.

    :raise 404: not this request's offer. :raise 409: the request is closed.
    :raise 422: the offer can no longer win (its retailer is out of range or inactive).
    """
    with ctx.uow() as uow:
        session = uow.session
        formkeys.claim(session, once, now=ctx.now())
        listing = _lock_listing(session, request_id)
        request = _mine(session, request_id, token, lock=True)
        if request.status != RequestStatus.OPEN or listing is None or listing.status != ListingStatus.OPEN:
            raise Conflict(f"the request is {request.status}; offers can no longer be accepted")
        bid = session.scalar(select(Bid).where(Bid.id == bid_id, Bid.listing_id == listing.id,
                                               Bid.status == BidStatus.ACTIVE))
        if bid is None:
            raise NotFound(f"no offer {bid_id} on this request")
        [candidate] = [c for c in candidates_for(session, [listing], now=ctx.now())[listing.id]
                       if c.bid_id == bid.id]
        if not candidate.eligible:
            raise Invalid.field("bid_id", f"this offer can no longer be accepted ({candidate.reason})")
        choice = Choice(candidate, Rule.CUSTOMER_CHOICE, (candidate,))
        award_request(session, ctx, listing, request, choice, cause=Cause.ACCEPTED, now=ctx.now())
        formkeys.record(session, once, {"request_id": request.id, "order_id": request.order_id})
        uow.commit()
        return _view(session, request, ctx.settings)


def cancel_request(ctx: Context, request_id: int, token: str | None, *,
                   once: formkeys.Once | None = None) -> RequestView:
    """The customer withdraws an open request; the hold is released. :raise 409: awarded or closed.
    With `once`, a repeat of the same form raises `formkeys.AlreadyDone`."""
    with ctx.uow() as uow:
        session = uow.session
        formkeys.claim(session, once, now=ctx.now())
        listing = _lock_listing(session, request_id)
        request = _mine(session, request_id, token, lock=True)
        if request.status not in (RequestStatus.OPEN, RequestStatus.AWAITING_PAYMENT):
            raise Conflict(f"the request is {request.status}; it can no longer be cancelled")
        _close(session, ctx, request, listing, RequestStatus.CANCELLED, ctx.now())
        formkeys.record(session, once, {"request_id": request.id})
        uow.commit()
        return _view(session, request, ctx.settings)


def _close(session: Session, ctx: Context, request: PersonalRequest, listing: Listing | None,
           status: RequestStatus, now: datetime) -> None:
    request.status = status
    request.closed_at = now
    if listing is not None and listing.status == ListingStatus.OPEN:
        listing.status = ListingStatus.CLOSED
        listing.closed_at = now
    payment = session.scalar(lock_rows(select(Payment).where(Payment.request_id == request.id)))
    if payment is not None:
        try:
            payments.give_back(session, ctx.payments, payment, now=now)
        except PaymentError as exc:
            raise Unavailable(f"the payment provider could not release the hold ({exc}); try again") from None
    _callback(session, request, "expired" if status == RequestStatus.EXPIRED else "cancelled",
              {"request_id": request.id, "status": str(status)}, now)


def award_request(session: Session, ctx: Context, listing: Listing, request: PersonalRequest, choice: Choice, *,
                  cause: Cause, now: datetime, run_id: int | None = None) -> SettlementDecision:
    """Turn the request into an order for the chosen offer (or, with no winner, for
    its manufacturer at the catalog price), in the caller's transaction."""
    winner = choice.winner
    shipping = tax = 0
    if winner is not None:
        price = winner.price
        # The offer said what its price holds: the goods, shipping and tax.
        shipping, tax = session.execute(select(Bid.shipping, Bid.tax).where(Bid.id == winner.bid_id)).one()
    else:
        product = session.get(Product, request.product_id)
        price = product.price * request.quantity
    goods = price - shipping - tax
    order = Order(
        manufacturer_id=request.manufacturer_id, status=OrderStatus.OPEN, currency=request.currency, total=price,
        subtotal=goods, shipping=shipping, tax=tax, tax_included=True,
        tax_jurisdiction=tax_rules.jurisdiction(request.ship_country, request.ship_region) if tax else "",
        customer_name=request.ship_name, customer_email=request.contact_email or "", language=request.language,
        ship_line1=request.ship_line1, ship_line2=request.ship_line2, ship_city=request.ship_city,
        ship_city_area=request.ship_city_area, ship_region=request.ship_region,
        ship_postal_code=request.ship_postal_code, ship_country=request.ship_country, ship_lat=request.lat,
        ship_lon=request.lon, area=request.area, location_precision=request.location_precision,
        access_token_hash=request.access_token_hash,
        created_at=now, updated_at=now,
    )
    order.lines.append(OrderLine(product_id=request.product_id, sku=request.sku or "",
                                 name=request.description[:200], unit_price=goods // request.quantity,
                                 quantity=request.quantity, line_total=goods))
    session.add(order)
    session.flush()
    payment = session.scalar(lock_rows(select(Payment).where(Payment.request_id == request.id)))
    payment.order_id = order.id
    # The offer's tax is in the winning price, which is what will be captured (not the ceiling held).
    payment.tax_amount, payment.tax_jurisdiction, payment.tax_base = tax, order.tax_jurisdiction, price
    if payment.status == PaymentStatus.CAPTURED and payment.captured_amount > price:
        # Captured early (the hold was lapsing): give back what the winning price did not use.
        ref = ctx.payments.refund(session, payment.provider_ref, amount=payment.captured_amount - price,
                                  idempotency_key=f"payment-{payment.id}-refund-over-ceiling")
        payments.record_refunded(session, payment, payment.captured_amount - price, now=now, reference=ref)
    listing.order_id = order.id
    listing.status = ListingStatus.AWARDED
    listing.closed_at = now
    listing.settlement_run_id = run_id
    award(session, ctx, [Planned(listing.id, plan_of(choice))], round=0, cause=cause, now=now, run_id=run_id,
          held={order.id: payment})
    [decision] = decisions_of(session, listing.id, 0)
    events.awarded(session, ctx, decision, now)  # no-op in a settlement run: the run sends a summary
    move(order, OrderStatus.AWARDED, now)
    request.status = RequestStatus.AWARDED
    request.order_id = order.id
    request.closed_at = now
    _callback(session, request, "award", {
        "request_id": request.id, "order_id": order.id, "price": price, "currency": request.currency,
        "fulfiller": "retailer" if winner else "manufacturer",
        "distance_km": round(winner.distance_km, 1) if winner else None,
    }, now)
    return decision


def notify_offer(session: Session, ctx: Context, listing: Listing, bid: Bid, now: datetime) -> None:
    request = session.get(PersonalRequest, listing.request_id)
    name = session.scalar(select(Retailer.name).where(Retailer.id == bid.retailer_id))
    _callback(session, request, "offer", {
        "request_id": request.id, "offer": {"bid_id": bid.id, "price": bid.price, "currency": listing.currency,
                                            "distance_km": round(bid.exact_distance_km, 1), "retailer": name},
    }, now, dedupe=f"bid-{bid.id}-{bid.price}")
    events.offer_received(session, ctx, request, bid, name, listing.currency, now)


def _callback(session: Session, request: PersonalRequest, event: str, body: dict, now: datetime, *,
              dedupe: str | None = None) -> None:
    if not request.callback_url:
        return
    enqueue(session, topic=f"callback.{event}", dedupe_key=f"request-{request.id}-{dedupe or event}",
            recipient_kind="agent", recipient_id=request.id,
            payload={"url": request.callback_url, "body": {"event": event, **body}}, now=now)


@dataclasses.dataclass
class ExpiryReport:
    awarded: int = 0
    to_manufacturer: int = 0
    expired: int = 0
    failed: int = 0  # requests that failed this run: tried again next run (broker.parking)
    parked: int = 0  # requests that failed too often: they wait for the operator


JOB = "requests"


def expire_requests(ctx: Context) -> ExpiryReport:
    """The hourly job: requests past their expiry are awarded (an eligible offer by
    the request's preference; else a catalog product within the ceiling to its
    manufacturer) or expire and release the hold. One transaction per request;
    one that fails is recorded and the rest go on (broker.parking)."""
    report = ExpiryReport()
    now = ctx.now()
    with ctx.uow() as uow:
        due = list(uow.session.scalars(
            select(PersonalRequest.id).where(PersonalRequest.status == RequestStatus.OPEN,
                                             PersonalRequest.expires_at <= now,
                                             parking.may_try(JOB, "request", PersonalRequest.id, now))
            .order_by(PersonalRequest.id)))
    rows = parking.each(ctx, JOB, "request", due, lambda request_id: _expire_one(ctx, request_id, now, report))
    report.failed, report.parked = rows.failed, rows.parked
    return report


def _expire_one(ctx: Context, request_id: int, now: datetime, report: ExpiryReport) -> None:
    with ctx.uow() as uow:
        session = uow.session
        listing = _lock_listing(session, request_id)
        request = session.scalar(lock_rows(select(PersonalRequest).where(PersonalRequest.id == request_id)))
        if request.status != RequestStatus.OPEN or listing is None or listing.status != ListingStatus.OPEN:
            return
        choice = choose(candidates_for(session, [listing], now=now)[listing.id], request.prefer)
        if choice.winner is not None:
            award_request(session, ctx, listing, request, choice, cause=Cause.EXPIRY, now=now)
            outcome = "awarded"
        elif _fallback_price(session, request) is not None:
            award_request(session, ctx, listing, request, choice, cause=Cause.EXPIRY, now=now)
            outcome = "to_manufacturer"
        else:
            _close(session, ctx, request, listing, RequestStatus.EXPIRED, now)
            outcome = "expired"
        uow.commit()
    setattr(report, outcome, getattr(report, outcome) + 1)


def _fallback_price(session: Session, request: PersonalRequest) -> int | None:
    """The catalog price, if the request named a product still for sale within the ceiling."""
    if request.product_id is None:
        return None
    product = session.get(Product, request.product_id)
    if product is None or not product.active:
        return None
    price = product.price * request.quantity
    return price if price <= request.max_price else None


# --- the contact relay ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Thread:
    """What one party may read of an order's relay: a fulfiller, the thread of
    its own assignment; the customer, every thread of the order."""

    order_id: int
    messages: list[Message]
    me: str
    # assignment id -> who that thread is with (a store's name, or the manufacturer's)
    fulfillers: dict[int, str]


# While an assignment is in one of these, its fulfiller and the customer can write to each other.
_TALKING = (AssignmentStatus.ACTIVE, AssignmentStatus.SHIPPED)


def _party(session: Session, order_id: int, actor: Actor, token: str | None) -> tuple[Order, str, Assignment | None]:
    """The order, who the caller is to it, and the order's current assignment
    (its latest: at most one is active at a time)."""
    order = session.get(Order, order_id)
    if order is None:
        raise NotFound(f"no order {order_id}")
    current = session.scalar(select(Assignment).where(Assignment.order_id == order.id)
                             .order_by(Assignment.id.desc()).limit(1))
    if token and same(order.access_token_hash, digest(token)):
        return order, "customer", current
    if actor.kind in (ActorKind.RETAILER, ActorKind.MANUFACTURER):
        if current is not None and current.status in _TALKING:
            mine = (current.retailer_id == actor.id) if actor.kind is ActorKind.RETAILER else (
                current.fulfiller_kind == "manufacturer" and current.manufacturer_id == actor.id)
            if mine:
                return order, "fulfiller", current
    if actor.kind is ActorKind.ANONYMOUS and not token:
        raise Unauthenticated("give the order's X-Access-Token, or the fulfiller's API key")
    raise NotFound(f"no order {order_id}")


def _fulfillers(session: Session, assignment_ids: set[int]) -> dict[int, str]:
    """Who each assignment's thread is with: its store's name (a retailer), or
    the manufacturer's."""
    if not assignment_ids:
        return {}
    rows = session.execute(
        select(Assignment.id, Store.name, Manufacturer.name)
        .outerjoin(Store, Store.id == Assignment.store_id)
        .outerjoin(Manufacturer, Manufacturer.id == Assignment.manufacturer_id)
        .where(Assignment.id.in_(assignment_ids))
    )
    return {assignment_id: store or maker or "the store" for assignment_id, store, maker in rows}


def messages(ctx: Context, order_id: int, *, actor: Actor, token: str | None) -> Thread:
    """A fulfiller's thread with the customer (its own assignment's only: not
    what the customer wrote to an earlier fulfiller), or all of the customer's
    threads on the order. :raise 404: anyone else."""
    with ctx.uow() as uow:
        session = uow.session
        order, me, current = _party(session, order_id, actor, token)
        stmt = select(Message).where(Message.order_id == order.id)
        if me == "fulfiller":
            stmt = stmt.where(Message.assignment_id == current.id)
        found = list(session.scalars(stmt.order_by(Message.id)))
        # With the current fulfiller's name too: whom the next message goes to.
        named = {m.assignment_id for m in found if m.assignment_id is not None} | (
            {current.id} if current is not None else set())
        return Thread(order.id, found, me, _fulfillers(session, named))


def send_message(ctx: Context, order_id: int, body: str, *, actor: Actor, token: str | None,
                 once: formkeys.Once | None = None) -> Thread:
    """Write to the other side, through Broker, in the thread of the order's
    current assignment; returns the message as a thread of one. With `once`, a
    repeat of the same form raises `formkeys.AlreadyDone` (one message, one notice).

    :raise 422: empty or too long. :raise 409: the customer writes while no
        fulfiller has the order (before the award, or after a cancel)."""
    text = (body or "").strip()
    if not text:
        raise Invalid.field("body", "must not be blank")
    if len(text) > MAX_MESSAGE:
        raise Invalid.field("body", f"at most {MAX_MESSAGE} characters")
    with ctx.uow() as uow:
        session = uow.session
        formkeys.claim(session, once, now=ctx.now())
        order, me, current = _party(session, order_id, actor, token)
        if current is None or current.status not in _TALKING:
            raise Conflict("no one is fulfilling this order now, so there is no one to write to: messages go to "
                           "the store that has the order, once it has it")
        message = Message(order_id=order.id, assignment_id=current.id, sender=me, body=text, created_at=ctx.now())
        session.add(message)
        events.message_posted(session, ctx, order, message, message.created_at)  # flushes: the id is known
        formkeys.record(session, once, {"order_id": order.id, "message_id": message.id})
        uow.commit()
        return Thread(order.id, [message], me, _fulfillers(session, {current.id}))
