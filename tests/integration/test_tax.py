"""Tax: computed at checkout by the provider from the manufacturer's table, held and
captured with the rest, refunded in proportion, owed to its jurisdiction in the
ledger (never the fulfiller's or the fee), and reported by jurisdiction."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from broker.fulfilment import services as fulfilment
from broker.fulfilment.models import Assignment
from broker.ledger import services as ledger
from broker.orders import services as orders
from broker.payouts import services as payouts
from broker.payouts.models import Earning, EarningKind
from broker.settlement.services import settle
from broker.tax import rules
from broker.tax.report import tax_report
from tests.conftest import START
from tests.factories import HERE, World, north_of
from tests.pages import delivered

API = "/api/v1"
SETTLED_AT = START + timedelta(hours=13)
NEW_YORK = {"line1": "350 5th Ave", "city": "New York", "postal_code": "10118", "country": "US"}
BERLIN = {"line1": "Invalidenstraße 117", "city": "Berlin", "postal_code": "10115", "country": "DE"}


@pytest.fixture
def world(ctx):
    return World(ctx)


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def one(session, model, **where):
    return session.scalar(select(model).filter_by(**where).execution_options(populate_existing=True))


def place(client, maker, ship_to, *, sku="SKU-1", quantity=1, method=None):
    body = {"items": [{"sku": sku, "quantity": quantity}], "customer": {"name": "Ada", "email": "ada@example.com"},
            "ship_to": ship_to, **({"shipping_method": method} if method else {})}
    response = client.post(f"{API}/storefronts/{maker.slug}/orders", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


@pytest.fixture
def us_store(world, client):
    """A USD store: Standard 7.00, tax added on top, New York City's 8.875 %, the
    rest of the US 5 %."""
    maker = world.manufacturer(products=[("SKU-1", 5000)])
    client.post(f"{API}/shipping-methods", headers=auth(maker.key), json={
        "code": "standard", "name": "Standard", "price": 700, "ship_within_hours": 72})
    table = client.put(f"{API}/tax-rates", headers=auth(maker.key), json={
        "prices_include_tax": False, "rates": [{"country": "US", "region": "New York", "rate": "8.875"},
                                               {"country": "US", "rate": "5"}]})
    assert table.status_code == 200, table.get_json()
    return maker


@pytest.fixture
def eu_store(world, client):
    """A Berlin store in EUR: prices include VAT (19 % in Germany)."""
    maker = world.manufacturer(currency="EUR", products=[("SKU-1", 11900)])
    client.post(f"{API}/shipping-methods", headers=auth(maker.key), json={
        "code": "standard", "name": "Standard", "price": 595, "ship_within_hours": 72, "countries": ["DE", "AT"]})
    client.put(f"{API}/tax-rates", headers=auth(maker.key), json={
        "prices_include_tax": True, "rates": [{"country": "DE", "rate": "19"}, {"country": "AT", "rate": "20"}]})
    return maker


class TestRules:
    def test_rates_are_exact_decimal_percentages(self):
        assert rules.parse_rate("8.875") == 8875 and rules.parse_rate("19") == 19000
        assert rules.format_rate(8875) == "8.875" and rules.format_rate(19000) == "19"
        assert rules.format_rate(10250) == "10.25"
        for bad in ("8.8755", "-1", "101", "abc", "", "1e2"):
            with pytest.raises(ValueError):
                rules.parse_rate(bad)

    def test_tax_on_top_and_within_round_half_up(self):
        assert rules.tax_on_top(5700, 8875) == 506  # 505.875
        assert rules.tax_within(11900, 19000) == 1900
        assert rules.tax_within(12495, 19000) == 1995  # 1995.0
        assert rules.tax_on_top(1, 50000) == 1  # 0.5 rounds up

    def test_a_regions_rate_wins_over_its_countrys(self):
        table = {("US", "NY"): 8875, ("US", ""): 5000}
        assert rules.rate_for(table, "US", "NY") == rules.Found(8875, "US-NY")
        assert rules.rate_for(table, "US", "CA") == rules.Found(5000, "US")
        assert rules.rate_for(table, "DE", "") == rules.Found(0, "DE")


class TestTheTableApi:
    def test_it_reads_back_as_written_with_regions_by_code(self, us_store, client):
        table = client.get(f"{API}/tax-rates", headers=auth(us_store.key)).get_json()
        assert table["prices_include_tax"] is False and table["provider"] == "table"
        assert [(r["jurisdiction"], r["rate"]) for r in table["rates"]] == [("US", "5"), ("US-NY", "8.875")]

    def test_every_bad_row_is_named_and_nothing_changes(self, us_store, client):
        bad = client.put(f"{API}/tax-rates", headers=auth(us_store.key), json={
            "prices_include_tax": True, "rates": [{"country": "XX", "rate": "5"},
                                                  {"country": "US", "region": "Atlantis", "rate": "5"},
                                                  {"country": "US", "rate": "5.12345"},
                                                  {"country": "DE", "rate": "19"}, {"country": "de", "rate": "7"}]})
        assert bad.status_code == 422
        assert set(bad.get_json()["errors"]) == {"rates.0.country", "rates.1.region", "rates.2.rate", "rates.4"}
        table = client.get(f"{API}/tax-rates", headers=auth(us_store.key)).get_json()
        assert table["prices_include_tax"] is False and len(table["rates"]) == 2

    def test_a_store_that_set_nothing_prices_by_its_currencys_custom(self, world, client):
        usd, eur = world.manufacturer(), world.manufacturer(currency="EUR")
        assert client.get(f"{API}/tax-rates", headers=auth(usd.key)).get_json()["prices_include_tax"] is False
        assert client.get(f"{API}/tax-rates", headers=auth(eur.key)).get_json()["prices_include_tax"] is True


class TestCheckout:
    def test_a_us_total_is_items_plus_shipping_plus_tax_at_the_destinations_rate(self, us_store, client):
        body = place(client, us_store, NEW_YORK)
        assert (body["subtotal"], body["shipping"], body["tax"]) == (5000, 700, 506)  # 8.875 % of 57.00
        assert body["total"] == 5000 + 700 + 506 and body["payment"]["amount"] == 6206
        assert (body["tax_included"], body["tax_jurisdiction"]) == (False, "US-NY")
        elsewhere = place(client, us_store, {"line1": "1 Secret Lane", "city": "San Francisco",
                                             "postal_code": "94103", "country": "US"})
        assert (elsewhere["tax"], elsewhere["tax_jurisdiction"], elsewhere["total"]) == (285, "US", 5985)

    def test_shipping_is_not_taxed_where_the_store_says_so(self, us_store, client):
        client.put(f"{API}/tax-rates", headers=auth(us_store.key), json={
            "prices_include_tax": False, "shipping_taxed": False,
            "rates": [{"country": "US", "region": "NY", "rate": "8.875"}]})
        assert place(client, us_store, NEW_YORK)["tax"] == 444  # 8.875 % of 50.00

    def test_an_eu_price_includes_vat_and_says_how_much(self, eu_store, client, session):
        body = place(client, eu_store, BERLIN)  # no coordinates: placed by its postal code
        assert (body["subtotal"], body["shipping"], body["total"]) == (11900, 595, 12495)
        assert (body["tax"], body["tax_included"], body["tax_jurisdiction"]) == (1995, True, "DE")
        order = client.get(f"{API}/orders/{body['id']}", headers={"X-Access-Token": body["access_token"]}).get_json()
        assert (order["tax"], order["tax_included"], order["total"]) == (1995, True, 12495)

    def test_the_tax_is_held_with_the_rest(self, us_store, client, session):
        assert place(client, us_store, NEW_YORK)["total"] == 6206
        assert ledger.balance(session, ledger.HOLDS_CARDS, "USD") == 6206
        assert ledger.check(session).ok


class TestTheMoney:
    def test_shipment_refund_and_payout_keep_the_tax_apart_and_the_report_shows_it(
            self, world, us_store, eu_store, client, ctx, clock, session):
        shop = world.retailer(north_of(HERE, 2), dealer_of=[us_store])
        us = place(client, us_store, {**NEW_YORK, "lat": HERE[0], "lon": HERE[1]})
        eu = place(client, eu_store, BERLIN)
        world.bid(shop, us["id"])
        clock.now = SETTLED_AT
        settle(ctx)  # the US order to the shop; the German one, unbid, to its manufacturer
        for order_id, actor in ((us["id"], shop.actor), (eu["id"], eu_store.actor)):
            assignment = one(session, Assignment, order_id=order_id)
            fulfilment.record_shipment(ctx, actor, assignment.id, fulfilment.RecordShipment("UPS", "1Z"))

        earning = one(session, Earning, order_id=us["id"], kind=EarningKind.SALE)
        assert (earning.gross, earning.fee, earning.amount) == (5700, 570, 5130)  # no tax in it
        assert ledger.balance(session, ledger.tax_account("US-NY"), "USD") == -506
        assert ledger.balance(session, ledger.tax_account("DE"), "EUR") == -1995
        assert ledger.balance(session, ledger.FEES, "USD") == -570

        # Half the US order back: half its tax (253) comes back out of what New York is owed.
        orders.refund_order(ctx, us_store.actor, us["id"], 3103)
        assert ledger.balance(session, ledger.tax_account("US-NY"), "USD") == -253
        earning = one(session, Earning, order_id=us["id"], kind=EarningKind.SALE)
        assert earning.gross == 5700 - (3103 - 253)
        payouts.connect(ctx, shop.actor, email="shop@example.com")
        payouts.run_payouts(ctx)
        check = ledger.check(session)
        assert check.ok, check

        report = tax_report(ctx, us_store.actor, START, clock.now + timedelta(days=1))
        assert [(r.jurisdiction, r.orders, r.collected, r.refunded, r.net) for r in report.rows] == \
            [("US-NY", 1, 506, 253, 253)]
        assert "US-NY" in report.csv() and ",506,253,253," in report.csv()
        german = tax_report(ctx, eu_store.actor, START, clock.now + timedelta(days=1))
        assert [(r.jurisdiction, r.collected) for r in german.rows] == [("DE", 1995)]
        # A period before anything was captured has nothing in it.
        assert tax_report(ctx, us_store.actor, START - timedelta(days=2), START).rows == []

    def test_a_full_refund_gives_back_all_the_tax(self, world, us_store, client, ctx, clock, session):
        placed = place(client, us_store, NEW_YORK)
        clock.now = SETTLED_AT
        settle(ctx)
        assignment = one(session, Assignment, order_id=placed["id"])
        fulfilment.record_shipment(ctx, us_store.actor, assignment.id, fulfilment.RecordShipment("UPS", "1Z"))
        orders.refund_order(ctx, us_store.actor, placed["id"], 1001)
        orders.refund_order(ctx, us_store.actor, placed["id"])
        assert ledger.balance(session, ledger.tax_account("US-NY"), "USD") == 0
        assert ledger.check(session).ok


class TestPages:
    def test_the_order_page_and_email_show_the_vat_in_the_price(self, eu_store, client, ctx, mail_dir):
        body = place(client, eu_store, BERLIN)
        page = client.get(f"/s/{eu_store.slug}/o/{body['id']}/{body['access_token']}", follow_redirects=True)
        text = page.get_data(as_text=True)
        assert "incl. VAT (19 %)" in text and "€19.95" in text and "€124.95" in text
        assert text.index(">Total<") < text.index("incl. VAT")  # the VAT is inside the total, after it
        confirmation = [m for m in delivered(ctx, mail_dir) if "is confirmed" in m["Subject"]][0].get_body(("plain",)).get_content()
        assert "incl. VAT (19 %): 19.95 EUR" in confirmation

    def test_a_us_order_adds_its_sales_tax_before_the_total(self, us_store, client):
        body = place(client, us_store, NEW_YORK)
        text = client.get(f"/s/{us_store.slug}/o/{body['id']}/{body['access_token']}",
                          follow_redirects=True).get_data(as_text=True)
        assert "Sales tax (8.875 %)" in text and "$5.06" in text
        assert text.index("Sales tax") < text.index(">Total<")

    def test_the_cart_says_how_tax_shows(self, us_store, eu_store, client):
        assert b"Tax is added at checkout" in client.get(f"/s/{us_store.slug}/cart?add=SKU-1").data
        assert b"Prices include VAT" in client.get(f"/s/{eu_store.slug}/cart?add=SKU-1").data


class TestTotalBeforeOrdering:
    """The checkout shows what placing the order will charge (goods, shipping,
    tax, total) as soon as the address tells the tax, and the same as the order."""

    def totals(self, client, maker, **form):
        answer = client.post(f"/s/{maker.slug}/checkout/total?cart=SKU-1:2", data=form)
        assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
        return answer.get_json()

    def test_a_us_total_waits_for_the_state_then_adds_its_tax(self, us_store, client):
        assert self.totals(client, us_store, country="US") == {
            "lines": [], "note": "Tax and the total show once your address is complete."}
        # The ZIP code tells the state: New York's 8.875 % on the goods and the shipping.
        quoted = self.totals(client, us_store, country="US", postal_code="10118", delivery="ship",
                             shipping_method="standard")
        assert [(line["label"], line["amount"]) for line in quoted["lines"]] == [
            ("Subtotal", "$100.00"), ("Shipping (Standard)", "$7.00"), ("Sales tax (8.875 %)", "$9.50"),
            ("Total", "$116.50")] and quoted["note"] == ""
        assert [line["total"] for line in quoted["lines"]] == [False, False, False, True]
        # Placing the order charges exactly that.
        body = place(client, us_store, NEW_YORK, quantity=2, method="standard")
        assert (body["subtotal"], body["shipping"], body["tax"], body["total"]) == (10000, 700, 950, 11650)

    def test_the_eu_total_includes_the_vat_and_a_country_not_served_says_so(self, eu_store, client):
        quoted = self.totals(client, eu_store, country="DE", postal_code="10115", delivery="ship")
        assert [line["label"] for line in quoted["lines"]] == ["Subtotal", "Shipping (Standard)", "Total",
                                                             "incl. VAT (19 %)"]
        refused = self.totals(client, eu_store, country="FR", postal_code="75001", delivery="ship")
        assert refused["lines"] == [] and "does not ship" in refused["note"]

    def test_the_checkout_page_shows_the_total_when_its_form_comes_back(self, us_store, client):
        # The no-script "show the form for this country" button, and any form with errors,
        # comes back with the total for the address so far.
        page = client.post(f"/s/{us_store.slug}/checkout?cart=SKU-1:2", data={
            "country": "US", "postal_code": "10118", "delivery": "ship", "shipping_method": "standard",
            "action": "country"}).get_data(as_text=True)
        foot = page[page.index('id="order-totals"'):page.index("</tfoot>")]
        assert "Sales tax (8.875 %)" in foot and 'id="order-total">$116.50<' in foot
        first = client.get(f"/s/{us_store.slug}/checkout?cart=SKU-1:2").get_data(as_text=True)
        assert "Tax and the total show once your address is complete." in first
        assert 'id="order-total">$100.00<' in first

    def test_bad_input_is_no_total_and_never_an_error(self, us_store, client):
        for form in ({"country": "ZZ"}, {"country": "US", "postal_code": "x" * 500}, {"country": "<script>"},
                     {"country": "US", "postal_code": "10118", "shipping_method": "teleport"}):
            quoted = self.totals(client, us_store, **form)
            assert quoted["lines"] == [] and "<script>" not in quoted["note"]
        assert client.post(f"/s/{us_store.slug}/checkout/total?cart=NOPE:1", data={"country": "US"}).status_code \
            == 200


class TestStripeTax:
    """BROKER_TAX_PROVIDER=stripe, against tests/fakes/stripe_server.py."""

    @pytest.fixture
    def stripe_client(self, ctx, fake):
        import dataclasses

        from broker.tax.stripe_tax import StripeTax
        from web.app import create_app

        settings = dataclasses.replace(ctx.settings, stripe_secret_key="sk_test_tax", stripe_api_base=fake.url,
                                       tax_provider="stripe")
        provider = StripeTax(settings)
        taxed = dataclasses.replace(ctx, tax=provider)
        yield create_app(context=taxed, test_config={"TESTING": True}).test_client()
        provider.close()

    def test_stripe_computes_the_tax_at_the_destination(self, us_store, stripe_client, fake):
        fake.tax_rates[("US", "NY")] = "4.5"  # not the store's own table's 8.875: Stripe's answer is used
        body = place(stripe_client, us_store, NEW_YORK)
        assert (body["tax"], body["tax_jurisdiction"], body["total"]) == (257, "US-NY", 5957)
        sent = fake.requests_to("/v1/tax/calculations")[0].params
        assert sent["customer_details"]["address"]["state"] == "NY"
        assert sent["line_items"][0]["tax_behavior"] == "exclusive" and sent["shipping_cost"]["amount"] == "700"

    def test_inclusive_prices_ask_for_inclusive_tax(self, eu_store, stripe_client, fake):
        body = place(stripe_client, eu_store, BERLIN)
        assert (body["tax"], body["tax_included"], body["total"], body["tax_jurisdiction"]) == \
            (1995, True, 12495, "DE")

    def test_an_untaxed_shipping_charge_goes_as_nontaxable(self, us_store, client, stripe_client, fake):
        client.put(f"{API}/tax-rates", headers=auth(us_store.key), json={
            "prices_include_tax": False, "shipping_taxed": False, "rates": []})
        assert place(stripe_client, us_store, NEW_YORK)["tax"] == 444
        assert fake.requests_to("/v1/tax/calculations")[0].params["shipping_cost"]["tax_code"] == "txcd_00000000"

    def test_stripe_down_is_a_503_and_nothing_is_written(self, us_store, stripe_client, fake, session):
        from broker.orders.models import Order

        fake.fail_next(500, times=3)
        refused = stripe_client.post(f"{API}/storefronts/{us_store.slug}/orders", json={
            "items": [{"sku": "SKU-1", "quantity": 1}], "customer": {"name": "A", "email": "a@example.com"},
            "ship_to": NEW_YORK})
        assert refused.status_code == 503 and "tax could not be calculated" in refused.get_json()["detail"]
        assert session.scalar(select(Order.id)) is None


class TestRequests:
    """A personal request's ceiling is what the customer pays in all; an offer
    says how much of it is goods, shipping and tax."""

    REQUEST = {"description": "A blue 52 cm road bike frame", "quantity": 1, "max_price": 12000, "currency": "USD",
               "location": {"lat": HERE[0], "lon": HERE[1]},
               "ship_to": {"name": "Grace Hopper", "line1": "77 Cobol Court", "city": "San Francisco",
                           "postal_code": "94103", "country": "US"}}

    def test_an_offer_in_parts_becomes_an_order_whose_tax_is_owed_not_earned(self, world, client, ctx, session):
        shop = world.retailer(north_of(HERE, 2))
        posted = client.post(f"{API}/requests", json=self.REQUEST).get_json()
        token = {"X-Access-Token": posted["access_token"]}
        listing = client.get(f"{API}/board", headers=auth(shop.key)).get_json()[0]["id"]
        bad = client.post(f"{API}/board/{listing}/bids", headers=auth(shop.key),
                          json={"price": 10900, "shipping": 9000, "tax": 1900})
        assert bad.status_code == 422 and "price" in bad.get_json()["errors"]
        made = client.post(f"{API}/board/{listing}/bids", headers=auth(shop.key),
                           json={"price": 10900, "shipping": 900, "tax": 800})
        assert made.status_code == 201 and (made.get_json()["shipping"], made.get_json()["tax"]) == (900, 800)
        [offer] = client.get(f"{API}/requests/{posted['id']}", headers=token).get_json()["offers"]
        assert (offer["price"], offer["goods"], offer["shipping"], offer["tax"]) == (10900, 9200, 900, 800)
        page = client.get(f"/requests/{posted['id']}/{posted['access_token']}", follow_redirects=True)
        assert b"goods $92.00" in page.data and b"shipping $9.00" in page.data

        accepted = client.post(f"{API}/requests/{posted['id']}/accept", headers=token,
                               json={"bid_id": offer["bid_id"]}).get_json()
        order = client.get(f"{API}/orders/{accepted['order_id']}", headers=token).get_json()
        assert (order["total"], order["subtotal"], order["shipping"], order["tax"]) == (10900, 9200, 900, 800)
        assert (order["tax_included"], order["tax_jurisdiction"]) == (True, "US-CA")
        [assignment] = client.get(f"{API}/assignments", headers=auth(shop.key)).get_json()
        client.post(f"{API}/assignments/{assignment['id']}/shipment", headers=auth(shop.key),
                    json={"carrier": "UPS", "tracking_number": "1Z"})
        earning = one(session, Earning, order_id=accepted["order_id"], kind=EarningKind.SALE)
        assert earning.gross == 10900 - 800  # the goods and shipping; the tax is California's
        assert ledger.balance(session, ledger.tax_account("US-CA"), "USD") == -800
        assert ledger.check(session).ok


class TestProvidersAreAskedOutsideTheTransaction:
    """Reserve, ask, record: neither the tax provider nor the payment provider is
    asked while Broker holds the database's write lock (SQLite's one lock; on
    PostgreSQL, the order's row locks), and a failure leaves nothing behind."""

    @pytest.fixture
    def file_ctx(self, tmp_path):
        import dataclasses
        import sqlite3

        from broker.config import Settings
        from broker.context import Context
        from broker.geo.geocoding import OfflineGeocoder
        from broker.migrate import upgrade
        from broker.payments.offline import OfflineProvider
        from broker.tax.provider import TableTax

        path = tmp_path / "broker.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        locked: list[str] = []

        def probe(what: str) -> None:
            """Could another process write now? (BEGIN IMMEDIATE without waiting.)"""
            connection = sqlite3.connect(path, timeout=0, isolation_level=None)
            try:
                connection.execute("BEGIN IMMEDIATE")
                connection.execute("ROLLBACK")
            except sqlite3.OperationalError:
                locked.append(what)
            finally:
                connection.close()

        class ProbedPayments(OfflineProvider):
            local = False  # as Stripe: a network call, asked outside Broker's transactions

            def authorize(self, session, **kw):
                probe("payment provider")
                return super().authorize(session, **kw)

        class ProbedTax(TableTax):
            def quote(self, request):
                probe("tax provider")
                return super().quote(request)

        ctx = Context.from_settings(Settings(database_url=url, admin_token="x", secret_key="k"),
                                    geocoder=OfflineGeocoder(), payments=ProbedPayments(), tax=ProbedTax())
        yield dataclasses.replace(ctx), locked, probe
        ctx.engine.dispose()

    def test_no_lock_is_held_while_the_providers_answer(self, file_ctx):
        from sqlalchemy import text

        ctx, locked, probe = file_ctx
        world = World(ctx)
        maker = world.manufacturer(products=[("SKU-1", 5000)])
        placed = world.order(maker)
        assert placed.order.status == "open" and placed.payment.status == "authorized"
        assert locked == []
        # The probe's control: inside a unit of work it finds the lock taken.
        with ctx.uow() as uow:
            uow.session.execute(text("SELECT 1"))
            probe("inside a transaction")
        assert locked == ["inside a transaction"]

    def test_a_provider_that_fails_leaves_no_order_and_no_hold(self, file_ctx, monkeypatch):
        from broker.models import OfflineCharge, Order
        from broker.notifications import events
        from broker.payments.provider import PaymentError

        ctx, _, _ = file_ctx
        world = World(ctx)
        maker = world.manufacturer(products=[("SKU-1", 5000)])

        def down(*args, **kwargs):
            raise PaymentError("timed out", retryable=True)

        with monkeypatch.context() as m:
            m.setattr(ctx.payments, "authorize", down)
            with pytest.raises(Exception, match="nothing was charged"):
                world.order(maker)

        def broken(*args, **kwargs):
            raise RuntimeError("the outbox is full")

        monkeypatch.setattr(events, "order_placed", broken)
        with pytest.raises(RuntimeError):
            world.order(maker)  # held at the provider, then recording it failed
        with ctx.uow() as uow:
            assert uow.session.scalar(select(Order.id)) is None
            assert list(uow.session.scalars(select(OfflineCharge.status))) == ["released"]
