"""A manufacturer's shipping methods: adding, editing, disabling, listing, and
the methods a storefront offers for a destination."""

from __future__ import annotations

import dataclasses
import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.accounts.models import Manufacturer
from broker.auth import Actor, ActorKind, require
from broker.context import Context
from broker.db import insert_if_absent
from broker.errors import Conflict, Invalid, NotFound
from broker.geo.countries import is_country
from broker.locks import lock
from broker.money import MAX_AMOUNT
from broker.shipping import rules
from broker.shipping.models import ShippingMethod

_CODE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
MAX_NAME = 80
# Thirty days: a window longer than that is not a shipping promise, and the card
# hold (about a week) is captured early long before it ends anyway.
MAX_SHIP_WITHIN_HOURS = 720
MAX_COUNTRIES = 300


@dataclasses.dataclass(frozen=True)
class NewMethod:
    code: str
    name: str
    price: int
    ship_within_hours: int
    per_item: int = 0
    free_over: int | None = None
    countries: list[str] = dataclasses.field(default_factory=list)
    default: bool = False


@dataclasses.dataclass(frozen=True)
class MethodChanges:
    """What an edit sets; `None` (or absent) leaves a field alone, except
    `free_over`, where `clear_free_over` removes the threshold."""

    name: str | None = None
    price: int | None = None
    per_item: int | None = None
    free_over: int | None = None
    clear_free_over: bool = False
    ship_within_hours: int | None = None
    countries: list[str] | None = None
    default: bool | None = None
    active: bool | None = None


def _amount(value, field: str, errors: dict, *, minimum: int = 0) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not (minimum <= value <= MAX_AMOUNT):
        errors.setdefault(field, []).append(
            f"must be a whole number of minor units between {minimum} and {MAX_AMOUNT}")
        return None
    return value


def _check(values: dict, errors: dict) -> dict:
    """The given fields cleaned; every bad one's message added to `errors`."""
    clean: dict = {}
    if "code" in values:
        code = (values["code"] or "").strip().lower()
        if not _CODE.fullmatch(code):
            errors.setdefault("code", []).append(
                "1 to 32 lowercase letters, digits, '-' or '_', starting with a letter or digit (e.g. express)")
        clean["code"] = code
    if "name" in values:
        name = " ".join((values["name"] or "").split())
        if not name:
            errors.setdefault("name", []).append("must not be blank")
        elif len(name) > MAX_NAME:
            errors.setdefault("name", []).append(f"at most {MAX_NAME} characters")
        clean["name"] = name
    for field in ("price", "per_item"):
        if field in values:
            clean[field] = _amount(values[field], field, errors)
    if "free_over" in values:
        clean["free_over"] = None if values["free_over"] is None else _amount(values["free_over"], "free_over",
                                                                              errors, minimum=1)
    if "ship_within_hours" in values:
        hours = values["ship_within_hours"]
        if isinstance(hours, bool) or not isinstance(hours, int) or not (1 <= hours <= MAX_SHIP_WITHIN_HOURS):
            errors.setdefault("ship_within_hours", []).append(
                f"must be a whole number of hours between 1 and {MAX_SHIP_WITHIN_HOURS}")
        clean["ship_within_hours"] = hours
    if "countries" in values:
        countries = values["countries"] or []
        codes = []
        if not isinstance(countries, list) or len(countries) > MAX_COUNTRIES:
            errors.setdefault("countries", []).append(f"a list of at most {MAX_COUNTRIES} country codes")
        else:
            for code in countries:
                code = code.strip().upper() if isinstance(code, str) else ""
                if not is_country(code):
                    errors.setdefault("countries", []).append(
                        "each must be an ISO 3166-1 alpha-2 country code, e.g. DE")
                    break
                if code not in codes:
                    codes.append(code)
        clean["countries"] = sorted(codes)
    for field in ("default", "active"):
        if field in values:
            if not isinstance(values[field], bool):
                errors.setdefault(field, []).append("must be true or false")
            clean[field] = values[field]
    return clean


def _raise(errors: dict) -> None:
    if errors:
        raise Invalid("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()), errors=errors)


@dataclasses.dataclass(frozen=True)
class MethodsView:
    methods: list[ShippingMethod]
    currency: str


@dataclasses.dataclass(frozen=True)
class MethodView:
    method: ShippingMethod
    currency: str


def _currency(session: Session, manufacturer_id: int) -> str:
    return session.scalar(select(Manufacturer.currency).where(Manufacturer.id == manufacturer_id))


def _methods(session: Session, manufacturer_id: int, *, locked: bool = False) -> list[ShippingMethod]:
    stmt = select(ShippingMethod).where(ShippingMethod.manufacturer_id == manufacturer_id).order_by(ShippingMethod.id)
    return list(session.scalars(lock(stmt) if locked else stmt))


def _keep_one_default(methods: list[ShippingMethod], chosen: ShippingMethod | None = None) -> None:
    """Exactly one active method is the default: `chosen` if given, else the one
    that is, else the cheapest active one (the caller holds the methods' locks)."""
    active = [m for m in methods if m.active]
    if chosen is None:
        chosen = next((m for m in active if m.is_default), None)
    if chosen is None and active:
        chosen = min(active, key=lambda m: (m.price, m.id))
    for m in methods:
        m.is_default = m is chosen


def check_new(cmd: NewMethod) -> dict:
    """A new method's fields, cleaned. :raise 422: every bad field."""
    errors: dict = {}
    clean = _check(dataclasses.asdict(cmd), errors)
    _raise(errors)
    return clean


def check_changes(changes: MethodChanges) -> dict:
    """An edit's fields, cleaned. :raise 422: every bad field."""
    errors: dict = {}
    clean = _check(_change_values(changes), errors)
    _raise(errors)
    return clean


def _change_values(changes: MethodChanges) -> dict:
    values = {k: v for k, v in dataclasses.asdict(changes).items()
              if v is not None and k not in ("clear_free_over", "free_over")}
    if changes.clear_free_over:
        values["free_over"] = None
    elif changes.free_over is not None:
        values["free_over"] = changes.free_over
    return values


def list_methods(ctx: Context, actor: Actor) -> MethodsView:
    require(actor, ActorKind.MANUFACTURER)
    with ctx.uow() as uow:
        return MethodsView(_methods(uow.session, actor.id), _currency(uow.session, actor.id))


def add_method(ctx: Context, actor: Actor, cmd: NewMethod) -> MethodView:
    """:raise 409: the code exists. :raise 422: bad fields, every one named."""
    require(actor, ActorKind.MANUFACTURER)
    clean = check_new(cmd)
    with ctx.uow() as uow:
        session = uow.session
        now = ctx.now()
        default = clean.pop("default")
        method_id = insert_if_absent(session, ShippingMethod, dict(
            manufacturer_id=actor.id, is_default=False, active=True, created_at=now, updated_at=now, **clean),
            unique=["manufacturer_id", "code"])
        if method_id is None:
            raise Conflict(f"a shipping method {clean['code']!r} exists already", errors={"code": ["already exists"]})
        methods = _methods(session, actor.id, locked=True)
        method = next(m for m in methods if m.id == method_id)
        _keep_one_default(methods, method if default else None)
        currency = _currency(session, actor.id)
        uow.after_commit(lambda: ctx.storefront_changed(actor.id))
        uow.commit()
        return MethodView(method, currency)


def update_method(ctx: Context, actor: Actor, code: str, changes: MethodChanges) -> MethodView:
    """Edit a method; `active: false` disables it (orders placed keep theirs).
    :raise 404: not the caller's. :raise 422: bad fields."""
    require(actor, ActorKind.MANUFACTURER)
    clean = check_changes(changes)
    with ctx.uow() as uow:
        session = uow.session
        methods = _methods(session, actor.id, locked=True)
        method = next((m for m in methods if m.code == code), None)
        if method is None:
            raise NotFound(f"no shipping method {code!r}")
        default = clean.pop("default", None)
        for field, value in clean.items():
            setattr(method, field, value)
        method.updated_at = ctx.now()
        if default is True and method.active:
            _keep_one_default(methods, method)
        elif default is False and method.is_default:
            method.is_default = False
            others = [m for m in methods if m is not method]
            _keep_one_default(others)
            if not any(m.is_default for m in others) and method.active:
                method.is_default = True  # the only active one stays the default
        else:
            _keep_one_default(methods)
        currency = _currency(session, actor.id)
        uow.after_commit(lambda: ctx.storefront_changed(actor.id))
        uow.commit()
        return MethodView(method, currency)


def as_rule(method: ShippingMethod) -> rules.Method:
    return rules.Method(code=method.code, name=method.name, price=method.price, per_item=method.per_item,
                        free_over=method.free_over, ship_within_hours=method.ship_within_hours,
                        countries=tuple(method.countries or ()), is_default=method.is_default)


def active_methods(session: Session, manufacturer_id: int) -> list[rules.Method]:
    """A store's methods on offer (caller's session)."""
    return [as_rule(m) for m in session.scalars(
        select(ShippingMethod).where(ShippingMethod.manufacturer_id == manufacturer_id,
                                     ShippingMethod.active.is_(True)).order_by(ShippingMethod.id))]


@dataclasses.dataclass(frozen=True)
class Offered:
    method: rules.Method
    charge: int
    currency: str


def offered(ctx: Context, slug: str, country: str, *, goods: int, items: int) -> list[Offered]:
    """What a storefront's checkout offers to ship to `country` ("": anywhere),
    with each method's charge for this cart (default first). :raise 404: no storefront."""
    with ctx.uow() as uow:
        maker = uow.session.execute(select(Manufacturer.id, Manufacturer.currency)
                                    .where(Manufacturer.slug == slug)).first()
        if maker is None:
            raise NotFound(f"no storefront {slug!r}")
        methods = active_methods(uow.session, maker.id)
    found = rules.serving(methods, country.upper()) if country else sorted(
        methods, key=lambda m: (not m.is_default, m.price, m.code))
    return [Offered(m, rules.charge(m, goods=goods, items=items), maker.currency) for m in found]

