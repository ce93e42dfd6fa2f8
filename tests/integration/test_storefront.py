"""The storefront through the Flask test client: browse, cart, checkout, the
status page, branding, framing rules and escaping. (Real-browser tests are in
tests/e2e/.)"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from broker.catalog.services import ProductChanges, update_product
from broker.models import Base, Order
from broker.storefront.services import Branding, update_branding
from tests.factories import World

FORM = {"name": "Ada Lovelace", "email": "ada@example.com", "line1": "12 Analytical Row", "line2": "",
        "city": "San Francisco", "postal_code": "94103", "country": "US", "payment": "test-approve"}


@pytest.fixture
def maker(ctx):
    w = World(ctx)
    m = w.manufacturer(slug="acme", products=[("KETTLE", 4599), ("TOASTER", 12900), ("BOX/2", 500)])
    update_product(ctx, m.actor, "TOASTER", ProductChanges(in_stock=False))
    return m


def rows(ctx):
    with ctx.uow() as uow:
        return {t.name: uow.session.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables}


def test_browse_add_to_cart_check_out_and_land_on_the_status_page(client, maker, session):
    page = client.get("/s/acme/")
    assert page.status_code == 200 and b"Product KETTLE" in page.data and b"$45.99" in page.data
    assert b"Sold out" in page.data  # the toaster
    cart = client.get("/s/acme/cart?add=KETTLE&qty=2")
    assert b"$91.98" in cart.data
    cart_param = re.search(rb'name="cart" value="([^"]+)"', cart.data).group(1).decode()
    cart = client.get(f"/s/acme/cart?cart={cart_param}&add=BOX%2F2")
    cart_param = re.search(rb'name="cart" value="([^"]+)"', cart.data).group(1).decode()
    assert b"$96.98" in cart.data
    done = client.post(f"/s/acme/checkout?cart={cart_param}", data=FORM)
    assert done.status_code == 303
    status = client.get(done.headers["Location"], follow_redirects=True)
    assert status.status_code == 200 and b"your order is placed" in status.data
    assert re.fullmatch(r"/s/acme/o/\d+", status.request.path)  # the link was exchanged for a cookie
    assert b'data-status="open"' in status.data and b"Test mode" in status.data
    order = session.scalar(select(Order))
    assert order.total == 9698 and {l.sku for l in order.lines} == {"KETTLE", "BOX/2"}


def test_cancel_from_the_status_page(client, maker):
    done = client.post("/s/acme/checkout?cart=KETTLE:1", data=FORM)
    page = client.get(done.headers["Location"], follow_redirects=True)
    confirm = client.get(f"{page.request.path}/cancel")  # a confirmation step first
    assert confirm.status_code == 200 and b"Yes, cancel the order" in confirm.data
    csrf = re.search(rb'name="link_csrf" value="([^"]+)"', confirm.data).group(1).decode()
    assert b'data-status=\"open\"' in client.get(page.request.path).data
    key = re.search(rb'name="form_key" value="([^"]+)"', confirm.data).group(1).decode()
    cancelled = client.post(f"{page.request.path}/cancel", data={"link_csrf": csrf, "form_key": key})
    assert cancelled.status_code == 303 and cancelled.headers["Location"] == f"{page.request.path}?done=cancelled"
    again = client.post(f"{page.request.path}/cancel", data={"link_csrf": csrf, "form_key": key})
    assert again.status_code == 303 and again.headers["Location"] == cancelled.headers["Location"]  # not a 409
    shown = client.get(cancelled.headers["Location"])
    assert b'data-status=\"cancelled\"' in shown.data and b"Your order is cancelled" in shown.data


@pytest.mark.parametrize("change, field", [
    ({"postal_code": "00000"}, "postal_code"),
    ({"email": "not-an-email"}, "email"),
    ({"name": ""}, "name"),
    ({"country": "USA"}, "country"),
])
def test_form_errors_show_next_to_the_field_and_nothing_is_created(client, maker, ctx, change, field):
    before = rows(ctx)
    response = client.post("/s/acme/checkout?cart=KETTLE:1", data={**FORM, **change})
    assert response.status_code == 422
    assert f'id="{field}-error"'.encode() in response.data
    assert rows(ctx) == before


@pytest.mark.parametrize("cart, message", [("", b"the cart is empty"), ("TOASTER:1", b"Product TOASTER is sold out")])
def test_empty_or_sold_out_carts_cannot_be_checked_out(client, maker, ctx, cart, message):
    before = rows(ctx)
    response = client.post(f"/s/acme/checkout?cart={cart}", data=FORM)
    assert response.status_code == 422 and message in response.data and b'id="cart-error"' in response.data
    assert rows(ctx) == before


def test_the_status_page_needs_its_token(client, maker):
    done = client.post("/s/acme/checkout?cart=KETTLE:1", data=FORM)
    order_id = done.headers["Location"].split("/o/")[1].split("/")[0]
    assert client.get(f"/s/acme/o/{order_id}/wrong-token").status_code == 404


class TestBrandingAndFraming:
    def test_the_store_wears_its_brand_and_broker_only_says_powered_by(self, client, maker, ctx):
        update_branding(ctx, maker.actor, Branding(color_primary="#112233", logo_url="https://cdn.acme.example/logo.png"))
        page = client.get("/s/acme/").get_data(as_text=True)
        assert "--brand: #112233" in page and "https://cdn.acme.example/logo.png" in page
        assert page.count("Broker") == 1 and "powered by Broker" in page

    def test_only_listed_origins_may_frame_the_store(self, client, maker, ctx):
        update_branding(ctx, maker.actor, Branding(frame_origins=["https://www.acme.example"]))
        csp = client.get("/s/acme/").headers["Content-Security-Policy"]
        assert "frame-ancestors 'self' https://www.acme.example" in csp
        assert "script-src 'self'" in csp

    def test_a_manufacturer_name_with_script_renders_as_text(self, client, maker, ctx):
        update_branding(ctx, maker.actor, Branding(name='<script>alert("x")</script> Acme'))
        page = client.get("/s/acme/").get_data(as_text=True)
        assert '<script>alert("x")</script>' not in page
        assert "&lt;script&gt;alert(" in page

    @pytest.mark.parametrize("branding, field", [
        (Branding(color_primary="red; background:url(x)"), "color_primary"),
        (Branding(logo_url="javascript:alert(1)"), "logo_url"),
        (Branding(frame_origins=["https://evil.example/path"]), "frame_origins"),
        (Branding(custom_domain="not a domain"), "custom_domain"),
        (Branding(locale="xx_YY_ZZ"), "locale"),
    ])
    def test_branding_that_could_inject_is_refused(self, ctx, maker, branding, field):
        from broker.errors import Invalid

        with pytest.raises(Invalid) as raised:
            update_branding(ctx, maker.actor, branding)
        assert field in raised.value.errors

    def test_prices_follow_the_store_locale(self, client, ctx):
        m = World(ctx).manufacturer(slug="berlin", currency="EUR", products=[("UHR", 123456)])
        update_branding(ctx, m.actor, Branding(locale="de_DE"))
        assert "1.234,56\xa0€" in client.get("/s/berlin/").get_data(as_text=True)

    def test_a_custom_domain_serves_its_store_once_verified(self, client, maker, ctx):
        from broker.storefront.domains import verify_domain
        from tests.integration.test_hosts_and_urls import through

        update_branding(ctx, maker.actor, Branding(custom_domain="shop.acme.example"))
        assert client.get("/", headers={"Host": "shop.acme.example"}).status_code == 400
        ctx.domain_checker = through(client)
        verify_domain(ctx, maker.actor)
        response = client.get("/", headers={"Host": "shop.acme.example"})
        assert response.status_code == 302 and response.headers["Location"].endswith("/s/acme/")

    def test_embed_script_mounts_an_iframe(self, client, maker):
        js = client.get("/s/acme/embed.js")
        assert js.status_code == 200 and js.mimetype == "text/javascript"
        assert b"iframe" in js.data and b"/s/acme/?embed=1" in js.data


def test_no_third_party_requests_in_the_shop(client, maker):
    page = client.get("/s/acme/").get_data(as_text=True)
    for url in re.findall(r'(?:src|href)="([^"]+)"', page):
        # Our own paths, the brand's own domain, or inline data (no request at all).
        assert url.startswith(("/", "data:")) or "acme.example" in url, url


def test_the_manufacturer_sets_its_look_through_the_api(client, maker):
    headers = {"Authorization": f"Bearer {maker.key}"}
    response = client.patch("/api/v1/storefront", headers=headers, json={
        "color_primary": "#0F766E", "frame_origins": ["https://www.acme.example/"], "locale": "en_GB"})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["color_primary"] == "#0f766e" and body["frame_origins"] == ["https://www.acme.example"]
    assert 'src="http://localhost/s/acme/embed.js"' in body["embed_snippet"]
    bad = client.patch("/api/v1/storefront", headers=headers, json={"color_primary": "blue"})
    assert bad.status_code == 422 and "color_primary" in bad.get_json()["errors"]
    assert client.patch("/api/v1/storefront", json={"locale": "de_DE"}).status_code == 401


class TestReturns:
    def shipped(self, client, ctx, clock, maker):

        from broker.fulfilment.models import Assignment
        from broker.fulfilment.services import RecordShipment, record_shipment
        from broker.settlement.services import settle

        done = client.post("/s/acme/checkout?cart=KETTLE:1", data=FORM)
        page = done.headers["Location"].split("?")[0]
        clock.advance(hours=13)
        settle(ctx)  # nobody bid: the manufacturer ships it
        with ctx.uow() as uow:
            assignment = uow.session.scalar(select(Assignment))
        record_shipment(ctx, maker.actor, assignment.id, RecordShipment("UPS", "1Z"))
        return page, int(page.split("/o/")[1].split("/")[0])

    def test_the_customer_asks_and_the_fulfiller_accepts_and_refunds(self, client, ctx, clock, maker, session):
        from broker.ledger.services import check
        from broker.payments.models import Payment

        page, order_id = self.shipped(client, ctx, clock, maker)
        assert b"Ask for a return" in client.get(page, follow_redirects=True).data
        assert client.post(f"{page}/return", data={"reason": "It leaks"}).status_code == 303
        assert b"You asked to return it" in client.get(page, follow_redirects=True).data
        again = client.post(f"{page}/return", data={"reason": "Still leaks"})
        assert again.status_code == 409
        accepted = client.post(f"/api/v1/orders/{order_id}/return/accept",
                               headers={"Authorization": f"Bearer {maker.key}"})
        assert accepted.status_code == 200 and accepted.get_json()["status"] == "refunded"
        payment = session.scalar(select(Payment).execution_options(populate_existing=True))
        assert payment.refunded_amount == payment.captured_amount == 4599
        assert check(session).ok

    def test_no_return_after_the_window(self, client, ctx, clock, maker):
        page, order_id = self.shipped(client, ctx, clock, maker)
        clock.advance(days=31)
        assert b"return window has closed" in client.get(page, follow_redirects=True).data
        response = client.post(f"/api/v1/orders/{order_id}/return", json={"reason": "late"},
                               headers={"X-Access-Token": page.rsplit("/", 1)[1]})
        assert response.status_code == 409

    def test_only_the_fulfiller_accepts_a_return(self, client, ctx, clock, maker):
        page, order_id = self.shipped(client, ctx, clock, maker)
        client.post(f"{page}/return", data={"reason": "Wrong colour"})
        other = World(ctx).manufacturer()
        response = client.post(f"/api/v1/orders/{order_id}/return/accept",
                               headers={"Authorization": f"Bearer {other.key}"})
        assert response.status_code == 404
