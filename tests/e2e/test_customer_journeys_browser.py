"""The customer's journeys after checkout, in a real browser (headless Chromium
driven by Playwright), each at 1280 and 390 px wide, as their users:

* buy and pick up: the order is settled to the nearest store; the order page
  names the store, its street and opening hours and shows the pickup code; the
  store enters the code in the portal; the customer's page reads "Collected";
* post a personal request, authorise the card (the offline provider's form),
  accept an offer (confirmed first), follow the order it became, write to the
  shop and read its answer, confirm delivery and rate the shop;
* ask for a return with a reason and see it accepted and refunded.

Every page runs under its real Content-Security-Policy (a blocked script or
style fails the test), fits the width with no sideways scrolling, and axe-core
finds no serious or critical violation on the order, pickup order, request
form, request, and erase pages. Screenshots in `artifacts/screenshots/<test>/`.
"""

from __future__ import annotations

import itertools
import re
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
from broker.orders import services as orders
from broker.orders.models import Delivery
from broker.pagination import PageRequest
from broker.settlement.services import settle
from tests.e2e.browser import SKIP_WITHOUT_BROWSER, Server, expect, watched_page
from tests.e2e.browser import serious_axe_violations
from tests.factories import World
from tests.pages import sign_up_verified

pytestmark = SKIP_WITHOUT_BROWSER

PASSWORD = "a long enough password"
WIDTHS = [1280, 390]
_count = itertools.count(1)
HOURS = {"mon": [{"opens": "09:00", "closes": "18:00"}], "tue": [{"opens": "09:00", "closes": "18:00"}],
         "wed": [{"opens": "09:00", "closes": "18:00"}], "thu": [{"opens": "09:00", "closes": "18:00"}],
         "fri": [{"opens": "09:00", "closes": "18:00"}], "sat": [{"opens": "10:00", "closes": "16:00"}]}


@pytest.fixture(scope="module")
def site(_browser_available, tmp_path_factory):
    from web.app import create_app

    url = f"sqlite:///{tmp_path_factory.mktemp('journeys-browser') / 'journeys.db'}"
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
    """A signed-up retailer whose store (at 94110) has a street and opening hours,
    a dealer of the maker: (email, actor, store)."""
    n = next(_count)
    email = f"owner{n}@corner.example"
    signed = sign_up_verified(ctx, identity.RetailerSignUp(
        company=f"Corner Bikes {n}", name="Ruth", email=email, password=PASSWORD, store_name=f"Mission {n}",
        location=LocationQuery(postal_code="94110", country="US"), service_radius_km=50))
    accounts.authorise_dealer(ctx, maker.actor, signed.actor.id)
    [store] = accounts.list_stores(ctx, signed.actor, PageRequest()).items
    accounts.update_store(ctx, signed.actor, store.id, accounts.StoreChanges(
        address={"line1": "1 Valencia St", "city": "San Francisco", "postal_code": "94110", "country": "US"},
        hours=HOURS))
    return email, signed.actor, store


def sign_in(page, server, email):
    page.goto(server.origin + "/signin")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{server.origin}/portal/")


def settle_now(ctx):
    settle(ctx, as_of=utcnow() + timedelta(hours=ctx.settings.min_board_hours + 1))


def assignment_of(ctx, order_id: int) -> int:
    with ctx.uow() as uow:
        return uow.session.scalar(select(Assignment.id).where(Assignment.order_id == order_id)
                                  .order_by(Assignment.id.desc()))


def fits(page, width: int) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px at {width}px"


def accessible(page) -> None:
    serious = serious_axe_violations(page)
    assert serious == [], f"{page.url}: {serious}"


@pytest.mark.parametrize("width", WIDTHS)
def test_buy_and_pick_up(site, browser, shot, width):
    ctx, world, maker, server = site
    email, shop_actor, store = retailer(ctx, maker)
    placed = orders.place_order(ctx, maker.slug, orders.PlaceOrder(
        items=[orders.Item("KETTLE", 1)], customer=orders.Customer("Pat Pickup", "pat@example.com"),
        ship_to=orders.Address("", "San Francisco", "94103", "US"), delivery=Delivery.PICKUP))
    link = f"{server.origin}/s/{maker.slug}/o/{placed.order.id}/{placed.access_token}"

    with watched_page(browser, width=width) as customer:
        customer.goto(link)
        expect(customer.locator("#pickup-code")).to_have_text(placed.pickup_code)
        expect(customer.locator("#pickup-pending")).to_contain_text("once one has it")
        expect(customer.locator("main")).not_to_contain_text("Ship to")
        shot(customer, "waiting-for-a-store")

        board.place_bid(ctx, shop_actor, board.PlaceBid(world.listing_id(placed.order.id)))
        settle_now(ctx)
        customer.reload()
        section = customer.locator("#pickup-store")
        expect(section).to_contain_text(f"Collect it from {store.name}")
        expect(section).to_contain_text("1 Valencia St")
        expect(section).to_contain_text("Opening hours: Mon–Fri")
        expect(customer.locator("#status")).to_have_text("ready for pickup")
        expect(customer.locator(".timeline")).to_contain_text("Ready for pickup")
        expect(customer.locator(".timeline")).not_to_contain_text("Shipped")
        expect(customer.locator("#pickup-code")).to_have_text(placed.pickup_code)
        fits(customer, width)
        accessible(customer)
        shot(customer, "ready-for-pickup")

        with watched_page(browser, width=width, any_console_error=False) as shop:  # a wrong code is a 422
            sign_in(shop, server, email)
            shop.goto(f"{server.origin}/portal/orders/{assignment_of(ctx, placed.order.id)}")
            expect(shop.locator("main")).to_contain_text("Pat Pickup")
            expect(shop.locator("main")).not_to_contain_text("94103")  # the customer's place stays theirs
            shop.get_by_label("The customer's pickup code").fill(placed.pickup_code)
            shop.get_by_role("button", name="Handed over").click()
            expect(shop.get_by_role("status")).to_contain_text("Handed over")
            shot(shop, "portal-handed-over")

        customer.reload()
        expect(customer.locator("#status")).to_have_text("collected")
        expect(customer.locator("#delivered")).to_contain_text("Collected on")
        expect(customer.get_by_role("button", name="Send my rating")).to_be_visible()
        fits(customer, width)
        shot(customer, "collected")


@pytest.mark.parametrize("width", WIDTHS)
def test_post_a_request_pay_accept_follow_message_and_rate(site, browser, shot, width):
    ctx, world, maker, server = site
    email, shop_actor, store = retailer(ctx, maker)
    with watched_page(browser, width=width, any_console_error=False) as customer:  # the first try is a 422
        customer.goto(f"{server.origin}/requests/new")
        expect(customer.get_by_label("Currency")).to_have_value("USD")
        fits(customer, width)
        accessible(customer)
        shot(customer, "form")
        # Everything wrong at once: the summary takes the focus and names each field.
        customer.get_by_label("The most you will pay", exact=True).fill("lots")
        customer.get_by_role("button", name="Ask the shops").click()
        summary = customer.locator("#error-summary")
        expect(summary).to_be_focused()
        expect(summary).to_contain_text("What do you want?")
        expect(summary).to_contain_text("The most you will pay")
        expect(customer.get_by_label("Street address", exact=True)).to_have_attribute("aria-invalid", "true")
        accessible(customer)
        shot(customer, "every-error")

        customer.get_by_label("What do you want?").fill("A copper kettle, 1.5 litres")
        customer.get_by_label("How many").fill("2")
        customer.get_by_label("The most you will pay", exact=True).fill("2,100.00")
        customer.get_by_label("Name", exact=True).fill("Quinn Request")
        customer.get_by_label("Street address", exact=True).fill("5 Hidden Way")
        customer.get_by_label("City", exact=True).fill("San Francisco")
        customer.get_by_label("ZIP code").fill("94103")
        customer.get_by_label("Authorise a test payment for the most you will pay").check()
        customer.get_by_role("button", name="Ask the shops").click()
        expect(customer.get_by_role("status").first).to_contain_text("Your request is on the board")
        expect(customer.locator("#request-summary")).to_contain_text("2 wanted, for up to $2,100.00 in all")
        expect(customer.locator("#status")).to_have_text("open for offers")
        fits(customer, width)
        accessible(customer)
        shot(customer, "posted")
        request_path = re.search(r"/requests/\d+", customer.url).group(0)
        request_id = int(request_path.rsplit("/", 1)[1])

        # A shop offers; the customer accepts it, confirming first.
        with ctx.uow() as uow:
            from broker.board.models import Listing
            listing_id = uow.session.scalar(select(Listing.id).where(Listing.request_id == request_id))
        board.place_bid(ctx, shop_actor, board.PlaceBid(listing_id, price=189900))
        customer.reload()
        offer = customer.locator(".offers li").first
        expect(offer).to_contain_text("Corner Bikes")
        expect(offer).to_contain_text("$1,899.00")
        offer.get_by_role("link", name="Accept…").click()
        expect(customer.get_by_role("heading", level=1)).to_have_text("Accept this offer?")
        shot(customer, "confirm-accept")
        customer.get_by_role("button", name="Yes, accept this offer").click()
        expect(customer.locator("#done")).to_contain_text("You accepted the offer")
        expect(customer.locator("#status")).to_have_text("with a store")
        fits(customer, width)
        accessible(customer)
        shot(customer, "the-order")

        # The customer writes; the shop answers from the portal; the customer reads it.
        customer.get_by_label(re.compile("Write to ")).fill("Could you leave it with the neighbour at no. 7?")
        customer.get_by_role("button", name="Send the message").click()
        expect(customer.locator("#done")).to_contain_text("Your message is sent")
        order_id = int(re.search(r"Order (\d+)", customer.locator("h1").inner_text()).group(1))
        assignment_id = assignment_of(ctx, order_id)
        with watched_page(browser, width=width) as shop:
            sign_in(shop, server, email)
            shop.goto(f"{server.origin}/portal/orders/{assignment_id}")
            expect(shop.locator("#messages")).to_contain_text("leave it with the neighbour")
            shop.get_by_label("Write to the customer").fill("Will do, it ships today.")
            shop.get_by_role("button", name="Send the message").click()
            expect(shop.get_by_role("status")).to_contain_text("Message sent")
            fits(shop, width)
            shot(shop, "portal-thread")
            shop.get_by_label("Carrier").fill("UPS")
            shop.get_by_label("Tracking number").fill("1Z999AA10123456784")
            shop.get_by_role("button", name="Record the shipment").click()
            expect(shop.get_by_role("status")).to_contain_text("Shipment recorded")

        customer.reload()
        expect(customer.locator("#messages")).to_contain_text("Will do, it ships today.")
        expect(customer.locator("main")).to_contain_text("tracking number 1Z999AA10123456784")
        customer.get_by_role("button", name="I have received it").click()
        expect(customer.locator("#delivered")).to_contain_text("Delivered on")
        customer.get_by_label("Stars").select_option("5")
        customer.get_by_role("button", name="Send my rating").click()
        expect(customer.locator("#done")).to_contain_text("Thank you for your rating")
        expect(customer.locator("main")).to_contain_text("You rated it 5")
        fits(customer, width)
        shot(customer, "rated")

        customer.goto(f"{server.origin}{request_path}")
        expect(customer.locator(".offers li.winner")).to_contain_text("Winner")
        accessible(customer)
        customer.get_by_role("link", name="Erase my data").click()
        expect(customer.get_by_role("heading", level=1)).to_contain_text("Erase my data")
        fits(customer, width)
        accessible(customer)
        shot(customer, "erase-page")


@pytest.mark.parametrize("width", WIDTHS)
def test_ask_for_a_return_and_see_it_accepted_and_refunded(site, browser, shot, width):
    ctx, world, maker, server = site
    email, shop_actor, _ = retailer(ctx, maker)
    placed = world.order(maker, sku="KETTLE")
    board.place_bid(ctx, shop_actor, board.PlaceBid(world.listing_id(placed.order.id)))
    settle_now(ctx)
    assignment_id = assignment_of(ctx, placed.order.id)
    fulfilment.record_shipment(ctx, shop_actor, assignment_id, fulfilment.RecordShipment("UPS", "1Z999"))

    with watched_page(browser, width=width, any_console_error=False) as customer:  # an empty reason is a 422
        customer.goto(f"{server.origin}/s/{maker.slug}/o/{placed.order.id}/{placed.access_token}")
        customer.get_by_role("button", name="Ask for a return").click()
        expect(customer.locator("#reason_kind-error")).to_contain_text("choose why it goes back")
        customer.get_by_label("Why are you returning it?").select_option("damaged")
        customer.get_by_label("Tell the store more").fill("The lid came off in the box")
        customer.get_by_role("button", name="Ask for a return").click()
        expect(customer.locator("#done")).to_contain_text("Your return request is sent")
        expect(customer.locator("main")).to_contain_text("Waiting for the store's answer")
        fits(customer, width)
        accessible(customer)
        shot(customer, "return-asked")

        with watched_page(browser, width=width) as shop:
            sign_in(shop, server, email)
            shop.goto(f"{server.origin}/portal/orders/{assignment_id}")
            expect(shop.locator("main")).to_contain_text("Arrived damaged: The lid came off in the box")
            shop.get_by_role("button", name="Accept the return and refund the card…").click()
            # The confirmation step, then the refund.
            shop.get_by_role("button", name="Accept the return and refund the card", exact=True).click()
            expect(shop.get_by_role("status")).to_contain_text("accepted")
            shot(shop, "portal-accepted")

        customer.reload()
        expect(customer.locator("main")).to_contain_text("$45.99 refunded to your card")
        fits(customer, width)
        accessible(customer)
        shot(customer, "refunded")
        customer.get_by_role("link", name="Erase my data").click()
        expect(customer.get_by_role("heading", level=1)).to_contain_text("Erase my data")
        accessible(customer)
        shot(customer, "erase-page")
