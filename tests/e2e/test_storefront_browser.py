"""The storefront in a real browser (headless Chromium driven by Playwright).

A customer browses, fills the cart, checks out with the offline provider's test
payment and lands on the order-status page; the same purchase inside the iframe
that `embed.js` mounts on a page of another origin; an origin the store does not
list cannot frame it; a manufacturer name with markup in it stays text; the shop
works from the keyboard and on a phone-sized screen.

Real servers on real ports: the store (a fresh SQLite file built by the
migrations), the manufacturer's own site on a second port (a listed frame
origin), and a stranger's site on a third (not listed). Ports differ, so the
origins differ.

Each step leaves a screenshot in `artifacts/screenshots/<test>/<NN>-<step>.png`.

Without Playwright or /usr/bin/chromium the module is skipped, unless
BROKER_REQUIRE_BROWSER=1 (CI), where that is a failure.
"""

from __future__ import annotations

import re
import time
import urllib.request

import pytest

from broker.catalog import services as catalog
from broker.config import Settings
from broker.context import Context
from broker.migrate import upgrade
from broker.storefront.services import Branding, update_branding
from tests.e2e.browser import SKIP_WITHOUT_BROWSER, STEP_TIMEOUT_MS, Server, expect, free_port
from tests.factories import Maker, World

pytestmark = SKIP_WITHOUT_BROWSER

STORE_NAME = "Acme Bicycles"
BIKE, BELL = "Trail bike", "Brass bell"
MIN_FRAME_HEIGHT = 480  # embed.js: frame.style.minHeight


# --- servers -----------------------------------------------------------------------


def _host_page(title: str, store_origin: str) -> bytes:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body style="font-family: sans-serif; margin: 1rem; background: #f4f1ea">
<h1>{title}</h1>
<p>The shop below is mounted by embed.js.</p>
<script src="{store_origin}/s/acme/embed.js" data-store="acme" data-title="Acme shop"></script>
<p>After the shop.</p>
</body></html>""".encode()


def _static_site(body: bytes):
    def app(environ, start_response):
        if environ["PATH_INFO"] != "/":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))])
        return [body]

    return app


class Site:
    def __init__(self, ctx: Context, world: World, acme: Maker, xss: Maker, store: Server, partner: Server,
                 stranger: Server):
        self.ctx, self.world, self.acme, self.xss = ctx, world, acme, xss
        self.store, self.partner, self.stranger = store, partner, stranger

    def url(self, path: str) -> str:
        return self.store.origin + path


@pytest.fixture(scope="module")
def site(_browser_available, tmp_path_factory):
    from web.app import create_app

    url = f"sqlite:///{tmp_path_factory.mktemp('browser') / 'store.db'}"
    upgrade(url)
    # The embed script points its frame at BROKER_PUBLIC_URL: the address this server will have.
    port = free_port()
    ctx = Context.from_settings(Settings(database_url=url, admin_token="x", secret_key="k",
                                         public_url=f"http://127.0.0.1:{port}"))
    world = World(ctx)
    acme = world.manufacturer("acme", products=())
    for sku, name, price, description in [
        ("BIKE-1", BIKE, 4599, "Front suspension, 12 gears."),
        ("BELL-1", BELL, 1250, "Loud enough for the city."),
        ("LOCK-1", "U-lock", 3900, "Steel, two keys."),
    ]:
        catalog.add_product(ctx, acme.actor, catalog.NewProduct(sku, name, price, description))
    # A second store, to carry a hostile name without changing acme's pages.
    xss = world.manufacturer("xss", products=(("XSS-1", 999),))

    store = Server(create_app(context=ctx), port)
    servers = [store]
    try:
        partner = Server(_static_site(_host_page("Acme's own site", store.origin)))
        servers.append(partner)
        stranger = Server(_static_site(_host_page("Somebody else's site", store.origin)))
        servers.append(stranger)
        update_branding(ctx, acme.actor, Branding(name=STORE_NAME, color_primary="#0f766e", color_accent="#f59e0b",
                                                  frame_origins=[partner.origin]))
        yield Site(ctx, world, acme, xss, store, partner, stranger)
    finally:
        for server in reversed(servers):
            server.close()
        ctx.engine.dispose()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(STEP_TIMEOUT_MS)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.dialogs = dialogs  # any alert() at all is a failure (checked on teardown)
    # Any Content-Security-Policy report fails the test (the store's inline style is
    # allowed by its hash: one character off and the browser says so), except the
    # frame-ancestors refusal that test_an_origin_the_store_does_not_list_cannot_frame_it provokes.
    violations: list[str] = []

    def console(message) -> None:
        if "Content Security Policy" in message.text and "frame-ancestors" not in message.text:
            violations.append(message.text)

    page.on("console", console)
    yield page
    context.close()
    assert not dialogs, f"a page opened a dialog: {dialogs}"
    assert not violations, f"the pages broke their Content-Security-Policy: {violations}"


def _fill_checkout(scope) -> None:
    """`scope` is a Page or a FrameLocator; every field is found by its label."""
    scope.get_by_label("Full name").fill("Grace Hopper")
    scope.get_by_label("Email").fill("grace@example.com")
    expect(scope.get_by_label("Country")).to_have_value("US")  # the store's locale is en_US
    scope.get_by_label("Street address").fill("1 Market St")
    scope.get_by_label("Apartment, suite, building (optional)").fill("Floor 3")
    scope.get_by_label("City").fill("San Francisco")
    scope.get_by_label("State").select_option("CA")
    scope.get_by_label("ZIP code").fill("94105")
    payment = scope.get_by_label("Approve a test payment")
    payment.check()
    expect(payment).to_be_checked()


def _expect_placed(scope, total: str) -> None:
    expect(scope.get_by_role("status")).to_contain_text("your order is placed")
    expect(scope.locator("#status")).to_have_attribute("data-status", "open")
    expect(scope.get_by_text("Test mode payment")).to_be_visible()
    expect(scope.locator("table")).to_contain_text(BIKE)
    expect(scope.locator("table")).to_contain_text(total)


# --- the tests -----------------------------------------------------------------------------


def test_customer_buys_on_the_storefront(site, page, shot):
    page.goto(site.url("/s/acme/"))
    expect(page).to_have_title(STORE_NAME)
    expect(page.get_by_role("heading", level=1)).to_have_text(STORE_NAME)
    expect(page.get_by_text("$45.99")).to_be_visible()
    shot(page, "catalog")

    page.get_by_role("link", name=BIKE).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(BIKE)
    expect(page.get_by_text("Front suspension, 12 gears.")).to_be_visible()
    shot(page, "product")

    page.get_by_role("button", name="Add to cart").click()
    expect(page).to_have_url(re.compile(r"/s/acme/cart\?"))
    expect(page.get_by_role("link", name="Cart (1)")).to_be_visible()
    shot(page, "cart")

    page.get_by_label(f"Quantity of {BIKE}").fill("2")
    page.get_by_role("button", name="Update the cart").click()
    expect(page.get_by_role("link", name="Cart (2)")).to_be_visible()
    expect(page.locator("table")).to_contain_text("$91.98")
    # The cart lives in the URL: the links onward carry the new quantity.
    expect(page.get_by_role("link", name="Check out")).to_have_attribute("href", re.compile(r"cart=BIKE-1(%3A|:)2$"))
    shot(page, "cart-quantity-2")

    page.get_by_role("link", name="Check out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Checkout")
    expect(page.get_by_text("2 items")).to_be_visible()
    _fill_checkout(page)
    shot(page, "checkout-filled")

    page.get_by_role("button", name="Place the order").click()
    # The order's link was exchanged for a cookie: the address holds no token.
    expect(page).to_have_url(re.compile(r"/s/acme/o/\d+\?new=1$"))
    _expect_placed(page, "$91.98")
    shot(page, "status")

    # This browser comes back to it without the `new` flag.
    page.goto(page.url.split("?")[0])
    expect(page.locator("#status")).to_have_attribute("data-status", "open")
    expect(page.get_by_role("status")).to_have_count(0)
    shot(page, "status-revisited")


def test_checkout_reports_missing_fields_next_to_them(site, page, shot):
    page.goto(site.url("/s/acme/checkout?cart=BELL-1:1"))
    page.get_by_label("Full name").fill("Grace Hopper")
    page.get_by_role("button", name="Place the order").click()
    email = page.get_by_label("Email")
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#email-error")).to_be_visible()
    expect(page.get_by_label("Full name")).to_have_value("Grace Hopper")  # kept, not retyped
    shot(page, "errors")


def test_purchase_inside_the_iframe_on_a_listed_origin(site, page, shot):
    page.goto(site.partner.origin + "/")
    iframe = page.locator("iframe")
    expect(iframe).to_have_attribute("src", f"{site.store.origin}/s/acme/?embed=1")
    expect(iframe).to_have_attribute("title", "Acme shop")
    frame = page.frame_locator("iframe")
    expect(frame.get_by_role("heading", level=1)).to_have_text(STORE_NAME)
    _wait_for_frame_height(page)
    shot(page, "embedded-catalog")

    frame.get_by_role("button", name=f"Add {BIKE} to the cart").click()
    expect(frame.get_by_role("link", name="Cart (1)")).to_be_visible()
    shot(page, "embedded-cart")

    frame.get_by_role("link", name="Check out").click()
    expect(frame.get_by_role("heading", level=1)).to_have_text("Checkout")
    _fill_checkout(frame)
    # The checkout form is taller than the frame's minimum: the store said so by
    # postMessage, and embed.js grew the frame to fit.
    _wait_for_frame_to_fit(page, site.store.origin, above=MIN_FRAME_HEIGHT)
    shot(page, "embedded-checkout")

    frame.get_by_role("button", name="Place the order").click()
    _expect_placed(frame, "$45.99")
    shot(page, "embedded-status")

    # Still the embedded store, on the store's origin, with its top-level page unchanged.
    store_frame = next(f for f in page.frames if f.url.startswith(site.store.origin))
    assert "embed=1" in store_frame.url and "/s/acme/o/" in store_frame.url
    assert page.url == site.partner.origin + "/"
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme's own site")


def _wait_for_frame_height(page, *, above: int = 0) -> int:
    """The iframe's height as embed.js set it (style.height), once it is more than `above`."""
    page.wait_for_function(
        """above => { const f = document.querySelector("iframe");
                     return f && f.style.height && parseFloat(f.style.height) > above; }""",
        arg=above, timeout=STEP_TIMEOUT_MS)
    return int(float(page.locator("iframe").evaluate("f => f.style.height").removesuffix("px")))


def _wait_for_frame_to_fit(page, store_origin: str, *, above: int = 0) -> int:
    """The iframe's height once embed.js has made it the height of the store's
    page inside it (and more than `above`). The store's page is another origin,
    so its height is read in its own frame."""
    deadline = time.monotonic() + STEP_TIMEOUT_MS / 1000
    while True:
        height = _wait_for_frame_height(page, above=above)
        store = next(f for f in page.frames if f.url.startswith(store_origin))
        inner = store.evaluate("document.documentElement.scrollHeight")
        if abs(height - inner) <= 1:
            return height
        assert time.monotonic() < deadline, f"the frame stayed {height}px for {inner}px of store"
        page.wait_for_timeout(100)


def test_an_origin_the_store_does_not_list_cannot_frame_it(site, page, shot):
    with urllib.request.urlopen(site.url("/s/acme/?embed=1"), timeout=5) as response:
        csp = response.headers["Content-Security-Policy"]
    directives = {part.split()[0]: part.split()[1:] for part in csp.split(";") if part.strip()}
    assert directives["frame-ancestors"] == ["'self'", site.partner.origin]
    assert site.stranger.origin not in csp

    blocked = []
    page.on("console", lambda m: blocked.append(m.text) if "frame-ancestors" in m.text else None)
    with page.expect_response(lambda r: r.url.startswith(site.store.origin + "/s/acme/?embed=1")) as answered:
        page.goto(site.stranger.origin + "/")
    # The store did answer; the browser refused to show it.
    assert answered.value.status == 200
    expect(page.locator("iframe")).to_have_count(1)
    page.wait_for_function("() => window.frames.length === 1")
    page.wait_for_timeout(500)  # give a (wrongly) allowed frame the time to render
    shot(page, "stranger-page")

    frames = [f for f in page.frames if f is not page.main_frame]
    assert len(frames) == 1
    assert not frames[0].url.startswith(site.store.origin), frames[0].url
    for f in page.frames:
        assert STORE_NAME not in f.content() and BIKE not in f.content()
    assert any("frame-ancestors" in text for text in blocked), blocked
    # Nothing reached the page from the store, so the frame keeps its initial size.
    assert page.locator("iframe").evaluate("f => f.style.height") == ""


def test_manufacturer_name_with_markup_renders_as_text(site, page, shot):
    hostile = 'Evil <script>alert(1)</script><img src=x onerror="alert(2)"> & Co'
    update_branding(site.ctx, site.xss.actor, Branding(name=hostile))

    for path in (f"/s/{site.xss.slug}/", f"/s/{site.xss.slug}/p/XSS-1", f"/s/{site.xss.slug}/cart?add=XSS-1"):
        page.goto(site.url(path))
        page.wait_for_load_state("load")
        header = page.locator("header a").first
        expect(header).to_have_text(hostile)
        assert page.title().endswith(hostile)
        assert page.locator("header script, header img, main script").count() == 0
        assert page.evaluate("() => [...document.scripts].map(s => new URL(s.src).pathname)") == ["/static/store.js"]
        assert not page.dialogs
        shot(page, path.strip("/").replace("/", "-").replace("?", "-"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Your cart")


def test_the_shop_works_from_the_keyboard(site, page, shot):
    page.goto(site.url("/s/acme/"))
    add_bike = page.get_by_role("button", name=f"Add {BIKE} to the cart")
    for _ in range(30):
        page.keyboard.press("Tab")
        if add_bike.evaluate("b => b === document.activeElement"):
            break
    else:
        pytest.fail(f"Tab never reached the {BIKE!r} add-to-cart button")
    outline = add_bike.evaluate("b => getComputedStyle(b).outlineStyle + ' ' + getComputedStyle(b).outlineWidth")
    assert outline != "none 0px" and not outline.startswith("none"), f"no visible focus: {outline}"
    shot(page, "focus-on-add")

    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/s/acme/cart\?"))
    expect(page.locator("table")).to_contain_text(BIKE)
    expect(page.get_by_role("link", name="Cart (1)")).to_be_visible()
    shot(page, "cart-after-enter")

    # Onward to checkout by keyboard, too.
    checkout = page.get_by_role("link", name="Check out")
    for _ in range(15):
        page.keyboard.press("Tab")
        if checkout.evaluate("a => a === document.activeElement"):
            break
    else:
        pytest.fail("Tab never reached 'Check out'")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Checkout")
    expect(page.get_by_label("Full name")).to_be_visible()
    shot(page, "checkout-by-keyboard")


@pytest.mark.parametrize("step", ["catalog", "product", "cart", "checkout", "status"])
def test_phone_screen_needs_no_sideways_scrolling(site, browser, shot, step):
    context = browser.new_context(viewport={"width": 375, "height": 667}, is_mobile=True, has_touch=True,
                                  device_scale_factor=2)
    context.set_default_timeout(STEP_TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(site.url(_phone_path(site, step)))
        page.wait_for_load_state("load")
        shot(page, step)
        sizes = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert sizes[0] <= sizes[1], f"{step}: page is {sizes[0]}px wide on a {sizes[1]}px screen"
    finally:
        context.close()


def _phone_path(site, step: str) -> str:
    if step == "status":
        placed = site.world.order(site.acme, sku="BIKE-1")
        return f"/s/acme/o/{placed.order.id}/{placed.access_token}"
    return {"catalog": "/s/acme/", "product": "/s/acme/p/BIKE-1", "cart": "/s/acme/cart?cart=BIKE-1:2,BELL-1:1",
            "checkout": "/s/acme/checkout?cart=BIKE-1:2,BELL-1:1"}[step]


def test_the_frame_shrinks_when_the_store_page_gets_shorter(site, page, shot):
    page.goto(site.partner.origin + "/")
    frame = page.frame_locator("iframe")
    frame.get_by_role("button", name=f"Add {BIKE} to the cart").click()
    frame.get_by_role("link", name="Check out").click()
    expect(frame.get_by_role("heading", level=1)).to_have_text("Checkout")
    # The checkout's full height, once the frame has grown to it: the page may
    # still be laying out (its shipping choice, its fonts) when the first height
    # above the minimum arrives.
    tall = _wait_for_frame_to_fit(page, site.store.origin, above=MIN_FRAME_HEIGHT)
    shot(page, "embedded-checkout")

    frame.get_by_role("link", name=STORE_NAME).click()  # back to the (short) catalog
    expect(frame.get_by_role("heading", level=1)).to_have_text(STORE_NAME)
    store = next(f for f in page.frames if f.url.startswith(site.store.origin))
    content = store.evaluate("document.body.offsetHeight")
    assert content < tall
    page.wait_for_timeout(1_500)  # store.js reports at least every 500 ms
    shot(page, "embedded-catalog-after-checkout")
    height = float(page.locator("iframe").evaluate("f => f.style.height").removesuffix("px"))
    assert height <= max(MIN_FRAME_HEIGHT, content) + 20, f"frame is {height}px for {content}px of store"
