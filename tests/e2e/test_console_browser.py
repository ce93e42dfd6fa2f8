"""The manufacturer console in a real browser (headless Chromium driven by Playwright).

A manufacturer signs in, reads its dashboard (the charts are drawn with its
numbers), imports a catalog file with one bad row (the report names that row;
the good rows are in the catalog), and ships an order nobody bid on from
"Orders to ship". On the storefront page the live preview follows the colour
and name inputs, under the console's strict Content-Security-Policy.

One real server on a real port, on a fresh SQLite file built by the migrations.
Each step leaves a screenshot in `artifacts/screenshots/<test>/<NN>-<step>.png`.
Without Playwright or /usr/bin/chromium the module is skipped, unless
BROKER_REQUIRE_BROWSER=1 (CI), where that is a failure.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from broker.accounts.models import Role
from broker.clock import utcnow
from broker.config import Settings
from broker.context import Context
from broker.identity.services import add_user, reset_password
from broker.migrate import upgrade
from broker.settlement.services import settle
from tests.e2e.browser import SKIP_WITHOUT_BROWSER, Server, chromium, expect, watched_page
from tests.factories import HERE, World, north_of

pytestmark = SKIP_WITHOUT_BROWSER

EMAIL = "console@acme.example"
PASSWORD = "a long enough password"
CUSTOMER = "Grace Hopper"
CSV = (b"sku,name,price,description,image_url,in_stock\n"
       b"HELMET-1,Helmet,49.00,Light and safe,,yes\n"
       b"LAMP-1,Lamp,abc,Bright,,yes\n"
       b"PUMP-1,Floor pump,29.50,,,no\n")


def _week_label(day: datetime) -> str:
    monday = day.date() - timedelta(days=day.weekday())
    return f"{monday.day} {monday.strftime('%b')}"


class Console:
    def __init__(self, ctx: Context, server: Server, slug: str, fallback_order_id: int, last_week: datetime):
        self.ctx, self.server, self.slug = ctx, server, slug
        self.fallback_order_id, self.last_week = fallback_order_id, last_week

    def url(self, path: str) -> str:
        return self.server.origin + path


@pytest.fixture(scope="module")
def console(_browser_available, tmp_path_factory):
    from web.app import create_app

    url = f"sqlite:///{tmp_path_factory.mktemp('console') / 'console.db'}"
    upgrade(url)
    ctx = Context.from_settings(Settings(database_url=url, admin_token="x", secret_key="k"))
    world = World(ctx)
    acme = world.manufacturer("acme", products=(("SKU-1", 45900),))
    shop = world.retailer(north_of(HERE, 3), dealer_of=[acme], name="Corner Cycles")
    # Last week: two orders; the retailer bids on one, nobody on the other.
    last_week = utcnow() - timedelta(weeks=1)
    placed = [world.order(acme, when=last_week, name=f"Customer {n}").order.id for n in (1, 2)]
    world.bid(shop, placed[0], when=last_week + timedelta(hours=1))
    settle(world.at(last_week + timedelta(hours=13)), as_of=last_week + timedelta(hours=13))
    # Today: an order nobody bids on, settled to the manufacturer (as_of in the future).
    fallback = world.order(acme, name=CUSTOMER).order.id
    settle(ctx, as_of=utcnow() + timedelta(hours=13))
    _, link = add_user(ctx, role=Role.MANUFACTURER, company_id=acme.id, email=EMAIL, name="Ada Admin")
    reset_password(ctx, link.rsplit("/", 1)[1], PASSWORD)

    server = Server(create_app(context=ctx))
    try:
        yield Console(ctx, server, acme.slug, fallback, last_week)
    finally:
        server.close()
        ctx.engine.dispose()


@pytest.fixture(scope="module")
def browser(console):
    """Depends on `console` so that it closes before the server stops."""
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser):
    # The flow submits a blank shipment on purpose; its 422 is logged as a console error.
    with watched_page(browser, any_console_error=False) as page:
        yield page


def _sign_in(console: Console, page) -> None:
    page.goto(console.url("/console/"))
    expect(page).to_have_url(re.compile(r"/signin\?next="))
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(console.url("/console/"))


def test_manufacturer_reads_imports_and_ships(console, page, shot):
    _sign_in(console, page)
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    expect(page.locator("#card-orders")).to_have_text("3")
    expect(page.locator("#card-to-ship")).to_have_text("2")

    # Orders by state: a bar per state shown; all three orders are awarded.
    states = page.locator("svg#chart-states")
    expect(states).to_be_visible()
    expect(states.locator("rect.bar")).to_have_count(4)  # open, awarded, shipped, delivered
    expect(states.locator('rect.bar[data-label="awarded"]')).to_have_attribute("data-value", "3")
    expect(states.locator("text.label")).to_have_text(["open", "awarded", "shipped", "delivered"])

    # Who fulfilled: last week one to the retailer and one to itself, this week one to itself.
    fulfilment = page.locator("svg#chart-fulfilment")
    expect(fulfilment.locator("rect.bar")).to_have_count(3)
    last = _week_label(console.last_week)
    this = _week_label(datetime.now(UTC))
    expect(fulfilment.locator(f'rect.bar[data-label="{last}"][data-series="Retailers"]')) \
        .to_have_attribute("data-value", "1")
    expect(fulfilment.locator(f'rect.bar[data-label="{last}"][data-series="You"]')) \
        .to_have_attribute("data-value", "1")
    expect(fulfilment.locator(f'rect.bar[data-label="{this}"][data-series="You"]')) \
        .to_have_attribute("data-value", "1")
    expect(fulfilment.locator("text.label")).to_have_count(12)
    # Lapse rate: one point, last week's 0 %; distance: one point, about 3 km.
    expect(page.locator("svg#chart-lapses circle.point")).to_have_count(1)
    expect(page.locator(f'svg#chart-lapses circle.point[data-label="{last}"]')).to_have_attribute("data-value", "0")
    distance = page.locator(f'svg#chart-distance circle.point[data-label="{last}"]')
    expect(distance).to_have_count(1)
    assert float(distance.get_attribute("data-value")) == pytest.approx(3.0, abs=0.1)
    # The numbers are also in a table for those who cannot see the chart.
    page.get_by_text("The numbers").first.click()
    expect(page.get_by_role("row", name="awarded 3")).to_be_visible()
    shot(page, "dashboard")

    # Import a catalog with one bad row.
    page.get_by_role("link", name="Catalog").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Catalog")
    page.set_input_files("#file", files=[{"name": "catalog.csv", "mimeType": "text/csv", "buffer": CSV}])
    shot(page, "catalog-before-import")
    page.get_by_role("button", name="Import").click()
    report = page.locator("#import-report")
    expect(report).to_contain_text("2 rows applied, 1 with errors")
    bad = page.locator("#import-errors tbody tr")
    expect(bad).to_have_count(1)
    expect(bad.first).to_have_attribute("data-row", "3")
    expect(bad.first).to_contain_text("LAMP-1")
    expect(bad.first).to_contain_text("'abc' is not an amount")
    products = page.locator("#products")
    expect(products.locator('tr[data-sku="HELMET-1"]')).to_contain_text("49.00 USD")
    expect(products.locator('tr[data-sku="PUMP-1"]')).to_contain_text("sold out")
    expect(products.locator('tr[data-sku="LAMP-1"]')).to_have_count(0)
    shot(page, "import-report")

    # Ship the order nobody bid on.
    page.get_by_role("link", name="To ship").click()
    order_id = console.fallback_order_id
    section = page.locator("section.console-shipment", has_text=CUSTOMER)
    expect(section).to_have_count(1)
    expect(section).to_contain_text("1 Secret Lane")
    section.get_by_role("button", name=f"Record the shipment of order {order_id}").click()
    # Nothing typed: the error stands beside the field, nothing is shipped.
    section = page.locator("section.console-shipment", has_text=CUSTOMER)
    expect(section.locator(".console-field-error").first).to_have_text("must not be blank")
    shot(page, "to-ship-blank")
    section.get_by_label("Carrier").fill("DHL")
    section.get_by_label("Tracking number").fill("JD0001")
    shot(page, "to-ship-filled")
    section.get_by_role("button", name=f"Record the shipment of order {order_id}").click()
    expect(page.get_by_role("status")).to_contain_text(f"Order {order_id} is shipped (DHL JD0001)")
    expect(page.locator("section.console-shipment", has_text=CUSTOMER)).to_have_count(0)
    shot(page, "shipped")

    page.goto(console.url(f"/console/orders/{order_id}"))
    expect(page.locator("#order-status")).to_have_text("shipped")
    expect(page.get_by_text("DHL JD0001")).to_be_visible()
    shot(page, "order-detail")


def test_storefront_preview_follows_the_inputs(console, page, shot):
    _sign_in(console, page)
    page.get_by_role("link", name="Storefront").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Storefront")
    header = page.locator(".console-preview-header")
    expect(header).to_have_css("background-color", "rgb(29, 78, 216)")  # the default #1d4ed8
    expect(page.locator("#embed-snippet")).to_contain_text(f"/s/{console.slug}/embed.js")
    frame = page.frame_locator("iframe.console-store-frame")
    expect(frame.get_by_role("heading", level=1)).to_be_visible()
    shot(page, "storefront")

    page.get_by_label("Primary colour").fill("#ff0000")
    page.get_by_label("Store name").fill("Acme Red")
    expect(header).to_have_css("background-color", "rgb(255, 0, 0)")
    expect(header).to_contain_text("Acme Red")
    shot(page, "preview-changed")

    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Saved the storefront's look.")
    expect(frame.locator("header")).to_have_css("background-color", "rgb(255, 0, 0)")
    shot(page, "saved")
