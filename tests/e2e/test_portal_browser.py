"""The retailer portal in a real browser (headless Chromium driven by Playwright).

A retailer signs up, confirms its address through the emailed link, applies
to a manufacturer and is approved; an order near
its store appears on the board, in the list and on the Leaflet map; it bids with
one click, wins at settlement, opens the won order, prints the packing slip and
records the shipment. The pages run under their real Content-Security-Policy, so
a blocked script or style shows up as a console error and fails the test.

A real server on a real port, on a fresh SQLite file built by the migrations.
Each step leaves a screenshot in `artifacts/screenshots/<test>/<NN>-<step>.png`.
Skipped like the storefront's browser tests without Playwright or Chromium.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from broker.accounts import applications
from broker.clock import utcnow
from broker.config import Settings
from broker.context import Context
from broker.migrate import upgrade
from broker.settlement.services import settle
from tests.e2e.browser import SKIP_WITHOUT_BROWSER, Server, expect, watched_page
from tests.factories import World
from tests.pages import outbox_link


pytestmark = SKIP_WITHOUT_BROWSER

MAKER = "acme-bikes"
EMAIL = "owner@corner-bikes.example"
PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def site(_browser_available, tmp_path_factory):
    from web.app import create_app

    url = f"sqlite:///{tmp_path_factory.mktemp('portal-browser') / 'portal.db'}"
    upgrade(url)
    ctx = Context.from_settings(Settings(database_url=url, admin_token="x", secret_key="k"))
    world = World(ctx)
    maker = world.manufacturer(MAKER, products=(("BIKE-1", 45990),))
    server = Server(create_app(context=ctx))
    try:
        yield ctx, world, maker, server
    finally:
        server.close()
        ctx.engine.dispose()


@pytest.fixture
def page(browser):
    with watched_page(browser) as page:
        yield page


def test_a_retailer_signs_up_bids_wins_and_ships(site, page, shot):
    ctx, world, maker, server = site

    # Sign up: the company, its first user and its first store (San Francisco).
    page.goto(server.origin + "/signup")
    page.get_by_label("Company").fill("Corner Bikes")
    page.get_by_label("Your name").fill("Ruth Owner")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Store name").fill("Corner Bikes Mission")
    page.get_by_label("Postal code").fill("94103")
    page.get_by_label("Service radius (km)").fill("50")
    shot(page, "signup")
    page.get_by_role("button", name="Create my account").click()

    # Nothing works until the address is confirmed: the link in the email does it.
    expect(page).to_have_url(re.compile(r"/account/verify$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")
    shot(page, "check-email")
    page.goto(server.origin + outbox_link(ctx, EMAIL, "/verify/"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your email address")
    page.get_by_role("button", name="Confirm my address").click()
    expect(page).to_have_url(re.compile(r"/portal/dealers$"))
    expect(page.get_by_role("status").first).to_contain_text("Your email address is confirmed")
    expect(page.get_by_role("heading", level=1)).to_have_text("Manufacturers")
    shot(page, "manufacturers")

    # Apply to the manufacturer, with a note; it approves (the console's service).
    row = page.locator("tr", has_text=f"Maker {MAKER}")
    row.get_by_label("Note").fill("We stock your whole range.")
    row.get_by_role("button", name=f"Apply to Maker {MAKER}").click()
    expect(page.get_by_role("status")).to_contain_text("Your application is sent")
    expect(row).to_contain_text("application pending")
    shot(page, "applied")
    (application,) = applications.list_applications(ctx, maker.actor)
    assert application.note == "We stock your whole range."
    applications.decide(ctx, maker.actor, application.id, approve=True)
    page.reload()
    expect(page.locator("tr", has_text=f"Maker {MAKER}")).to_contain_text("authorised dealer")
    shot(page, "approved")

    # The store's service radius on the stores page's map.
    page.get_by_role("link", name="Stores").click()
    expect(page.locator("#stores-map[data-ready=true]")).to_be_visible()
    expect(page.locator("#stores-map path.portal-radius")).to_have_count(1)
    expect(page.locator("#stores-map .portal-store")).to_have_count(1)
    shot(page, "stores")

    # A customer buys; the order is on the board, in the list and on the map.
    placed = world.order(maker, sku="BIKE-1")
    listing_id = world.listing_id(placed.order.id)
    page.get_by_role("link", name="Board").click()
    card = page.locator(f"#listing-{listing_id}")
    expect(card).to_contain_text("1 × Product BIKE-1")
    expect(card).to_contain_text("459.90 USD")
    board_map = page.locator("#board-map[data-ready=true]")
    expect(board_map).to_be_visible()
    marker = board_map.locator(f"path.portal-listing-{listing_id}")
    expect(marker).to_have_count(1)
    expect(board_map.locator("path.portal-radius")).to_have_count(1)
    content = page.content()
    assert "Ada Lovelace" not in content and "1 Secret Lane" not in content and "ada@example.com" not in content
    marker.click()
    expect(page.locator(".leaflet-popup-content")).to_contain_text(f"Listing #{listing_id} · order")
    shot(page, "board")

    # One click to bid.
    card.get_by_role("button", name=f"Bid on listing #{listing_id}").click()
    expect(page.get_by_role("status")).to_contain_text(f"You bid on listing #{listing_id}")
    expect(page.locator(f"#listing-{listing_id}")).to_contain_text("My bid")
    expect(page.locator(f"#board-map path.portal-listing-{listing_id}.portal-listing-bid")).to_have_count(1)
    shot(page, "bid")

    # The daily settlement gives it to the only (and nearest) bidder.
    report = settle(ctx, as_of=utcnow() + timedelta(hours=ctx.settings.min_board_hours + 1))
    assert report.to_retailers == 1

    page.get_by_role("link", name="Won orders").click()
    row = page.locator("tbody tr").first
    expect(row).to_contain_text("Ada Lovelace")
    expect(row).to_contain_text("1 Secret Lane")
    shot(page, "won-orders")
    row.get_by_role("link", name="Open").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Order #{placed.order.id}")
    shot(page, "order")

    # The packing slip, as printed: the ship-to, the items, and no navigation.
    page.get_by_role("link", name="Packing slip").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Packing slip")
    expect(page.locator(".portal-address")).to_contain_text("Ada Lovelace")
    expect(page.locator(".portal-address")).to_contain_text("1 Secret Lane")
    expect(page.get_by_role("button", name="Print")).to_be_visible()  # shown by portal-print.js
    page.emulate_media(media="print")
    expect(page.locator("header.top")).to_be_hidden()
    expect(page.get_by_role("button", name="Print")).to_be_hidden()
    shot(page, "slip-print")
    page.emulate_media(media="screen")

    # Record the shipment.
    page.go_back()
    page.get_by_label("Carrier").fill("UPS")
    page.get_by_label("Tracking number").fill("1Z999AA10123456784")
    page.get_by_role("button", name="Record the shipment").click()
    expect(page.get_by_role("status")).to_contain_text("Shipment recorded: UPS 1Z999AA10123456784")
    expect(page.locator("main")).to_contain_text("with UPS, tracking 1Z999AA10123456784")
    shot(page, "shipped")

    page.get_by_role("link", name="Scorecard").click()
    expect(page.locator("#wins")).to_have_text("1")
    expect(page.locator("#on-time")).to_have_text("100%")
    shot(page, "scorecard")
