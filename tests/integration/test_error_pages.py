"""Error pages: inside a store in its look with a way back to its catalog;
Broker's plain one elsewhere; the API keeps its problem details."""

from __future__ import annotations

import pytest

from broker.storefront.services import Branding, update_branding
from tests.factories import World


@pytest.fixture
def maker(ctx):
    m = World(ctx).manufacturer(slug="northwind", products=[("BIKE-1", 4599)])
    update_branding(ctx, m.actor, Branding(color_primary="#0f766e", name="Northwind Cycles"))
    return m


def html(response) -> str:
    return response.get_data(as_text=True)


class TestInsideTheStore:
    @pytest.mark.parametrize("path", ["/s/northwind/p/NOPE", "/s/northwind/no/such/page", "/s/northwind/o/999999"])
    def test_a_404_wears_the_store_and_leads_back(self, client, maker, path):
        response = client.get(path)
        page = html(response)
        assert response.status_code in (403, 404), path
        assert "Northwind Cycles" in page and 'href="/s/northwind/"' in page
        assert "--brand: #0f766e" in page  # the store's colours
        assert "sha256-" in response.headers["Content-Security-Policy"]
        assert response.headers["Cache-Control"] == "no-store"

    def test_the_cart_survives_the_way_back(self, client, maker):
        page = html(client.get("/s/northwind/p/NOPE?cart=BIKE-1:2"))
        assert "cart=BIKE-1:2" in page and "Cart (0)" not in page.split("<main>")[1]

    def test_a_429_on_checkout_is_the_stores_page(self, client, maker):
        statuses = [client.post("/s/northwind/checkout?cart=BIKE-1:1", data={}).status_code for _ in range(31)]
        assert statuses[-1] == 429 and 429 not in statuses[:30]
        limited = client.post("/s/northwind/checkout?cart=BIKE-1:1", data={})
        page = html(limited)
        assert "Too many tries" in page and "Northwind Cycles" in page and 'href="/s/northwind/?cart=BIKE-1:1"' in page
        assert int(limited.headers["Retry-After"]) > 0

    def test_a_500_is_the_stores_page_and_reads_no_database(self, app, ctx, maker, monkeypatch):
        from web import storefront

        def broken(*args, **kwargs):
            raise RuntimeError("the catalog broke")

        monkeypatch.setattr(storefront, "storefront_catalog", broken)
        app.testing = False  # as in production: the exception becomes the 500 page
        client = app.test_client()
        queries = []
        from sqlalchemy import event

        response = client.get("/s/northwind/?page=2")
        assert response.status_code == 500

        def count(*args):
            queries.append(args)

        event.listen(ctx.engine, "before_cursor_execute", count)
        try:
            from web import errors

            with app.test_request_context("/s/northwind/"):
                from flask import g
                from werkzeug.exceptions import InternalServerError

                g.pop("store", None)
                page = errors.error_page(InternalServerError())
        finally:
            event.remove(ctx.engine, "before_cursor_execute", count)
        assert queries == [] and page.status_code == 500
        assert "Something went wrong on our side" in html(response) and "Northwind Cycles" in html(response)
        assert "the catalog broke" not in html(response)

    def test_an_error_page_that_fails_falls_back_to_a_fixed_one(self, app, maker, monkeypatch):
        from web import errors

        def broken(*args, **kwargs):
            raise RuntimeError("the template broke")

        monkeypatch.setattr(errors, "render_template", broken)
        response = app.test_client().get("/s/northwind/p/NOPE")
        assert response.status_code == 404 and "Something went wrong" in html(response)


class TestElsewhere:
    def test_an_unknown_store_gets_brokers_plain_404(self, client, maker):
        response = client.get("/s/nobody/p/NOPE")
        assert response.status_code == 404 and "We cannot find that page" in html(response)
        assert "app.css" in html(response) and "Northwind" not in html(response)

    def test_a_page_outside_the_stores_is_plain(self, client):
        response = client.get("/no/such/page")
        assert response.status_code == 404 and "app.css" in html(response)

    def test_the_api_keeps_its_problem_details(self, client):
        response = client.get("/api/v1/no/such/thing")
        assert response.status_code == 404 and response.mimetype == "application/problem+json"
