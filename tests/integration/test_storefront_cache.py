"""The storefront's cache of rendered pages (broker/storefront/cache.py, web/storefront.py).

A repeat visit to a catalog or product page reads nothing from the database; a
change made through a service in this process shows at once; a change made
anywhere else shows once BROKER_STOREFRONT_CACHE_SECONDS have passed (here the
frozen clock moves, nobody sleeps). Carts, checkout and order pages are never
kept, and always price from the database.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re

import pytest
from sqlalchemy import update

from broker.catalog.imports import import_products
from broker.catalog.models import Product
from broker.catalog.services import NewProduct, ProductChanges, add_product, update_product
from broker.accounts.models import Manufacturer
from broker.storefront.services import Branding, update_branding
from tests.factories import World
from tests.integration.test_query_counts import counting

FORM = {"name": "Ada Lovelace", "email": "ada@example.com", "line1": "12 Analytical Row", "line2": "",
        "city": "San Francisco", "postal_code": "94103", "country": "US", "payment": "test-approve"}
TTL = 5.0  # the default, which the tests' settings keep


@pytest.fixture
def maker(ctx):
    return World(ctx).manufacturer(slug="acme", products=[("KETTLE", 4599), ("TOASTER", 12900)])


def get(client, path: str, ctx, **kwargs):
    """The response, and how many SQL statements it ran."""
    with counting(ctx.engine) as statements:
        response = client.get(path, **kwargs)
    return response, len(statements)


class TestHits:
    @pytest.mark.parametrize("path", ["/s/acme/", "/s/acme/?page=1&cart=KETTLE:2&embed=1", "/s/acme/p/KETTLE"])
    def test_a_repeat_visit_sends_no_sql(self, client, ctx, maker, path):
        first, filled = get(client, path, ctx)
        again, statements = get(client, path, ctx)
        assert first.status_code == again.status_code == 200 and filled > 0
        assert statements == 0
        assert again.data == first.data
        assert again.headers["Content-Security-Policy"] == first.headers["Content-Security-Policy"]

    def test_equivalent_addresses_share_an_entry_and_distinct_ones_do_not(self, client, ctx, maker):
        same = ["/s/acme/", "/s/acme/?page=1", "/s/acme/?page=nonsense", "/s/acme/?utm_source=mail",
                "/s/acme/?cart="]
        for path in same:
            client.get(path)
        assert len(ctx.pages()) == 1
        distinct = {
            "/s/acme/?page=2": b"Nothing for sale yet",
            "/s/acme/?cart=KETTLE:1": b"Cart (1)",
            "/s/acme/?cart=KETTLE:1,TOASTER:2": b"Cart (3)",
            "/s/acme/?embed=1": b'name="embed" value="1"',
            "/s/acme/p/KETTLE": b"SKU KETTLE",
            "/s/acme/p/TOASTER": b"SKU TOASTER",
        }
        for path, text in distinct.items():
            response, statements = get(client, path, ctx)
            assert statements > 0, path  # not served from another page's entry
            assert text in response.data, path
        assert len(ctx.pages()) == 1 + len(distinct)
        # The same cart written another way is the same entry.
        response, statements = get(client, "/s/acme/?cart=KETTLE:1,TOASTER:1,TOASTER:1", ctx)
        assert statements == 0 and b"Cart (3)" in response.data

    def test_an_unknown_store_or_product_is_a_404_and_is_not_kept(self, client, ctx, maker):
        for path in ["/s/nope/", "/s/nope/", "/s/acme/p/NOPE", "/s/acme/p/NOPE"]:
            response, statements = get(client, path, ctx)
            assert response.status_code == 404 and statements > 0
        assert len(ctx.pages()) == 0

    def test_carts_checkout_and_order_pages_are_never_kept(self, client, ctx, maker):
        placed = client.post("/s/acme/checkout?cart=KETTLE:1", data=FORM)
        order_page = client.get(placed.headers["Location"], follow_redirects=True).request.path  # by its cookie
        for path in ["/s/acme/cart?cart=KETTLE:1", "/s/acme/checkout?cart=KETTLE:1", order_page]:
            assert client.get(path).status_code == 200
            response, statements = get(client, path, ctx)
            assert response.status_code == 200 and statements > 0, path
            assert "ETag" not in response.headers and "public" not in response.headers.get("Cache-Control", "")
        assert len(ctx.pages()) == 0


class TestFreshness:
    @pytest.mark.parametrize("change, before, after", [
        (lambda ctx, m: update_product(ctx, m.actor, "KETTLE", ProductChanges(price=4999)), b"$45.99", b"$49.99"),
        (lambda ctx, m: update_product(ctx, m.actor, "KETTLE", ProductChanges(in_stock=False)),
         b"Add Product KETTLE to the cart", b"Sold out"),
        (lambda ctx, m: update_product(ctx, m.actor, "KETTLE", ProductChanges(active=False)),
         b"Product KETTLE", None),
        (lambda ctx, m: add_product(ctx, m.actor, NewProduct("LAMP", "Desk lamp", 2500)), None, b"Desk lamp"),
        (lambda ctx, m: import_products(ctx, m.actor, b"sku,name,price\nKETTLE,Kettle deluxe,51.00\n"),
         b"$45.99", b"$51.00"),
        (lambda ctx, m: update_branding(ctx, m.actor, Branding(name="Acme Appliances")), None, b"Acme Appliances"),
        (lambda ctx, m: update_branding(ctx, m.actor, Branding(color_primary="#112233")), None, b"--brand: #112233"),
    ], ids=["price", "sold out", "withdrawn", "new product", "csv import", "name", "colour"])
    def test_a_change_through_a_service_shows_at_once(self, client, ctx, maker, change, before, after):
        page = client.get("/s/acme/").data
        if before is not None:
            assert before in page
        assert client.get("/s/acme/").data == page  # kept
        change(ctx, maker)
        fresh, statements = get(client, "/s/acme/", ctx)
        assert statements > 0
        if before is not None and after is None:
            assert before not in fresh.data
        if after is not None:
            assert after in fresh.data

    def test_a_change_to_the_framing_origins_shows_at_once_in_the_header(self, client, ctx, maker):
        assert "https://www.acme.example" not in client.get("/s/acme/").headers["Content-Security-Policy"]
        update_branding(ctx, maker.actor, Branding(frame_origins=["https://www.acme.example"]))
        csp = client.get("/s/acme/").headers["Content-Security-Policy"]
        assert "frame-ancestors 'self' https://www.acme.example" in csp

    def test_another_store_keeps_its_pages(self, client, ctx, maker):
        World(ctx).manufacturer(slug="other")
        client.get("/s/other/")
        update_product(ctx, maker.actor, "KETTLE", ProductChanges(price=4999))
        assert get(client, "/s/other/", ctx)[1] == 0

    @pytest.mark.parametrize("path", ["/s/acme/", "/s/acme/p/KETTLE"])
    def test_a_change_made_elsewhere_shows_once_the_ttl_has_passed(self, client, ctx, clock, connection, maker,
                                                                   path):
        assert b"$45.99" in client.get(path).data
        # Another process (a web worker, the CLI, a hand-written UPDATE) changes the price.
        connection.execute(update(Product).where(Product.sku == "KETTLE").values(price=4999))
        clock.advance(seconds=TTL - 0.5)
        stale, statements = get(client, path, ctx)
        assert statements == 0 and b"$45.99" in stale.data
        clock.advance(seconds=0.5)
        assert b"$49.99" in client.get(path).data

    def test_a_look_changed_elsewhere_shows_once_the_ttl_has_passed(self, client, ctx, clock, connection, maker):
        client.get("/s/acme/")
        connection.execute(update(Manufacturer).where(Manufacturer.slug == "acme")
                           .values(frame_origins=["https://www.acme.example"], color_primary="#112233"))
        clock.advance(seconds=TTL)
        response = client.get("/s/acme/")
        assert "https://www.acme.example" in response.headers["Content-Security-Policy"]
        assert b"--brand: #112233" in response.data

    def test_the_cart_and_checkout_price_from_the_database_not_from_the_page(self, client, ctx, connection, maker):
        assert b"$45.99" in client.get("/s/acme/").data
        connection.execute(update(Product).where(Product.sku == "KETTLE").values(price=4999))
        assert b"$45.99" in client.get("/s/acme/").data  # the page may be stale until the TTL ...
        assert b"$49.99" in client.get("/s/acme/cart?cart=KETTLE:1").data  # ... the cart never is
        assert b"$49.99" in client.get("/s/acme/checkout?cart=KETTLE:1").data
        placed = client.post("/s/acme/checkout?cart=KETTLE:1", data=FORM)
        assert b"$49.99" in client.get(placed.headers["Location"], follow_redirects=True).data

    def test_zero_seconds_turns_the_cache_off(self, ctx, maker):
        from web.app import create_app

        off = dataclasses.replace(ctx, settings=dataclasses.replace(ctx.settings, storefront_cache_seconds=0),
                                  page_cache=None)
        client = create_app(context=off, test_config={"TESTING": True}).test_client()
        client.get("/s/acme/")
        response, statements = get(client, "/s/acme/", off)
        assert response.status_code == 200 and statements > 0 and len(off.pages()) == 0
        assert "ETag" in response.headers  # a browser may still revalidate

    def test_the_oldest_entries_go_first_when_it_is_full(self, ctx, maker):
        from web.app import create_app

        small = dataclasses.replace(ctx, settings=dataclasses.replace(ctx.settings, storefront_cache_entries=2),
                                    page_cache=None)
        client = create_app(context=small, test_config={"TESTING": True}).test_client()
        for path in ["/s/acme/?cart=KETTLE:1", "/s/acme/?cart=KETTLE:2", "/s/acme/?cart=KETTLE:1",
                     "/s/acme/?cart=KETTLE:3"]:
            client.get(path)
        assert len(small.pages()) == 2
        assert get(client, "/s/acme/?cart=KETTLE:1", small)[1] == 0  # used recently: kept
        assert get(client, "/s/acme/?cart=KETTLE:2", small)[1] > 0  # least recently used: gone


class TestConditionalRequests:
    def test_etag_and_304(self, client, ctx, maker):
        first = client.get("/s/acme/")
        etag = first.headers["ETag"]
        assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
        assert first.headers["Cache-Control"] == "public, no-cache"
        for sent in [etag, f"W/{etag}", f'"other", {etag}', "*"]:
            again, statements = get(client, "/s/acme/", ctx, headers={"If-None-Match": sent})
            assert again.status_code == 304 and again.data == b"" and statements == 0, sent
            assert again.headers["ETag"] == etag
        assert client.get("/s/acme/", headers={"If-None-Match": '"other"'}).status_code == 200

    def test_a_change_gives_a_new_etag(self, client, ctx, maker):
        etag = client.get("/s/acme/").headers["ETag"]
        update_product(ctx, maker.actor, "KETTLE", ProductChanges(price=4999))
        changed = client.get("/s/acme/", headers={"If-None-Match": etag})
        assert changed.status_code == 200 and changed.headers["ETag"] != etag and b"$49.99" in changed.data

    def test_a_new_framing_origin_gives_a_new_etag(self, client, ctx, maker):
        """The page is the same; its frame-ancestors are not, and a 304 would keep the old ones."""
        etag = client.get("/s/acme/").headers["ETag"]
        update_branding(ctx, maker.actor, Branding(frame_origins=["https://www.acme.example"]))
        assert client.get("/s/acme/", headers={"If-None-Match": etag}).status_code == 200

    def test_a_304_is_answered_on_the_first_rendering_too(self, ctx, client, maker):
        etag = client.get("/s/acme/").headers["ETag"]
        ctx.pages().clear()
        response, statements = get(client, "/s/acme/", ctx, headers={"If-None-Match": etag})
        assert response.status_code == 304 and statements > 0


class TestStylePolicy:
    def _style_sources(self, response) -> list[str]:
        csp = response.headers["Content-Security-Policy"]
        directives = {part.split()[0]: part.split()[1:] for part in csp.split(";") if part.strip()}
        return directives["style-src"]

    @pytest.mark.parametrize("path", ["/s/acme/", "/s/acme/p/KETTLE", "/s/acme/cart?cart=KETTLE:1",
                                      "/s/acme/checkout?cart=KETTLE:1"])
    def test_only_the_stores_own_inline_style_is_allowed(self, client, maker, path):
        for response in (client.get(path), client.get(path)):  # rendered, then (where kept) from the cache
            page = response.get_data(as_text=True)
            styles = re.findall(r"<style>(.*?)</style>", page, re.S)
            assert len(styles) == 1 and page.count("<style") == 1 and " style=" not in page
            digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
            assert self._style_sources(response) == ["'self'", f"'sha256-{digest}'"]
            assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
            assert "nonce" not in response.headers["Content-Security-Policy"] and "nonce" not in page

    def test_the_hash_follows_the_stores_colours(self, client, ctx, maker):
        before = self._style_sources(client.get("/s/acme/"))
        update_branding(ctx, maker.actor, Branding(color_accent="#abcdef"))
        after = client.get("/s/acme/")
        assert self._style_sources(after) != before and b"--accent: #abcdef" in after.data

    def test_a_colour_put_in_the_database_by_hand_cannot_end_the_style(self, client, connection, maker):
        connection.execute(update(Manufacturer).where(Manufacturer.slug == "acme")
                           .values(color_primary="</style", color_accent="x;}*{a"))
        page = client.get("/s/acme/").get_data(as_text=True)
        assert re.search(r"<style>:root \{ (--[a-z-]+: #[0-9a-f]{6}; )+\}</style>", page)

    def test_the_shared_stylesheet_is_served(self, client, maker):
        with client.get("/static/store.css") as css:
            assert css.status_code == 200 and b"var(--brand)" in css.data


class TestSettings:
    def test_the_environment_sets_the_cache(self):
        from broker.config import Settings

        assert Settings.from_env({}).storefront_cache_seconds == 5
        settings = Settings.from_env({"BROKER_STOREFRONT_CACHE_SECONDS": "0",
                                      "BROKER_STOREFRONT_CACHE_ENTRIES": "50"})
        assert settings.storefront_cache_seconds == 0 and settings.storefront_cache_entries == 50

    @pytest.mark.parametrize("env", [{"BROKER_STOREFRONT_CACHE_SECONDS": "-1"},
                                     {"BROKER_STOREFRONT_CACHE_SECONDS": "soon"},
                                     {"BROKER_STOREFRONT_CACHE_ENTRIES": "0"}])
    def test_bad_values_are_refused(self, env):
        from broker.config import ConfigError, Settings

        with pytest.raises(ConfigError, match="BROKER_STOREFRONT_CACHE_"):
            Settings.from_env(env)
