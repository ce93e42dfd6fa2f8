"""Money in a real browser (headless Chromium driven by Playwright).

* A retailer finds what it earned last week (on its store's clock) and downloads
  that week's statement: the CSV's rows are the page's numbers.
* A manufacturer refunds half of a shipped order from the console's order page,
  through the confirmation step, sees the refund in the dashboard's revenue, and
  the ledger check balances.
* axe-core finds no serious or critical violation on the earnings pages, the
  dashboard's revenue, the orders search and the refund page; at 390 px wide
  the money pages do not scroll sideways.

One real server on a real port, on a fresh SQLite file built by the migrations.
Screenshots in `artifacts/screenshots/<test>/`. Without Playwright or
/usr/bin/chromium the module is skipped, unless BROKER_REQUIRE_BROWSER=1 (CI).
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from broker.accounts.models import Role, Store
from broker.clock import utcnow
from broker.config import Settings
from broker.context import Context
from broker.fulfilment import services as fulfilment
from broker.fulfilment.models import Assignment
from broker.identity.services import add_user, reset_password
from broker.ledger import services as ledger
from broker.migrate import upgrade
from broker.payments.models import Payment
from broker.settlement.services import settle
from tests.e2e.browser import SKIP_WITHOUT_BROWSER, Server, chromium, expect, free_port, watched_page
from tests.e2e.browser import assert_no_sideways_scrolling as _no_sideways_scrolling
from tests.e2e.browser import serious_axe_violations as _serious_axe_violations
from tests.factories import HERE, World, north_of

pytestmark = SKIP_WITHOUT_BROWSER

PASSWORD = "a long enough password"
SHOP_EMAIL = "shop@corner.example"
MAKER_EMAIL = "money@acme.example"


class Scene:
    def __init__(self, ctx, server, zone, last_week_order, this_week_order, last_monday):
        self.ctx, self.server, self.zone = ctx, server, zone
        self.last_week_order, self.this_week_order = last_week_order, this_week_order
        self.last_monday = last_monday

    def url(self, path: str) -> str:
        return self.server.origin + path


def _ship(world, ctx, maker, shop, at: datetime) -> int:
    """An order placed 30 hours before `at`, won by the shop, shipped at `at`."""
    placed = world.order(maker, when=at - timedelta(hours=30))
    world.bid(shop, placed.order.id, when=at - timedelta(hours=29))
    settle(world.at(at - timedelta(hours=16)), as_of=at - timedelta(hours=16))
    with ctx.uow() as uow:
        assignment = uow.session.scalar(select(Assignment.id).where(Assignment.order_id == placed.order.id))
    fulfilment.record_shipment(world.at(at), shop.actor, assignment, fulfilment.RecordShipment("UPS", "1Z42"))
    return placed.order.id


@pytest.fixture(scope="module")
def scene(_browser_available, tmp_path_factory):
    from web.app import create_app

    url = f"sqlite:///{tmp_path_factory.mktemp('money') / 'money.db'}"
    upgrade(url)
    port = free_port()  # the provider's onboarding sends the browser back to BROKER_PUBLIC_URL
    ctx = Context.from_settings(Settings(database_url=url, admin_token="x", secret_key="k",
                                         public_url=f"http://127.0.0.1:{port}"))
    world = World(ctx)
    acme = world.manufacturer("acme", products=(("SKU-1", 10000),))
    shop = world.retailer(north_of(HERE, 3), dealer_of=[acme], name="Corner Cycles")
    with ctx.uow() as uow:
        zone = uow.session.scalar(select(Store.timezone).where(Store.retailer_id == shop.id))
    # Last week's Wednesday at noon, and this week's first hours, on the shop's clock.
    today = utcnow().astimezone(ZoneInfo(zone)).date()
    monday = today - timedelta(days=today.weekday())
    last_wednesday = datetime.combine(monday - timedelta(days=5), time(12), ZoneInfo(zone))
    last_week_order = _ship(world, ctx, acme, shop, last_wednesday)
    this_week_order = _ship(world, ctx, acme, shop, min(utcnow() - timedelta(minutes=5),
                                                        datetime.combine(monday, time(0, 30), ZoneInfo(zone))))
    for role, company, email in ((Role.RETAILER, shop.id, SHOP_EMAIL), (Role.MANUFACTURER, acme.id, MAKER_EMAIL)):
        _, link = add_user(ctx, role=role, company_id=company, email=email, name="Pat Example")
        reset_password(ctx, link.rsplit("/", 1)[1], PASSWORD)
    server = Server(create_app(context=ctx), port)
    try:
        yield Scene(ctx, server, zone, last_week_order, this_week_order, monday - timedelta(days=7))
    finally:
        server.close()
        ctx.engine.dispose()


@pytest.fixture(scope="module")
def browser(scene):
    with chromium() as browser:
        yield browser


def _sign_in(scene, page, email: str, landing: str) -> None:
    page.goto(scene.url("/signin"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(re.escape(scene.url(landing))))


def test_a_retailer_finds_last_week_s_earnings_and_downloads_the_statement(scene, browser, shot, tmp_path):
    # The flow ends with dates that are not right on purpose: their 422 is logged as a console error.
    with watched_page(browser, any_console_error=False) as page:
        _sign_in(scene, page, SHOP_EMAIL, "/portal/")
        page.get_by_role("link", name="Earnings").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Earnings")
        page.get_by_role("link", name="Last week").click()
        expect(page.locator("#period-heading")).to_contain_text(scene.last_monday.isoformat())
        line = page.locator(f"#line-{scene.last_week_order}")
        expect(line).to_contain_text("$100.00")
        expect(line).to_contain_text("$10.00")
        expect(line).to_contain_text("$90.00")
        expect(page.locator(f"#line-{scene.this_week_order}")).to_have_count(0)
        expect(page.locator("#period-totals .money-net")).to_have_text("$90.00")
        shot(page, "last-week")
        assert _serious_axe_violations(page) == []

        with page.expect_download() as waiting:
            page.locator("#statement-download").click()
        download = waiting.value
        assert download.suggested_filename.endswith(".csv")
        saved = tmp_path / "statement.csv"
        download.save_as(saved)
        rows = list(csv.reader(io.StringIO(saved.read_text(encoding="utf-8"))))
        assert rows[0][:3] == ["order", "first movement (local time)", "movements"]
        assert [r[0] for r in rows[1:]] == [str(scene.last_week_order)]
        assert rows[1][3:8] == ["USD", "100.00", "10.00", "90.00", "accrued"]

        # Custom dates that are not right: every error, focus on the summary.
        page.get_by_label("From").fill("2026-03-10")
        page.get_by_label("To (included)").fill("2026-03-01")
        page.get_by_role("button", name="Show these dates").click()
        expect(page.locator("[data-error-summary]")).to_be_focused()
        expect(page.locator("#to-error")).to_contain_text("on or after")
        shot(page, "bad-dates")


def test_a_retailer_sets_up_payouts_through_the_test_mode_onboarding(scene, browser, shot):
    with watched_page(browser) as page:
        _sign_in(scene, page, SHOP_EMAIL, "/portal/")
        page.goto(scene.url("/portal/earnings"))
        expect(page.locator("#payout-account")).to_contain_text("Not set up")
        page.locator("#payout-account").get_by_role("link", name="Set up payouts").click()
        page.get_by_role("button", name="Set up payouts").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("test mode")
        shot(page, "offline-onboarding")
        page.get_by_role("button", name="Finish onboarding (test mode)").click()
        expect(page.get_by_role("status")).to_contain_text("Payout account set up")
        expect(page.locator("#account-state-heading")).to_contain_text("Ready")


def test_a_manufacturer_refunds_half_and_sees_it_in_revenue(scene, browser, shot):
    order_id = scene.this_week_order
    with watched_page(browser) as page:
        _sign_in(scene, page, MAKER_EMAIL, "/console/")
        page.goto(scene.url(f"/console/orders/{order_id}"))
        page.get_by_role("link", name="Refund…").click()
        expect(page.get_by_label("Amount to refund (USD)")).to_have_value("100.00")
        assert _serious_axe_violations(page) == []
        page.get_by_label("Amount to refund (USD)").fill("50.00")
        page.get_by_role("button", name="Review the refund").click()
        expect(page.locator("#confirm-heading")).to_have_text("Refund $50.00 to the customer's card?")
        with scene.ctx.uow() as uow:
            assert uow.session.scalar(select(Payment.refunded_amount).where(Payment.order_id == order_id)) == 0
        shot(page, "confirm-refund")
        page.get_by_role("button", name="Refund $50.00").click()
        expect(page.get_by_role("status")).to_contain_text("Refunded $50.00 to the customer's card")
        expect(page.get_by_role("status")).to_contain_text("$50.00 could still be refunded")
        shot(page, "refunded")

        page.get_by_role("link", name="Dashboard").click()
        revenue = page.locator("#revenue-USD")
        expect(revenue.locator(".revenue-gross")).to_have_text("$200.00")
        expect(revenue.locator(".revenue-refunds")).to_have_text("$50.00")
        expect(revenue.locator(".revenue-fees")).to_have_text("$15.00")
        expect(revenue.locator(".revenue-net")).to_have_text("$135.00")
        expect(page.locator("svg#chart-revenue")).to_be_visible()
        shot(page, "dashboard-revenue")
        assert _serious_axe_violations(page) == []

        with scene.ctx.uow() as uow:
            result = ledger.check(uow.session)
        assert result.ok, result

        page.goto(scene.url("/console/orders?customer=ada"))
        expect(page.locator("#orders")).to_contain_text(str(order_id))
        assert _serious_axe_violations(page) == []
        page.goto(scene.url("/console/earnings"))
        assert _serious_axe_violations(page) == []


@pytest.mark.parametrize("who, email, landing, paths", [
    ("retailer", SHOP_EMAIL, "/portal/", ["/portal/earnings?period=last-week", "/portal/payout-account"]),
    ("manufacturer", MAKER_EMAIL, "/console/", ["/console/", "/console/earnings", "/console/payout-account",
                                                "/console/orders/{order}/refund", "/console/orders/{order}/cancel"]),
])
def test_money_pages_fit_a_phone(scene, browser, shot, who, email, landing, paths):
    with watched_page(browser, width=390, height=844) as page:
        _sign_in(scene, page, email, landing)
        for path in paths:
            page.goto(scene.url(path.format(order=scene.last_week_order)))
            expect(page.locator("h1")).to_be_visible()
            _no_sideways_scrolling(page)
            shot(page, re.sub(r"\W+", "-", path).strip("-"))
