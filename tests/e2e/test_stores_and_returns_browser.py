"""A store's address and hours, a delivery confirmed and a return refused, in a
real browser (headless Chromium driven by Playwright), at 1280 and 390 px wide.

* A retailer signs in, gives its store a street address and opening hours on
  the stores page (a wrong day is shown next to its input), and sees them
  written for people.
* A customer opens the order page of a shipped order, says it arrived (the
  rating form appears), asks for a return; the retailer refuses it from the
  portal's order page with a note; the customer reads the note on the order
  page.

The pages run under their real Content-Security-Policy: a blocked script or
style is a console error and fails the test. Screenshots in
`artifacts/screenshots/<test>/`.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlalchemy import select

from broker.accounts import services as accounts
from broker.board import services as board
from broker.clock import utcnow
from broker.config import Settings
from broker.context import Context
from broker.fulfilment import services as fulfilment
from broker.fulfilment.models import Assignment
from broker.geo.geocoding import LocationQuery
from broker.identity import services as identity
from broker.migrate import upgrade
from broker.pagination import PageRequest
from broker.settlement.services import settle
from tests.e2e.browser import SKIP_WITHOUT_BROWSER, Server, expect, watched_page
from tests.factories import World
from tests.pages import sign_up_verified

pytestmark = SKIP_WITHOUT_BROWSER

PASSWORD = "a long enough password"
WIDTHS = [1280, 390]
_count = itertools.count(1)


@pytest.fixture(scope="module")
def site(_browser_available, tmp_path_factory):
    from web.app import create_app

    url = f"sqlite:///{tmp_path_factory.mktemp('after-browser') / 'after.db'}"
    upgrade(url)
    ctx = Context.from_settings(Settings(database_url=url, admin_token="x", secret_key="k"))
    world = World(ctx)
    maker = world.manufacturer("kettle-co", products=(("KETTLE", 4599),))
    server = Server(create_app(context=ctx))
    try:
        yield ctx, world, maker, server
    finally:
        server.close()
        ctx.engine.dispose()


def retailer(ctx, maker):
    """A signed-up retailer (its store at 94110), a dealer of the maker: (email, retailer id, store id)."""
    n = next(_count)
    email = f"owner{n}@corner.example"
    signed = sign_up_verified(ctx, identity.RetailerSignUp(
        company=f"Corner Bikes {n}", name="Ruth", email=email, password=PASSWORD, store_name=f"Mission {n}",
        location=LocationQuery(postal_code="94110", country="US"), service_radius_km=50))
    accounts.authorise_dealer(ctx, maker.actor, signed.actor.id)
    [store] = accounts.list_stores(ctx, signed.actor, PageRequest()).items
    return email, signed.actor, store


def sign_in(page, server, email):
    page.goto(server.origin + "/signin")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{server.origin}/portal/")


@pytest.mark.parametrize("width", WIDTHS)
def test_a_retailer_gives_its_store_an_address_and_opening_hours(site, browser, shot, width):
    ctx, world, maker, server = site
    email, _, store = retailer(ctx, maker)
    with watched_page(browser, width=width, any_console_error=False) as page:  # the 422 below logs one
        sign_in(page, server, email)
        page.get_by_role("link", name="Stores").click()
        form = page.locator(f"#store-{store.id}")
        expect(form.get_by_label("ZIP code")).to_have_value("94110")
        expect(form).to_contain_text("No opening hours yet")
        shot(page, "stores")
        form.get_by_label("Street address").fill("1 Valencia St")
        form.get_by_label("City").fill("San Francisco")
        for day in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday"):
            form.get_by_label(day).fill("9:00-18:00")
        form.get_by_label("Saturday").fill("18-10")  # closes before it opens
        form.get_by_label("Note (optional)").fill("Closed on public holidays")
        form.get_by_role("button", name=f"Save {store.name}").click()
        form = page.locator(f"#store-{store.id}")
        saturday = form.get_by_label("Saturday")
        expect(saturday).to_have_attribute("aria-invalid", "true")
        expect(form.locator(f"#store-{store.id}-hours_sat-error")).to_contain_text("not after it opens")
        expect(form.get_by_label("Monday")).to_have_value("9:00-18:00")  # what was typed stays
        shot(page, "a-wrong-day")
        saturday.fill("10:00-16:00")
        form.get_by_role("button", name=f"Save {store.name}").click()
        expect(page.get_by_role("status")).to_contain_text(f"{store.name} is saved")
        hours = page.locator(f"#store-{store.id} .store-hours")
        expect(hours).to_contain_text("Mon–Fri 9:00")
        expect(hours).to_contain_text("Sat 10:00")
        expect(hours).to_contain_text("Sun closed. Closed on public holidays")
        expect(page.locator(f"#store-{store.id}").get_by_label("Time zone")).to_have_value("America/Los_Angeles")
        shot(page, "saved")
        if width < 500:  # the form fits a phone: nothing wider than the screen
            assert page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.mark.parametrize("width", WIDTHS)
def test_the_customer_confirms_delivery_asks_a_return_and_reads_the_refusal(site, browser, shot, width):
    ctx, world, maker, server = site
    email, shop_actor, store = retailer(ctx, maker)
    placed = world.order(maker, sku="KETTLE")
    board.place_bid(ctx, shop_actor, board.PlaceBid(world.listing_id(placed.order.id)))
    settle(ctx, as_of=utcnow() + timedelta(hours=ctx.settings.min_board_hours + 1))
    with ctx.uow() as uow:
        assignment_id = uow.session.scalar(select(Assignment.id).where(Assignment.order_id == placed.order.id))
    fulfilment.record_shipment(ctx, shop_actor, assignment_id, fulfilment.RecordShipment("UPS", "1Z999"))

    with watched_page(browser, width=width) as customer:
        customer.goto(f"{server.origin}/s/{maker.slug}/o/{placed.order.id}/{placed.access_token}")
        expect(customer.get_by_role("heading", level=1)).to_have_text(f"Order {placed.order.id}")
        expect(customer.get_by_role("button", name="Send my rating")).to_have_count(0)
        shot(customer, "shipped")
        customer.get_by_role("button", name="I have received it").click()
        expect(customer.locator("#delivered")).to_contain_text("Delivered on")
        expect(customer.get_by_role("button", name="Send my rating")).to_be_visible()
        customer.get_by_label("Why are you returning it?").select_option("damaged")
        customer.get_by_label("Tell the store more").fill("The lid does not close")
        customer.get_by_role("button", name="Ask for a return").click()
        expect(customer.locator("main")).to_contain_text("Waiting for the store's answer")
        shot(customer, "return-asked")

        with watched_page(browser, width=width) as shop:
            sign_in(shop, server, email)
            shop.goto(f"{server.origin}/portal/orders/{assignment_id}")
            expect(shop.locator("main")).to_contain_text("The lid does not close")
            shot(shop, "portal-return")
            shop.get_by_label("Or refuse it, with a note to the customer").fill(
                "It was used: we can repair the lid instead.")
            shop.get_by_role("button", name="Refuse the return").click()
            # The confirmation step: nothing is refused until it is confirmed.
            expect(shop.get_by_role("heading", level=1)).to_have_text(f"Refuse the return of order #{placed.order.id}?")
            expect(shop.locator("main")).to_contain_text("It was used: we can repair the lid instead.")
            shop.get_by_role("button", name="Refuse the return").click()
            expect(shop.get_by_role("status")).to_contain_text("Return of order")
            expect(shop.get_by_role("status")).to_contain_text("refused")
            expect(shop.locator("main")).to_contain_text("Your note: It was used")
            shot(shop, "portal-refused")

        customer.reload()
        expect(customer.locator("main")).to_contain_text("Not accepted")
        expect(customer.locator("main")).to_contain_text("It was used: we can repair the lid instead.")
        expect(customer.get_by_label("Ask again: what has changed?")).to_be_visible()
        shot(customer, "refusal-read")
        if width < 500:
            assert customer.evaluate("document.documentElement.scrollWidth") <= width
