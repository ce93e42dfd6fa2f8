"""Checkout that cannot go wrong: every field checked on the server and every
error shown at once, with a summary that takes the focus and fields marked for
screen readers; the order's summary on the page; unavailable lines named by
product before submitting; the address shaped by the country."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from broker.catalog.services import ProductChanges, update_product
from broker.models import Order
from broker.storefront.services import Branding, update_branding
from tests.factories import World

FORM = {"name": "Ada Lovelace", "email": "ada@example.com", "line1": "12 Analytical Row", "line2": "",
        "city": "San Francisco", "region": "CA", "postal_code": "94103", "country": "US", "payment": "test-approve"}


@pytest.fixture
def maker(ctx):
    w = World(ctx)
    m = w.manufacturer(slug="acme", products=[("KETTLE", 4599), ("TOASTER", 12900)])
    with ctx.uow() as uow:
        from broker.catalog.models import Product

        uow.session.execute(Product.__table__.update().where(Product.sku == "TOASTER").values(name="Chrome Toaster"))
        uow.session.execute(Product.__table__.update().where(Product.sku == "KETTLE").values(name="Steel Kettle"))
        uow.commit()
    return m


def orders(session) -> int:
    return session.scalar(select(func.count()).select_from(Order).execution_options(populate_existing=True))


def text(response) -> str:
    return response.get_data(as_text=True)


class TestEveryErrorAtOnce:
    def test_ada_at_is_refused_with_every_other_error_at_once(self, client, maker, session):
        response = client.post("/s/acme/checkout?cart=KETTLE:1", data={
            **FORM, "name": "", "email": "ada@", "line1": "", "city": "", "postal_code": ""})
        assert response.status_code == 422 and orders(session) == 0
        html = text(response)
        for field in ("name", "email", "line1", "city"):
            assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', html), field
            assert re.search(rf'id="{field}"[^>]*aria-describedby="[^"]*{field}-error', html), field
            assert f'id="{field}-error"' in html and f'href="#{field}"' in html, field
        assert "not an email address we can write to" in html

    def test_the_summary_comes_first_and_takes_the_focus(self, client, maker):
        html = text(client.post("/s/acme/checkout?cart=KETTLE:1", data={**FORM, "email": "ada@"}))
        summary = re.search(r'<div class="error-summary"[^>]*>', html).group(0)
        assert 'tabindex="-1"' in summary and "autofocus" in summary and 'role="alert"' in summary
        assert html.index("error-summary") < html.index("<h1>")
        assert "<title>Error: Checkout" in html

    def test_an_empty_form_names_every_required_field(self, client, maker, session):
        response = client.post("/s/acme/checkout?cart=KETTLE:1", data={"country": "US", "payment": "test-approve"})
        html = text(response)
        assert response.status_code == 422 and orders(session) == 0
        assert {"name", "email", "line1", "city"} <= set(re.findall(r'id="([a-z0-9_]+)-error"', html))

    def test_a_missing_payment_choice_still_shows_the_other_errors(self, client, maker, session):
        response = client.post("/s/acme/checkout?cart=KETTLE:1", data={**FORM, "payment": "", "email": "ada@"})
        html = text(response)
        assert response.status_code == 422 and orders(session) == 0
        assert 'id="payment-error"' in html and 'id="email-error"' in html

    def test_the_corrected_form_places_the_order(self, client, maker, session):
        assert client.post("/s/acme/checkout?cart=KETTLE:1", data={**FORM, "email": "ada@"}).status_code == 422
        assert client.post("/s/acme/checkout?cart=KETTLE:1", data=FORM).status_code == 303
        assert orders(session) == 1


class TestOrderSummary:
    def test_lines_quantities_unit_and_line_totals_and_the_total(self, client, maker):
        html = text(client.get("/s/acme/checkout?cart=KETTLE:2,TOASTER:1"))
        summary = html[html.index('id="order-summary"'):html.index("</section>")]
        assert "Steel Kettle" in summary and "Chrome Toaster" in summary
        assert "$45.99" in summary and "$91.98" in summary and "$129.00" in summary
        assert re.search(r'id="order-total">\$220\.98<', summary)

    def test_a_sold_out_line_is_named_before_submitting_on_cart_and_checkout(self, client, ctx, maker):
        update_product(ctx, maker.actor, "TOASTER", ProductChanges(in_stock=False))
        for page in (client.get("/s/acme/cart?cart=KETTLE:1,TOASTER:1"),
                     client.get("/s/acme/checkout?cart=KETTLE:1,TOASTER:1")):
            html = text(page)
            assert "<strong>Chrome Toaster</strong> is sold out" in html
            assert not re.search(r">[^<]*\bTOASTER\b[^<]*<", html)  # by name: no text shows the SKU

    def test_a_line_that_sells_out_meanwhile_is_named_on_submit(self, client, ctx, maker, session):
        page = client.get("/s/acme/checkout?cart=KETTLE:1,TOASTER:1")
        assert "sold out" not in text(page)
        update_product(ctx, maker.actor, "TOASTER", ProductChanges(in_stock=False))
        response = client.post("/s/acme/checkout?cart=KETTLE:1,TOASTER:1", data=FORM)
        assert response.status_code == 422 and orders(session) == 0
        assert "Chrome Toaster is sold out" in text(response)


class TestAddressByCountry:
    def test_a_us_address_has_a_state(self, client, maker):
        html = text(client.get("/s/acme/checkout?cart=KETTLE:1"))
        assert re.search(r'<select id="region" name="region"', html) and "California" in html

    @pytest.mark.parametrize("locale, country", [("en_GB", "GB"), ("de_DE", "DE"), ("fr", "FR"), ("en_US", "US")])
    def test_the_country_starts_as_the_stores(self, client, ctx, maker, locale, country):
        update_branding(ctx, maker.actor, Branding(locale=locale))
        html = text(client.get("/s/acme/checkout?cart=KETTLE:1"))
        assert re.search(rf'<option value="{country}" selected>', html), country

    def test_the_state_is_kept_and_checked(self, client, maker, session):
        response = client.post("/s/acme/checkout?cart=KETTLE:1", data={**FORM, "region": "Narnia"})
        assert response.status_code == 422 and 'id="region-error"' in text(response)
        assert client.post("/s/acme/checkout?cart=KETTLE:1", data=FORM).status_code == 303
        assert session.scalar(select(Order.ship_region)) == "CA"

    def test_the_no_script_button_reshapes_the_form_for_another_country(self, client, maker, session):
        response = client.post("/s/acme/checkout?cart=KETTLE:1", data={**FORM, "country": "CA", "action": "country"})
        html = text(response)
        assert response.status_code == 200 and orders(session) == 0 and "error-summary" not in html
        assert "Province" in html and "Ontario" in html

    def test_the_store_answers_a_countrys_address_form(self, client, maker):
        found = client.get("/s/acme/address-format/JP").get_json()
        assert found["country"] == "JP" and any(f["name"] == "region" for f in found["fields"])
        assert client.get("/s/acme/address-format/XX").status_code == 404
