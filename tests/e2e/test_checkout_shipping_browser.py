"""Checkout with a shipping method and tax, in a real browser (headless Chromium).

A US customer picks Express at checkout and lands on an order page whose lines
are the goods, Express's charge, New York's sales tax and the total; a German
customer of a euro store sees the VAT inside the price. At 1280 and 390 px wide:
no sideways scrolling, no serious or critical axe-core violation, nothing in
the console. Then the manufacturer's console page for shipping and tax.

Screenshots in `artifacts/screenshots/<test>/`.
"""

from __future__ import annotations

import re

import pytest

from broker.accounts.models import Role
from broker.catalog import services as catalog
from broker.config import Settings
from broker.context import Context
from broker.identity import services as identity
from broker.migrate import upgrade
from broker.shipping import services as shipping
from broker.tax import services as tax
from tests.e2e.browser import SKIP_WITHOUT_BROWSER, Server, expect, free_port, watched_page
from tests.e2e.browser import assert_no_sideways_scrolling as _no_sideways_scrolling
from tests.e2e.browser import serious_axe_violations as _serious_axe_violations
from tests.factories import World

pytestmark = SKIP_WITHOUT_BROWSER
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def site(_browser_available, tmp_path_factory):
    from web.app import create_app

    url = f"sqlite:///{tmp_path_factory.mktemp('checkout') / 'store.db'}"
    upgrade(url)
    port = free_port()
    ctx = Context.from_settings(Settings(database_url=url, admin_token="x", secret_key="k",
                                         public_url=f"http://127.0.0.1:{port}"))
    world = World(ctx)
    us = world.manufacturer("cycles", products=())
    catalog.add_product(ctx, us.actor, catalog.NewProduct("BIKE-1", "Trail bike", 45000, "Twelve gears."))
    shipping.add_method(ctx, us.actor, shipping.NewMethod("standard", "Standard", 700, 72, free_over=100000))
    shipping.add_method(ctx, us.actor, shipping.NewMethod("express", "Express", 2500, 24, countries=["US"]))
    tax.set_table(ctx, us.actor, tax.SetTaxTable(False, [tax.RateIn("US", "8.875", "NY")]))
    de = world.manufacturer("rad", currency="EUR", products=())
    catalog.add_product(ctx, de.actor, catalog.NewProduct("RAD-1", "Stadtrad", 59900, "Sieben Gänge."))
    shipping.add_method(ctx, de.actor, shipping.NewMethod("standard", "Standard", 595, 72, countries=["DE", "AT"]))
    tax.set_table(ctx, de.actor, tax.SetTaxTable(True, [tax.RateIn("DE", "19")]))
    _, link = identity.add_user(ctx, role=Role.MANUFACTURER, company_id=us.id, email="owner@cycles.example",
                                name="Nora Owner")
    identity.reset_password(ctx, link.rsplit("/", 1)[1], PASSWORD)
    store = Server(create_app(context=ctx), port)
    try:
        yield store
    finally:
        store.close()
        ctx.engine.dispose()


def _checks(page) -> None:
    _no_sideways_scrolling(page)
    assert _serious_axe_violations(page) == []


def _fill(page, *, street: str, city: str, postal_code: str, country: str, region: str | None = None) -> None:
    """The checkout's form, the address shaped by its country (address.html's macro)."""
    page.get_by_label("Country").select_option(country)
    postal = "ZIP code" if country == "US" else "Postal code"
    expect(page.get_by_label(postal)).to_be_visible()
    page.get_by_label("Full name").fill("Grace Hopper")
    page.get_by_label("Email").fill("grace@example.com")
    page.get_by_label("Street address").fill(street)
    page.get_by_label("City").fill(city)
    if region:
        page.get_by_label("State").select_option(region)
    page.get_by_label(postal).fill(postal_code)
    page.get_by_label("Approve a test payment").check()


@pytest.mark.parametrize("width", [1280, 390])
def test_a_us_customer_chooses_express_and_sees_shipping_and_sales_tax(site, browser, shot, width):
    with watched_page(browser, width=width) as page:
        page.goto(site.origin + "/s/cycles/cart?add=BIKE-1")
        expect(page.get_by_text("Tax is added at checkout")).to_be_visible()
        page.get_by_role("link", name="Check out").click()
        express = page.get_by_label(re.compile(r"Express:"))
        expect(page.get_by_label(re.compile(r"Standard:"))).to_be_checked()
        expect(page.locator("#shipping-method label", has_text="Express")).to_contain_text("$25.00")
        _checks(page)
        shot(page, f"checkout-{width}")
        _fill(page, street="350 5th Ave", city="New York", postal_code="10118", country="US", region="NY")
        express.check()
        # Before placing it: what it will charge, for this address and method.
        summary = page.locator("#order-totals")
        expect(summary).to_contain_text("Sales tax (8.875 %)")
        expect(page.locator("#order-total")).to_have_text("$517.16")
        _checks(page)
        shot(page, f"checkout-total-{width}")
        page.get_by_role("button", name="Place the order").click()
        expect(page.get_by_role("status")).to_contain_text("your order is placed")
        totals = page.locator("table")
        expect(totals).to_contain_text("Shipping (Express)")
        expect(totals).to_contain_text("$25.00")
        expect(totals).to_contain_text("Sales tax (8.875 %)")
        expect(totals).to_contain_text("$42.16")  # 8.875 % of 475.00
        expect(totals).to_contain_text("$517.16")
        _checks(page)
        shot(page, f"order-{width}")


def test_a_german_customer_sees_the_vat_in_the_price(site, browser, shot):
    with watched_page(browser, width=390) as page:
        page.goto(site.origin + "/s/rad/checkout?cart=RAD-1:1")
        expect(page.get_by_text("Prices include VAT")).to_be_visible()
        _fill(page, street="Invalidenstraße 117", city="Berlin", postal_code="10115", country="DE")
        page.get_by_role("button", name="Place the order").click()
        expect(page.get_by_role("status")).to_contain_text("your order is placed")
        totals = page.locator("table")
        expect(totals).to_contain_text("incl. VAT (19 %)")
        expect(totals).to_contain_text("€604.95")
        expect(totals).to_contain_text("€96.59")  # 19/119 of 604.95
        _checks(page)
        shot(page, "order-de")


@pytest.mark.parametrize("width", [1280, 390])
def test_the_manufacturer_keeps_its_methods_and_rates_in_the_console(site, browser, shot, width):
    with watched_page(browser, width=width, any_console_error=False) as page:
        page.goto(site.origin + "/signin")
        page.get_by_label("Email").fill("owner@cycles.example")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("link", name="Shipping & tax").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Shipping and tax")
        expect(page.get_by_role("link", name="Express")).to_be_visible()
        expect(page.get_by_label(re.compile("Rates, one a line"))).to_have_value("US NY 8.875")
        _checks(page)
        shot(page, f"console-{width}")


def test_an_address_the_map_cannot_place_is_placed_by_the_device(site, browser, shot):
    context = browser.new_context(viewport={"width": 390, "height": 900}, permissions=["geolocation"],
                                  geolocation={"latitude": 52.52, "longitude": 13.405})
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(site.origin + "/s/rad/checkout?cart=RAD-1:1")
        _fill(page, street="Hauptstraße 1", city="Xyzzyhausen", postal_code="99999", country="DE")
        page.get_by_role("button", name="Place the order").click()
        expect(page.get_by_text("We could not place this address on the map")).to_be_visible()
        assert "lat" not in page.get_by_role("main").inner_text().lower().split()  # no developer words
        shot(page, "unplaced")
        page.get_by_role("button", name="Use my location").click()
        expect(page.get_by_role("status").filter(has_text="Got it")).to_be_visible()
        assert page.locator("#lat").input_value() == "52.52000"
        page.get_by_label("Approve a test payment").check()
        page.get_by_role("button", name="Place the order").click()
        expect(page.get_by_role("status").filter(has_text="your order is placed")).to_be_visible()
        _checks(page)
        shot(page, "placed-by-device")
        assert errors == []
    finally:
        context.close()
