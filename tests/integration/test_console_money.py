"""The console's money: revenue on the dashboard (from the ledger, per week,
fulfiller and currency), and refunds and cancellations from an order's page,
each through a confirmation step.

Rules: a refund is typed in the store's format and never exceeds what was
captured less what was refunded; nothing moves until it is confirmed; revenue
never adds one currency to another; a manufacturer refunds and cancels only its
own orders; the ledger balances after every action.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from broker.accounts.models import Role
from broker.analytics import services as analytics
from broker.fulfilment import services as fulfilment
from broker.fulfilment.models import Assignment
from broker.ledger import services as ledger
from broker.orders import services as orders
from broker.orders.models import Order, OrderStatus
from broker.outbox.models import OutboxMessage
from broker.payments.models import Payment, PaymentStatus
from broker.settlement.services import settle
from broker.storefront import services as storefront
from tests.factories import HERE, World, north_of
from tests.integration.test_console_pages import csrf, sign_in


@pytest.fixture
def world(ctx):
    return World(ctx)


def shipped_order(world, ctx, clock, session, maker, shop=None, *, price_sku="SKU-1"):
    placed = world.order(maker, sku=price_sku, when=clock.now)
    if shop is not None:
        world.bid(shop, placed.order.id, when=clock.now)
    clock.now += timedelta(hours=13)
    settle(ctx)
    assignment = session.scalar(select(Assignment.id).where(Assignment.order_id == placed.order.id))
    actor = shop.actor if shop is not None else maker.actor
    fulfilment.record_shipment(ctx, actor, assignment, fulfilment.RecordShipment("UPS", "1Z"))
    return placed.order.id


def emails(session, topic: str) -> list[dict]:
    return [m.payload for m in session.scalars(select(OutboxMessage).where(OutboxMessage.topic == f"email.{topic}")
                                               .order_by(OutboxMessage.id))]


def fresh(session, model, **where):
    return session.scalar(select(model).filter_by(**where).execution_options(populate_existing=True))


class TestRevenue:
    def test_gross_refunds_fees_and_net_by_week_and_fulfiller(self, world, ctx, clock, session):
        maker = world.manufacturer(products=[("SKU-1", 10000)])
        shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        by_retailer = shipped_order(world, ctx, clock, session, maker, shop)
        shipped_order(world, ctx, clock, session, maker)  # nobody bid: the manufacturer's own
        orders.refund_order(ctx, maker.actor, by_retailer, 5000)

        data = analytics.dashboard(ctx, maker.actor)
        [usd] = data.revenue.by_currency
        this_week = usd.weeks[-1]
        assert (this_week["retailer"].gross, this_week["retailer"].refunds, this_week["retailer"].fees,
                this_week["retailer"].net) == (10000, 5000, 500, 4500)
        assert (this_week["manufacturer"].gross, this_week["manufacturer"].fees) == (10000, 1000)
        assert usd.total().net == 4500 + 9000
        assert ledger.check(session).ok

    def test_currencies_are_grouped_never_added(self, world, ctx, clock, session):
        maker = world.manufacturer(products=[("SKU-1", 10000)])
        shipped_order(world, ctx, clock, session, maker)
        # The store changed currency (a migration to euros): its older orders stay in dollars.
        storefront_row = session.get(type(storefront.own_store(ctx, maker.actor)), maker.id)
        storefront_row.currency = "EUR"
        session.commit()
        world.product(maker, "SKU-2", 3000)
        shipped_order(world, ctx, clock, session, maker, price_sku="SKU-2")
        data = analytics.dashboard(ctx, maker.actor)
        assert [(c.currency, c.total().gross) for c in data.revenue.by_currency] == [("EUR", 3000), ("USD", 10000)]

    def test_the_dashboard_shows_it_in_the_store_s_format(self, world, ctx, clock, session, client):
        maker = world.manufacturer(products=[("SKU-1", 123456)])
        shipped_order(world, ctx, clock, session, maker)
        sign_in(client, ctx, Role.MANUFACTURER, maker.id)
        html = client.get("/console/").get_data(as_text=True)
        assert 'id="revenue-USD"' in html and "$1,234.56" in html and 'id="chart-revenue"' in html

    def test_another_manufacturer_s_orders_are_not_in_mine(self, world, ctx, clock, session):
        mine = world.manufacturer(products=[("SKU-1", 10000)])
        theirs = world.manufacturer(products=[("SKU-1", 20000)])
        shipped_order(world, ctx, clock, session, theirs)
        assert analytics.dashboard(ctx, mine.actor).revenue.by_currency == []


class TestRefundFromTheConsole:
    @pytest.fixture
    def setup(self, world, ctx, clock, session, client):
        maker = world.manufacturer(products=[("SKU-1", 10000)])
        shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        order_id = shipped_order(world, ctx, clock, session, maker, shop)
        sign_in(client, ctx, Role.MANUFACTURER, maker.id)
        return maker, shop, order_id

    def post(self, client, order_id, **form):
        return client.post(f"/console/orders/{order_id}/refund",
                           data={"csrf_token": csrf(client, f"/console/orders/{order_id}/refund"), **form})

    def test_half_then_the_rest_each_confirmed(self, setup, client, session):
        maker, shop, order_id = setup
        page = client.get(f"/console/orders/{order_id}").get_data(as_text=True)
        assert f'href="/console/orders/{order_id}/refund"' in page
        form = client.get(f"/console/orders/{order_id}/refund").get_data(as_text=True)
        assert 'value="100.00"' in form

        review = self.post(client, order_id, amount="50.00")
        assert review.status_code == 200 and 'id="confirm-refund"' in review.get_data(as_text=True)
        assert fresh(session, Payment, order_id=order_id).refunded_amount == 0  # not until confirmed

        assert 'name="refunded_before" value="0"' in review.get_data(as_text=True)
        done = self.post(client, order_id, amount="50.00", confirmed="yes", refunded_before="0")
        assert done.status_code == 302
        assert fresh(session, Payment, order_id=order_id).refunded_amount == 5000
        shown = client.get(done.headers["Location"]).get_data(as_text=True)
        assert "Refunded $50.00 to the customer&#39;s card" in shown and "$50.00 could still be refunded" in shown

        self.post(client, order_id, amount="50", confirmed="yes", refunded_before="5000")
        assert fresh(session, Payment, order_id=order_id).status == PaymentStatus.REFUNDED
        told = [" ".join(m["text"].split()) for m in emails(session, "order_refunded_by_store")]
        assert len(told) == 2 and "refunded $50.00 of your order" in told[0]
        assert "the order is refunded in full" in told[1] and "in full" not in told[0]
        assert fresh(session, Order, id=order_id).status == OrderStatus.REFUNDED
        assert ledger.check(session).ok

    @pytest.mark.parametrize("typed, message", [
        ("100.01", "at most $100.00"),
        ("12,50", "write it like 12.50 or 1,250.00"),
        ("-5", "must be more than 0"),
        ("=1+1", "is not an amount"),
        ("", "enter an amount"),
    ])
    def test_a_bad_or_too_large_amount_is_refused_beside_the_field(self, setup, client, session, typed, message):
        _, _, order_id = setup
        for confirmed in ("", "yes"):
            refused = self.post(client, order_id, amount=typed, confirmed=confirmed)
            html = refused.get_data(as_text=True)
            assert refused.status_code == 422
            assert message in html and 'id="amount-error"' in html and "data-error-summary" in html
        assert fresh(session, Payment, order_id=order_id).refunded_amount == 0

    def test_the_confirmed_form_sent_twice_refunds_once(self, setup, client, session):
        _, _, order_id = setup
        form = dict(amount="30.00", confirmed="yes", refunded_before="0")
        assert self.post(client, order_id, **form).status_code == 302
        again = self.post(client, order_id, **form)
        assert again.status_code == 409 and "refunded meanwhile" in again.get_data(as_text=True)
        assert fresh(session, Payment, order_id=order_id).refunded_amount == 3000
        assert ledger.check(session).ok

    def test_another_manufacturer_cannot_refund_my_order(self, setup, world, ctx, app, session):
        _, _, order_id = setup
        other = world.manufacturer()
        intruder = app.test_client()
        sign_in(intruder, ctx, Role.MANUFACTURER, other.id)
        assert intruder.get(f"/console/orders/{order_id}/refund").status_code == 404
        token = csrf(intruder, "/console/")
        posted = intruder.post(f"/console/orders/{order_id}/refund",
                               data={"csrf_token": token, "amount": "1.00", "confirmed": "yes"})
        assert posted.status_code == 404
        assert fresh(session, Payment, order_id=order_id).refunded_amount == 0


class TestCancelFromTheConsole:
    def test_cancel_is_confirmed_then_releases_the_hold(self, world, ctx, client, session):
        maker = world.manufacturer(products=[("SKU-1", 10000)])
        placed = world.order(maker)
        sign_in(client, ctx, Role.MANUFACTURER, maker.id)
        order_id = placed.order.id
        page = client.get(f"/console/orders/{order_id}").get_data(as_text=True)
        assert f'href="/console/orders/{order_id}/cancel"' in page
        confirm = client.get(f"/console/orders/{order_id}/cancel").get_data(as_text=True)
        assert 'id="confirm-cancel"' in confirm and "$100.00" in confirm
        assert fresh(session, Order, id=order_id).status == OrderStatus.OPEN
        done = client.post(f"/console/orders/{order_id}/cancel",
                           data={"csrf_token": csrf(client, f"/console/orders/{order_id}/cancel")})
        assert done.status_code == 302
        assert fresh(session, Order, id=order_id).status == OrderStatus.CANCELLED
        assert fresh(session, Payment, order_id=order_id).status == PaymentStatus.RELEASED
        assert "is cancelled" in client.get(done.headers["Location"]).get_data(as_text=True)
        [told] = emails(session, "order_cancelled_by_store")
        assert f"cancelled your order {order_id} before it shipped" in " ".join(told["text"].split())
        again = client.post(f"/console/orders/{order_id}/cancel",
                            data={"csrf_token": csrf(client, f"/console/orders/{order_id}/cancel")})
        assert again.status_code == 409
        assert ledger.check(session).ok

    def test_a_shipped_order_cannot_be_cancelled(self, world, ctx, clock, session, client):
        maker = world.manufacturer(products=[("SKU-1", 10000)])
        order_id = shipped_order(world, ctx, clock, session, maker)
        sign_in(client, ctx, Role.MANUFACTURER, maker.id)
        assert 'id="cannot-cancel"' in client.get(f"/console/orders/{order_id}/cancel").get_data(as_text=True)
        refused = client.post(f"/console/orders/{order_id}/cancel",
                              data={"csrf_token": csrf(client, "/console/")})
        assert refused.status_code == 409

    def test_another_manufacturer_cannot_cancel_my_order(self, world, ctx, session):
        mine = world.manufacturer()
        other = world.manufacturer()
        placed = world.order(mine)
        from broker.errors import NotFound

        with pytest.raises(NotFound):
            orders.cancel_for_manufacturer(ctx, other.actor, placed.order.id)
        assert fresh(session, Order, id=placed.order.id).status == OrderStatus.OPEN


class TestOrderSearch:
    @pytest.fixture
    def found(self, world, ctx, clock, session, client):
        maker = world.manufacturer(products=[("SKU-1", 10000), ("KETTLE", 2500)])
        ada = world.order(maker, name="Ada Lovelace", email="ada@example.com")
        clock.now += timedelta(days=2)
        grace = world.order(maker, sku="KETTLE", name="Grace Hopper", email="grace@navy.example", when=clock.now)
        clock.now += timedelta(days=2)
        evil = world.order(maker, name='=HYPERLINK("http://evil.example","x")', email="+evil@example.com",
                           when=clock.now)
        other = world.manufacturer()
        world.order(other, name="Ada Lovelace")
        sign_in(client, ctx, Role.MANUFACTURER, maker.id)
        return maker, ada.order.id, grace.order.id, evil.order.id

    def ids(self, client, query):
        page = client.get("/console/orders" + query)
        assert page.status_code == 200, page.get_data(as_text=True)
        return [int(n) for n in re.findall(r'href="/console/orders/(\d+)"', page.get_data(as_text=True))]

    def test_each_field_narrows_and_only_my_orders(self, found, client):
        _, ada, grace, evil = found
        assert self.ids(client, "") == [evil, grace, ada]
        assert self.ids(client, "?customer=ada") == [ada]
        assert self.ids(client, "?customer=NAVY.example") == [grace]
        assert self.ids(client, "?customer=%25") == []  # a literal %, not a wildcard
        assert self.ids(client, "?sku=kettle") == [grace]
        assert self.ids(client, f"?number=%23{grace}") == [grace]
        assert self.ids(client, "?status=open&from=2026-03-04&to=2026-03-04") == [grace]
        assert self.ids(client, "?from=2026-03-05") == [evil]

    def test_bad_fields_are_reported_together(self, found, client):
        page = client.get("/console/orders?number=12a&from=2026-02-30&to=2026-01-01&status=gone")
        html = page.get_data(as_text=True)
        assert page.status_code == 422 and "data-error-summary" in html
        for field in ("number", "from", "status"):
            assert f'id="{field}-error"' in html
        assert client.get("/console/orders/export.csv?number=x").status_code == 422

    def test_the_export_has_every_match_and_no_formula(self, found, client, session):
        _, ada, grace, evil = found
        got = client.get("/console/orders/export.csv")
        assert got.status_code == 200 and got.mimetype == "text/csv"
        rows = list(csv.reader(io.StringIO(got.get_data(as_text=True))))
        assert rows[0][:4] == ["order", "placed (local time)", "state", "customer"]
        assert [int(r[0]) for r in rows[1:]] == [evil, grace, ada]
        evil_row = rows[1]
        assert evil_row[3] == "'=HYPERLINK(\"http://evil.example\",\"x\")" and evil_row[4] == "'+evil@example.com"
        assert rows[3][10] == "100.00" and rows[2][8] == "1 x KETTLE"
        for row in rows[1:]:
            for cell in row:
                assert not cell.startswith(("=", "+", "@")), cell
        only = list(csv.reader(io.StringIO(client.get("/console/orders/export.csv?customer=grace")
                                           .get_data(as_text=True))))
        assert [int(r[0]) for r in only[1:]] == [grace]
        from broker.privacy.models import Disclosure

        assert session.scalar(select(func.count()).select_from(Disclosure).where(
            Disclosure.purpose == "manufacturer exported its orders")) == 4

    def test_a_large_export_streams_in_batches(self, found, ctx):
        from broker.orders import search

        maker = found[0]
        filters, _, _ = search.parse({}, "UTC")
        rows = list(search.export(ctx, maker.actor, filters, batch=2))
        assert [r.order.id for r in rows] == sorted((r.order.id for r in rows), reverse=True) and len(rows) == 3
