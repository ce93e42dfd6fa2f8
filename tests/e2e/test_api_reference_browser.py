"""The API reference in a real browser (headless Chromium driven by Playwright).

An integrator opens `/api/v1/docs`, at 1280 and at 390 px wide: Swagger UI (vendored)
draws the OpenAPI document, grouped by tag, with the introduction; they open "Place
an order" and read its example request and its example answer, in minor units.
Every request the page makes goes to Broker itself (no CDN, no validator, no font);
nothing is logged to the console, no Content-Security-Policy violation, no sideways
scrolling, and axe-core finds no serious or critical violation.

One real server on a real port, on a fresh SQLite file built by the migrations.
Each step leaves a screenshot in `artifacts/screenshots/<test>/<NN>-<step>.png`.
Without Playwright or /usr/bin/chromium the module is skipped, unless
BROKER_REQUIRE_BROWSER=1 (CI), where that is a failure.
"""

from __future__ import annotations

import pytest

from broker.config import Settings
from broker.context import Context
from broker.migrate import upgrade
from tests.e2e.browser import SKIP_WITHOUT_BROWSER, Server, chromium, expect, watched_page
from tests.e2e.browser import assert_no_sideways_scrolling as _no_sideways_scrolling
from tests.e2e.browser import serious_axe_violations as _serious_axe_violations

pytestmark = SKIP_WITHOUT_BROWSER


@pytest.fixture(scope="module")
def server(_browser_available, tmp_path_factory):
    from web.app import create_app

    url = f"sqlite:///{tmp_path_factory.mktemp('reference') / 'reference.db'}"
    upgrade(url)
    ctx = Context.from_settings(Settings(database_url=url, admin_token="x", secret_key="k"))
    server = Server(create_app(context=ctx))
    try:
        yield server
    finally:
        server.close()
        ctx.engine.dispose()


@pytest.fixture(scope="module")
def browser(server):
    """Depends on `server` so that it closes before the server stops."""
    with chromium() as browser:
        yield browser


@pytest.mark.parametrize("width", [1280, 390])
def test_an_integrator_reads_the_reference_and_an_operations_examples(server, browser, shot, width):
    requests: list[str] = []
    with watched_page(browser, width=width) as page:
        page.on("request", lambda request: requests.append(request.url))
        page.goto(server.origin + "/api/v1/docs")

        # The document is drawn: its title, the introduction's sections, the tags.
        expect(page.get_by_role("heading", name="Broker", exact=False).first).to_be_visible()
        expect(page.get_by_role("heading", name="Authentication", exact=True)).to_be_visible()
        expect(page.get_by_role("heading", name="Money", exact=True)).to_be_visible()
        for tag in ("accounts", "catalog", "orders", "board", "fulfilment", "settlement", "payments",
                    "personal", "reputation", "storefront", "privacy"):
            expect(page.locator(f'.opblock-tag[data-tag="{tag}"]')).to_be_visible()
        _no_sideways_scrolling(page)
        shot(page, f"reference-{width}")

        # "Place an order": its description, the example request and the example answer.
        place = page.locator("#operations-orders-post_api_v1_storefronts__slug__orders")
        place.locator(".opblock-summary-control").click()
        description = place.locator(".opblock-description-wrapper").first
        expect(description).to_contain_text("Prices come from the catalog")
        expect(description).to_contain_text("Who may call")
        body = place.locator(".opblock-section-request-body")
        expect(body).to_contain_text('"sku": "NW-HELMET"')
        answers = place.locator(".responses-wrapper")
        created = answers.locator('tr.response[data-code="201"]')
        expect(created).to_contain_text('"subtotal": 12800')
        expect(created).to_contain_text('"access_token"')
        expect(answers.locator('tr.response[data-code="402"]')).to_contain_text("card was declined")
        expect(answers.locator('tr.response[data-code="429"]')).to_contain_text("30 a minute")
        _no_sideways_scrolling(page)
        shot(page, f"place-an-order-{width}")

        # A schema states the unit of its amounts.
        schemas = page.locator("section.models")
        schemas.locator("h4").click()
        order_out = schemas.locator('#model-OrderOut')
        order_out.scroll_into_view_if_needed()
        order_out.locator("button").first.click()
        total = order_out.get_by_role("row", name="total", exact=False).first
        total.get_by_role("button").click()
        expect(total).to_contain_text("minor units")
        _no_sideways_scrolling(page)
        shot(page, f"schema-{width}")

        assert _serious_axe_violations(page) == []

    assert requests, "the page made no request"
    foreign = [url for url in requests if not url.startswith(server.origin + "/")]
    assert not foreign, f"requests to other hosts: {foreign}"
    assert server.origin + "/api/v1/openapi.json" in requests


def test_a_link_cannot_make_the_reference_draw_another_document(server, browser):
    """Swagger UI can read `url` and `configUrl` from the query; on Broker's page a
    crafted link still draws Broker's own document and asks no other host."""
    requests: list[str] = []
    with watched_page(browser) as page:
        page.on("request", lambda request: requests.append(request.url))
        page.goto(server.origin + "/api/v1/docs?url=https://attacker.example/doc.json"
                  "&configUrl=https://attacker.example/config.json")
        expect(page.locator('.opblock-tag[data-tag="board"]')).to_be_visible()
    assert [url for url in requests if not url.startswith(server.origin + "/")] == []
    assert server.origin + "/api/v1/openapi.json" in requests
