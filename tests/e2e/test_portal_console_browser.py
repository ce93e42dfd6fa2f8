"""The portal and the console as their users meet them, in a real browser
(headless Chromium driven by Playwright):

* a retailer accepts a return from its returns queue, through the confirmation
  step;
* a fulfiller rates the customer of a delivered order and then reads the
  customer's review of it (blind until then);
* every portal and console page fits a 390 px phone with no sideways scrolling
  (tables become cards), and axe-core finds no serious or critical violation
  on the main ones, at 1280 and 390 px;
* the board's map draws country and state outlines, clusters crowded listings,
  shows a legend, and no request the page makes leaves the site.

A real server on a fresh SQLite file built by the migrations; the pages run
under their real Content-Security-Policy (a blocked script or style fails the
test). Screenshots in `artifacts/screenshots/<test>/`.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from sqlalchemy import select

from broker.accounts import services as accounts
from broker.accounts.models import Role
from broker.board import services as board
from broker.clock import utcnow
from broker.config import Settings
from broker.context import Context
from broker.fulfilment import services as fulfilment
from broker.fulfilment.models import Assignment
from broker.geo.geocoding import LocationQuery
from broker.identity import services as identity
from broker.migrate import upgrade
from broker.orders.delivered import confirm_delivery
from broker.pagination import PageRequest
from broker.reputation import services as reputation
from broker.returns import services as returns
from broker.settlement.services import settle
from tests.e2e.browser import SKIP_WITHOUT_BROWSER, Server, expect, watched_page
from tests.e2e.browser import serious_axe_violations, sideways_overflow as sideways
from tests.factories import HERE, World, north_of
from tests.pages import PASSWORD, sign_up_verified, user_for

pytestmark = SKIP_WITHOUT_BROWSER

SHOP_EMAIL = "owner@corner-bikes.example"
MAKER_EMAIL = "admin@acme.example"
REASON = "The frame arrived scratched along the top tube"
LONG = "TITANIUM-GRAVEL-FRAMESET-XL-2027-EDITION-WITH-NO-SPACES-AT-ALL"


@dataclasses.dataclass
class Site:
    ctx: Context
    server: Server
    maker_id: int
    returned: int  # the assignment whose return waits in the queue
    delivered: int  # a delivered assignment, rated by its customer, not yet by the shop
    active: int  # an assignment still to ship
    order_id: int  # the returned one's order, for the console
    run_id: int

    def url(self, path: str) -> str:
        return self.server.origin + path


@pytest.fixture(scope="module")
def site(_browser_available, tmp_path_factory):
    from web.app import create_app

    url = f"sqlite:///{tmp_path_factory.mktemp('portal-console') / 'pc.db'}"
    upgrade(url)
    ctx = Context.from_settings(Settings(database_url=url, admin_token="x", secret_key="k"))
    world = World(ctx)
    maker = world.manufacturer("acme", products=(("BIKE-1", 45990), (LONG, 129900)))
    user_for(ctx, Role.MANUFACTURER, maker.id, MAKER_EMAIL, name="Ada Admin")
    shop = sign_up_verified(ctx, identity.RetailerSignUp(
        company="Corner Bikes", name="Ruth Owner", email=SHOP_EMAIL, password=PASSWORD,
        store_name="Corner Bikes Mission", location=LocationQuery(postal_code="94110", country="US"),
        service_radius_km=50))
    accounts.authorise_dealer(ctx, maker.actor, shop.actor.id)

    # Three orders the shop wins: one to return, one to rate, one to ship.
    placed = [world.order(maker, sku=sku, name=f"Customer {n}", email=f"c{n}@example.com")
              for n, sku in enumerate(("BIKE-1", "BIKE-1", LONG))]
    for p in placed:
        board.place_bid(ctx, shop.actor, board.PlaceBid(world.listing_id(p.order.id)))
    report = settle(ctx, as_of=utcnow() + timedelta(hours=ctx.settings.min_board_hours + 1))
    with ctx.uow() as uow:
        ids = [uow.session.scalar(select(Assignment.id).where(Assignment.order_id == p.order.id)) for p in placed]
    for p, assignment_id in zip(placed[:2], ids[:2]):
        fulfilment.record_shipment(ctx, shop.actor, assignment_id, fulfilment.RecordShipment("UPS", "1Z999AA1"))
        confirm_delivery(ctx, p.order.id, p.access_token)
    returns.request_return(ctx, placed[0].order.id, placed[0].access_token, REASON)
    reputation.review_as_customer(ctx, placed[1].order.id, placed[1].access_token, 5, "Quick, and well packed")

    # Still on the board: three orders in one spot (a cluster) and one further off.
    for _ in range(3):
        world.order(maker, sku="BIKE-1", to=north_of(HERE, 4))
    world.order(maker, sku="BIKE-1", to=north_of(HERE, 25))
    # Another dealer, for the console's lists.
    world.retailer(north_of(HERE, 6), dealer_of=[maker], name="Far Cycles")

    server = Server(create_app(context=ctx))
    try:
        yield Site(ctx, server, maker.id, ids[0], ids[1], ids[2], placed[0].order.id, report.run_id)
    finally:
        server.close()
        ctx.engine.dispose()


def sign_in(page, site: Site, email: str, lands: str) -> None:
    page.goto(site.url("/signin"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(site.url(lands))


def portal_pages(site: Site) -> list[str]:
    return ["/portal/", "/portal/orders", "/portal/returns", "/portal/returns?status=all",
            f"/portal/orders/{site.returned}", f"/portal/orders/{site.delivered}", f"/portal/orders/{site.active}",
            f"/portal/orders/{site.active}/slip", "/portal/scorecard", "/portal/outcomes", "/portal/stores",
            "/portal/dealers"]


def console_pages(site: Site) -> list[str]:
    return ["/console/", "/console/to-ship", "/console/orders", f"/console/orders/{site.order_id}",
            "/console/returns", "/console/returns?status=all", "/console/catalog", "/console/catalog/new",
            "/console/dealers", "/console/storefront", "/console/settlements", f"/console/settlements/{site.run_id}",
            "/console/earnings"]


# The pages axe-core checks at each width: the main ones of each side.
MAIN_PORTAL = {"/portal/", "/portal/orders", "/portal/returns", "/portal/scorecard", "/portal/outcomes",
               "/portal/stores"}
MAIN_CONSOLE = {"/console/", "/console/orders", "/console/returns", "/console/dealers", "/console/to-ship"}


def test_a_return_is_accepted_from_the_portal_queue(site, browser, shot):
    with watched_page(browser) as page:
        sign_in(page, site, SHOP_EMAIL, "/portal/")
        page.get_by_role("link", name="Returns").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Returns")
        row = page.locator("#returns tbody tr", has_text=REASON)
        expect(row).to_contain_text("459.90")
        shot(page, "queue")
        row.get_by_role("button", name="Accept the return").click()
        # The confirmation step: nothing refunded yet, and a way back.
        expect(page.get_by_role("heading", level=1)).to_have_text(f"Accept the return of order #{site.order_id}?")
        expect(page.get_by_role("link", name="Cancel")).to_have_attribute("href", "/portal/returns")
        assert serious_axe_violations(page) == []
        shot(page, "confirm")
        page.get_by_role("button", name="Accept the return and refund the card").click()
        expect(page).to_have_url(site.url("/portal/returns"))
        expect(page.get_by_role("status")).to_contain_text(f"Return of order #{site.order_id} accepted")
        expect(page.locator("#no-returns")).to_be_visible()
        page.goto(site.url(f"/portal/orders/{site.returned}"))
        expect(page.locator("#returns-heading + .panel")).to_contain_text("refunded")
        shot(page, "accepted")


def test_a_fulfiller_rates_the_customer(site, browser, shot):
    with watched_page(browser, width=390) as page:
        sign_in(page, site, SHOP_EMAIL, "/portal/")
        page.goto(site.url(f"/portal/orders/{site.delivered}"))
        expect(page.locator("#review-blind")).to_be_visible()  # the customer's review stays hidden
        expect(page.locator("main")).not_to_contain_text("well packed")
        page.get_by_label("4 ★").check()
        page.get_by_label("Comment").fill("Paid at once, easy to reach")
        assert serious_axe_violations(page) == []
        shot(page, "rating")
        page.get_by_role("button", name="Rate the customer").click()
        expect(page.get_by_role("status")).to_contain_text("You rated the customer 4 ★")
        expect(page.locator("#my-review")).to_contain_text("Paid at once, easy to reach")
        # Both sides have reviewed: each reads the other's.
        expect(page.locator("#their-review")).to_contain_text("5 ★")
        expect(page.locator("#their-review")).to_contain_text("Quick, and well packed")
        assert sideways(page) <= 0
        shot(page, "rated")


@pytest.mark.parametrize("width", [390, 1280])
@pytest.mark.parametrize("side", ["portal", "console"])
def test_every_page_fits_and_the_main_ones_pass_axe(site, browser, shot, side, width):
    email, lands, paths, main = ((SHOP_EMAIL, "/portal/", portal_pages(site), MAIN_PORTAL) if side == "portal"
                                 else (MAKER_EMAIL, "/console/", console_pages(site), MAIN_CONSOLE))
    too_wide, findings = {}, {}
    with watched_page(browser, width=width) as page:
        sign_in(page, site, email, lands)
        for path in paths:
            page.goto(site.url(path))
            expect(page.get_by_role("heading", level=1).first).to_be_visible()
            if (over := sideways(page)) > 0:
                too_wide[path] = over
            if path in main:
                if found := serious_axe_violations(page):
                    findings[path] = found
            shot(page, path.strip("/").replace("/", "-").replace("?", "-") or "home")
    assert too_wide == {}, f"pages that scroll sideways at {width} px (by px): {too_wide}"
    assert findings == {}, f"serious or critical axe-core violations: {findings}"


def test_the_map_draws_outlines_and_clusters_and_asks_no_other_site(site, browser, shot):
    requests: list[str] = []
    with watched_page(browser) as page:
        page.on("request", lambda request: requests.append(request.url))
        sign_in(page, site, SHOP_EMAIL, "/portal/")
        board_map = page.locator("#board-map[data-ready=true]")
        expect(board_map).to_be_visible()
        expect(page.locator("#board-map[data-outlines=true]")).to_have_count(1)
        assert board_map.locator("path.portal-country").count() > 0
        assert board_map.locator("path.portal-state").count() > 0
        # The three listings in one spot are one cluster; the fourth stands alone.
        cluster = board_map.locator(".portal-cluster")
        expect(cluster).to_have_count(1)
        expect(cluster).to_have_text("3")
        expect(board_map.locator("path.portal-listing")).to_have_count(1)
        expect(board_map.locator(".portal-legend")).to_contain_text("Listing you bid on")
        # Listings are drawn above the store markers.
        z = page.evaluate("""() => {
            const z = (name) => Number(getComputedStyle(document.querySelector('#board-map .leaflet-' + name + '-pane')).zIndex);
            return {listings: z('portal-listings'), markers: z('marker'), base: z('portal-base'), overlay: z('overlay')};
        }""")
        assert z["listings"] > z["markers"] > z["overlay"] > z["base"], z
        shot(page, "board-map")
        cluster.click()
        expect(board_map.locator("path.portal-listing")).to_have_count(4)
        shot(page, "cluster-opened")
        page.goto(site.url("/portal/stores"))
        expect(page.locator("#stores-map[data-outlines=true]")).to_have_count(1)
        shot(page, "stores-map")
    assert any(url.endswith("/countries-50m.json") for url in requests)
    foreign = [url for url in requests if not url.startswith(site.server.origin + "/")]
    assert foreign == [], f"requests to other sites: {foreign}"


def test_the_console_asks_before_revoking_a_dealer(site, browser, shot):
    with watched_page(browser, width=390) as page:
        sign_in(page, site, MAKER_EMAIL, "/console/")
        page.goto(site.url("/console/dealers"))
        row = page.locator("#dealers tr", has_text="Far Cycles")
        expect(row).to_contain_text("New: no ratings yet")
        row.get_by_role("button", name="Revoke Far Cycles").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Revoke Far Cycles?")
        shot(page, "confirm-revoke")
        page.get_by_role("link", name="Cancel").click()
        expect(page.locator("#dealers tr", has_text="Far Cycles")).to_be_visible()
        dealers = accounts.list_dealers(site.ctx, _maker_actor(site), PageRequest()).items
        assert "Far Cycles" in [d.name for d in dealers]


def _maker_actor(site: Site):
    from broker.auth import Actor, ActorKind

    return Actor(ActorKind.MANUFACTURER, site.maker_id)
