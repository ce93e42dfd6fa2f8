"""marshmallow schemas: requests load into plain commands, responses dump views.

No schema is bound to the ORM: the domain's dataclasses are the commands.
"""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields as f
from marshmallow import validate as v

from broker.accounts.services import NewManufacturer, NewRetailer, NewStore, StoreChanges
from broker.catalog.services import NewProduct, ProductChanges
from broker.email_address import check_email
from broker.geo.geocoding import LocationQuery
from broker.grammar import (
    GrammarError,
    parse_color,
    parse_custom_domain,
    parse_display_name,
    parse_image_url,
    parse_origin,
)
from broker.money import MAX_AMOUNT
from broker.orders.models import Delivery, OrderStatus
from broker.languages import LANGUAGES
from broker.orders.services import Address, Customer, Item, PlaceOrder
from broker.reputation.rules import MAX_COMMENT, MAX_RATING, MIN_RATING
from broker.shipping.services import MAX_SHIP_WITHIN_HOURS, MethodChanges, NewMethod
from broker.tax.services import RateIn, SetTaxTable

Str = lambda **kw: f.String(validate=v.Length(max=kw.pop("max", 200)), **kw)  # noqa: E731
Id = lambda **kw: f.Integer(strict=True, validate=v.Range(min=1, max=2**63 - 1), **kw)  # noqa: E731

# What every amount says in the OpenAPI document (tests/integration/test_api_reference.py
# checks that every amount-named property says it).
MINOR_UNITS = ("An integer in minor units of the currency: 2500 is 25.00 USD (a currency without minor "
               "units, such as JPY, counts whole units).")
ISO_4217 = "ISO 4217 currency code, e.g. USD."


def _documented(kw: dict, note: str, example) -> dict:
    """`kw`'s metadata with its own description first, then `note`, and an example."""
    metadata = dict(kw.pop("metadata", {}))
    own = metadata.get("description")
    metadata["description"] = f"{own} {note}" if own else note
    metadata.setdefault("example", kw.pop("example", example))
    return metadata


def Money(**kw) -> f.Integer:
    """An amount a caller sends: a whole number of minor units, 1 to MAX_AMOUNT
    (`strict`: `12.5`, `"1250"` and `true` are refused)."""
    metadata = _documented(kw, MINOR_UNITS, 2500)
    return f.Integer(strict=True, validate=v.Range(min=1, max=MAX_AMOUNT), metadata=metadata, **kw)


def Amount(**kw) -> f.Integer:
    """An amount Broker answers with, in minor units."""
    return f.Integer(metadata=_documented(kw, MINOR_UNITS, 2500), **kw)


def Currency(**kw) -> f.String:
    """A currency code; what it accepts is the field's own (`validate`), the services check the code."""
    return f.String(metadata=_documented(kw, ISO_4217, "USD"), **kw)


def grammar(parse, *, blank: bool = False, **options):
    """A validator from one of broker/grammar.py's parsers: the API refuses (422)
    what the grammar refuses, with its message. `blank`: an empty value (clear
    the field) is allowed. The services parse again (they are the lock); some
    rules need the deployment (https images, Broker's own hosts) and live there."""

    def check(value) -> None:
        if blank and isinstance(value, str) and not value.strip():
            return
        try:
            parse(value, **options)
        except GrammarError as exc:
            raise ma.ValidationError(str(exc)) from None

    return check


ImageUrl = lambda **kw: f.String(validate=[v.Length(max=500), grammar(parse_image_url, blank=True,  # noqa: E731
                                                                       https_only=False)],
                                 metadata={"description": "An https:// image on a public host (http:// is refused "
                                                          "when Broker is served over HTTPS)."}, **kw)


class EmailAddress(f.Email):
    """An email address by Broker's one rule (`broker.email_address`), the same the
    pages and the services apply; documented as `format: email`."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators = [rule for rule in self.validators if not isinstance(rule, v.Email)]

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return check_email(super()._deserialize(value, attr, data, **kwargs))
        except ValueError as exc:
            raise ma.ValidationError(str(exc)) from None


class LocationSchema(ma.Schema):
    """A place: `{postal_code, country}`, `{city, country}` or `{lat, lon}`, or more of these.
    Explicit `lat`/`lon` win over geocoding."""

    postal_code = Str(max=20, metadata={"example": "94107"})
    city = Str(max=120, metadata={"description": "A city or town, found by name within the country."})
    country = Str(max=2, metadata={"description": "ISO 3166-1 alpha-2 country code.", "example": "US"})
    lat = f.Float(allow_none=False, metadata={"description": "Latitude, in degrees; explicit coordinates always "
                                                            "win over geocoding."})
    lon = f.Float(allow_none=False, metadata={"description": "Longitude, in degrees."})

    @ma.post_load
    def make(self, data, **_):
        return LocationQuery(**data)


# --- accounts ---------------------------------------------------------------

class ManufacturerIn(ma.Schema):
    name = Str(required=True)
    slug = Str(required=True, max=64, metadata={
        "description": "The storefront's address, `/s/<slug>/`: 1 to 64 lowercase letters, digits and inner "
                       "hyphens."})
    currency = Currency(required=True, validate=v.Length(max=3),
                        metadata={"description": "What the storefront sells in."})
    location = f.Nested(LocationSchema, required=True)

    @ma.post_load
    def make(self, data, **_):
        return NewManufacturer(**data)


class ManufacturerCreated(ma.Schema):
    id = f.Integer()
    slug = f.String()
    api_key = f.String(metadata={"description": "The manufacturer's API key (`Authorization: Bearer <key>`). "
                                                "Shown once: store it now."})


class RetailerIn(ma.Schema):
    name = Str(required=True)
    email = EmailAddress(required=True)
    location = f.Nested(LocationSchema, required=True, metadata={"description": "Where its first store is."})
    service_radius_km = f.Float(required=True, metadata={
        "description": "How far the first store ships, in kilometres: it sees listings within it."})

    @ma.post_load
    def make(self, data, **_):
        return NewRetailer(**data)


class RetailerCreated(ma.Schema):
    id = f.Integer()
    store_id = f.Integer(metadata={"description": "Its first store."})
    api_key = f.String(metadata={"description": "The retailer's API key (`Authorization: Bearer <key>`). "
                                                "Shown once: store it now."})


class PostalAddressSchema(ma.Schema):
    """A store's postal address, checked by its country's rules as an order's
    ship-to is (`GET /address-formats/{country}` describes them): in full, or
    only the postal code and country until the street is known."""

    line1 = Str(metadata={"description": "Street and number; required with any of line1, line2, city."})
    line2 = Str()
    city = Str(max=120, metadata={"description": "Required with any of line1, line2, city."})
    region = Str(max=60, metadata={"description": (
        "State, province or prefecture, where the country has them: its code (CA, ON) or name; derived from "
        "the postal code when left out and the code tells it (a US state from its ZIP code).")})
    postal_code = Str(max=20, metadata={"description": (
        "Required where the country has postal codes, in the country's format (94110, 10115, M5V 2T6).")})
    country = Str(max=2, metadata={"description": "ISO 3166-1 alpha-2, e.g. US; required."})


class OpenRangeSchema(ma.Schema):
    opens = f.String(required=True, validate=v.Length(max=5), metadata={
        "description": "HH:MM on a 24-hour clock, in the store's time zone, e.g. 09:00."})
    closes = f.String(required=True, validate=v.Length(max=5), metadata={
        "description": "HH:MM after `opens`; 24:00 for midnight. A range never runs past midnight: go on "
                       "from 00:00 the next day."})


def _day(name: str):
    return f.List(f.Nested(OpenRangeSchema), validate=v.Length(max=2), metadata={
        "description": f"{name}: at most two open ranges, in order; empty or left out: closed."})


class HoursSchema(ma.Schema):
    """Opening hours: a week of open ranges, in the store's time zone."""

    mon = _day("Monday")
    tue = _day("Tuesday")
    wed = _day("Wednesday")
    thu = _day("Thursday")
    fri = _day("Friday")
    sat = _day("Saturday")
    sun = _day("Sunday")
    note = f.String(validate=v.Length(max=200), metadata={"description": "E.g. 'Closed on public holidays'."})


_STORE_DETAILS = {
    "address": "Its postal address: what a customer who picks up is told.",
    "hours": "Opening hours; null clears them.",
    "timezone": "IANA time zone of its hours (default: the zone at the store's point).",
}


class StoreIn(ma.Schema):
    name = Str(required=True)
    location = f.Nested(LocationSchema, metadata={"description": (
        "Where it is on the map; without it, the address's postal code is geocoded. One of the two is needed.")})
    service_radius_km = f.Float(required=True, metadata={"description": "How far this store ships, in kilometres."})
    address = f.Nested(PostalAddressSchema, metadata={"description": _STORE_DETAILS["address"]})
    hours = f.Nested(HoursSchema, allow_none=True, metadata={"description": _STORE_DETAILS["hours"]})
    timezone = Str(max=64, metadata={"description": _STORE_DETAILS["timezone"]})

    @ma.post_load
    def make(self, data, **_):
        return NewStore(**{"location": None, **data})


class StorePatch(ma.Schema):
    name = Str()
    service_radius_km = f.Float(metadata={"description": "In kilometres."})
    is_open = f.Boolean(metadata={"description": "false: closed; its listings leave your board and it wins nothing."})
    location = f.Nested(LocationSchema)
    address = f.Nested(PostalAddressSchema, metadata={"description": (
        "Replaces the whole address. The store moves to its postal code when that changed and no `location` "
        "is given.")})
    hours = f.Nested(HoursSchema, allow_none=True, metadata={"description": _STORE_DETAILS["hours"]})
    timezone = Str(max=64, metadata={"description": "IANA time zone; a store that moves takes the zone at its "
                                                    "new point unless this is given."})

    @ma.post_load
    def make(self, data, **_):
        return StoreChanges(**data)


class OpenNowOut(ma.Schema):
    open = f.Boolean()
    opens_at = f.AwareDateTime(allow_none=True, metadata={"description": "While closed: when it opens next "
                                                                         "(null: not in the coming week)."})
    closes_at = f.AwareDateTime(allow_none=True, metadata={"description": "While open: when it closes."})


class StoreOut(ma.Schema):
    id = f.Integer()
    name = f.String()
    lat = f.Float()
    lon = f.Float()
    area = f.String(metadata={"description": "City and postal prefix, as listings show places."})
    service_radius_km = f.Float(metadata={"description": "In kilometres."})
    is_open = f.Boolean()
    address = f.Nested(PostalAddressSchema, metadata={"description": "Fields not known yet are empty strings."})
    hours = f.Nested(HoursSchema, allow_none=True, metadata={"description": "Null: not given."})
    hours_text = f.String(metadata={"description": "The hours for people, in English: equal days grouped."})
    timezone = f.String()
    open_now = f.Nested(OpenNowOut, allow_none=True, metadata={"description": "Null when no hours are given."})


class DealerIn(ma.Schema):
    retailer_id = Id(required=True)


class DealerOut(ma.Schema):
    retailer_id = f.Integer()
    name = f.String()
    authorised_at = f.AwareDateTime()


# --- catalog ----------------------------------------------------------------

class ProductIn(ma.Schema):
    sku = Str(required=True, max=64)
    name = Str(required=True)
    price = Money(required=True, example=7900, metadata={"description": "The price, in the store's currency."})
    description = f.String(validate=v.Length(max=5000))
    image_url = ImageUrl(allow_none=True)

    @ma.post_load
    def make(self, data, **_):
        return NewProduct(**data)


class ProductPatch(ma.Schema):
    name = Str()
    price = Money(example=8400, metadata={"description": "The new price, in the store's currency."})
    description = f.String(validate=v.Length(max=5000))
    image_url = ImageUrl()
    active = f.Boolean(metadata={"description": "false: off sale, not shown in the storefront."})
    in_stock = f.Boolean(metadata={"description": "false: shown as sold out, not sold."})

    @ma.post_load
    def make(self, data, **_):
        return ProductChanges(**data)


class ProductOut(ma.Schema):
    sku = f.String()
    name = f.String()
    price = Amount(example=7900)
    currency = Currency()
    description = f.String()
    image_url = f.String(allow_none=True)
    active = f.Boolean()
    in_stock = f.Boolean()


# --- orders -----------------------------------------------------------------

class ItemIn(ma.Schema):
    sku = Str(required=True, max=64, metadata={"example": "NW-HELMET"})
    quantity = f.Integer(required=True, strict=True, metadata={"example": 1})

    @ma.post_load
    def make(self, data, **_):
        return Item(**data)


class CustomerIn(ma.Schema):
    name = Str(required=True)
    email = EmailAddress(required=True)

    @ma.post_load
    def make(self, data, **_):
        return Customer(**data)


REGION_DESCRIPTION = ("The state, province, prefecture... as its code or its name (`CA` or `California`), where "
                      "the country's format has one; required where it requires one, except that it is derived "
                      "from the postal code when left out and the code tells (every US ZIP code, every Canadian "
                      "and Japanese postal code). See `GET /address-formats/{country}`.")
POSTAL_CODE_DESCRIPTION = "Required where the country's format requires it, in its pattern (e.g. `10115`, `M5V 2T6`)."
CITY_AREA_DESCRIPTION = "A dependent locality (a bairro, a district), where the country's format has one."


class AddressIn(ma.Schema):
    """A ship-to: the same fields for every country; which are required follows the country's format."""

    line1 = Str(load_default="", metadata={"description": "Required unless delivery is pickup."})
    line2 = Str()
    city_area = Str(max=120, load_default="", metadata={"description": CITY_AREA_DESCRIPTION})
    city = Str(max=120, load_default="", metadata={"description": "Required unless delivery is pickup."})
    region = Str(max=80, load_default="", metadata={"description": REGION_DESCRIPTION})
    postal_code = Str(max=20, load_default="", metadata={"description": POSTAL_CODE_DESCRIPTION})
    country = Str(required=True, max=2, metadata={"description": "ISO 3166-1 alpha-2, e.g. DE."})
    lat = f.Float(metadata={"description": "With lon: where the customer is, from their device; wins over "
                                           "geocoding the address."})
    lon = f.Float(metadata={"description": "With lat: where the customer is, from their device."})

    @ma.post_load
    def make(self, data, **_):
        return Address(**data)


class OrderIn(ma.Schema):
    items = f.List(f.Nested(ItemIn), required=True, metadata={
        "description": "What to buy, by SKU; the prices come from the catalog."})
    customer = f.Nested(CustomerIn, required=True)
    ship_to = f.Nested(AddressIn, required=True, metadata={
        "description": "Where it goes; for a pickup, where the customer is (the postal code and country)."})
    delivery = f.Enum(Delivery, by_value=True, load_default=Delivery.SHIP, metadata={
        "description": "`ship` (the default), or `pickup`: collect it from the winning store with a one-time code."})
    shipping_method = f.String(validate=v.Length(max=32), allow_none=True, load_default=None, metadata={
        "description": "A shipping method's `code` (`GET /storefronts/{slug}/shipping-methods?country=`); "
                       "left out: the store's default method. Not for a pickup.", "example": "standard"})
    language = f.String(validate=v.OneOf(sorted(LANGUAGES)), allow_none=True, load_default=None, metadata={
        "description": "The language the customer's emails are written in: " + ", ".join(sorted(LANGUAGES))
                       + "; left out: the store's.", "example": "de"})

    @ma.post_load
    def make(self, data, **_):
        return PlaceOrder(**data)


class ShippingChosenOut(ma.Schema):
    code = f.String(metadata={"example": "standard"})
    name = f.String(metadata={"example": "Standard"})
    ship_within_hours = f.Integer(metadata={"description": "The fulfiller has this long after the award to ship.",
                                            "example": 72})


class Totals(ma.Schema):
    """An order's money: what every order answer carries."""

    total = Amount(example=12800, metadata={"description": "What the customer pays in all: `subtotal` + "
                                                           "`shipping`, + `tax` unless `tax_included`."})
    subtotal = Amount(example=12800, metadata={"description": "The goods, at the catalog's prices."})
    shipping = Amount(example=0, metadata={"description": "The shipping method's charge (0 for a pickup)."})
    tax = Amount(example=0, metadata={"description": "The tax: added on top, or (`tax_included`) the part of the "
                                                     "prices that is tax, such as the EU's VAT."})
    tax_included = f.Boolean(metadata={"description": "true: prices include the tax (\"incl. VAT\")."})
    tax_jurisdiction = f.String(metadata={"description": "Where the tax is owed: `US-NY`, `DE`.",
                                          "example": "US-CA"})
    shipping_method = f.Nested(ShippingChosenOut, allow_none=True, metadata={
        "description": "The method it ships by; null for a pickup or a store without methods."})


class PaymentOut(ma.Schema):
    provider = f.String(metadata={"description": "`offline` (Broker's own test provider) or `stripe`."})
    status = f.String(metadata={"description": "pending, authorized (the card is held), captured (charged on "
                                               "shipment), released, failed or refunded."})
    test_mode = f.Boolean(metadata={"description": "true: no real money moves."})
    amount = Amount(example=12800, metadata={"description": "What the card is held (then charged) for."})
    client_secret = f.String(allow_none=True, metadata={
        "description": "With Stripe: for Stripe's Payment Element to confirm the card; null offline."})


class OrderCreated(Totals):
    id = f.Integer()
    status = f.String(metadata={"description": "`open` (on the board) once the payment is authorised; "
                                               "`awaiting_payment` until Stripe confirms it."})
    currency = Currency()
    access_token = f.String(metadata={"description": "The customer's key to this order; shown once."})
    payment = f.Nested(PaymentOut)
    pickup_code = f.String(metadata={"description": "For a pickup order: the code the store asks for; shown once."})


class LineOut(ma.Schema):
    sku = f.String()
    name = f.String()
    quantity = f.Integer()
    unit_price = Amount(example=7900, metadata={"description": "The catalog price when the order was placed."})
    line_total = Amount(example=7900, metadata={"description": "`unit_price` times `quantity`."})


class CustomerOut(ma.Schema):
    name = f.String()
    email = f.String(metadata={"description": "Absent for the fulfiller."})


class ShipToOut(ma.Schema):
    name = f.String()
    line1 = f.String()
    line2 = f.String()
    city_area = f.String()
    city = f.String()
    region = f.String(metadata={"description": "The region's code as the country's format keys it (`CA`, `ON`, "
                                              "`東京都`); empty where it has none."})
    postal_code = f.String()
    country = f.String()
    formatted = f.List(f.String(), metadata={
        "description": "The address as lines to print, in the country's format (\"San Francisco, CA 94103\" in "
                       "the US, \"10115 Berlin\" in Germany), the last the country's name in English capitals."})


class FulfilmentOut(ma.Schema):
    assignment_id = f.Integer()
    fulfiller = f.String(metadata={"description": "retailer or manufacturer"})
    status = f.String()
    due_at = f.AwareDateTime()
    shipped_at = f.AwareDateTime(allow_none=True)
    carrier = f.String(allow_none=True)
    tracking_number = f.String(allow_none=True)


class PartOut(FulfilmentOut):
    items = f.List(f.Nested("BoardLineOut"), metadata={"description": "What this part ships."})


class OrderReturnOut(ma.Schema):
    id = f.Integer()
    assignment_id = f.Integer(metadata={"description": "The part it concerns: each fulfiller answers its own."})
    status = f.String(metadata={"description": "requested, accepted (the card refunded) or refused"})
    reason = f.String(metadata={"description": "The customer's words."})
    requested_at = f.AwareDateTime()
    decided_at = f.AwareDateTime(allow_none=True)
    decided_by = f.String(allow_none=True, metadata={
        "description": "retailer or manufacturer: who answered (null: not yet, or not recorded)."})
    note = f.String(allow_none=True, metadata={"description": "To the customer; always there when refused."})
    refund_amount = Amount(allow_none=True, example=6400, metadata={"description": "Refunded to the card."})
    refund_reference = f.String(allow_none=True, metadata={"description": "The payment provider's refund id."})


class PickupStoreOut(ma.Schema):
    name = f.String()
    address = f.Nested(PostalAddressSchema)
    hours = f.Nested(HoursSchema, allow_none=True)
    hours_text = f.String(metadata={"description": "The hours for people, in the store's language."})
    timezone = f.String()
    open_now = f.Nested(OpenNowOut, allow_none=True)


class OrderOut(Totals):
    id = f.Integer()
    status = f.String(metadata={"description": "awaiting_payment, open (on the board), awarded, shipped, "
                                               "delivered, cancelled, payment_failed or refunded."})
    currency = Currency()
    delivery = f.String(metadata={"description": "ship or pickup"})
    area = f.String(metadata={"description": "City and postal prefix of the ship-to; never a street."})
    created_at = f.AwareDateTime()
    items = f.List(f.Nested(LineOut))
    customer = f.Nested(CustomerOut, allow_none=True, metadata={
        "description": "Null for a party that may not see who bought it."})
    ship_to = f.Nested(ShipToOut, allow_none=True)
    fulfilment = f.Nested(FulfilmentOut, allow_none=True, metadata={
        "description": "Null until it is awarded. The latest part's, for an order shipped in parts: see `parts`."})
    parts = f.List(f.Nested(PartOut), metadata={
        "description": "Once settled: each shipment the order goes out in (one, unless no retailer could fill it "
                       "whole), with its lines, fulfiller and tracking. The card is charged for what has shipped, never before."})
    payment = f.Nested(PaymentOut, allow_none=True, metadata={
        "description": "The customer's and the manufacturer's to see; null for a fulfiller."})
    return_requested_at = f.AwareDateTime(allow_none=True, metadata={
        "description": "When the latest return was asked for (see `returns`)."})
    returns = f.List(f.Nested(OrderReturnOut), metadata={
        "description": "Returns asked for, oldest first: all of them for the customer and the manufacturer, "
                       "its own part's for a fulfiller."})
    delivered_at = f.AwareDateTime(allow_none=True)
    delivered_how = f.String(allow_none=True, metadata={
        "description": "customer (confirmed), assumed (BROKER_DELIVERED_AFTER_DAYS after shipment) or pickup"})
    pickup_store = f.Nested(PickupStoreOut, allow_none=True, metadata={
        "description": "For the customer of a pickup order, once a store has it: where and when to collect it."})


class OrderQuery(ma.Schema):
    status = f.Enum(OrderStatus, by_value=True)
    fulfiller = f.String(metadata={"description": "manufacturer, retailer, or a retailer id"})


# --- board ------------------------------------------------------------------

class BoardQuery(ma.Schema):
    kind = f.String(validate=v.OneOf(["order", "request"]))
    max_distance_km = f.Float()


class BoardLineOut(ma.Schema):
    line_id = f.Integer(metadata={"description": "To name the line in a bid's `items`."})
    sku = f.String()
    name = f.String()
    quantity = f.Integer()


class MyBidOut(ma.Schema):
    id = f.Integer()
    store_id = f.Integer()
    distance_km = f.Float(metadata={"description": "As the board shows it: whole kilometres."})
    price = Amount(allow_none=True, example=10900, metadata={
        "description": "Your offer on a personal request; null on an order (bid at its price)."})
    created_at = f.AwareDateTime()
    items = f.List(f.Nested("BidLineOut"), allow_none=True, metadata={
        "description": "The lines you bid on; null: the whole order."})
    standing_bid_id = f.Integer(allow_none=True, metadata={
        "description": "The standing bid that placed it; null: placed by hand."})


class BoardItemOut(ma.Schema):
    """An order listing has `items` and `price`; a request listing has `description`,
    `quantity`, `pseudonym`, `buyer_score` and `max_price`."""

    def get_attribute(self, obj, attr, default):
        # Read dicts by key only: a missing "items" must be left out, not taken
        # for the dict's own .items method.
        return obj.get(attr, default)

    id = f.Integer()
    kind = f.String()
    items = f.List(f.Nested(BoardLineOut), metadata={"description": "An order's items (absent for a request)."})
    description = f.String(metadata={"description": "A personal request: what is wanted."})
    quantity = f.Integer(metadata={"description": "A personal request: how many."})
    pseudonym = f.String(metadata={"description": "A personal request: e.g. 'Customer 7F3A'; never a name."})
    buyer_score = f.Float(metadata={"description": "A personal request: the buyer's reputation, 0 to 1."})
    max_price = Amount(example=12000, metadata={"description": "A personal request: the ceiling; offer at or "
                                                                "under it."})
    price = Amount(example=12800, metadata={"description": "An order's fixed price: what a bid ships it for."})
    delivery = f.String(metadata={"description": (
        "An order: `ship` (the winner ships it to the customer) or `pickup` (the customer collects it from the "
        "winning store, against a one-time code; the winner learns their name, never their street). Absent for "
        "a request.")})
    currency = Currency()
    distance_km = f.Float(metadata={"description": (
        "From your nearest store that covers it to the listing's area (a cell about 2 km wide), in whole "
        "kilometres, at least 1: never to the customer's door.")})
    store_id = f.Integer()
    area = f.String(metadata={"description": "City and postal prefix; never a street."})
    precision = f.String(metadata={"description": (
        "How precisely the customer's point is known: `coordinates` (their device's), `postal_code` (a postal "
        "code's centre) or `city` (a city's centre: the customer may be kilometres from it, and from the "
        "distance shown).")})
    closes_at = f.AwareDateTime()
    shipping_method = f.String(allow_none=True, metadata={
        "description": "An order: the shipping method the customer chose (`Express`); null for a pickup or a "
                       "store without methods."})
    ship_within_hours = f.Float(metadata={
        "description": "An order: how long the winner has to ship it (a pickup's: to hand it over) after the "
                       "award; a lapse is measured against it."})
    my_bid = f.Nested(MyBidOut, allow_none=True)


class BidItemIn(ma.Schema):
    sku = f.String(validate=v.Length(min=1, max=64), metadata={"description": "The line's SKU."})
    line_id = Id(metadata={"description": "Or the line's id (`items[].line_id` in the board's listing), where "
                                          "one SKU is on several lines."})
    quantity = f.Integer(required=True, strict=True, validate=v.Range(min=1, max=1_000_000), metadata={
        "description": "How many of the line you will ship: from 1 to the quantity ordered."})


class BidLineOut(ma.Schema):
    line_id = f.Integer()
    sku = f.String()
    quantity = f.Integer()


class BidIn(ma.Schema):
    store_id = Id(metadata={"description": "Ship from this store of yours (default: your nearest store that "
                                           "covers the listing)."})
    price = Money(example=10900, metadata={
        "description": "On a personal request only: your offer, what the customer pays in all, at most its "
                       "`max_price`; send a lower one to improve it. An order is bid at its fixed price: send `{}`."})
    shipping = f.Integer(strict=True, load_default=0, validate=v.Range(min=0, max=MAX_AMOUNT), metadata={
        "description": "On a personal request: the part of `price` that is shipping. An integer in minor units "
                       "of the currency.", "example": 900})
    tax = f.Integer(strict=True, load_default=0, validate=v.Range(min=0, max=MAX_AMOUNT), metadata={
        "description": "On a personal request: the part of `price` that is tax. An integer in minor units of "
                       "the currency.", "example": 0})
    items = f.List(f.Nested(BidItemIn), validate=v.Length(max=200), metadata={
        "description": "On an order only: the lines (and quantities) you will ship, each once; leave it out "
                       "for the whole order. Settlement may give you a part of what you bid on, never more."})
    lines = f.List(f.Nested(BidItemIn), validate=v.Length(max=200), load_only=True, metadata={
        "description": "The same as `items` (the name the product's contract uses); send one or the other."})

    @ma.validates_schema
    def _one_name(self, data, **kwargs):
        if "items" in data and "lines" in data:
            raise ma.ValidationError("send items or lines, not both", "lines")


class BidOut(ma.Schema):
    id = f.Integer()
    listing_id = f.Integer()
    store_id = f.Integer()
    distance_km = f.Float(metadata={"description": "As the board shows it: whole kilometres."})
    price = Amount(allow_none=True, example=10900, metadata={
        "description": "Your offer on a personal request; null on an order (bid at its price)."})
    shipping = Amount(example=900, metadata={"description": "The part of your offer that is shipping."})
    tax = Amount(example=0, metadata={"description": "The part of your offer that is tax."})
    status = f.String(metadata={"description": "active or withdrawn"})
    created_at = f.AwareDateTime()
    items = f.List(f.Nested(BidLineOut), allow_none=True, attribute="lines", metadata={
        "description": "The lines bid on; null: the whole order (or a request)."})
    standing_bid_id = f.Integer(allow_none=True, metadata={
        "description": "The standing bid of yours that placed it; null: placed by hand."})


# --- fulfilment -------------------------------------------------------------

class AssignmentQuery(ma.Schema):
    status = f.String(validate=v.OneOf(["active", "shipped"]))


class CollectedByOut(ma.Schema):
    name = f.String(metadata={"description": "The customer's name, as given at checkout."})


class AssignmentOut(Totals):
    id = f.Integer()
    order_id = f.Integer()
    status = f.String(metadata={"description": "active (to ship), shipped (or collected), released, lapsed "
                                               "(not shipped in time) or cancelled."})
    fulfiller = f.String(metadata={"description": "retailer or manufacturer"})
    store_id = f.Integer(allow_none=True, metadata={"description": "The store that ships it; null for the "
                                                                   "manufacturer."})
    assigned_at = f.AwareDateTime()
    due_at = f.AwareDateTime(metadata={"description": "Ship (or hand over) by then, or it lapses to the next "
                                                      "bidder."})
    shipped_at = f.AwareDateTime(allow_none=True)
    carrier = f.String(allow_none=True, metadata={"description": "`pickup` once a pickup was collected."})
    tracking_number = f.String(allow_none=True)
    currency = Currency()
    items = f.List(f.Nested(LineOut))
    delivery = f.String(metadata={"description": "`ship`, or `pickup`: the customer collects it at your store."})
    ship_to = f.Nested(ShipToOut, allow_none=True, metadata={
        "description": "Where it goes; null for a pickup (the store never learns the customer's street), and "
                       "once the order is no longer the caller's (after a release)."})
    collected_by = f.Nested(CollectedByOut, allow_none=True, metadata={
        "description": "A pickup: who collects it (they show their one-time code); null for a shipment."})


class ShipmentIn(ma.Schema):
    carrier = Str(required=True, max=60, metadata={"example": "UPS"})
    tracking_number = Str(required=True, max=100, metadata={"example": "1Z999AA10123456784"})


# --- settlement -------------------------------------------------------------

class SettleIn(ma.Schema):
    as_of = f.AwareDateTime(metadata={"description": "Settle as at this moment (default: now)."})


class SettlementOut(ma.Schema):
    id = f.Integer()
    as_of = f.AwareDateTime()
    settled = f.Integer(metadata={"description": "Listings settled by this run."})
    to_retailers = f.Integer(metadata={"description": "Of them, awarded to a bidding retailer."})
    to_manufacturer = f.Integer(metadata={"description": "Of them, left to the manufacturer (no eligible bid)."})
    by_rule = f.Dict(keys=f.String(), values=f.Integer(), metadata={
        "description": "How many listings each rule decided (nearest, lowest_price, only_eligible_bid, no_bids, "
                       "...)."})
    seconds = f.Float()
    parked = f.List(f.Integer(), metadata={
        "description": "Listings that could not be settled: each is parked with its error (`broker jobs "
                       "parked`) and left out of runs until the operator puts it back; the rest were settled."})


class BidOutcomeOut(ma.Schema):
    listing_id = f.Integer()
    kind = f.String(metadata={"description": "order or request"})
    area = f.String()
    price = Amount(example=12800, metadata={"description": "The order's price, or your offer on a request."})
    currency = Currency()
    bid_at = f.AwareDateTime()
    my_distance_km = f.Float(metadata={"description": "As the board showed it: from the listing's area "
                                                      "(a cell about 2 km wide), in whole kilometres."})
    outcome = f.String(metadata={"description": (
        "pending; withdrawn; won (yours to ship, or shipped); lapsed (you won it but did not ship in time); "
        "released (you won it and gave it back); lost (see rule and my_eligibility); customer_chose_another "
        "(a request whose customer accepted another offer); expired (a request that ended without an "
        "award); cancelled (the order or request was cancelled)")})
    decided_at = f.AwareDateTime(allow_none=True)
    rule = f.String(allow_none=True, metadata={"description": "The rule that decided the listing."})
    winner = f.String(allow_none=True, metadata={"description": "you, another retailer, or the manufacturer"})
    winner_distance_band = f.String(allow_none=True, metadata={
        "description": "The winner's distance as the board showed it, as a band: e.g. 'under 5 km'."})
    my_eligibility = f.String(allow_none=True, metadata={
        "description": "Empty when your bid was eligible; else why not (e.g. outside_service_radius)."})
    won_round = f.Integer(allow_none=True, metadata={"description": "0 at settlement; more when re-routed to you."})
    label = f.String(metadata={"description": "The outcome's name as the portal shows it: Open, Withdrawn, Won, "
                                              "Lapsed, Released, Lost, Customer chose another offer, Expired, "
                                              "Cancelled."})
    reason = f.String(metadata={"description": "Why, in a sentence (for a lost bid, the reason: a nearer "
                                               "bidder, out of reach, ...)."})


class RunOut(ma.Schema):
    id = f.Integer()
    as_of = f.AwareDateTime()
    trigger = f.String()
    status = f.String()
    started_at = f.AwareDateTime()
    finished_at = f.AwareDateTime(allow_none=True)
    seconds = f.Float(allow_none=True)
    settled = f.Integer(metadata={"description": "Listings settled (of yours, for a manufacturer)."})
    to_retailers = f.Integer()
    to_manufacturer = f.Integer()
    error = f.String(allow_none=True)
    scope = f.String(metadata={"description": "What the run took: \"everything\", \"shard K/N\" of the "
                                              "manufacturers, or named manufacturers (to a manufacturer, "
                                              "\"chosen manufacturers\")."})
    parked = f.Integer(allow_none=True, metadata={
        "description": "How many listings the run could not settle and parked (to the operator; null to a "
                       "manufacturer)."})


class RetailerShareOut(ma.Schema):
    retailer_id = f.Integer()
    name = f.String()
    listings = f.Integer()
    average_distance_km = f.Float()


class RunReportOut(RunOut):
    by_rule = f.Dict(keys=f.String(), values=f.Integer())
    retailers = f.List(f.Nested(RetailerShareOut))


class RefundIn(ma.Schema):
    amount = Money(example=2000, metadata={"description": "How much to refund (default: everything not yet "
                                                          "refunded)."})


class ConnectIn(ma.Schema):
    email = EmailAddress(required=True, metadata={"description": "Who the payment provider contacts about payouts."})
    country = Str(max=2, metadata={"description": "ISO 3166 two-letter country code of the account (default US)."})


class ConnectOut(ma.Schema):
    account_ref = f.String(metadata={"description": "The account at the payment provider."})
    provider = f.String()
    ready = f.Boolean(metadata={"description": "true once payouts can be paid into it."})
    onboarding_url = f.String(allow_none=True, metadata={
        "description": "Where to finish onboarding at the provider; null when nothing is left to do."})


class EarningOut(ma.Schema):
    id = f.Integer()
    order_id = f.Integer()
    kind = f.String(metadata={"description": "sale, or clawback (a refund after payout, netted from the next)"})
    gross = Amount(example=12800, metadata={"description": "What the customer paid for the order."})
    fee = Amount(example=1280, metadata={"description": "Broker's fee."})
    amount = Amount(example=11520, metadata={"description": "What you earn: `gross` less `fee` (negative for a "
                                                            "clawback)."})
    currency = Currency()
    status = f.String(metadata={"description": "accrued, frozen (disputed), paid or reversed"})
    payout_id = f.Integer(allow_none=True)
    created_at = f.AwareDateTime()


class CurrencyTotalsOut(ma.Schema):
    currency = Currency()
    accrued = Amount(example=11520, metadata={"description": "Earned, waiting for the next payout."})
    frozen = Amount(example=0, metadata={"description": "Held while a payment is disputed."})
    paid = Amount(example=98100, metadata={"description": "Paid out so far."})


class EarningsSummaryOut(ma.Schema):
    by_currency = f.List(f.Nested(CurrencyTotalsOut), metadata={
        "description": "Your totals in each currency you earned in, by currency code. Amounts in different "
                       "currencies are never added together."})
    currency = Currency(metadata={"description": "The one currency of all your earnings; absent when you "
                                                 "earned in several (read `by_currency`)."})
    accrued = Amount(example=11520, metadata={"description": "Earned, waiting for the next payout, in `currency`; "
                                                             "absent when you earned in several currencies."})
    frozen = Amount(example=0, metadata={"description": "Held while a payment is disputed, in `currency`; absent "
                                                        "when you earned in several currencies."})
    paid = Amount(example=98100, metadata={"description": "Paid out so far, in `currency`; absent when you earned "
                                                          "in several currencies."})
    account_ready = f.Boolean(metadata={"description": "Whether a connected account can receive payouts "
                                                       "(`POST /connect`)."})


class PayoutRunOut(ma.Schema):
    payouts = f.Integer(metadata={"description": "Transfers made."})
    amount = f.Dict(keys=f.String(), values=f.Integer(), metadata={
        "description": "Paid out, by ISO 4217 currency code: each amount an integer in minor units of that "
                       "currency (2500 is 25.00 USD).", "example": {"USD": 41330}})
    failed = f.Integer(metadata={"description": "Transfers the provider refused; their earnings stay accrued."})
    parked = f.Integer(metadata={"description": "Earnings whose payout failed too often: parked until the "
                                                "operator puts them back (`broker jobs retry`)."})


# --- personal requests ------------------------------------------------------

class ShipToIn(ma.Schema):
    name = Str(required=True)
    line1 = Str(required=True)
    line2 = Str()
    city_area = Str(max=120, load_default="", metadata={"description": CITY_AREA_DESCRIPTION})
    city = Str(required=True, max=120)
    region = Str(max=80, load_default="", metadata={"description": REGION_DESCRIPTION})
    postal_code = Str(max=20, load_default="", metadata={"description": POSTAL_CODE_DESCRIPTION})
    country = Str(required=True, max=2)


class RequestIn(ma.Schema):
    description = f.String(validate=v.Length(max=2000), load_default="")
    sku = Str(max=64)
    manufacturer = Str(max=64, metadata={"description": "The storefront slug whose catalog `sku` is from."})
    quantity = f.Integer(strict=True, load_default=1)
    max_price = Money(required=True, example=12000, metadata={
        "description": "The most you will pay for the whole request (all of `quantity`): held on the card now."})
    currency = Currency(required=True, validate=v.Length(max=3))
    location = f.Nested(LocationSchema, required=True, metadata={
        "description": "Where it should go; retailers see only a coarse area and a distance."})
    ship_to = f.Nested(ShipToIn, required=True, metadata={"description": "Shown to the winner only."})
    prefer = f.String(validate=v.OneOf(["nearest", "lowest_price"]), load_default="nearest", metadata={
        "description": "How settlement chooses among offers if you accept none yourself."})
    expires_at = f.AwareDateTime(metadata={"description": "Default: 7 days from now; at most 30."})
    callback_url = f.String(validate=v.Length(max=500), metadata={
        "description": "Gets signed notices (`Broker-Signature`) of each new or improved offer and of the award. "
                       "A public https or http address on port 443 or 80."})
    contact = EmailAddress(metadata={"description": "For notices; never shown to retailers."})


class OfferOut(ma.Schema):
    bid_id = f.Integer()
    price = Amount(example=10900, metadata={"description": "The offer, for the whole request: what you pay in "
                                                           "all, `goods` + `shipping` + `tax`."})
    goods = Amount(example=10000, metadata={"description": "The goods' part of the offer."})
    shipping = Amount(example=900, metadata={"description": "The shipping's part of the offer."})
    tax = Amount(example=0, metadata={"description": "The tax's part of the offer."})
    distance_km = f.Float(metadata={"description": "From the retailer's store to your place, to 100 m."})
    retailer = f.String()
    rating = f.Float(allow_none=True, metadata={
        "description": "The retailer's reputation, 1 to 5 stars: its record and its customers' ratings, shrunk "
                       "toward the mean (a shop nobody has rated yet starts near 4.6). Read it with `ratings`."})
    ratings = f.Integer(metadata={"description": "How many customers' ratings (revealed ones) the score includes."})
    rating_text = f.String(metadata={"description": "As the pages show it: '4.7★ (12 ratings)', or 'New: no "
                                                    "ratings yet' / 'New: 2 ratings so far' under 3 ratings."})
    offered_at = f.AwareDateTime()


class RequestOut(ma.Schema):
    id = f.Integer()
    status = f.String(metadata={"description": "awaiting_payment, open, awarded, expired or cancelled"})
    pseudonym = f.String(metadata={"description": "What retailers call you, e.g. 'Customer 7F3A'."})
    description = f.String()
    sku = f.String(allow_none=True)
    quantity = f.Integer()
    max_price = Amount(example=12000, metadata={"description": "The ceiling for the whole request."})
    currency = Currency()
    prefer = f.String()
    area = f.String(metadata={"description": "What retailers see of where: city and postal prefix."})
    expires_at = f.AwareDateTime()
    closes_at = f.AwareDateTime(allow_none=True, metadata={
        "description": "While open: when its offers are decided, the same time the board shows retailers (the "
                       "first settlement it is due for, or its expiry if sooner). Null once closed."})
    offers = f.List(f.Nested(OfferOut))
    order_id = f.Integer(allow_none=True, metadata={"description": "The order it became once awarded."})
    payment = f.Nested(PaymentOut, allow_none=True)


class RequestCreated(RequestOut):
    access_token = f.String(metadata={"description": "The customer's key to this request (X-Access-Token); shown once."})


class AcceptIn(ma.Schema):
    bid_id = Id(required=True)


class MessageIn(ma.Schema):
    body = f.String(required=True, validate=v.Length(min=1, max=2000))


class MessageOut(ma.Schema):
    id = f.Integer()
    sender = f.String(metadata={"description": "customer or fulfiller"})
    body = f.String()
    created_at = f.AwareDateTime()
    mine = f.Boolean()
    assignment_id = f.Integer(allow_none=True, metadata={
        "description": "The thread: each fulfiller of the order (after a release or a lapse, the next one) has "
                       "its own, and reads only its own. Null only for a message written before the order "
                       "had a fulfiller, under an earlier version of Broker."})
    fulfiller = f.String(allow_none=True, metadata={
        "description": "Who the thread is with: the store's name, or the manufacturer's."})


# --- storefront ---------------------------------------------------------------

class BrandingIn(ma.Schema):
    name = f.String(validate=[v.Length(max=200), grammar(parse_display_name)])
    logo_url = ImageUrl()
    color_primary = f.String(validate=[v.Length(max=7), grammar(parse_color)], metadata={"description": "e.g. #1d4ed8"})
    color_accent = f.String(validate=[v.Length(max=7), grammar(parse_color)])
    locale = Str(max=16, metadata={"description": "For prices and dates, e.g. en_US, de_DE"})
    custom_domain = f.String(validate=[v.Length(max=253), grammar(parse_custom_domain, blank=True)], metadata={
        "description": "The store's own domain name, e.g. shop.example.com (no IP address, not Broker's own "
                       "host, not another store's; an empty string removes it). It serves the store once "
                       "verified: point it at Broker, then verify it in the console."})
    frame_origins = f.List(f.String(validate=[v.Length(max=200), grammar(parse_origin)]), validate=v.Length(max=20),
                           metadata={"description": "Origins allowed to embed the store, scheme://host[:port] "
                                                    "only, e.g. https://www.example.com (at most 20)"})
    return_window_days = f.Integer(strict=True)


class BrandingOut(ma.Schema):
    slug = f.String()
    name = f.String()
    logo_url = f.String(allow_none=True)
    color_primary = f.String()
    color_accent = f.String()
    locale = f.String()
    custom_domain = f.String(allow_none=True)
    custom_domain_verified = f.Boolean(metadata={"description": "The domain serves the store only once verified."})
    frame_origins = f.List(f.String())
    return_window_days = f.Integer()
    embed_snippet = f.String(metadata={"description": "Paste it where the store should appear on your site."})


class ReturnIn(ma.Schema):
    reason = f.String(required=True, validate=v.Length(min=1, max=500))
    assignment_id = Id(metadata={"description": "The part that goes back, for an order shipped in parts."})


class ReturnDecisionIn(ma.Schema):
    return_id = Id(metadata={"description": "Which return, when several parts of the order have one open."})


class RefuseReturnIn(ReturnDecisionIn):
    note = f.String(required=True, validate=v.Length(min=1, max=1000), metadata={
        "description": "To the customer: why, and what they can do."})


class ReturnQuery(ma.Schema):
    status = f.String(validate=v.OneOf(["requested", "accepted", "refused"]), metadata={
        "description": "requested: the returns waiting for your answer."})


class ReturnOut(OrderReturnOut):
    order_id = f.Integer()
    currency = Currency()
    total = Amount(example=12800, metadata={"description": "The order's total."})
    refundable = Amount(example=12800, metadata={"description": "What accepting it refunds now (0 once decided)."})
    items = f.List(f.Nested(LineOut))


class PickupIn(ma.Schema):
    code = f.String(required=True, validate=v.Length(min=1, max=12))


# --- reputation -------------------------------------------------------------

class ReviewIn(ma.Schema):
    rating = f.Integer(required=True, strict=True, validate=v.Range(min=MIN_RATING, max=MAX_RATING))
    # The length is checked by the service, after surrounding space is stripped.
    comment = f.String(load_default="", allow_none=True,
                       metadata={"description": f"Optional; at most {MAX_COMMENT} characters."})


class ReviewOut(ma.Schema):
    order_id = f.Integer()
    author = f.String(metadata={"description": "customer or fulfiller"})
    rating = f.Integer()
    comment = f.String()
    created_at = f.AwareDateTime()


class OrderReviewsOut(ma.Schema):
    order_id = f.Integer()
    party = f.String(metadata={"description": "Which side the caller is: customer or fulfiller."})
    mine = f.Nested(ReviewOut, allow_none=True)
    theirs = f.Nested(ReviewOut, allow_none=True, metadata={
        "description": "The other side's review, once revealed (null until then, whether or not it exists)."})
    reveal_pending = f.Boolean(metadata={
        "description": "Reviews are blind until both sides have reviewed or 14 days after the first review."})


class ReputationOut(ma.Schema):
    score = f.Float(metadata={"description": "From 0 to 1: ratings and shipping record, shrunk toward the mean."})
    stars = f.Float(metadata={"description": "The score on the 1 to 5 scale, to one decimal."})
    ratings = f.Integer(metadata={"description": "How many (revealed) ratings the score includes."})


# --- errors -----------------------------------------------------------------

class Problem(ma.Schema):
    """RFC 9457 problem details, as `api.problems.problem` writes them."""

    type = f.String(required=True, metadata={"description": "Always `about:blank`: the status and title say it."})
    title = f.String(required=True)
    status = f.Integer(required=True)
    detail = f.String()
    errors = f.Dict(keys=f.String(), values=f.List(f.String()),
                    metadata={"description": "The invalid fields (dotted paths) and what is wrong with each."})


# --- addresses --------------------------------------------------------------

LocaleParam = lambda: f.String(  # noqa: E731
    validate=[v.Length(max=20), v.Regexp(r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$")],
    metadata={"description": "The language of country names, e.g. `de` (default `en`)."})


class AddressFormatQuery(ma.Schema):
    region = Str(max=80, metadata={"description": "A region's code: its cities (or districts) where the data "
                                                  "lists them, and its postal-code example."})
    locale = LocaleParam()


class CountriesQuery(ma.Schema):
    locale = LocaleParam()


class ChoiceOut(ma.Schema):
    value = f.String(metadata={"description": "What to send."})
    label = f.String(metadata={"description": "What to show."})


class AddressFieldOut(ma.Schema):
    name = f.String(metadata={"description": "line1, line2, city_area, city, region or postal_code"})
    label = f.String(metadata={"description": "What the country calls it: \"ZIP code\", \"Prefecture\"."})
    required = f.Boolean()
    autocomplete = f.String(metadata={"description": "The HTML autocomplete token."})
    choices = f.List(f.Nested(ChoiceOut), metadata={"description": "Where the value must be one of these."})
    example = f.String(metadata={"description": "A postal code as the country writes one."})


class AddressFormatOut(ma.Schema):
    country = f.String()
    country_name = f.String()
    fields = f.List(f.Nested(AddressFieldOut), metadata={
        "description": "The country's fields in the order its people write them."})
    rows = f.List(f.List(f.String()), metadata={"description": "Fields that share a printed line."})


class CountryOut(ma.Schema):
    code = f.String()
    name = f.String()


# --- shipping methods and tax -------------------------------------------------

Charge = lambda **kw: f.Integer(strict=True, validate=v.Range(min=0, max=MAX_AMOUNT), metadata={  # noqa: E731
    "description": kw.pop("description") + " An integer in minor units of the store's currency.",
    "example": kw.pop("example")}, **kw)
Countries = lambda **kw: f.List(Str(max=2), validate=v.Length(max=300), metadata={  # noqa: E731
    "description": "ISO 3166-1 alpha-2 codes it ships to; empty: everywhere.", "example": ["US", "CA"]}, **kw)


class MethodIn(ma.Schema):
    code = Str(required=True, max=32, metadata={"description": "Its id in the API and in orders: 1 to 32 lowercase "
                                                              "letters, digits, `-`, `_`.", "example": "express"})
    name = Str(required=True, max=80, metadata={"description": "As customers see it.", "example": "Express"})
    price = Charge(required=True, description="The charge per order (0: free).", example=1500)
    per_item = Charge(load_default=0, description="Added for each item (a quantity of 2 counts twice).", example=0)
    free_over = f.Integer(strict=True, allow_none=True, load_default=None, validate=v.Range(min=1, max=MAX_AMOUNT),
                          metadata={"description": "Free when the goods come to this much or more. An integer in "
                                                   "minor units of the store's currency.", "example": 10000})
    ship_within_hours = f.Integer(strict=True, required=True, validate=v.Range(min=1, max=MAX_SHIP_WITHIN_HOURS),
                                  metadata={"description": "The fulfiller must ship within this long of the award, "
                                                           "or the order lapses to the next bidder.",
                                            "example": 24})
    countries = Countries(load_default=list)
    default = f.Boolean(load_default=False, metadata={
        "description": "true: the method an order that names none gets (one method is always the default)."})

    @ma.post_load
    def make(self, data, **_):
        return NewMethod(**data)


class MethodPatch(ma.Schema):
    name = Str(max=80)
    price = Charge(description="The charge per order.", example=1200)
    per_item = Charge(description="Added for each item.", example=0)
    free_over = f.Integer(strict=True, allow_none=True, validate=v.Range(min=1, max=MAX_AMOUNT), metadata={
        "description": "Free from this much; null removes the threshold. An integer in minor units of the store's "
                       "currency.", "example": 15000})
    ship_within_hours = f.Integer(strict=True, validate=v.Range(min=1, max=MAX_SHIP_WITHIN_HOURS))
    countries = Countries()
    default = f.Boolean(metadata={"description": "true: make it the default."})
    active = f.Boolean(metadata={"description": "false: disabled, no longer offered (orders placed keep it)."})

    @ma.post_load
    def make(self, data, **_):
        clear = "free_over" in data and data["free_over"] is None
        return MethodChanges(**data, clear_free_over=clear)


class MethodOut(ma.Schema):
    code = f.String()
    name = f.String()
    price = Amount(example=1500)
    per_item = Amount(example=0)
    free_over = Amount(allow_none=True, example=None)
    currency = Currency()
    ship_within_hours = f.Integer()
    countries = f.List(f.String())
    default = f.Boolean()
    active = f.Boolean()


class OfferedOut(ma.Schema):
    code = f.String()
    name = f.String()
    charge = Amount(example=0, metadata={"description": "What this cart would pay to ship by it."})
    currency = Currency()
    ship_within_hours = f.Integer()
    default = f.Boolean()


class OfferedQuery(ma.Schema):
    country = Str(max=2, load_default="", metadata={"description": "Where it would ship, e.g. US; left out: every "
                                                                 "method on offer, wherever it ships."})
    subtotal = f.Integer(load_default=0, validate=v.Range(min=0, max=MAX_AMOUNT), metadata={
        "description": "The cart's goods, for `free_over` (minor units)."})
    items = f.Integer(load_default=1, validate=v.Range(min=0, max=100_000), metadata={
        "description": "How many items, for a per-item charge."})


class RateSchema(ma.Schema):
    country = Str(required=True, max=2, metadata={"example": "US"})
    region = Str(max=80, load_default="", metadata={"description": "A region's code or name; empty: the whole "
                                                                   "country.", "example": "NY"})
    rate = f.String(required=True, validate=v.Length(max=12), metadata={
        "description": "A percentage as a decimal string, up to three decimals.", "example": "8.875"})

    @ma.post_load
    def make(self, data, **_):
        return RateIn(**data)


class TaxTableIn(ma.Schema):
    prices_include_tax = f.Boolean(required=True, metadata={
        "description": "true (the EU, the UK): catalog prices and shipping include the tax, shown as \"incl. "
                       "VAT\"; false (the US): tax is added at checkout."})
    shipping_taxed = f.Boolean(load_default=True, metadata={
        "description": "Whether the shipping charge is taxed at the destination's rate (default true)."})
    rates = f.List(f.Nested(RateSchema), required=True, validate=v.Length(max=500))

    @ma.post_load
    def make(self, data, **_):
        return SetTaxTable(**data)


class RateOut(ma.Schema):
    country = f.String()
    region = f.String()
    rate = f.String()
    jurisdiction = f.String(metadata={"description": "`US-NY`, `DE`: as orders and the tax report name it."})


class TaxTableOut(ma.Schema):
    prices_include_tax = f.Boolean()
    shipping_taxed = f.Boolean()
    provider = f.String(metadata={"description": "`table` (these rates) or `stripe` (Stripe Tax computes the tax; "
                                                 "`prices_include_tax` and `shipping_taxed` still apply)."})
    currency = Currency()
    rates = f.List(f.Nested(RateOut))
# --- stock and standing bids -----------------------------------------------------

class StockItemIn(ma.Schema):
    sku = f.String(required=True, validate=v.Length(min=1, max=64))
    quantity = f.Integer(required=True, strict=True, validate=v.Range(min=0, max=1_000_000), metadata={
        "description": "On the shelf now, including what awards have reserved and not shipped yet."})


class StockIn(ma.Schema):
    items = f.List(f.Nested(StockItemIn), required=True, validate=v.Length(max=10_000))


class StockLineOut(ma.Schema):
    sku = f.String()
    quantity = f.Integer()
    reserved = f.Integer(metadata={"description": "Held by awards not shipped yet."})
    available = f.Integer(metadata={"description": "What settlement may still award: quantity less reserved."})


class StockOut(ma.Schema):
    store_id = f.Integer()
    updated_at = f.AwareDateTime(allow_none=True, metadata={"description": "When the feed last changed; null: never."})
    age_hours = f.Float(allow_none=True)
    fresh = f.Boolean(metadata={"description": "Younger than BROKER_STOCK_MAX_AGE_HOURS: older stock counts as "
                                               "unknown (bids are taken at their word; standing bids stop)."})
    items = f.List(f.Nested(StockLineOut))
    standing_bids_placed = f.Integer(metadata={"description": "Bids your standing bids placed after this change."})


class DealerStockQuery(ma.Schema):
    sku = f.String(validate=v.Length(min=1, max=64))


class DealerStockOut(ma.Schema):
    retailer_id = f.Integer()
    retailer_name = f.String()
    store_id = f.Integer()
    store_name = f.String()
    area = f.String()
    sku = f.String()
    quantity = f.Integer()
    available = f.Integer()
    updated_at = f.AwareDateTime()
    age_hours = f.Float()
    fresh = f.Boolean()


class StandingBidIn(ma.Schema):
    store_id = Id(metadata={"description": "Bid from this store only (default: your nearest covering store "
                                           "with the lines in stock)."})
    manufacturers = f.List(f.String(validate=v.Length(min=1, max=60)), validate=v.Length(max=100), metadata={
        "description": "Slugs of manufacturers you deal for; leave it out for all of them."})
    max_distance_km = f.Float(required=True, allow_nan=False, validate=v.Range(min=0, min_inclusive=False, max=1000),
                              metadata={"description": "As the board shows distances: whole kilometres."})
    partial = f.Boolean(metadata={"description": "Bid on the lines in stock when not all are (default false: "
                                                 "only orders it can fill whole)."})


class StandingBidOut(ma.Schema):
    id = f.Integer()
    store_id = f.Integer(allow_none=True)
    manufacturers = f.List(f.String())
    max_distance_km = f.Float()
    partial = f.Boolean()
    created_at = f.AwareDateTime()
    placed = f.Integer(metadata={"description": "Bids it placed when it was made."})
