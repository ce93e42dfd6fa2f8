"""One parser for amounts typed in major units (broker.money.parse_amount), in the
store's locale, shared by the console's product form and the CSV import, and by
Broker's own pages (the portal's offers, the request page) in English.

The console once read `12,50` as 1,250.00 while the import refused it: an
ambiguous amount is now refused everywhere, with the format the store uses.
"""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from broker.accounts.models import Role
from broker.catalog.models import Product
from broker.money import amount_examples, amount_input, parse_amount
from broker.storefront import services as storefront
from tests.factories import HERE, north_of
from tests.integration.test_bad_input import assert_unchanged, database
from tests.integration.test_console_pages import csrf, sign_in

# (typed, currency, locale, minor units or None for refused)
AMOUNTS = [
    ("12.50", "USD", "en_US", 1250),
    ("12,50", "USD", "en_US", None),  # 1,250? 12.50? never guessed
    ("1,250", "USD", "en_US", 125000),
    ("1,250.00", "USD", "en_US", 125000),
    ("1,25", "USD", "en_US", None),
    ("1,2,3", "USD", "en_US", None),
    ("$12.50", "USD", "en_US", 1250),
    ("12.50 USD", "USD", "en_US", 1250),
    ("€12.50", "USD", "en_US", None),
    ("  12.5 ", "USD", "en_US", 1250),
    ("12.505", "USD", "en_US", None),  # too many decimals: refused, not rounded
    ("12.500", "USD", "en_US", None),
    ("-1", "USD", "en_US", None),
    ("0", "USD", "en_US", None),
    ("0.00", "USD", "en_US", None),
    ("1e3", "USD", "en_US", None),
    ("0x10", "USD", "en_US", None),
    ("NaN", "USD", "en_US", None),
    ("twelve", "USD", "en_US", None),
    ("21474836.47", "USD", "en_US", 2147483647),
    ("21474836.48", "USD", "en_US", None),
    ("12,50", "EUR", "de_DE", 1250),
    ("1.250,00", "EUR", "de_DE", 125000),
    ("1.250", "EUR", "de_DE", 125000),
    ("12.50", "EUR", "de_DE", None),
    ("12,50 €", "EUR", "de_DE", 1250),
    ("1 250,00", "EUR", "fr_FR", 125000),  # a plain space for fr_FR's narrow no-break one
    ("1\u202f250,00", "EUR", "fr_FR", 125000),
    ("1'250.50", "CHF", "de_CH", 125050),
    ("12", "JPY", "ja_JP", 12),
    ("1,250", "JPY", "ja_JP", 1250),
    ("12.5", "JPY", "ja_JP", None),
    ("12.0", "JPY", "ja_JP", None),
    ("1.234", "KWD", "en_US", 1234),
]


@pytest.mark.parametrize("typed, currency, locale, expected", AMOUNTS)
def test_the_parser_reads_what_the_locale_writes_and_refuses_the_rest(typed, currency, locale, expected):
    if expected is None:
        with pytest.raises(ValueError) as refused:
            parse_amount(typed, currency, locale)
        message = str(refused.value)
        assert "more than 0" in message or "at most 21474836.47" in message or \
            amount_examples(currency, locale) in message, message
    else:
        assert parse_amount(typed, currency, locale) == expected


@pytest.mark.parametrize("amount, currency, locale", [(12900, "USD", "en_US"), (12900, "EUR", "de_DE"),
                                                      (125050, "EUR", "fr_FR"), (1250, "JPY", "ja_JP"),
                                                      (1234, "KWD", "ar")])
def test_what_a_form_shows_it_reads_back(amount, currency, locale):
    assert parse_amount(amount_input(amount, currency, locale), currency, locale) == amount


def test_the_message_shows_the_store_s_format():
    with pytest.raises(ValueError, match="write it like 12.50 or 1,250.00"):
        parse_amount("12,50", "USD", "en_US")
    with pytest.raises(ValueError, match="write it like 12,50 or 1.250,00"):
        parse_amount("12.50", "EUR", "de_DE")
    with pytest.raises(ValueError, match="JPY has no decimal places; write it like 12 or 1,250"):
        parse_amount("12.5", "JPY", "ja_JP")


# --- the console's product form and the CSV import ----------------------------------


def _store(ctx, world, currency: str, locale: str):
    maker = world.manufacturer(currency=currency, products=())
    storefront.update_branding(ctx, maker.actor, storefront.Branding(locale=locale))
    return maker


def _new_product(client, sku: str, price: str):
    return client.post("/console/catalog/new", data={"csrf_token": csrf(client, "/console/catalog/new"),
                                                     "sku": sku, "name": "Kettle", "price": price})


def _price(ctx, maker, sku: str) -> int | None:
    with ctx.uow() as uow:
        return uow.session.scalar(select(Product.price).where(Product.manufacturer_id == maker.id,
                                                             Product.sku == sku))


def test_product_form_refuses_ambiguous_12_comma_50_in_en_us(client, ctx, world):
    maker = _store(ctx, world, "USD", "en_US")
    sign_in(client, ctx, Role.MANUFACTURER, maker.id)
    before = database(ctx)

    resp = _new_product(client, "K-1", "12,50")

    assert resp.status_code == 422
    assert "write it like 12.50 or 1,250.00" in resp.get_data(as_text=True)
    assert_unchanged(ctx, before)


def test_product_form_reads_12_comma_50_in_de_de(client, ctx, world):
    maker = _store(ctx, world, "EUR", "de_DE")
    sign_in(client, ctx, Role.MANUFACTURER, maker.id)

    assert _new_product(client, "K-1", "12,50").status_code == 302
    assert _price(ctx, maker, "K-1") == 1250
    refused = _new_product(client, "K-2", "12.50")
    assert refused.status_code == 422 and "write it like 12,50 or 1.250,00" in refused.get_data(as_text=True)


def test_the_edit_form_shows_the_price_as_the_store_writes_it_and_saving_keeps_it(client, ctx, world):
    maker = _store(ctx, world, "EUR", "de_DE")
    sign_in(client, ctx, Role.MANUFACTURER, maker.id)
    assert _new_product(client, "K-1", "1.299,50").status_code == 302

    page = client.get("/console/catalog/p/K-1").get_data(as_text=True)
    assert 'value="1299,50"' in page
    saved = client.post("/console/catalog/p/K-1", data={"csrf_token": csrf(client, "/console/catalog/p/K-1"),
                                                         "name": "Kettle", "price": "1299,50", "active": "on"})
    assert saved.status_code == 302
    assert _price(ctx, maker, "K-1") == 129950


def _import(client, price: str):
    data = f'sku,name,price\nK-1,Kettle,"{price}"\n'.encode()
    return client.post("/console/catalog/import", content_type="multipart/form-data", data={
        "csrf_token": csrf(client, "/console/catalog"), "file": (io.BytesIO(data), "catalog.csv")})


@pytest.mark.parametrize("typed, currency, locale, expected",
                         [a for a in AMOUNTS if "\u202f" not in a[0] and '"' not in a[0]])
def test_import_and_form_agree_on_every_amount(app, ctx, world, typed, currency, locale, expected):
    """The same text typed in the product form and given in a CSV file: the same
    price, or both refused with the same message."""
    form_store, file_store = _store(ctx, world, currency, locale), _store(ctx, world, currency, locale)
    form_client, file_client = app.test_client(), app.test_client()
    sign_in(form_client, ctx, Role.MANUFACTURER, form_store.id)
    sign_in(file_client, ctx, Role.MANUFACTURER, file_store.id)

    by_form = _new_product(form_client, "K-1", typed)
    by_file = _import(file_client, typed)

    assert _price(ctx, form_store, "K-1") == _price(ctx, file_store, "K-1") == expected
    if expected is None:
        message = str(pytest.raises(ValueError, parse_amount, typed, currency, locale).value)
        escaped = message.replace("'", "&#39;")
        assert by_form.status_code == by_file.status_code == 422
        assert escaped in by_form.get_data(as_text=True) and escaped in by_file.get_data(as_text=True)
    else:
        assert (by_form.status_code, by_file.status_code) == (302, 302)


# --- Broker's own pages: the portal's offers and the request page (English) ---------------


def test_the_request_page_refuses_an_ambiguous_ceiling_and_writes_nothing(client, ctx):
    before = database(ctx)
    resp = client.post("/requests/new", data={
        "description": "a kettle", "quantity": "1", "max_price": "420,50", "currency": "USD", "postal_code": "94103",
        "country": "US", "name": "Ada", "line1": "1 Main St", "city": "San Francisco", "prefer": "nearest",
        "days": "7"})
    assert resp.status_code == 422
    assert "write it like 12.50 or 1,250.00" in resp.get_data(as_text=True)
    assert_unchanged(ctx, before)


# --- the API takes whole minor units only -------------------------------------------------


@pytest.mark.parametrize("value", [12.5, 1250.0, "1250", "12.50", True, None, [1250], {"amount": 1250}])
def test_api_money_fields_take_whole_minor_units_only(client, ctx, world, value):
    maker = world.manufacturer(products=(("SKU-1", 5000),))
    shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
    as_maker, as_shop = ({"Authorization": f"Bearer {k}"} for k in (maker.key, shop.key))
    request = {"description": "a kettle", "quantity": 1, "currency": "USD", "max_price": value,
               "location": {"lat": HERE[0], "lon": HERE[1]},
               "ship_to": {"name": "Ada", "line1": "1 Main St", "city": "San Francisco", "postal_code": "94103",
                           "country": "US"}}
    posted = client.post("/api/v1/requests", json={**request, "max_price": 9000})
    assert posted.status_code == 201, posted.get_data(as_text=True)
    listing = client.get("/api/v1/board", headers=as_shop).get_json()[0]["id"]
    before = database(ctx)

    calls = [
        ("POST", "/api/v1/products", {"sku": "K-9", "name": "Kettle", "price": value}, as_maker, "price"),
        ("PATCH", "/api/v1/products/SKU-1", {"price": value}, as_maker, "price"),
        ("POST", "/api/v1/requests", request, {}, "max_price"),
        ("POST", f"/api/v1/board/{listing}/bids", {"price": value}, as_shop, "price"),
        ("POST", "/api/v1/orders/1/refund", {"amount": value}, as_maker, "amount"),
    ]
    for method, path, body, headers, field in calls:
        resp = client.open(path, method=method, json=body, headers=headers)
        assert resp.status_code == 422, (path, resp.get_data(as_text=True))
        assert field in resp.get_json()["errors"], (path, resp.get_json())
    assert_unchanged(ctx, before)
