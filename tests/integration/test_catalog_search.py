"""The catalog's search box (`?q=`, server-side, no script needed) and product
pictures, including the demo's, which ship with Broker."""

from __future__ import annotations

import re

import pytest

from broker.catalog.services import ProductChanges, update_product
from broker.errors import Invalid
from broker.grammar import GrammarError, parse_image_url
from tests.factories import World


@pytest.fixture
def maker(ctx):
    m = World(ctx).manufacturer(slug="acme", products=[("NW-LOCK", 5900), ("NW-HELMET", 7900), ("P_100%", 100)])
    update_product(ctx, m.actor, "NW-LOCK", ProductChanges(name="U-lock", description="Hardened steel, two keys."))
    update_product(ctx, m.actor, "NW-HELMET", ProductChanges(name="Commuter helmet", description="A rear light."))
    update_product(ctx, m.actor, "P_100%", ProductChanges(name="Sticker"))
    return m


def names(response) -> list[str]:
    return re.findall(r'<h2><a href="/s/acme/p/[^"]+">([^<]+)</a></h2>', response.get_data(as_text=True))


class TestSearch:
    @pytest.mark.parametrize("query, found", [
        ("lock", ["U-lock"]), ("HELMET", ["Commuter helmet"]), ("steel", ["U-lock"]), ("nw-", ["Commuter helmet", "U-lock"]),
        ("rear light", ["Commuter helmet"]), ("light steel", []), ("%", ["Sticker"]), ("_", ["Sticker"]), ("", None),
    ])
    def test_by_name_sku_or_description(self, client, maker, query, found):
        response = client.get("/s/acme/", query_string={"q": query})
        assert response.status_code == 200
        assert names(response) == (found if found is not None else ["Commuter helmet", "Sticker", "U-lock"])

    def test_the_page_says_what_it_found_and_how_to_see_everything(self, client, maker):
        html = client.get("/s/acme/?q=lock").get_data(as_text=True)
        assert 'role="search"' in html and 'value="lock"' in html
        assert "1 product found for “lock”" in html and 'href="/s/acme/">Show everything' in html
        none = client.get("/s/acme/?q=zeppelin").get_data(as_text=True)
        assert "Nothing matches “zeppelin”" in none

    def test_the_search_keeps_the_cart_and_escapes_the_words(self, client, maker):
        html = client.get("/s/acme/?q=<script>&cart=NW-LOCK:1").get_data(as_text=True)
        assert "<script>" not in html.split("<main>")[1] and "&lt;script&gt;" in html
        assert 'name="cart" value="NW-LOCK:1"' in html

    def test_results_are_never_kept_for_other_visitors(self, client, maker):
        first = client.get("/s/acme/?q=lock")
        assert "ETag" not in first.headers and names(client.get("/s/acme/")) == ["Commuter helmet", "Sticker", "U-lock"]


class TestPictures:
    def test_the_demo_ships_its_own_pictures(self, client, ctx):
        from broker import demo

        demo.seed(ctx, say=lambda *_: None)
        html = client.get("/s/northwind/").get_data(as_text=True)
        images = re.findall(r'<img src="(/static/products/[a-z0-9-]+\.svg)"', html)
        assert len(images) == len(demo.PRODUCTS)
        for src in images:
            with client.get(src) as served:
                assert served.status_code == 200 and served.mimetype == "image/svg+xml"

    @pytest.mark.parametrize("value", ["/static/products/../app.css", "/static/products/x.svg?x=1",
                                       "/static/app.css", "//evil.example/x.svg", "/static/products/X.SVG"])
    def test_only_shipped_pictures_go_by_path(self, value):
        with pytest.raises(GrammarError):
            parse_image_url(value, https_only=False)

    def test_a_product_may_use_a_shipped_picture(self, ctx, maker, client):
        update_product(ctx, maker.actor, "NW-LOCK", ProductChanges(image_url="/static/products/nw-lock.svg"))
        assert '<img src="/static/products/nw-lock.svg" alt="U-lock"' in client.get("/s/acme/p/NW-LOCK").get_data(
            as_text=True)
        with pytest.raises(Invalid):
            update_product(ctx, maker.actor, "NW-LOCK", ProductChanges(image_url="/etc/passwd"))
