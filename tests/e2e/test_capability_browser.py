"""Capability links in a real browser (headless Chromium driven by Playwright):
the order's token never leaves in a `Referer`; the order page works inside the
embed on another *site* while Chromium blocks third-party cookies; a browser that
refuses every cookie still reaches its order, without a redirect loop.

The store answers on 127.0.0.1; the manufacturer's site that embeds it on
`localhost`, which is the same address but another site, so the store's frame
is cross-site and its cookies are third-party. A WSGI wrapper records what the
browser sent to each server (path, Referer, Cookie): that, not the page, is what
proves where the token went. Chromium's own settings do the blocking, in a
profile made for the test: `profile.cookie_controls_mode = 1` ("Block
third-party cookies") and `profile.default_content_setting_values.cookies = 2`
("Don't allow sites to save data").
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import threading

import pytest

from broker.catalog import services as catalog
from broker.config import Settings
from broker.context import Context
from broker.migrate import upgrade
from broker.storefront.services import Branding, update_branding
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, MISSING, STEP_TIMEOUT_MS, Server, expect, free_port
from tests.e2e.browser import SKIP_WITHOUT_BROWSER
from tests.factories import World

pytestmark = SKIP_WITHOUT_BROWSER

STORE_NAME = "Acme Bicycles"
BIKE = "Trail bike"
# An ordinary third-party cookie, as a store would set for itself without CHIPS:
# valid (Secure, SameSite=None), and dropped by a browser that blocks third-party cookies.
PROBE = "probe=ordinary; Path=/; SameSite=None; Secure"


@dataclasses.dataclass
class Seen:
    server: str
    path: str
    referer: str | None
    cookie: str | None


class Recorder:
    """Wraps a WSGI app: records every request, and can add the probe cookie to every answer."""

    def __init__(self, name: str, app, log: list[Seen], *, probe: bool = False):
        self.name, self.app, self.log, self.probe = name, app, log, probe
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        query = environ.get("QUERY_STRING")
        with self.lock:
            self.log.append(Seen(self.name, environ["PATH_INFO"] + (f"?{query}" if query else ""),
                                 environ.get("HTTP_REFERER"), environ.get("HTTP_COOKIE")))

        def start(status, headers, exc_info=None):
            if self.probe:
                headers = [*headers, ("Set-Cookie", PROBE)]
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


def _host_page(store_origin: str) -> bytes:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Acme's own site</title></head>
<body><h1>Acme's own site</h1>
<script src="{store_origin}/s/acme/embed.js" data-store="acme" data-title="Acme shop"></script>
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
    def __init__(self, ctx, world, acme, store, partner, log, store_app):
        self.ctx, self.world, self.acme, self.store, self.partner = ctx, world, acme, store, partner
        self.log, self.store_app = log, store_app

    def order(self):
        return self.world.order(self.acme, sku="BIKE-1")

    def link(self, placed) -> str:
        return f"{self.store.origin}/s/acme/o/{placed.order.id}/{placed.access_token}"


@pytest.fixture(scope="module")
def site(_browser_available, tmp_path_factory):
    from web.app import create_app

    url = f"sqlite:///{tmp_path_factory.mktemp('capability') / 'store.db'}"
    upgrade(url)
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    ctx = Context.from_settings(Settings(database_url=url, admin_token="x", secret_key="k", public_url=origin))
    world = World(ctx)
    acme = world.manufacturer("acme", products=())
    catalog.add_product(ctx, acme.actor, catalog.NewProduct("BIKE-1", BIKE, 4599, "Front suspension."))
    log: list[Seen] = []
    store_app = Recorder("store", create_app(context=ctx), log)
    store = Server(store_app, port=port)
    servers = [store]
    try:
        partner = Server(Recorder("partner", _static_site(_host_page(origin)), log), name="localhost")
        servers.append(partner)
        update_branding(ctx, acme.actor, Branding(name=STORE_NAME, frame_origins=[partner.origin]))
        yield Site(ctx, world, acme, store, partner, log, store_app)
    finally:
        for server in reversed(servers):
            server.close()
        ctx.engine.dispose()


@pytest.fixture(scope="module")
def playwright(site):
    if MISSING:
        pytest.fail(f"BROKER_REQUIRE_BROWSER=1 but {MISSING}", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@contextlib.contextmanager
def chromium_profile(playwright, tmp_path, preferences: dict | None):
    """A browser context on a profile of its own, with these Chromium preferences."""
    profile = tmp_path / "profile"
    (profile / "Default").mkdir(parents=True)
    (profile / "Default" / "Preferences").write_text(json.dumps({"profile": preferences or {}}))
    context = playwright.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True,
                                                           args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(STEP_TIMEOUT_MS)
    try:
        yield context
    finally:
        context.close()


BLOCK_THIRD_PARTY = {"cookie_controls_mode": 1}
REFUSE_ALL = {"default_content_setting_values": {"cookies": 2}}


@pytest.fixture
def log(site):
    """What the browser sends during this test only."""
    site.log.clear()
    yield site.log
    site.store_app.probe = False


def _referers(log: list[Seen]) -> list[str]:
    return [s.referer for s in log if s.referer]


# --- the tests -----------------------------------------------------------------------


@pytest.mark.parametrize("cookies", ["kept", "refused"])
def test_no_token_in_referer(site, playwright, tmp_path, log, shot, cookies):
    """Open the order from its link, load everything the page loads (its style and
    script), follow its links, download the data and submit a form; no request
    says the token in its Referer."""
    placed = site.order()
    token = placed.access_token
    with chromium_profile(playwright, tmp_path, REFUSE_ALL if cookies == "refused" else None) as context:
        page = context.new_page()
        page.goto(site.link(placed))
        expect(page.locator("#status")).to_have_attribute("data-status", "open")
        page.wait_for_load_state("load")
        shot(page, f"order-{cookies}")
        landed = page.url

        page.get_by_role("link", name="Erase my data").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Erase my data")
        with page.expect_download() as download:
            page.get_by_role("link", name="Download my data first").click()
        assert json.loads(download.value.path().read_text())["order"]["id"] == placed.order.id
        page.get_by_role("link", name="Keep it").click()
        page.get_by_role("link", name="Cancel the order").click()
        page.get_by_role("button", name="Yes, cancel the order").click()
        expect(page.locator("#status")).to_have_attribute("data-status", "cancelled")
        page.wait_for_load_state("load")
        shot(page, f"cancelled-{cookies}")

    assert any(s.path == "/static/store.css" for s in log) and any("/data" in s.path for s in log)
    leaked = [(s.server, s.path, s.referer) for s in log if s.referer and token in s.referer]
    assert leaked == []
    if cookies == "kept":
        # The link was exchanged; the page's own requests do carry a Referer: the token-free address.
        assert landed == f"{site.store.origin}/s/acme/o/{placed.order.id}"
        assert landed in _referers(log)
    else:  # shown where it is, after one check, and no-referrer everywhere
        assert landed == f"{site.link(placed)}?cookie_check=1"
        assert [s for s in log if s.referer and "/o/" in s.referer] == []


def test_order_page_works_inside_a_cross_site_embed(site, playwright, tmp_path, log, shot):
    """Chromium blocks third-party cookies; the store is framed by another site. The
    customer buys in the frame, lands on the order page at its token-free address,
    and cancels the order there: the partitioned cookie carries the order, while an
    ordinary cookie the store sets alongside is never sent back from the frame."""
    site.store_app.probe = True
    with chromium_profile(playwright, tmp_path, BLOCK_THIRD_PARTY) as context:
        page = context.new_page()
        page.goto(site.partner.origin + "/")
        frame = page.frame_locator("iframe")
        expect(frame.get_by_role("heading", level=1)).to_have_text(STORE_NAME)
        frame.get_by_role("button", name=f"Add {BIKE} to the cart").click()
        frame.get_by_role("link", name="Check out").click()
        frame.get_by_label("Full name").fill("Grace Hopper")
        frame.get_by_label("Email").fill("grace@example.com")
        frame.get_by_label("Street address").fill("1 Market St")
        frame.get_by_label("City").fill("San Francisco")
        frame.get_by_label("State").select_option("CA")
        frame.get_by_label("ZIP code").fill("94105")
        frame.get_by_label("Approve a test payment").check()
        frame.get_by_role("button", name="Place the order").click()
        expect(frame.get_by_role("status")).to_contain_text("your order is placed")
        expect(frame.locator("#status")).to_have_attribute("data-status", "open")
        expect(frame.locator("#no-cookie")).to_have_count(0)  # not the cookie-less fallback
        store_frame = next(f for f in page.frames if f.url.startswith(site.store.origin))
        assert re.search(r"/s/acme/o/\d+\?(?=.*embed=1)(?=.*new=1)", store_frame.url), store_frame.url
        order_path = re.search(r"/s/acme/o/\d+", store_frame.url).group(0)
        shot(page, "embedded-order")

        frame.get_by_role("link", name="Cancel the order").click()
        frame.get_by_role("button", name="Yes, cancel the order").click()
        expect(frame.locator("#status")).to_have_attribute("data-status", "cancelled")
        shot(page, "embedded-cancelled")
        assert page.url == site.partner.origin + "/"

        # The same browser keeps the ordinary cookie where it is first-party: the
        # probe is a good cookie, and only the third-party frame lost it.
        in_frame = len(log)
        top = context.new_page()
        top.goto(site.store.origin + "/s/acme/")
        top.reload()

    # The token-free page and its cancel form, from the frame: by the partitioned cookie.
    token_free = [s for s in log if s.server == "store" and re.fullmatch(rf"{order_path}(/cancel)?(\?.*)?", s.path)]
    assert len(token_free) >= 2, log
    assert all(s.cookie and "broker_order=" in s.cookie for s in token_free), token_free
    # Every store request from the frame went without the ordinary cookie, set on each answer.
    framed = [s for s in log[:in_frame] if s.server == "store"]
    assert len(framed) > 10 and not any(s.cookie and "probe=" in s.cookie for s in framed), framed
    # At the top level, the same cookie came back.
    assert any(s.cookie and "probe=" in s.cookie for s in log[in_frame:] if s.path == "/s/acme/")


def test_a_browser_that_refuses_cookies_reaches_its_order_without_a_loop(site, playwright, tmp_path, log, shot):
    placed = site.order()
    with chromium_profile(playwright, tmp_path, REFUSE_ALL) as context:
        page = context.new_page()
        page.goto(site.link(placed) + "?new=1")
        expect(page.get_by_role("status")).to_contain_text("your order is placed")
        expect(page.locator("#no-cookie")).to_be_visible()
        shot(page, "refused-cookies")
        page.get_by_role("link", name="Cancel the order").click()
        page.get_by_role("button", name="Yes, cancel the order").click()
        expect(page.locator("#status")).to_have_attribute("data-status", "cancelled")
    to_order = [s.path for s in log if s.path.startswith(f"/s/acme/o/{placed.order.id}")]
    # The link, its one check, the page's actions (cancel: its confirmation, the POST,
    # the page again): a handful of requests, not a loop.
    assert len(to_order) <= 6, to_order
    assert all(s.cookie is None for s in log if s.server == "store")
