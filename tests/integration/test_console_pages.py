"""The manufacturer console, page by page, through the Flask test client.

Each page renders with real data; the dashboard's charts carry the numbers the
world was built to produce; a CSV import with one bad row applies the others and
reports that one; approving an application makes a dealer; a fallback order is
shipped from the console. And the access rules: signed out goes to the sign-in
page, a retailer gets 403, one manufacturer cannot open another's order, and a
form without its CSRF token is refused.
"""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from sqlalchemy import select

from broker.accounts import applications
from broker.accounts import services as accounts
from broker.accounts.models import Role
from broker.catalog.models import Product
from broker.fulfilment import services as fulfilment
from broker.fulfilment.models import AssignmentStatus
from broker.identity.services import add_user, reset_password
from broker.orders.models import Order, OrderStatus
from broker.pagination import PageRequest
from broker.privacy.models import Disclosure
from broker.settlement.services import settle
from tests.conftest import START
from tests.factories import HERE, World, north_of

PASSWORD = "correct horse battery staple"
SVG = "{http://www.w3.org/2000/svg}"
_addresses = itertools.count(1)
CONSOLE_PAGES = ["/console/", "/console/to-ship", "/console/orders", "/console/returns", "/console/catalog", "/console/catalog/new",
                 "/console/dealers", "/console/storefront", "/console/settlements", "/console/earnings"]

# The weeks the dashboard world is built in (START is Monday 2 March 2026, 09:00 UTC).
WEEK_A = START - timedelta(weeks=2)  # Monday 16 February
WEEK_B = START - timedelta(weeks=1)  # Monday 23 February


# --- helpers ---------------------------------------------------------------


def sign_in(client, ctx, role: Role, company_id: int, email: str | None = None) -> str:
    """A user of the company with a password, signed in through the real form."""
    email = email or f"user{next(_addresses)}-{company_id}@{role.value}.example"
    _, link = add_user(ctx, role=role, company_id=company_id, email=email, name="Pat Example")
    reset_password(ctx, link.rsplit("/", 1)[1], PASSWORD)
    # A client address of its own per sign-in: the limiter counts per address.
    environ = {"REMOTE_ADDR": f"10.9.{next(_addresses) % 250}.{next(_addresses) % 250}"}
    form = client.get("/signin", environ_base=environ).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    resp = client.post("/signin", data={"email": email, "password": PASSWORD, "csrf_token": token},
                       environ_base=environ)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return email


def csrf(client, path: str = "/console/") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def chart(html: str, chart_id: str) -> ET.Element:
    match = re.search(rf'<svg id="{chart_id}".*?</svg>', html, re.DOTALL)
    assert match, f"no chart {chart_id}"
    return ET.fromstring(match.group(0))


def marks(svg: ET.Element) -> list[dict]:
    """Every bar and point of a chart: its label, series and value, and its hover title."""
    found = []
    for element in svg.iter():
        if element.tag in (f"{SVG}rect", f"{SVG}circle") and element.get("data-value") is not None:
            title = element.find(f"{SVG}title")
            found.append({"label": element.get("data-label"), "series": element.get("data-series"),
                          "value": float(element.get("data-value")), "title": title.text if title is not None else None})
    return found


def value_of(svg: ET.Element, label: str, series: str | None = None) -> float | None:
    hits = [m["value"] for m in marks(svg) if m["label"] == label and (series is None or m["series"] == series)]
    assert len(hits) <= 1
    return hits[0] if hits else None


def fallback_order(world: World, maker, *, when=START, name="Ada Lovelace"):
    """An order nobody bids on, settled to the manufacturer: one for it to ship."""
    placed = world.order(maker, when=when, name=name)
    settle(world.at(when + timedelta(hours=13)), as_of=when + timedelta(hours=13))
    return placed.order


def active_assignment(ctx, actor, order_id: int):
    found = fulfilment.list_assignments(ctx, actor, PageRequest(1, 100), status=AssignmentStatus.ACTIVE)
    return next(v.assignment for v in found.items if v.order.id == order_id)


@pytest.fixture
def maker(world):
    return world.manufacturer(products=(("SKU-1", 5000), ("SKU-2", 12900)))


@pytest.fixture
def signed_in(client, ctx, maker):
    sign_in(client, ctx, Role.MANUFACTURER, maker.id)
    return client


@pytest.fixture
def busy(world, maker):
    """Two weeks of orders with known outcomes.

    Week of 16 Feb: three orders; a retailer 2 km away wins and ships two,
    nobody bids on the third (to the manufacturer). Week of 23 Feb: two orders, both to a
    retailer 6 km away, which ships one and lets the other lapse (re-routed to
    the manufacturer the same week). Now: one order still on the board.
    """
    near = world.retailer(north_of(HERE, 2), dealer_of=[maker], name="Near Bikes")
    far = world.retailer(north_of(HERE, 6), dealer_of=[maker], name="Far Cycles")
    week_a = [world.order(maker, when=WEEK_A + timedelta(hours=1)).order.id for _ in range(3)]
    for order_id in week_a[:2]:
        world.bid(near, order_id, when=WEEK_A + timedelta(hours=2))
    settle(world.at(WEEK_A + timedelta(days=1)), as_of=WEEK_A + timedelta(days=1))
    for order_id in week_a[:2]:
        won = active_assignment(world.ctx, near.actor, order_id)
        fulfilment.record_shipment(world.at(WEEK_A + timedelta(days=2)), near.actor, won.id,
                                   fulfilment.RecordShipment("USPS", f"94001{order_id}"))
    week_b = [world.order(maker, when=WEEK_B + timedelta(hours=1)).order.id for _ in range(2)]
    for order_id in week_b:
        world.bid(far, order_id, when=WEEK_B + timedelta(hours=2))
    settle(world.at(WEEK_B + timedelta(days=1)), as_of=WEEK_B + timedelta(days=1))
    shipped = active_assignment(world.ctx, far.actor, week_b[0])
    fulfilment.record_shipment(world.at(WEEK_B + timedelta(days=2)), far.actor, shipped.id,
                               fulfilment.RecordShipment("UPS", "1Z999"))
    report = fulfilment.check_deadlines(world.at(WEEK_B + timedelta(days=4)))
    assert report.lapsed == 1 and report.to_manufacturer == 1
    world.order(maker, when=START)
    return {"near": near, "far": far, "week_a": week_a, "week_b": week_b}


# --- pages -------------------------------------------------------------------


class TestPagesRender:
    def test_every_page_renders_with_data(self, signed_in, ctx, world, maker, busy):
        for path in CONSOLE_PAGES:
            resp = signed_in.get(path)
            assert resp.status_code == 200, (path, resp.get_data(as_text=True)[:2000])
            csp = resp.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "style-src 'self'" in csp
            html = resp.get_data(as_text=True)
            assert "<style" not in html and 'style="' not in html, path
            assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), f"inline script on {path}"

        orders = signed_in.get("/console/orders").get_data(as_text=True)
        assert len(re.findall(r'href="/console/orders/\d+"', orders)) == 6
        assert "Ada Lovelace" in orders
        detail = signed_in.get(f"/console/orders/{busy['week_b'][0]}").get_data(as_text=True)
        assert "1 Secret Lane" in detail and "ada@example.com" in detail and "UPS 1Z999" in detail
        assert "Product SKU-1" in signed_in.get("/console/catalog").get_data(as_text=True)
        dealers = signed_in.get("/console/dealers").get_data(as_text=True)
        assert "Near Bikes" in dealers and "Far Cycles" in dealers
        to_ship = signed_in.get("/console/to-ship").get_data(as_text=True)
        assert to_ship.count("Record the shipment of order") == 2  # the unbid one and the lapsed one
        runs = signed_in.get("/console/settlements").get_data(as_text=True)
        run_ids = re.findall(r'href="/console/settlements/(\d+)"', runs)
        assert len(run_ids) == 2  # the two settlements (a re-route after a lapse is not a run)
        report = signed_in.get(f"/console/settlements/{run_ids[-1]}").get_data(as_text=True)
        assert "Near Bikes" in report and 'id="run-settled">3<' in report and 'id="run-to-retailers">2<' in report
        storefront = signed_in.get("/console/storefront").get_data(as_text=True)
        assert f'/s/{maker.slug}/embed.js' in storefront and f'src="/s/{maker.slug}/"' in storefront
        assert 'data-preview-var="--console-preview-primary"' in storefront

    def test_order_list_filters_by_status_and_pages(self, signed_in, busy):
        shipped = signed_in.get("/console/orders?status=shipped").get_data(as_text=True)
        expected = [busy["week_b"][0], *reversed(busy["week_a"][:2])]  # newest first
        assert re.findall(r'href="/console/orders/(\d+)"', shipped) == [str(i) for i in expected]
        mine = signed_in.get("/console/orders?fulfiller=manufacturer").get_data(as_text=True)
        assert len(re.findall(r'href="/console/orders/(\d+)"', mine)) == 2
        bad = signed_in.get("/console/orders?status=lost")
        assert bad.status_code == 422
        assert 'id="status-error"' in bad.get_data(as_text=True)
        assert signed_in.get("/console/orders?page=2").status_code == 200

    def test_opening_an_order_is_disclosed(self, signed_in, ctx, busy, session):
        order_id = busy["week_a"][0]
        assert signed_in.get(f"/console/orders/{order_id}").status_code == 200
        purposes = session.scalars(select(Disclosure.purpose).where(Disclosure.order_id == order_id)).all()
        assert "manufacturer opened the order" in purposes


class TestDashboard:
    def test_charts_carry_the_numbers(self, signed_in, busy):
        html = signed_in.get("/console/").get_data(as_text=True)
        assert re.search(r'id="card-orders">6<', html)
        assert re.search(r'id="card-to-ship">2<', html)

        states = chart(html, "chart-states")
        assert value_of(states, "awarded") == 2
        assert value_of(states, "shipped") == 3
        assert value_of(states, "open") == 1
        assert states.find(f"{SVG}title").text == "Orders by state"

        fulfilment_chart = chart(html, "chart-fulfilment")
        assert value_of(fulfilment_chart, "16 Feb", "Retailers") == 2
        assert value_of(fulfilment_chart, "16 Feb", "You") == 1
        assert value_of(fulfilment_chart, "23 Feb", "Retailers") == 1
        assert value_of(fulfilment_chart, "23 Feb", "You") == 1
        assert value_of(fulfilment_chart, "2 Mar", "Retailers") is None  # nothing settled this week yet
        labels = [t.text for t in fulfilment_chart.iter(f"{SVG}text") if t.get("class") == "label"]
        assert len(labels) == 12 and labels[-1] == "2 Mar" and labels[-2] == "23 Feb"
        hover = next(m["title"] for m in marks(fulfilment_chart) if m["label"] == "16 Feb" and m["series"] == "You")
        assert hover == "16 Feb, You: 1 (33%)"

        lapses = chart(html, "chart-lapses")
        assert value_of(lapses, "16 Feb") == 0
        assert value_of(lapses, "23 Feb") == 50
        assert len(marks(lapses)) == 2  # no point for weeks with nothing given to retailers

        distance = chart(html, "chart-distance")
        assert value_of(distance, "16 Feb") == pytest.approx(2.0, abs=0.1)
        assert value_of(distance, "23 Feb") == pytest.approx(6.0, abs=0.1)

        # The same numbers in the tables beside the charts.
        assert "<td class=\"num\">50.0%</td>" in html
        assert "<th scope=\"row\">2026-02-16</th><td class=\"num\">2</td><td class=\"num\">1</td>" in html

    def test_an_empty_dashboard_renders(self, signed_in):
        html = signed_in.get("/console/").get_data(as_text=True)
        assert 'id="card-orders">0<' in html
        assert marks(chart(html, "chart-lapses")) == []
        assert all(m["value"] == 0 for m in marks(chart(html, "chart-states")))


class TestCatalog:
    CSV = ("sku,name,price,description,image_url,in_stock\n"
           "SKU-1,Road bike,129.00,Light and quick,https://img.example/road.jpg,yes\n"
           "NEW-1,Helmet,49.5,,,no\n"
           "NEW-2,Pump,\"1,299.00\",Floor pump,,\n"
           "BAD-1,Lamp,abc,,,yes\n"
           "NEW-3,Bell,9.99,,,1\n")

    def _import(self, client, data: bytes, filename: str = "catalog.csv"):
        import io

        return client.post("/console/catalog/import", data={
            "csrf_token": csrf(client, "/console/catalog"), "file": (io.BytesIO(data), filename)},
            content_type="multipart/form-data")

    def test_import_applies_good_rows_and_reports_the_bad_one(self, signed_in, maker, session):
        resp = self._import(signed_in, self.CSV.encode())
        assert resp.status_code == 200
        html = resp.get_data(as_text=True)
        report = re.search(r'<table id="import-errors">.*?</table>', html, re.DOTALL).group(0)
        rows = re.findall(r'<tr data-row="(\d+)"><td[^>]*class="num">\d+</td><td[^>]*>([^<]*)</td><td[^>]*class="error">([^<]*)</td>',
                          report)
        assert rows == [("5", "BAD-1", "price: &#39;abc&#39; is not an amount in USD; write it like 12.50 or 1,250.00")]
        assert "4 rows applied, 1 with errors" in html
        products = {p.sku: p for p in session.scalars(select(Product).where(Product.manufacturer_id == maker.id))}
        assert set(products) == {"SKU-1", "SKU-2", "NEW-1", "NEW-2", "NEW-3"}
        assert (products["SKU-1"].name, products["SKU-1"].price) == ("Road bike", 12900)
        assert products["SKU-1"].image_url == "https://img.example/road.jpg"
        assert (products["NEW-1"].price, products["NEW-1"].in_stock) == (4950, False)
        assert products["NEW-2"].price == 129900 and products["NEW-2"].in_stock is True
        # The catalog below the report lists the imported products.
        assert 'data-sku="NEW-3"' in html

    def test_a_clean_import_redirects_with_a_message(self, signed_in):
        resp = self._import(signed_in, b"sku,name,price\nA-1,Thing,1.00\nA-2,Other,2\n")
        assert resp.status_code == 302
        assert "Imported 2 products: 2 added, 0 updated." in signed_in.get("/console/catalog").get_data(as_text=True)

    @pytest.mark.parametrize("data, message", [
        (b"name,price\nThing,1.00\n", "missing: sku"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "not a CSV file"),
        (b"sku,name,price,colour\nA,B,1\n", "unknown column"),
        (b"sku,name,price\n", "no rows"),
        (b"", "empty"),
        ("sku,name,price\nA,Caf\u00e9,1\n".encode("latin-1"), "UTF-8"),
    ])
    def test_a_file_that_is_not_our_csv_is_refused_whole(self, signed_in, maker, session, data, message):
        resp = self._import(signed_in, data)
        assert resp.status_code == 422
        assert message in resp.get_data(as_text=True)
        assert session.scalar(select(Product.id).where(Product.manufacturer_id == maker.id,
                                                      Product.sku.not_in(["SKU-1", "SKU-2"]))) is None

    def test_every_bad_row_is_reported_and_none_applied(self, signed_in):
        data = (b"sku,name,price,in_stock\n"
                b",No sku,1.00,yes\n"
                b"X-1,,0,maybe\n"
                b"X-2,Dup,1.00,yes\n"
                b"X-2,Dup again,1.00,yes\n"
                b"X-3,Euro,\"1,00\",yes\n"
                b"X-4,Short\n")
        resp = self._import(signed_in, data)
        html = resp.get_data(as_text=True)
        assert resp.status_code == 200  # X-2 (the first) applied
        assert "sku: must not be blank" in html
        assert "name: must not be blank" in html and "in_stock: &#39;maybe&#39;: use yes or no" in html
        assert "already given on row 4" in html
        assert "&#39;1,00&#39; is ambiguous here; write it like 12.50 or 1,250.00" in html
        assert "has 2 fields; the header has 4" in html
        assert re.findall(r'<tr data-row="(\d+)">', html) == ["2", "3", "5", "6", "7"]

    def test_add_and_edit_a_product(self, signed_in, maker, session):
        token = csrf(signed_in, "/console/catalog/new")
        bad = signed_in.post("/console/catalog/new", data={"csrf_token": token, "sku": "K-1", "name": "",
                                                           "price": "twelve", "image_url": "ftp://x"})
        assert bad.status_code == 422
        html = bad.get_data(as_text=True)
        for field in ("name", "price", "image_url"):
            assert f'id="{field}-error"' in html
        assert 'value="K-1"' in html  # kept, not retyped
        ok = signed_in.post("/console/catalog/new", data={"csrf_token": token, "sku": "K-1", "name": "Kettle",
                                                          "price": "35.50", "in_stock": "on"})
        assert ok.status_code == 302
        taken = signed_in.post("/console/catalog/new", data={"csrf_token": token, "sku": "K-1", "name": "Again",
                                                             "price": "1"})
        assert taken.status_code == 422 and 'id="sku-error"' in taken.get_data(as_text=True)
        form = signed_in.get("/console/catalog/p/K-1").get_data(as_text=True)
        assert 'value="35.50"' in form
        saved = signed_in.post("/console/catalog/p/K-1", data={"csrf_token": token, "name": "Kettle XL",
                                                               "price": "40", "description": "Big", "active": "on"})
        assert saved.status_code == 302
        product = session.scalar(select(Product).where(Product.manufacturer_id == maker.id, Product.sku == "K-1"))
        session.refresh(product)
        assert (product.name, product.price, product.in_stock, product.active) == ("Kettle XL", 4000, False, True)
        assert signed_in.get("/console/catalog/p/NOPE").status_code == 404


def applicant(ctx, shop, email: str | None = None):
    """A verified user of the retailer, to apply as."""
    email = email or f"applicant{next(_addresses)}-{shop.id}@retailer.example"
    _, link = add_user(ctx, role=Role.RETAILER, company_id=shop.id, email=email, name="Sam Applicant")
    user, _ = reset_password(ctx, link.rsplit("/", 1)[1], PASSWORD)
    return user


class TestDealers:
    def test_approving_an_application_makes_a_dealer(self, signed_in, ctx, world, maker):
        shop = world.retailer(north_of(HERE, 3), name="Applicant Bikes")
        application = applications.apply(ctx, applicant(ctx, shop, "sam@applicant.example"), maker.id,
                                         note="We stock your range")
        page = signed_in.get("/console/dealers").get_data(as_text=True)
        assert "Applicant Bikes" in page and "We stock your range" in page
        assert "sam@applicant.example" in page and "address verified" in page
        resp = signed_in.post(f"/console/dealers/applications/{application.id}",
                              data={"csrf_token": csrf(signed_in), "decision": "approve"})
        assert resp.status_code == 302
        dealers = accounts.list_dealers(ctx, maker.actor, PageRequest()).items
        assert [d.retailer_id for d in dealers] == [shop.id]
        page = signed_in.get("/console/dealers").get_data(as_text=True)
        assert "Approved: the retailer is now your dealer." in page
        assert f'data-retailer="{shop.id}"' in page and f'data-application="{application.id}"' not in page
        again = signed_in.post(f"/console/dealers/applications/{application.id}",
                               data={"csrf_token": csrf(signed_in), "decision": "approve"})
        assert again.status_code == 409

    def test_decline_invite_and_revoke(self, signed_in, ctx, world, maker):
        shop = world.retailer(north_of(HERE, 3), name="Maybe Bikes")
        application = applications.apply(ctx, applicant(ctx, shop), maker.id)
        signed_in.post(f"/console/dealers/applications/{application.id}",
                       data={"csrf_token": csrf(signed_in), "decision": "decline"})
        assert accounts.list_dealers(ctx, maker.actor, PageRequest()).total == 0
        bad = signed_in.post("/console/dealers/invite", data={"csrf_token": csrf(signed_in), "email": "not-an-email"})
        assert bad.status_code == 422 and 'id="email-error"' in bad.get_data(as_text=True)
        invited = signed_in.post("/console/dealers/invite",
                                 data={"csrf_token": csrf(signed_in), "email": "new.shop@example.com"})
        assert invited.status_code == 302
        page = signed_in.get("/console/dealers").get_data(as_text=True)
        assert "Invited new.shop@example.com" in page and 'id="invitations"' in page
        accounts.authorise_dealer(ctx, maker.actor, shop.id)
        asked = signed_in.post(f"/console/dealers/{shop.id}/revoke",
                               data={"csrf_token": csrf(signed_in), "name": "Shop & Co"})
        assert asked.status_code == 200 and "Revoke Shop &amp; Co?" in asked.get_data(as_text=True)
        assert accounts.list_dealers(ctx, maker.actor, PageRequest()).total == 1  # not until confirmed
        revoked = signed_in.post(f"/console/dealers/{shop.id}/revoke",
                                 data={"csrf_token": csrf(signed_in), "confirm": "yes"})
        assert revoked.status_code == 302
        assert accounts.list_dealers(ctx, maker.actor, PageRequest()).total == 0
        assert signed_in.post(f"/console/dealers/{shop.id}/revoke",
                              data={"csrf_token": csrf(signed_in), "confirm": "yes"}).status_code == 404


class TestToShip:
    def test_recording_a_shipment_on_a_fallback_order(self, signed_in, ctx, world, maker, session):
        order = fallback_order(world, maker, name="Grace Hopper")
        assignment = active_assignment(ctx, maker.actor, order.id)
        page = signed_in.get("/console/to-ship").get_data(as_text=True)
        assert "Grace Hopper" in page and "1 Secret Lane" in page and "San Francisco, CA 94103" in page
        path = f"/console/to-ship/{assignment.id}/shipment"
        blank = signed_in.post(path, data={"csrf_token": csrf(signed_in), "carrier": "UPS", "tracking_number": " "})
        assert blank.status_code == 422
        html = blank.get_data(as_text=True)
        assert f'id="a{assignment.id}-tracking_number-error"' in html and 'value="UPS"' in html
        resp = signed_in.post(path, data={"csrf_token": csrf(signed_in), "carrier": "UPS",
                                          "tracking_number": "1Z42"})
        assert resp.status_code == 302
        assert session.scalar(select(Order.status).where(Order.id == order.id)) == OrderStatus.SHIPPED
        page = signed_in.get("/console/to-ship").get_data(as_text=True)
        assert f"Order {order.id} is shipped (UPS 1Z42)" in page and 'id="nothing-to-ship"' in page
        again = signed_in.post(path, data={"csrf_token": csrf(signed_in), "carrier": "UPS", "tracking_number": "1"})
        assert again.status_code == 409
        earnings = signed_in.get("/console/earnings").get_data(as_text=True)
        assert f'href="/console/orders/{order.id}"' in earnings and "$50.00" in earnings


class TestStorefront:
    def test_saving_the_look(self, signed_in, ctx, maker):
        token = csrf(signed_in, "/console/storefront")
        form = {"csrf_token": token, "name": "Acme Bikes", "logo_url": "", "color_primary": "#0f766e",
                "color_accent": "#f59e0b", "locale": "de_DE", "custom_domain": "",
                "frame_origins": "https://www.acme.example\nhttps://shop.acme.example", "return_window_days": "14"}
        bad = signed_in.post("/console/storefront", data={**form, "color_primary": "teal"})
        assert bad.status_code == 422 and 'id="color_primary-error"' in bad.get_data(as_text=True)
        days = signed_in.post("/console/storefront", data={**form, "return_window_days": "two weeks"})
        assert days.status_code == 422 and 'id="return_window_days-error"' in days.get_data(as_text=True)
        assert signed_in.post("/console/storefront", data=form).status_code == 302
        from broker.storefront.services import own_store

        saved = own_store(ctx, maker.actor)
        assert (saved.name, saved.color_primary, saved.locale, saved.return_window_days) == \
            ("Acme Bikes", "#0f766e", "de_DE", 14)
        assert saved.frame_origins == ["https://shop.acme.example", "https://www.acme.example"]


# --- access rules ------------------------------------------------------------


class TestAccess:
    @pytest.mark.parametrize("path", CONSOLE_PAGES + ["/console/orders/1", "/console/settlements/1"])
    def test_signed_out_goes_to_sign_in(self, client, path):
        resp = client.get(path)
        assert resp.status_code == 302
        assert resp.headers["Location"].startswith("/signin?next=")

    @pytest.mark.parametrize("path", CONSOLE_PAGES + ["/console/orders/1", "/console/settlements/1"])
    def test_a_retailer_gets_403(self, client, ctx, world, path):
        shop = world.retailer(HERE)
        sign_in(client, ctx, Role.RETAILER, shop.id)
        assert client.get(path).status_code == 403

    def test_a_retailer_cannot_post_either(self, client, ctx, world, maker):
        shop = world.retailer(HERE)
        sign_in(client, ctx, Role.RETAILER, shop.id)
        token = csrf(client, "/account")
        assert client.post("/console/dealers/invite", data={"csrf_token": token, "email": "x@example.com"}) \
            .status_code == 403

    def test_another_manufacturers_order_is_404(self, client, ctx, world, maker):
        other = world.manufacturer()
        theirs = fallback_order(world, other, name="Their Customer")
        their_assignment = active_assignment(ctx, other.actor, theirs.id)
        sign_in(client, ctx, Role.MANUFACTURER, maker.id)
        resp = client.get(f"/console/orders/{theirs.id}")
        assert resp.status_code == 404 and "Their Customer" not in resp.get_data(as_text=True)
        assert "Their Customer" not in client.get("/console/orders").get_data(as_text=True)
        assert "Their Customer" not in client.get("/console/to-ship").get_data(as_text=True)
        shipped = client.post(f"/console/to-ship/{their_assignment.id}/shipment",
                              data={"csrf_token": csrf(client), "carrier": "UPS", "tracking_number": "1"})
        assert shipped.status_code == 404

    def test_a_post_without_the_csrf_token_is_400(self, signed_in, ctx, world, maker):
        shop = world.retailer(HERE)
        application = applications.apply(ctx, applicant(ctx, shop), maker.id)
        resp = signed_in.post(f"/console/dealers/applications/{application.id}", data={"decision": "approve"})
        assert resp.status_code == 400
        wrong = signed_in.post("/console/dealers/invite", data={"csrf_token": "forged", "email": "a@example.com"})
        assert wrong.status_code == 400
        assert accounts.list_dealers(ctx, maker.actor, PageRequest()).total == 0
