"""Manufacturers, retailers and their stores, dealer authorisations, API keys."""

from __future__ import annotations

import dataclasses
import functools
import re

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from broker.accounts import hours as opening_hours
from broker.accounts.addresses import check_address
from broker.addresses import PostalAddress
from broker.accounts.models import ApiKey, DealerAuthorisation, Manufacturer, Retailer, Role, Store
from broker.auth import ANONYMOUS, Actor, ActorKind, digest, new_secret, require, same
from broker.board.models import Bid, BidStatus, Listing, ListingStatus
from broker.geo.distance import distance_km, shown_distance_km
from broker.context import Context
from broker.db import insert_if_absent
from broker.email_address import email_address
from broker.errors import Conflict, Invalid, NotFound, Unauthenticated
from broker.geo.geocoding import GeocodeResult, LocationQuery, resolve_location
from broker.geo.timezones import parse_timezone, timezone_at
from broker.locks import lock
from broker.money import CURRENCIES
from broker.pagination import Page, PageRequest, paginate
from broker.reputation.rules import Reputation
from broker.reputation.services import fulfiller_reputations

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
MAX_RADIUS_KM = 2000.0


@dataclasses.dataclass(frozen=True)
class NewManufacturer:
    name: str
    slug: str
    currency: str
    location: LocationQuery


# A field a PATCH left out (None would mean "clear it").
UNSET: object = type("Unset", (), {"__repr__": lambda self: "UNSET"})()


@dataclasses.dataclass(frozen=True)
class NewStore:
    name: str
    # Where it is on the map; None: the address's postal code is geocoded.
    location: LocationQuery | None
    service_radius_km: float
    # {line1, line2, city, region, postal_code, country} (broker/accounts/addresses.py).
    address: dict | None = None
    # The API's hours JSON (broker/accounts/hours.py `parse`), or parsed Hours.
    hours: dict | opening_hours.Hours | None = None
    # IANA name; default: the zone at the store's point.
    timezone: str | None = None


@dataclasses.dataclass(frozen=True)
class NewRetailer:
    name: str
    email: str
    location: LocationQuery
    service_radius_km: float


@dataclasses.dataclass(frozen=True)
class StoreChanges:
    name: str | None = None
    service_radius_km: float | None = None
    is_open: bool | None = None
    location: LocationQuery | None = None
    # The whole address (it replaces the one there); None leaves it.
    address: dict | None = None
    # Hours as for NewStore; None clears them, UNSET leaves them.
    hours: object = UNSET
    timezone: str | None = None


@functools.cache
def _key_lookup():
    """The key and, for a retailer's, whether the retailer is active: one
    statement, built once (every API call starts here)."""
    keys, retailers = ApiKey.__table__, Retailer.__table__
    return (select(keys.c.key_hash, keys.c.revoked_at, keys.c.role, keys.c.manufacturer_id, keys.c.retailer_id,
                   retailers.c.active)
            .select_from(keys.outerjoin(retailers, retailers.c.id == keys.c.retailer_id))
            .where(keys.c.key_hash == bindparam("key_hash")))


def authenticate(ctx: Context, bearer: str | None) -> Actor:
    """The actor behind an `Authorization: Bearer` value (None: anonymous)."""
    if not bearer:
        return ANONYMOUS
    token = ctx.settings.admin_token
    if token and same(bearer, token):
        return Actor(ActorKind.OPERATOR)
    hashed = digest(bearer)
    with ctx.read() as uow:
        key = uow.session.connection().execute(_key_lookup(), {"key_hash": hashed}).first()
    if key is None or key.revoked_at is not None or not same(key.key_hash, hashed):
        raise Unauthenticated("the API key is not valid (unknown or revoked)")
    if key.role == Role.MANUFACTURER:
        return Actor(ActorKind.MANUFACTURER, key.manufacturer_id)
    if not key.active:
        raise Unauthenticated("this retailer account is not active")
    return Actor(ActorKind.RETAILER, key.retailer_id)


def _issue_key(session: Session, ctx: Context, role: Role, *, manufacturer_id=None, retailer_id=None) -> str:
    secret = new_secret("bk_m_" if role == Role.MANUFACTURER else "bk_r_")
    session.add(
        ApiKey(
            key_hash=digest(secret),
            prefix=secret[:10],
            role=role,
            manufacturer_id=manufacturer_id,
            retailer_id=retailer_id,
            created_at=ctx.now(),
        )
    )
    return secret


def _clean_name(value: str, field: str = "name") -> str:
    value = (value or "").strip()
    if not value:
        raise Invalid.field(field, "must not be blank")
    return value


def _check_radius(radius: float) -> float:
    if not (0 < radius <= MAX_RADIUS_KM):
        raise Invalid.field("service_radius_km", f"must be more than 0 and at most {MAX_RADIUS_KM:g}")
    return float(radius)


def create_manufacturer(ctx: Context, actor: Actor, cmd: NewManufacturer) -> tuple[Manufacturer, str]:
    """:raise 401/403: not the operator. :raise 409: the slug is taken. :raise 422: bad input."""
    require(actor, ActorKind.OPERATOR)
    name = _clean_name(cmd.name)
    slug = cmd.slug.strip().lower()
    if not SLUG.match(slug):
        raise Invalid.field("slug", "use 1 to 64 lowercase letters, digits and inner hyphens")
    currency = cmd.currency.strip().upper()
    if currency not in CURRENCIES:
        raise Invalid.field("currency", f"{cmd.currency!r} is not a supported ISO 4217 currency")
    place = resolve_location(ctx.geocoder, cmd.location)
    with ctx.uow() as uow:
        # ON CONFLICT: of two requests for one slug at once, the second waits for
        # the first and is told the slug is taken.
        maker_id = insert_if_absent(uow.session, Manufacturer, dict(
            name=name, slug=slug, currency=currency, lat=place.lat, lon=place.lon, area=place.area,
            created_at=ctx.now()), unique=["slug"])
        if maker_id is None:
            raise Conflict(f"the slug {slug!r} is taken", errors={"slug": ["already taken"]})
        maker = uow.session.get_one(Manufacturer, maker_id)
        key = _issue_key(uow.session, ctx, Role.MANUFACTURER, manufacturer_id=maker.id)
        uow.commit()
        return maker, key


def create_retailer(ctx: Context, actor: Actor, cmd: NewRetailer) -> tuple[Retailer, Store, str]:
    """A retailer with its first store. :raise 401/403: not the operator. :raise 422: bad input."""
    require(actor, ActorKind.OPERATOR)
    name = _clean_name(cmd.name)
    email = email_address(cmd.email)
    radius = _check_radius(cmd.service_radius_km)
    place = resolve_location(ctx.geocoder, cmd.location)
    with ctx.uow() as uow:
        now = ctx.now()
        retailer = Retailer(name=name, email=email, active=True, created_at=now)
        uow.session.add(retailer)
        uow.session.flush()
        store = new_store_row(retailer.id, name, place, radius, now, default_timezone=ctx.settings.timezone,
                              address=address_from_location(cmd.location))
        uow.session.add(store)
        key = _issue_key(uow.session, ctx, Role.RETAILER, retailer_id=retailer.id)
        uow.commit()
        return retailer, store, key


def add_store(ctx: Context, actor: Actor, cmd: NewStore) -> Store:
    """Another store for the calling retailer. Placed at `location`, else at its
    address's postal code (geocoded); without an address, its address is what
    the location gives (postal code and country).

    :raise 422: bad input, every field of the address and the hours at once.
    """
    require(actor, ActorKind.RETAILER)
    name = _clean_name(cmd.name)
    radius = _check_radius(cmd.service_radius_km)
    address, hours, zone = _details(cmd.address, cmd.hours, cmd.timezone)
    place = _place(ctx, cmd.location, address)
    if address is None:
        address = address_from_location(cmd.location)
    with ctx.uow() as uow:
        store = new_store_row(actor.id, name, place, radius, ctx.now(), default_timezone=ctx.settings.timezone,
                              address=address, hours=hours, timezone=zone)
        uow.session.add(store)
        uow.commit()
        return store


def new_store_row(retailer_id: int, name: str, place: GeocodeResult, radius: float, now, *, default_timezone: str,
                  address: PostalAddress | None = None, hours: opening_hours.Hours | None = None,
                  timezone: str | None = None) -> Store:
    """A store row (not added): sign-up, `POST /retailers` and `POST /stores` make
    theirs here. The time zone defaults to the one at its point, else
    `default_timezone` (BROKER_TIMEZONE)."""
    store = Store(retailer_id=retailer_id, name=name, lat=place.lat, lon=place.lon, area=place.area,
                  service_radius_km=radius, is_open=True, created_at=now,
                  hours=hours.to_json() if hours is not None else None,
                  timezone=timezone or timezone_at(place.lat, place.lon, default_timezone))
    _set_address(store, address or PostalAddress(country=""))
    return store


def _set_address(store: Store, address: PostalAddress) -> None:
    store.line1, store.line2, store.city = address.line1, address.line2, address.city
    store.region, store.postal_code, store.country = address.region, address.postal_code, address.country


def address_from_location(location: LocationQuery | None) -> PostalAddress | None:
    """What a bare location says of the address: its postal code and country (and,
    in the US, the state). Nothing when it does not read as one: a location
    given as coordinates may carry any postal code, and was never refused for it."""
    if location is None or not (location.postal_code or location.country):
        return None
    try:
        return check_address({"postal_code": location.postal_code, "country": location.country}, complete=False)
    except Invalid:
        return None


def _details(address: dict | None, hours, timezone: str | None):
    """The address, hours and time zone a caller gave, checked together so that a
    form shows every wrong field at once. :raise 422."""
    errors: dict[str, list[str]] = {}
    checked_address = checked_hours = zone = None
    if address is not None:
        try:
            checked_address = check_address(address)
        except Invalid as exc:
            errors.update(exc.errors)
    if isinstance(hours, opening_hours.Hours):
        checked_hours = hours
    elif hours is not None and hours is not UNSET:
        try:
            checked_hours = opening_hours.parse(hours)
        except Invalid as exc:
            errors.update(exc.errors)
    if timezone is not None:
        try:
            zone = parse_timezone(timezone)
        except Invalid as exc:
            errors.update(exc.errors)
    if errors:
        raise Invalid("the store has errors", errors=errors)
    return checked_address, checked_hours, zone


def _place(ctx: Context, location: LocationQuery | None, address: PostalAddress | None) -> GeocodeResult:
    """Where the store goes on the map: an explicit location wins; else the
    address, geocoded as an order's is."""
    if location is not None:
        return resolve_location(ctx.geocoder, location)
    if address is not None:
        # As an order's address is placed: its postal code, else its city (the
        # offline geocoder knows postal codes in the US only).
        return resolve_location(ctx.geocoder, LocationQuery(
            postal_code=address.postal_code or None, country=address.country, city=address.city or None,
            region=address.region or None), field="address")
    raise Invalid.field("location", "give the store's location, or its address")


def list_stores(ctx: Context, actor: Actor, page: PageRequest) -> Page[Store]:
    require(actor, ActorKind.RETAILER)
    with ctx.uow() as uow:
        return paginate(uow.session, select(Store).where(Store.retailer_id == actor.id).order_by(Store.id), page)


def update_store(ctx: Context, actor: Actor, store_id: int, changes: StoreChanges) -> Store:
    """Change what `changes` names. An address replaces the one there; the store
    moves to it (its postal code, geocoded) when the postal code or country
    changed and no `location` is given: a store placed by its coordinates stays
    put while its street is corrected. A store that moves takes the time zone
    at its new point, unless `timezone` is given.

    :raise 404: not one of the caller's stores. :raise 422: bad input.
    """
    require(actor, ActorKind.RETAILER)
    address, hours, zone = _details(changes.address, changes.hours, changes.timezone)
    place = resolve_location(ctx.geocoder, changes.location) if changes.location is not None else None
    with ctx.uow() as uow:
        store = uow.session.get(Store, store_id)
        if store is None or store.retailer_id != actor.id:
            raise NotFound(f"no store {store_id}")
        if changes.name is not None:
            store.name = _clean_name(changes.name)
        if changes.service_radius_km is not None:
            store.service_radius_km = _check_radius(changes.service_radius_km)
        if changes.is_open is not None:
            store.is_open = changes.is_open
        if address is not None:
            if place is None and (address.postal_code, address.country) != (store.postal_code, store.country):
                place = _place(ctx, None, address)
            _set_address(store, address)
        if changes.hours is not UNSET:
            store.hours = hours.to_json() if hours is not None else None
        if place is not None and (place.lat, place.lon) != (store.lat, store.lon):
            store.lat, store.lon, store.area = place.lat, place.lon, place.area
            if zone is None:
                zone = timezone_at(place.lat, place.lon, ctx.settings.timezone)
            _remeasure_bids(uow.session, store)
        if zone is not None:
            store.timezone = zone
        uow.commit()
        return store


def _remeasure_bids(session: Session, store: Store) -> None:
    """A store moved: its open bids' distances are measured again now, so that a
    bid's stored distances are always from where its store is (settlement relies
    on them): the shown one and coverage from the listing's cell, the ranking's
    from the exact point."""
    rows = session.execute(
        select(Bid, Listing.lat, Listing.lon, Listing.exact_lat, Listing.exact_lon)
        .join(Listing, Listing.id == Bid.listing_id)
        .where(Bid.store_id == store.id, Bid.status == BidStatus.ACTIVE, Listing.status == ListingStatus.OPEN)
    )
    for bid, lat, lon, exact_lat, exact_lon in rows:
        bid.cell_distance_km = distance_km(store.lat, store.lon, lat, lon)
        bid.distance_km = shown_distance_km(bid.cell_distance_km)
        bid.exact_distance_km = distance_km(store.lat, store.lon, exact_lat, exact_lon)


@dataclasses.dataclass(frozen=True)
class DealerView:
    retailer_id: int
    name: str
    authorised_at: object
    active: bool
    # Its reputation as customers see it (in the console's list of dealers).
    reputation: Reputation | None = None


def authorise_dealer(ctx: Context, actor: Actor, retailer_id: int) -> DealerView:
    """Authorise (or re-authorise) a retailer. :raise 422: no such retailer."""
    require(actor, ActorKind.MANUFACTURER)
    with ctx.uow() as uow:
        retailer = uow.session.get(Retailer, retailer_id)
        if retailer is None:
            raise Invalid.field("retailer_id", f"no retailer {retailer_id}")
        dealer = authorise(uow.session, actor.id, retailer_id, ctx.now())
        uow.commit()
        return DealerView(retailer.id, retailer.name, dealer.authorised_at, True)


def authorise(session: Session, manufacturer_id: int, retailer_id: int, now) -> DealerAuthorisation:
    """Make the retailer a dealer of the manufacturer, in the caller's transaction:
    once, however many ask at the same moment (a double-submitted form, the API
    and an approval in the console); a revoked authorisation is renewed."""
    insert_if_absent(session, DealerAuthorisation,
                     dict(manufacturer_id=manufacturer_id, retailer_id=retailer_id, authorised_at=now),
                     unique=["manufacturer_id", "retailer_id"])
    dealer = session.scalar(lock(select(DealerAuthorisation).where(
        DealerAuthorisation.manufacturer_id == manufacturer_id, DealerAuthorisation.retailer_id == retailer_id))
        .execution_options(populate_existing=True))
    if dealer.revoked_at is not None:
        dealer.revoked_at = None
        dealer.authorised_at = now
    return dealer


def list_dealers(ctx: Context, actor: Actor, page: PageRequest) -> Page[DealerView]:
    require(actor, ActorKind.MANUFACTURER)
    with ctx.uow() as uow:
        stmt = (
            select(DealerAuthorisation, Retailer.name)
            .join(Retailer, Retailer.id == DealerAuthorisation.retailer_id)
            .where(DealerAuthorisation.manufacturer_id == actor.id, DealerAuthorisation.revoked_at.is_(None))
            .order_by(DealerAuthorisation.retailer_id)
        )
        found = paginate(uow.session, stmt, page, rows=True)
        reputations = fulfiller_reputations(uow.session, [d.retailer_id for d, _ in found.items], now=ctx.now())
        return Page([DealerView(d.retailer_id, name, d.authorised_at, True, reputations.get(d.retailer_id))
                     for d, name in found.items], found.total)


def revoke_dealer(ctx: Context, actor: Actor, retailer_id: int) -> None:
    """:raise 404: the retailer is not one of the caller's dealers."""
    require(actor, ActorKind.MANUFACTURER)
    with ctx.uow() as uow:
        dealer = uow.session.scalar(
            select(DealerAuthorisation).where(
                DealerAuthorisation.manufacturer_id == actor.id,
                DealerAuthorisation.retailer_id == retailer_id,
                DealerAuthorisation.revoked_at.is_(None),
            )
        )
        if dealer is None:
            raise NotFound(f"retailer {retailer_id} is not an authorised dealer")
        dealer.revoked_at = ctx.now()
        uow.commit()


# --- API keys, managed from the portal and the console ----------------------


def _owner_clause(actor: Actor):
    if actor.kind is ActorKind.MANUFACTURER:
        return (ApiKey.role == Role.MANUFACTURER) & (ApiKey.manufacturer_id == actor.id)
    return (ApiKey.role == Role.RETAILER) & (ApiKey.retailer_id == actor.id)


def list_keys(ctx: Context, actor: Actor) -> list[ApiKey]:
    """The caller's company's keys, live ones first; only their prefixes are known."""
    require(actor, ActorKind.MANUFACTURER, ActorKind.RETAILER)
    with ctx.uow() as uow:
        return list(uow.session.scalars(
            select(ApiKey).where(_owner_clause(actor)).order_by(ApiKey.revoked_at.is_not(None), ApiKey.id.desc())
        ))


def create_key(ctx: Context, actor: Actor) -> str:
    """A new key for the caller's company, returned once and never again."""
    require(actor, ActorKind.MANUFACTURER, ActorKind.RETAILER)
    with ctx.uow() as uow:
        if actor.kind is ActorKind.MANUFACTURER:
            secret = _issue_key(uow.session, ctx, Role.MANUFACTURER, manufacturer_id=actor.id)
        else:
            secret = _issue_key(uow.session, ctx, Role.RETAILER, retailer_id=actor.id)
        uow.commit()
        return secret


def revoke_key(ctx: Context, actor: Actor, key_id: int) -> None:
    """:raise 404: not one of the caller's live keys."""
    require(actor, ActorKind.MANUFACTURER, ActorKind.RETAILER)
    with ctx.uow() as uow:
        key = uow.session.scalar(select(ApiKey).where(ApiKey.id == key_id, _owner_clause(actor),
                                                      ApiKey.revoked_at.is_(None)))
        if key is None:
            raise NotFound(f"no live key {key_id}")
        key.revoked_at = ctx.now()
        uow.commit()
