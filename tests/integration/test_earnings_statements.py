"""Earnings statements (broker/payouts/statements.py) and their pages: the
portal's and the console's earnings, the CSV download, payout-account setup.

Rules checked: a period's days are on the owner's clock (a shipment late on
Sunday in San Francisco is last week's there, though it is Monday in UTC); a
refund is a line of the period it happened in, and a closed period's statement
does not change; totals are per currency, never summed across; the CSV has the
page's numbers; a retailer sees only its own earnings; the offline provider's
onboarding page makes an account ready, and only its owner's.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from broker.accounts.models import Role, Store
from broker.errors import Invalid, NotFound
from broker.fulfilment import services as fulfilment
from broker.fulfilment.models import Assignment
from broker.ledger import services as ledger
from broker.orders import services as orders
from broker.pagination import PageRequest
from broker.payouts import onboarding, statements
from broker.payouts import services as payouts
from broker.settlement.services import settle
from tests.factories import HERE, World, north_of
from tests.integration.test_console_pages import csrf, sign_in

UTC = timezone.utc
# Monday 9 March 2026, 02:00 UTC, is Sunday 8 March, 19:00 in San Francisco (PDT).
SUNDAY_EVENING_IN_SF = datetime(2026, 3, 9, 2, 0, tzinfo=UTC)
TUESDAY = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def world(ctx):
    return World(ctx)


def ship(world, ctx, clock, maker, shop, *, at: datetime, session):
    """An order placed 30 hours before `at`, won by `shop`, shipped at `at`."""
    clock.now = at - timedelta(hours=30)
    placed = world.order(maker, when=clock.now)
    world.bid(shop, placed.order.id, when=clock.now)
    clock.now = at - timedelta(hours=16)
    settle(ctx)
    assignment = session.scalar(select(Assignment.id).where(Assignment.order_id == placed.order.id))
    clock.now = at
    fulfilment.record_shipment(ctx, shop.actor, assignment, fulfilment.RecordShipment("UPS", "1Z"))
    return placed.order.id


def in_zone(session, shop, zone: str):
    with_store = update(Store).where(Store.retailer_id == shop.id).values(timezone=zone)
    session.execute(with_store)
    session.commit()


def query(kind, first="", last=""):
    return statements.PeriodQuery(kind, first, last)


class TestPeriods:
    TODAY = date(2026, 3, 11)  # a Wednesday

    @pytest.mark.parametrize("kind, first, last", [
        ("this-week", date(2026, 3, 9), date(2026, 3, 15)),
        ("last-week", date(2026, 3, 2), date(2026, 3, 8)),
        ("this-month", date(2026, 3, 1), date(2026, 3, 31)),
        ("last-month", date(2026, 2, 1), date(2026, 2, 28)),
    ])
    def test_named_periods_are_whole_days_weeks_from_monday(self, kind, first, last):
        chosen = statements.period(kind, self.TODAY, "UTC")
        assert (chosen.first, chosen.last) == (first, last)

    def test_a_period_ends_at_the_next_local_midnight(self):
        chosen = statements.period("last-week", self.TODAY, "America/Los_Angeles")
        assert chosen.starts_at == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # PST
        assert chosen.ends_at == datetime(2026, 3, 9, 7, 0, tzinfo=UTC)    # PDT from 8 March

    def test_january_s_last_month_is_december(self):
        chosen = statements.period("last-month", date(2026, 1, 15), "UTC")
        assert (chosen.first, chosen.last) == (date(2025, 12, 1), date(2025, 12, 31))

    @pytest.mark.parametrize("first, last, errors", [
        ("", "", {"from", "to"}),
        ("2026-02-30", "2026-03-01", {"from"}),
        ("9/3/2026", "2026-03-01", {"from"}),
        ("2026-03-05", "2026-03-01", {"to"}),
        ("2024-01-01", "2026-03-01", {"to"}),
    ])
    def test_custom_dates_that_are_not_right_are_refused_by_field(self, first, last, errors):
        with pytest.raises(Invalid) as refused:
            statements.period("custom", self.TODAY, "UTC", first=first, last=last)
        assert set(refused.value.errors) == errors

    def test_an_unknown_period_is_refused(self):
        with pytest.raises(Invalid):
            statements.period("fortnight", self.TODAY, "UTC")


class TestStatements:
    def test_last_week_is_last_week_on_the_retailer_s_clock(self, world, ctx, clock, session):
        maker = world.manufacturer(products=[("SKU-1", 10000)])
        shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        order_id = ship(world, ctx, clock, maker, shop, at=SUNDAY_EVENING_IN_SF, session=session)
        clock.now = TUESDAY

        in_zone(session, shop, "America/Los_Angeles")
        last = statements.statement(ctx, shop.actor, query("last-week"), PageRequest(1, 50))
        this = statements.statement(ctx, shop.actor, query("this-week"), PageRequest(1, 50))
        assert [line.order_id for line in last.lines.items] == [order_id]
        assert this.lines.items == []
        [line] = last.lines.items
        assert (line.gross, line.fee, line.net, line.status, line.movements) == (10000, 1000, 9000, "accrued",
                                                                                ("earning",))
        assert [(t.currency, t.orders, t.gross, t.fee, t.net) for t in last.totals] == [("USD", 1, 10000, 1000, 9000)]

        in_zone(session, shop, "UTC")  # on a UTC clock the same moment is Monday: this week
        assert statements.statement(ctx, shop.actor, query("last-week"), PageRequest(1, 50)).lines.items == []
        assert [x.order_id for x in statements.statement(ctx, shop.actor, query("this-week"),
                                                         PageRequest(1, 50)).lines.items] == [order_id]

    def test_a_refund_is_a_line_of_its_own_period_and_the_closed_one_stays(self, world, ctx, clock, session):
        maker = world.manufacturer(products=[("SKU-1", 10000)])
        shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        order_id = ship(world, ctx, clock, maker, shop, at=datetime(2026, 3, 4, 12, tzinfo=UTC), session=session)
        clock.now = datetime(2026, 3, 10, 12, tzinfo=UTC)  # the next week
        orders.refund_order(ctx, maker.actor, order_id, 5000)

        before = statements.statement(ctx, shop.actor, query("last-week"), PageRequest(1, 50))
        after = statements.statement(ctx, shop.actor, query("this-week"), PageRequest(1, 50))
        [sold] = before.lines.items
        [refunded] = after.lines.items
        assert (sold.gross, sold.fee, sold.net) == (10000, 1000, 9000)
        assert (refunded.gross, refunded.fee, refunded.net, refunded.movements) == (-5000, -500, -4500, ("refund",))
        assert sold.status == refunded.status == "accrued"
        assert ledger.check(session).ok

    def test_totals_are_per_currency_never_summed(self, world, ctx, clock, session):
        dollars = world.manufacturer(products=[("SKU-1", 10000)])
        euros = world.manufacturer(currency="EUR", products=[("SKU-1", 3000)])
        shop = world.retailer(north_of(HERE, 2), dealer_of=[dollars, euros])
        ship(world, ctx, clock, dollars, shop, at=datetime(2026, 3, 4, 12, tzinfo=UTC), session=session)
        ship(world, ctx, clock, euros, shop, at=datetime(2026, 3, 5, 12, tzinfo=UTC), session=session)
        found = statements.statement(ctx, shop.actor, query("this-week"), PageRequest(1, 50))
        assert [(t.currency, t.net) for t in found.totals] == [("EUR", 2700), ("USD", 9000)]
        assert [(b.currency, b.accrued) for b in found.balances] == [("EUR", 2700), ("USD", 9000)]
        summary = payouts.earnings_summary(ctx, shop.actor)
        assert summary.single is None and len(summary.by_currency) == 2

    def test_a_payout_lists_what_it_paid(self, world, ctx, clock, session):
        maker = world.manufacturer(products=[("SKU-1", 10000)])
        shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        order_id = ship(world, ctx, clock, maker, shop, at=datetime(2026, 3, 4, 12, tzinfo=UTC), session=session)
        world.payouts_ready(shop.actor)
        clock.now = datetime(2026, 3, 5, 12, tzinfo=UTC)
        assert payouts.run_payouts(ctx).payouts == 1
        found = statements.statement(ctx, shop.actor, query("this-week"), PageRequest(1, 50))
        [payout] = found.payouts
        assert (payout.amount, payout.currency, payout.status) == (9000, "USD", "paid")
        assert [e.order_id for e in payout.earnings] == [order_id]
        assert found.lines.items[0].status == "paid" and found.lines.items[0].paid_at == clock.now

    def test_the_manufacturer_s_own_fulfilment_reads_the_same(self, world, ctx, clock, session):
        maker = world.manufacturer(products=[("SKU-1", 10000)])
        clock.now = datetime(2026, 3, 3, 9, tzinfo=UTC)
        placed = world.order(maker, when=clock.now)
        clock.now += timedelta(hours=13)
        settle(ctx)  # nobody bid: the manufacturer ships it
        assignment = session.scalar(select(Assignment.id).where(Assignment.order_id == placed.order.id))
        fulfilment.record_shipment(ctx, maker.actor, assignment, fulfilment.RecordShipment("UPS", "1Z"))
        found = statements.statement(ctx, maker.actor, query("this-week"), PageRequest(1, 50))
        assert [(x.order_id, x.net) for x in found.lines.items] == [(placed.order.id, found.lines.items[0].gross
                                                                     - found.lines.items[0].fee)]
        assert found.owner.kind == "manufacturer"


class TestPages:
    def test_a_retailer_sees_its_earnings_and_downloads_the_same_numbers(self, world, ctx, clock, session,
                                                                          client):
        maker = world.manufacturer(products=[("SKU-1", 10000)])
        shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        other = world.retailer(north_of(HERE, 3), dealer_of=[maker])
        mine = ship(world, ctx, clock, maker, shop, at=datetime(2026, 3, 4, 12, tzinfo=UTC), session=session)
        theirs = ship(world, ctx, clock, maker, other, at=datetime(2026, 3, 5, 12, tzinfo=UTC), session=session)
        clock.now = datetime(2026, 3, 10, 12, tzinfo=UTC)
        sign_in(client, ctx, Role.RETAILER, shop.id)

        page = client.get("/portal/earnings?period=last-week")
        html = page.get_data(as_text=True)
        assert page.status_code == 200
        assert f'id="line-{mine}"' in html and f'id="line-{theirs}"' not in html
        assert "$90.00" in html and "$100.00" in html and "$10.00" in html
        assert 'href="/portal/earnings/statement.csv?period=custom&amp;from=2026-03-02&amp;to=2026-03-08"' in html

        download = client.get("/portal/earnings/statement.csv?period=custom&from=2026-03-02&to=2026-03-08")
        assert download.status_code == 200 and download.mimetype == "text/csv"
        assert "attachment" in download.headers["Content-Disposition"]
        rows = list(csv.reader(io.StringIO(download.get_data(as_text=True))))
        assert rows[0][0] == "order" and len(rows) == 2
        assert rows[1][0] == str(mine) and rows[1][3:8] == ["USD", "100.00", "10.00", "90.00", "accrued"]

    def test_bad_dates_come_back_with_every_error_and_this_week(self, world, ctx, client):
        shop = world.retailer(north_of(HERE, 2))
        sign_in(client, ctx, Role.RETAILER, shop.id)
        page = client.get("/portal/earnings?period=custom&from=2026-13-01&to=")
        html = page.get_data(as_text=True)
        assert page.status_code == 422
        assert 'data-error-summary' in html and 'id="from-error"' in html and 'id="to-error"' in html
        assert 'aria-invalid="true" aria-describedby="from-error"' in html
        assert client.get("/portal/earnings/statement.csv?period=custom&from=x&to=y").status_code == 422

    def test_a_manufacturer_cannot_open_the_portal_s_earnings_nor_a_retailer_the_console_s(self, world, ctx,
                                                                                          client, app):
        maker = world.manufacturer()
        shop = world.retailer(north_of(HERE, 2))
        sign_in(client, ctx, Role.MANUFACTURER, maker.id)
        assert client.get("/portal/earnings").status_code == 403
        assert client.get("/console/earnings").status_code == 200
        other = app.test_client()
        sign_in(other, ctx, Role.RETAILER, shop.id)
        assert other.get("/console/earnings").status_code == 403
        assert other.get("/console/earnings/statement.csv").status_code == 403

    def test_signed_out_goes_to_sign_in(self, client):
        for path in ("/portal/earnings", "/portal/earnings/statement.csv", "/portal/payout-account",
                     "/console/earnings", "/console/payout-account"):
            assert client.get(path).status_code == 302, path


class TestPayoutAccount:
    def test_setting_up_through_the_offline_onboarding_page(self, world, ctx, client, app, session):
        shop = world.retailer(north_of(HERE, 2))
        sign_in(client, ctx, Role.RETAILER, shop.id)
        assert "Not set up" in client.get("/portal/payout-account").get_data(as_text=True)
        started = client.post("/portal/payout-account", data={"csrf_token": csrf(client, "/portal/payout-account")})
        assert started.status_code == 302
        target = started.headers["Location"]
        assert "/portal/payout-account/offline/offacct_" in target
        path = target[target.index("/portal/"):]
        page = client.get(path).get_data(as_text=True)
        assert "test mode" in page and 'id="finish-onboarding"' in page

        intruder = world.retailer(north_of(HERE, 3))
        stranger = app.test_client()
        sign_in(stranger, ctx, Role.RETAILER, intruder.id)
        assert stranger.get(path).status_code == 404
        assert stranger.post(path, data={"csrf_token": csrf(stranger, "/portal/earnings")}).status_code == 404

        done = client.post(path, data={"csrf_token": csrf(client, "/portal/payout-account")})
        assert done.status_code == 302
        assert onboarding.status(ctx, shop.actor).ready
        assert "Ready" in client.get("/portal/payout-account").get_data(as_text=True)
        assert not onboarding.status(ctx, intruder.actor).exists

    def test_the_console_s_not_set_up_is_an_action(self, world, ctx, client):
        maker = world.manufacturer()
        sign_in(client, ctx, Role.MANUFACTURER, maker.id)
        html = client.get("/console/earnings").get_data(as_text=True)
        assert "Not set up" in html and 'href="/console/payout-account"' in html
        started = client.post("/console/payout-account", data={"csrf_token": csrf(client, "/console/payout-account")})
        assert "/console/payout-account/offline/" in started.headers["Location"]

    def test_someone_else_s_account_cannot_be_completed(self, world, ctx):
        shop = world.retailer(north_of(HERE, 2))
        other = world.retailer(north_of(HERE, 3))
        made = payouts.connect(ctx, shop.actor, email="a@example.com")
        with pytest.raises(NotFound):
            onboarding.complete_offline(ctx, other.actor, made.account.account_ref)
        assert not onboarding.status(ctx, shop.actor).ready


class TestSummaryApi:
    def test_one_currency_keeps_the_old_fields_several_do_not(self, world, ctx, clock, session, client):
        dollars = world.manufacturer(products=[("SKU-1", 10000)])
        euros = world.manufacturer(currency="EUR", products=[("SKU-1", 3000)])
        shop = world.retailer(north_of(HERE, 2), dealer_of=[dollars, euros])
        auth = {"Authorization": f"Bearer {shop.key}"}
        assert client.get("/api/v1/earnings/summary", headers=auth).get_json() == {
            "by_currency": [], "accrued": 0, "frozen": 0, "paid": 0, "account_ready": False}
        ship(world, ctx, clock, dollars, shop, at=datetime(2026, 3, 4, 12, tzinfo=UTC), session=session)
        one = client.get("/api/v1/earnings/summary", headers=auth).get_json()
        assert (one["currency"], one["accrued"]) == ("USD", 9000)
        ship(world, ctx, clock, euros, shop, at=datetime(2026, 3, 5, 12, tzinfo=UTC), session=session)
        several = client.get("/api/v1/earnings/summary", headers=auth).get_json()
        assert "accrued" not in several and "currency" not in several
        assert several["by_currency"] == [{"currency": "EUR", "accrued": 2700, "frozen": 0, "paid": 0},
                                          {"currency": "USD", "accrued": 9000, "frozen": 0, "paid": 0}]
