"""The customer's journey to checkout in a real browser (headless Chromium),
at 1280 and 390 px wide: search the catalog, open a product (its picture
shipped with Broker), fill the cart, check out with one pass of errors (the
summary takes the focus, each field says what is wrong), land on the order page;
a reload and a double click place nothing more; cancelling asks first and
says it is done; the store ships the other order and its page says so. Then the Stripe Payment Element path against the fake
Stripe, and the store's branded 404 page.

Every page: no sideways scrolling, no serious or critical axe-core violation,
no script or Content-Security-Policy error. Screenshots in
`artifacts/screenshots/<test>/`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from broker.catalog import services as catalog
from broker.config import Settings
from broker.context import Context
from broker.fulfilment import services as fulfilment
from broker.fulfilment.models import Assignment
from broker.migrate import upgrade
from broker.models import Order
from broker.settlement.services import settle
from broker.storefront.services import Branding, update_branding
from tests.e2e.browser import SKIP_WITHOUT_BROWSER, Server, expect, free_port, watched_page
from tests.e2e.browser import assert_no_sideways_scrolling as _no_sideways_scrolling
from tests.e2e.browser import serious_axe_violations as _serious_axe_violations
from tests.factories import World

pytestmark = SKIP_WITHOUT_BROWSER

STORE = "Northwind Cycles"
WIDTHS = [1280, 390]
PRODUCTS = [("NW-HELMET", "Commuter helmet", 7900, "With a rear light built in.", "nw-helmet"),
            ("NW-LOCK", "U-lock", 5900, "Hardened steel, two keys.", "nw-lock"),
            ("NW-LIGHTS", "Light set", 4900, "Front and rear, USB-C.", "nw-lights")]


@dataclasses.dataclass
class Site:
    ctx: Context
    maker: object
    server: Server

    def url(self, path: str) -> str:
        return self.server.origin + path

    def orders(self) -> int:
        with self.ctx.uow() as uow:
            return uow.session.scalar(select(func.count()).select_from(Order))


def _build(tmp_path_factory, name: str, **settings) -> tuple[Context, object, Server]:
    from web.app import create_app

    url = f"sqlite:///{tmp_path_factory.mktemp(name) / 'shop.db'}"
    upgrade(url)
    port = free_port()
    ctx = Context.from_settings(Settings(database_url=url, admin_token="x", secret_key="k",
                                         public_url=f"http://127.0.0.1:{port}", **settings))
    maker = World(ctx).manufacturer("northwind", products=())
    for sku, title, price, description, image in PRODUCTS:
        catalog.add_product(ctx, maker.actor, catalog.NewProduct(sku, title, price, description,
                                                                image_url=f"/static/products/{image}.svg"))
    update_branding(ctx, maker.actor, Branding(name=STORE, color_primary="#fde047"))  # yellow: dark text on it
    return ctx, maker, Server(create_app(context=ctx), port)


@pytest.fixture(scope="module")
def site(_browser_available, tmp_path_factory):
    ctx, maker, server = _build(tmp_path_factory, "journey")
    try:
        yield Site(ctx, maker, server)
    finally:
        server.close()
        ctx.engine.dispose()


def _checked(page, shot, step: str) -> None:
    """The page fits, passes axe-core, and is photographed."""
    page.wait_for_load_state("load")
    _no_sideways_scrolling(page)
    assert _serious_axe_violations(page) == [], step
    shot(page, step)


@pytest.mark.parametrize("width", WIDTHS)
def test_buy_and_ship_in_the_pages(site, browser, shot, width):
    before = site.orders()
    with watched_page(browser, width=width, any_console_error=False) as page:
        page.goto(site.url("/s/northwind/"))
        expect(page.get_by_role("heading", level=1)).to_have_text(STORE)
        expect(page.locator("img[src='/static/products/nw-lock.svg']")).to_be_visible()
        _checked(page, shot, "catalog")

        page.get_by_label("Search the shop").fill("helmet")
        page.get_by_role("button", name="Search").click()
        expect(page.locator("#search-result")).to_contain_text("1 product found")
        expect(page.get_by_role("link", name="U-lock")).to_have_count(0)
        _checked(page, shot, "search")

        page.get_by_role("link", name="Commuter helmet").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Commuter helmet")
        expect(page.get_by_role("img", name="Commuter helmet")).to_be_visible()
        _checked(page, shot, "product")

        page.get_by_role("button", name="Add to cart").click()
        expect(page.get_by_role("link", name="Cart (1)")).to_be_visible()
        _checked(page, shot, "cart")

        page.get_by_role("link", name="Check out").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Checkout")
        expect(page.locator("#order-summary")).to_contain_text("Commuter helmet")
        expect(page.locator("#order-total")).to_have_text("$79.00")
        expect(page.get_by_label("Country")).to_have_value("US")
        _checked(page, shot, "checkout")

        # One pass of errors: an address that cannot receive mail, no city.
        page.get_by_label("Full name").fill("Ada Lovelace")
        page.get_by_label("Email").fill("ada@")
        page.get_by_label("Street address").fill("12 Analytical Row")
        page.get_by_label("State").select_option("CA")
        page.get_by_label("ZIP code").fill("94103")
        page.get_by_role("button", name="Place the order").click()
        summary = page.locator("#error-summary")
        expect(summary).to_be_visible()
        expect(summary).to_be_focused()
        expect(summary).to_contain_text("Email")
        expect(summary).to_contain_text("City")
        expect(page.get_by_label("Email")).to_have_attribute("aria-invalid", "true")
        expect(page.get_by_label("City")).to_have_attribute("aria-invalid", "true")
        expect(page.get_by_label("Full name")).to_have_value("Ada Lovelace")  # kept
        assert site.orders() == before
        _checked(page, shot, "checkout-errors")

        page.get_by_label("Email").fill("ada@example.com")
        page.get_by_label("City").fill("San Francisco")
        page.get_by_role("button", name="Place the order").click()
        expect(page.get_by_role("status").first).to_contain_text("your order is placed")
        expect(page).to_have_url(re.compile(r"/s/northwind/o/\d+\?new=1$"))
        assert site.orders() == before + 1
        order_id = int(re.search(r"/o/(\d+)", page.url).group(1))
        shot(page, "placed")

        page.reload()  # post/redirect/get: a reload is a GET
        expect(page.locator("#status")).to_have_attribute("data-status", "open")
        assert site.orders() == before + 1

        # A double click on "Place the order" places one order.
        page.goto(site.url("/s/northwind/checkout?cart=NW-LOCK:1"))
        page.get_by_label("Full name").fill("Ada Lovelace")
        page.get_by_label("Email").fill("ada@example.com")
        page.get_by_label("Street address").fill("12 Analytical Row")
        page.get_by_label("City").fill("San Francisco")
        page.get_by_label("State").select_option("CA")
        page.get_by_label("ZIP code").fill("94103")
        page.get_by_role("button", name="Place the order").dblclick()
        expect(page.locator("#status")).to_have_attribute("data-status", "open")
        assert site.orders() == before + 2

        # Cancelling it asks first, then says it is done.
        page.get_by_role("link", name="Cancel the order").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Cancel order")
        _checked(page, shot, "cancel-confirmation")
        page.get_by_role("button", name="Yes, cancel the order").click()
        expect(page.locator("#done")).to_contain_text("Your order is cancelled")
        expect(page.locator("#status")).to_have_attribute("data-status", "cancelled")
        _checked(page, shot, "cancelled")

        # The store ships the first order: nobody bid, so its maker does.
        with site.ctx.uow() as uow:
            listed = uow.session.get(Order, order_id).created_at
        settle(site.ctx, as_of=listed + timedelta(hours=13))  # after the bidding window
        with site.ctx.uow() as uow:
            assignment = uow.session.scalar(select(Assignment).where(Assignment.order_id == order_id))
        fulfilment.record_shipment(site.ctx, site.maker.actor, assignment.id,
                                   fulfilment.RecordShipment("UPS", "1Z999AA10123456784"))
        page.goto(site.url(f"/s/northwind/o/{order_id}"))
        expect(page.locator("#status")).to_have_attribute("data-status", "shipped")
        expect(page.get_by_text("1Z999AA10123456784")).to_be_visible()
        _checked(page, shot, "shipped")


@pytest.mark.parametrize("width", WIDTHS)
def test_the_stores_404_page(site, browser, shot, width):
    with watched_page(browser, width=width, any_console_error=False) as page:
        response = page.goto(site.url("/s/northwind/p/NOPE"))
        assert response.status == 404
        expect(page.get_by_role("heading", level=1)).to_have_text("We cannot find that page")
        expect(page.get_by_role("link", name=STORE).first).to_be_visible()
        _checked(page, shot, "not-found")
        page.get_by_role("link", name=f"Back to {STORE}'s shop").click()
        expect(page.get_by_role("heading", level=1)).to_have_text(STORE)


# --- Stripe's Payment Element, against the fake Stripe -----------------------------------

# Stripe.js must come from js.stripe.com, which a test may not reach: the browser is
# given this stand-in at that address. It draws a card field, and "confirms" the
# payment as Stripe.js does: by sending the browser to the return URL.
STRIPE_JS = """
window.Stripe = function (key) {
  return {
    elements: function (options) {
      return {
        create: function () {
          return { mount: function (selector) {
            var label = document.createElement("label");
            label.textContent = "Card number";
            var input = document.createElement("input");
            input.autocomplete = "cc-number";
            label.appendChild(input);
            document.querySelector(selector).appendChild(label);
            document.querySelector(selector).setAttribute("data-client-secret", options.clientSecret);
          } };
        }
      };
    },
    confirmPayment: function (args) {
      var secret = document.querySelector("#payment-element").getAttribute("data-client-secret");
      var intent = secret.split("_secret_")[0];
      window.location.href = args.confirmParams.return_url + "&payment_intent=" + intent + "&redirect_status=succeeded";
      return new Promise(function () {});
    }
  };
};
"""


@pytest.fixture(scope="module")
def stripe_site(_browser_available, tmp_path_factory):
    from tests.fakes.stripe_server import FakeStripe

    with FakeStripe() as fake:
        ctx, maker, server = _build(tmp_path_factory, "stripe", stripe_secret_key="sk_test_shop",
                                    stripe_publishable_key="pk_test_shop", stripe_webhook_secret="whsec_test",
                                    stripe_api_base=fake.url)
        try:
            yield Site(ctx, maker, server), fake
        finally:
            server.close()
            ctx.payments.close()
            ctx.engine.dispose()


@pytest.mark.parametrize("width", WIDTHS)
def test_checkout_with_stripes_payment_element(stripe_site, browser, shot, width):
    import urllib.request

    from tests.fakes.stripe_server import event, sign

    site, fake = stripe_site
    before = site.orders()
    with watched_page(browser, width=width, any_console_error=False) as page:
        page.route("https://js.stripe.com/v3/", lambda route: route.fulfill(
            status=200, content_type="text/javascript", body=STRIPE_JS))
        page.goto(site.url("/s/northwind/checkout?cart=NW-HELMET:2"))
        expect(page.get_by_label("Approve a test payment")).to_have_count(0)  # a real card here
        page.get_by_label("Full name").fill("Grace Hopper")
        page.get_by_label("Email").fill("grace@example.com")
        page.get_by_label("Street address").fill("1 Market St")
        page.get_by_label("City").fill("San Francisco")
        page.get_by_label("State").select_option("CA")
        page.get_by_label("ZIP code").fill("94105")
        page.get_by_role("button", name="Place the order").click()

        expect(page).to_have_url(re.compile(r"/s/northwind/o/\d+/pay\?new=1$"))
        expect(page.get_by_role("heading", level=1)).to_have_text("Payment")
        expect(page.get_by_label("Card number")).to_be_visible()
        assert site.orders() == before + 1
        _checked(page, shot, "payment-element")
        page.reload()  # the payment page is a GET: a reload places nothing
        expect(page.get_by_label("Card number")).to_be_visible()
        assert site.orders() == before + 1

        page.get_by_label("Card number").fill("4242 4242 4242 4242")
        page.get_by_role("button", name="Pay").click()
        expect(page).to_have_url(re.compile(r"/s/northwind/o/\d+\?new=1&payment_intent=pi_"))
        intent = re.search(r"payment_intent=(pi_\w+)", page.url).group(1)

        # Stripe confirms the card and tells Broker by webhook.
        authorised = fake.authorize(intent)
        body = json.dumps(event("payment_intent.amount_capturable_updated", authorised)).encode()
        request = urllib.request.Request(site.url("/webhooks/stripe"), data=body, method="POST", headers={
            "Stripe-Signature": sign(body, "whsec_test"), "Content-Type": "application/json"})
        with urllib.request.urlopen(request) as answer:  # noqa: S310 (our own server)
            assert answer.status == 200
        page.reload()
        expect(page.locator("#status")).to_have_attribute("data-status", "open")
        _checked(page, shot, "paid")
