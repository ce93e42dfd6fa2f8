"""The customer's data: the download, erasure (by the customer and by the
retention job), the operator's lookup, and logs that never carry any of it.

The customer's details are sentinels: strings that cannot occur by chance, so a
scan of every table and column after an erasure finds them only where they leaked.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import smtplib
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from broker.auth import ANONYMOUS
from broker.board import services as board
from broker.board.models import Listing
from broker.db import Base
from broker.errors import NotFound, Unauthenticated
from broker.fulfilment import services as fulfilment
from broker.fulfilment.models import Assignment
from broker.geo.geocoding import LocationQuery
from broker.ledger.models import LedgerEntry, LedgerTransaction
from broker.ledger.services import check as ledger_check
from broker.notifications.delivery import deliver_emails
from broker.orders import delivered
from broker.orders import services as orders
from broker.orders.models import Order, OrderStatus
from broker.pagination import PageRequest
from broker.payments.models import Payment, PaymentStatus, WebhookEvent
from broker.payouts import services as payouts
from broker.payouts.models import Earning, Payout
from broker.personal import services as personal
from broker.personal.models import PersonalRequest, RequestStatus
from broker.privacy import erasure, export, lookup, retention
from broker.privacy.models import Disclosure
from broker.reputation import services as reputation
from broker.returns import services as returns
from broker.settlement.services import settle
from tests.conftest import START
from tests.factories import HERE, north_of

API = "/api/v1"

NAME = "Zebediah Quillsworth"
EMAIL = "zebediah.quillsworth@private.example"
STREET = "42 Quillsworthy Crescent"
STREET2 = "Flat Vermillion Nine"
MESSAGE = "Leave it behind the Xanthoria planter"
REPLY = "Noted, the copper-kettle Wednesday slot"
COMMENT = "Splendid Vorticellan service"
BUYER_COMMENT = "A courteous Marmaduke-grade buyer"
RETURN_REASON = "It arrived Brontosaurian dented"
# The store's answer to it: about the customer's return, so theirs to erase too.
RETURN_NOTE = "Send a photo of the Brontosaurian dent, Zebediah"
CALLBACK = "https://agent.example/hooks/quillsworth-agent"
SENTINELS = (NAME, EMAIL, STREET, STREET2, MESSAGE, REPLY, COMMENT, BUYER_COMMENT, RETURN_REASON, RETURN_NOTE,
             CALLBACK, "quillsworth")

OTHER_NAME = "Philippa Oddbjorn"
OTHER_EMAIL = "philippa.oddbjorn@private.example"
OTHER_MESSAGE = "Ring the Oddbjorn bell twice"


@pytest.fixture
def maker(world):
    return world.manufacturer()


@pytest.fixture
def shop(world, maker):
    return world.retailer(north_of(HERE, 3), dealer_of=[maker], email="desk@shop.example")


def place(ctx, maker, *, name=NAME, email=EMAIL, street=STREET, line2=STREET2):
    return orders.place_order(ctx, maker.slug, orders.PlaceOrder(
        items=[orders.Item("SKU-1", 1)], customer=orders.Customer(name, email),
        ship_to=orders.Address(street, "San Francisco", "94103", "US", line2=line2, lat=HERE[0] + 0.0123,
                               lon=HERE[1] - 0.0456)))


def assignment_of(ctx, order_id: int) -> Assignment:
    with ctx.uow() as uow:
        return uow.session.scalars(select(Assignment).where(Assignment.order_id == order_id)
                                   .order_by(Assignment.id.desc())).first()


def listing_of_request(ctx, request_id: int) -> int:
    with ctx.uow() as uow:
        return uow.session.scalar(select(Listing.id).where(Listing.request_id == request_id))


def post_request(ctx, *, contact=EMAIL, callback=CALLBACK, name=NAME):
    return personal.post_request(ctx, personal.PostRequest(
        description="a brass kettle", quantity=1, max_price=9000, currency="USD",
        location=LocationQuery(lat=HERE[0], lon=HERE[1]),
        ship_to=personal.ShipTo(name, STREET, "San Francisco", "94103", "US", line2=STREET2),
        contact=contact, callback_url=callback))


def personal_data_left(session, needles=SENTINELS) -> list[str]:
    """Every (table, column, sentinel) where a sentinel still is, in every row of every table."""
    found = []
    for table in Base.metadata.sorted_tables:
        for row in session.execute(select(table)).mappings():
            for column, value in row.items():
                text = (json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value)).lower()
                found += [f"{table.name}.{column}: {n}" for n in needles if n.lower() in text]
    return sorted(set(found))


def money(session) -> dict:
    """The money records, row by row: erasure must not touch them."""
    return {t.__tablename__: sorted(map(repr, session.execute(select(t.__table__)).all()))
            for t in (Payment, LedgerTransaction, LedgerEntry, Earning, Payout)}


@dataclasses.dataclass
class Customer:
    in_flight: orders.PlacedOrder  # awarded to the shop, not shipped; messages; a provider event
    shipped: orders.PlacedOrder  # shipped, a return refused and asked again, delivered, reviewed both ways
    open_request: personal.PostedRequest  # an offer came in
    awarded_request: personal.PostedRequest  # accepted: an order, in flight
    other: orders.PlacedOrder  # another customer's, same store and shop


def build_customer(ctx, clock, world, maker, shop) -> Customer:
    in_flight = place(ctx, maker)
    shipped = place(ctx, maker)
    other = place(ctx, maker, name=OTHER_NAME, email=OTHER_EMAIL, street="9 Elsewhere Road", line2="")
    for placed in (in_flight, shipped, other):
        world.bid(shop, placed.order.id)
    clock.advance(hours=13)
    settle(ctx)
    fulfilment.list_assignments(ctx, shop.actor, PageRequest(1, 50))  # the shop sees the addresses: disclosed
    for placed in (in_flight, other):
        personal.send_message(ctx, placed.order.id, MESSAGE if placed is in_flight else OTHER_MESSAGE,
                              actor=ANONYMOUS, token=placed.access_token)
        personal.send_message(ctx, placed.order.id, REPLY if placed is in_flight else "On its way to you",
                              actor=shop.actor, token=None)
    fulfilment.record_shipment(ctx, shop.actor, assignment_of(ctx, shipped.order.id).id,
                               fulfilment.RecordShipment("UPS", "1ZQUILL"))
    personal.send_message(ctx, shipped.order.id, MESSAGE, actor=ANONYMOUS, token=shipped.access_token)
    returns.request_return(ctx, shipped.order.id, shipped.access_token, RETURN_REASON)
    returns.refuse_return(ctx, shop.actor, shipped.order.id, RETURN_NOTE)
    returns.request_return(ctx, shipped.order.id, shipped.access_token, RETURN_REASON + " again")
    delivered.confirm_delivery(ctx, shipped.order.id, shipped.access_token)
    reputation.review_as_customer(ctx, shipped.order.id, shipped.access_token, 5, COMMENT)
    reputation.review_as_fulfiller(ctx, shop.actor, shipped.order.id, 4, BUYER_COMMENT)
    orders.get_order(ctx, maker.actor, in_flight.order.id)  # the manufacturer looks: a disclosure

    open_request = post_request(ctx)
    board.place_bid(ctx, shop.actor, board.PlaceBid(listing_of_request(ctx, open_request.request.id), price=8000))
    awarded_request = post_request(ctx)
    bid, _ = board.place_bid(ctx, shop.actor, board.PlaceBid(listing_of_request(ctx, awarded_request.request.id),
                                                               price=8500))
    personal.accept_offer(ctx, awarded_request.request.id, awarded_request.access_token, bid.id)
    awarded_order_id = awarded_request_order(ctx, awarded_request.request.id)
    personal.send_message(ctx, awarded_order_id, MESSAGE, actor=ANONYMOUS, token=awarded_request.access_token)

    deliver_emails(ctx)  # some sent, so both sent and unsent ones are there
    personal.send_message(ctx, in_flight.order.id, REPLY + " again", actor=shop.actor, token=None)  # not sent yet
    with ctx.uow() as uow:
        for placed in (in_flight, other):
            payment = uow.session.scalar(select(Payment).where(Payment.order_id == placed.order.id))
            name, email, street = (NAME, EMAIL, STREET) if placed is in_flight else \
                (OTHER_NAME, OTHER_EMAIL, "9 Elsewhere Road")
            uow.session.add(WebhookEvent(
                provider="stripe", event_id=f"evt_{placed.order.id}", type="payment_intent.amount_capturable_updated",
                object_ref=payment.provider_ref, outcome="applied", received_at=ctx.now(),
                payload={"id": f"evt_{placed.order.id}", "type": "payment_intent.amount_capturable_updated",
                         "data": {"object": {
                             "id": payment.provider_ref, "amount": payment.amount, "receipt_email": email,
                             "description": f"order for {name}",
                             "shipping": {"name": name, "address": {"line1": street, "postal_code": "94103"}},
                             "latest_charge": {"billing_details": {"name": name, "email": email,
                                                                   "address": {"line1": street}}}}}}))
        uow.commit()
    return Customer(in_flight, shipped, open_request, awarded_request, other)


def awarded_request_order(ctx, request_id: int) -> int:
    with ctx.uow() as uow:
        return uow.session.scalar(select(PersonalRequest.order_id).where(PersonalRequest.id == request_id))


@pytest.fixture
def customer(ctx, clock, world, maker, shop) -> Customer:
    return build_customer(ctx, clock, world, maker, shop)


def erase_everything(ctx, c: Customer) -> None:
    erasure.erase_order(ctx, c.in_flight.order.id, c.in_flight.access_token)
    erasure.erase_order(ctx, c.shipped.order.id, c.shipped.access_token)
    erasure.erase_request(ctx, c.open_request.request.id, c.open_request.access_token)
    erasure.erase_request(ctx, c.awarded_request.request.id, c.awarded_request.access_token)


# --- the download -------------------------------------------------------------


class TestExport:
    def test_an_order_s_export_holds_everything_about_the_customer_and_nothing_of_others(self, ctx, customer):
        data = export.export_order(ctx, customer.shipped.order.id, customer.shipped.access_token)
        json.dumps(data)  # JSON-able as it is
        o = data["order"]
        assert data["kind"] == "order" and o["id"] == customer.shipped.order.id
        assert o["customer"] == {"name": NAME, "email": EMAIL}
        assert o["ship_to"]["line1"] == STREET and o["ship_to"]["line2"] == STREET2
        assert [line["sku"] for line in o["lines"]] == ["SKU-1"] and o["total"] == 5000
        assert o["payment"]["status"] == PaymentStatus.CAPTURED and o["payment"]["captured_amount"] == 5000
        assert o["fulfilment"][0]["carrier"] == "UPS" and o["fulfilment"][0]["tracking_number"] == "1ZQUILL"
        assert [m["body"] for m in o["messages"]] == [MESSAGE]
        assert [(r["status"], r["reason"], r["note"]) for r in o["returns"]] == [
            ("refused", RETURN_REASON, RETURN_NOTE), ("requested", RETURN_REASON + " again", None)]
        assert o["delivered_how"] == "customer"
        assert {r["comment"] for r in o["reviews"]} == {COMMENT, BUYER_COMMENT}  # both in: both sides reviewed
        assert any(d["party"] == "retailer" for d in o["disclosures"])
        subjects = [e["subject"] for e in o["emails"]]
        assert any("confirmed" in s for s in subjects) and any("shipped" in s for s in subjects)
        assert data["request"] is None
        text = json.dumps(data).lower()
        for other in (OTHER_NAME, OTHER_EMAIL, OTHER_MESSAGE, "elsewhere road"):
            assert other.lower() not in text
        assert "card_number" not in text and "4242" not in text

    def test_the_other_customer_s_email_and_messages_are_not_in_mine(self, ctx, customer):
        data = export.export_order(ctx, customer.in_flight.order.id, customer.in_flight.access_token)
        o = data["order"]
        assert [m["body"] for m in o["messages"]] == [MESSAGE, REPLY, REPLY + " again"]
        # The relay emails to the shop are not emails to the customer.
        assert all(e["subject"] and "wrote to you" not in e["subject"] for e in o["emails"])
        assert any(d["party"] == "manufacturer" for d in o["disclosures"])
        assert OTHER_MESSAGE.lower() not in json.dumps(data).lower()

    def test_a_request_s_export_holds_the_request_and_the_order_it_became(self, ctx, customer):
        r = customer.awarded_request
        data = export.export_request(ctx, r.request.id, r.access_token)
        assert data["kind"] == "request"
        assert data["request"]["contact_email"] == EMAIL and data["request"]["callback_url"] == CALLBACK
        assert data["request"]["ship_to"]["name"] == NAME
        assert {c["event"] for c in data["request"]["callbacks"]} >= {"offer", "award"}
        assert data["order"]["id"] == data["request"]["order_id"]
        assert [m["body"] for m in data["order"]["messages"]] == [MESSAGE]
        assert data["request"]["payment"]["authorised_amount"] == 9000

    def test_another_token_cannot_export_or_erase(self, ctx, customer):
        c = customer
        for call in (export.export_order, erasure.erase_order):
            with pytest.raises(NotFound):
                call(ctx, c.in_flight.order.id, c.other.access_token)
            with pytest.raises(Unauthenticated):
                call(ctx, c.in_flight.order.id, None)
        for call in (export.export_request, erasure.erase_request):
            with pytest.raises(NotFound):
                call(ctx, c.open_request.request.id, c.awarded_request.access_token)
        with ctx.uow() as uow:
            assert uow.session.get(Order, c.in_flight.order.id).erased_at is None


# --- erasure ------------------------------------------------------------------


class TestErasure:
    def test_after_erasing_a_customer_none_of_their_data_is_anywhere_and_the_ledger_balances(
            self, ctx, session, customer):
        c = customer
        before = personal_data_left(session)
        # The control: the scan finds what is there (each sentinel, in many places).
        assert {b.rsplit(": ", 1)[1] for b in before} == set(SENTINELS)
        assert any(b.startswith("webhook_events.payload") for b in before)
        assert any(b.startswith("outbox_messages.payload") for b in before)

        erasure.erase_order(ctx, c.in_flight.order.id, c.in_flight.access_token)
        erasure.erase_request(ctx, c.open_request.request.id, c.open_request.access_token)
        erasure.erase_request(ctx, c.awarded_request.request.id, c.awarded_request.access_token)
        kept = money(session)
        erasure.erase_order(ctx, c.shipped.order.id, c.shipped.access_token)
        session.expire_all()

        assert personal_data_left(session) == []
        assert money(session) == kept, "erasing a shipped order touched its money records"
        result = ledger_check(session)
        assert result.ok, result
        # The orders in flight were cancelled and their holds released first.
        for order_id in (c.in_flight.order.id, awarded_request_order(ctx, c.awarded_request.request.id)):
            order = session.get(Order, order_id)
            assert order.status == OrderStatus.CANCELLED and order.erased_at is not None
            assert session.scalar(select(Payment.status).where(Payment.order_id == order_id)) == \
                PaymentStatus.RELEASED
        assert session.get(PersonalRequest, c.open_request.request.id).status == RequestStatus.CANCELLED
        # The other customer is untouched.
        left = personal_data_left(session, (OTHER_NAME, OTHER_EMAIL, OTHER_MESSAGE))
        assert any(x.startswith("orders.customer_name") for x in left)
        assert any(x.startswith("webhook_events.payload") for x in left)
        assert any(x.startswith("messages.body") for x in left)

    def test_what_stays_is_coarse_and_the_money_is_whole(self, ctx, session, customer):
        c = customer
        erasure.erase_order(ctx, c.shipped.order.id, c.shipped.access_token)
        session.expire_all()
        order = session.get(Order, c.shipped.order.id)
        assert order.status == OrderStatus.DELIVERED  # a delivered order is anonymised, not cancelled
        assert order.customer_name == "erased"
        assert order.customer_email == f"erased-order-{order.id}@erased.invalid"
        assert (order.ship_line1, order.ship_line2, order.ship_postal_code) == ("", "", "941")
        assert (order.ship_lat, order.ship_lon) == (round(HERE[0] + 0.0123, 1), round(HERE[1] - 0.0456, 1))
        assert order.ship_city == "San Francisco" and order.total == 5000
        listing = session.scalar(select(Listing).where(Listing.order_id == order.id))
        assert (listing.lat, listing.lon) == (order.ship_lat, order.ship_lon)
        payment = session.scalar(select(Payment).where(Payment.order_id == order.id))
        assert payment.captured_amount == 5000
        assert session.scalar(select(func.count()).select_from(Earning).where(Earning.order_id == order.id)) == 1
        [audit] = session.scalars(select(Disclosure).where(Disclosure.order_id == order.id,
                                                           Disclosure.party_kind == "broker")).all()
        assert audit.purpose == "erased at the customer's request"
        # The link still works, and says so.
        data = export.export_order(ctx, order.id, c.shipped.access_token)
        assert data["order"]["erased_at"] is not None and data["order"]["customer"]["name"] == "erased"
        assert {r["rating"] for r in data["order"]["reviews"]} == {5, 4}

    def test_erasing_twice_changes_nothing(self, ctx, session, customer):
        c = customer
        first = erasure.erase_order(ctx, c.in_flight.order.id, c.in_flight.access_token)
        session.expire_all()
        snapshot = {t.name: sorted(map(repr, session.execute(select(t)).all())) for t in Base.metadata.sorted_tables}
        again = erasure.erase_order(ctx, c.in_flight.order.id, c.in_flight.access_token)
        session.expire_all()
        assert again.erased_at == first.erased_at and again.status == OrderStatus.CANCELLED
        assert {t.name: sorted(map(repr, session.execute(select(t)).all()))
                for t in Base.metadata.sorted_tables} == snapshot

    def test_unsent_emails_about_an_erased_order_are_never_sent(self, ctx, session, customer, mail_dir):
        c = customer
        erasure.erase_order(ctx, c.in_flight.order.id, c.in_flight.access_token)
        before = set(mail_dir.iterdir()) if mail_dir.exists() else set()
        deliver_emails(ctx)
        sent = (set(mail_dir.iterdir()) if mail_dir.exists() else set()) - before
        assert not any("erased.invalid" in p.read_text() for p in sent)


# --- retention ------------------------------------------------------------------


class TestRetention:
    def test_only_what_is_past_the_window_is_erased_and_a_second_run_does_nothing(
            self, ctx, session, clock, world, maker, shop):
        assert ctx.settings.pii_retention_days == 90
        cancelled_long_ago = place(ctx, maker)
        cancelled_lately = place(ctx, maker)
        shipped = place(ctx, maker)
        in_flight = place(ctx, maker)
        world.bid(shop, shipped.order.id)
        old_request = post_request(ctx)
        new_request = post_request(ctx)
        orders.cancel_order(ctx, cancelled_long_ago.order.id, cancelled_long_ago.access_token)
        personal.cancel_request(ctx, old_request.request.id, old_request.access_token)
        clock.advance(hours=13)
        settle(ctx)  # the shop wins `shipped`; `in_flight` falls back to the manufacturer
        clock.advance(days=1)
        fulfilment.record_shipment(ctx, shop.actor, assignment_of(ctx, shipped.order.id).id,
                                   fulfilment.RecordShipment("UPS", "1Z"))
        clock.now = START + timedelta(days=95)
        orders.cancel_order(ctx, cancelled_lately.order.id, cancelled_lately.access_token)
        personal.cancel_request(ctx, new_request.request.id, new_request.access_token)

        clock.now = START + timedelta(days=100)
        report = retention.run_retention(ctx)
        assert (report.orders, report.requests) == (1, 1)
        session.expire_all()

        def erased(model, id_):
            return session.get(model, id_).erased_at is not None

        assert erased(Order, cancelled_long_ago.order.id) and erased(PersonalRequest, old_request.request.id)
        # Cancelled 5 days ago; shipped 99 days ago but the 30-day return window
        # ended 69 days ago; still in flight: all kept.
        for order_id in (cancelled_lately.order.id, shipped.order.id, in_flight.order.id):
            assert not erased(Order, order_id)
        assert not erased(PersonalRequest, new_request.request.id)
        [audit] = session.scalars(select(Disclosure).where(Disclosure.order_id == cancelled_long_ago.order.id,
                                                           Disclosure.party_kind == "broker")).all()
        assert audit.purpose == "erased: the retention period ended"

        assert retention.run_retention(ctx) == retention.RetentionReport(0, 0)

        clock.now = START + timedelta(days=1, hours=13) + timedelta(days=30 + 90, seconds=1)
        assert retention.run_retention(ctx).orders == 1
        session.expire_all()
        assert erased(Order, shipped.order.id) and not erased(Order, in_flight.order.id)
        assert ledger_check(session).ok

    def test_a_shorter_window_from_the_environment(self, ctx):
        from broker.config import ConfigError, Settings

        assert Settings.from_env({"BROKER_PII_RETENTION_DAYS": "30"}).pii_retention_days == 30
        with pytest.raises(ConfigError):
            Settings.from_env({"BROKER_PII_RETENTION_DAYS": "0"})

    def test_the_job_is_scheduled_daily(self):
        from jobs.definitions import JOBS

        [spec] = [s for s in JOBS if s.id == "retention"]
        assert spec.func is retention.run_retention


# --- the operator's lookup ------------------------------------------------------


class TestOperatorLookup:
    def test_finding_a_customer_is_logged_for_them_with_the_reason(self, ctx, session, customer, monkeypatch):
        from click.testing import CliRunner

        import web.cli

        monkeypatch.setattr(web.cli, "_context", lambda *a, **kw: ctx)
        result = CliRunner().invoke(web.cli.main, ["customer", "find", EMAIL.upper(), "--reason",
                                                   "the customer asked by phone about a refund"])
        assert result.exit_code == 0, result.output
        assert f"order {customer.in_flight.order.id} " in result.output
        assert f"request {customer.open_request.request.id} " in result.output
        assert OTHER_NAME not in result.output
        session.expire_all()
        rows = session.scalars(select(Disclosure).where(Disclosure.party_kind == "operator")).all()
        assert {r.order_id for r in rows if r.order_id} >= {customer.in_flight.order.id, customer.shipped.order.id}
        assert {r.purpose for r in rows} == {"the customer asked by phone about a refund"}
        assert customer.other.order.id not in {r.order_id for r in rows}

        missing = CliRunner().invoke(web.cli.main, ["customer", "find", EMAIL])
        assert missing.exit_code == 2 and "--reason" in missing.output


# --- the API ----------------------------------------------------------------------


class TestApi:
    def test_the_customer_downloads_and_erases_an_order(self, client, customer):
        c = customer
        path = f"{API}/orders/{c.in_flight.order.id}"
        token = {"X-Access-Token": c.in_flight.access_token}
        got = client.get(f"{path}/data", headers=token)
        assert got.status_code == 200 and got.get_json()["order"]["customer"]["email"] == EMAIL
        assert client.get(f"{path}/data").status_code == 401
        assert client.get(f"{path}/data", headers={"X-Access-Token": c.other.access_token}).status_code == 404
        assert client.post(f"{path}/erase", headers={"X-Access-Token": c.other.access_token}).status_code == 404
        erased = client.post(f"{path}/erase", headers=token)
        assert erased.status_code == 200, erased.get_json()
        assert erased.get_json()["status"] == "cancelled" and erased.get_json()["erased_at"]
        again = client.post(f"{path}/erase", headers=token)
        assert again.get_json()["erased_at"] == erased.get_json()["erased_at"]
        assert client.get(f"{path}/data", headers=token).get_json()["order"]["customer"]["name"] == "erased"

    def test_the_customer_downloads_and_erases_a_request(self, client, customer):
        r = customer.open_request
        path, token = f"{API}/requests/{r.request.id}", {"X-Access-Token": r.access_token}
        assert client.get(f"{path}/data", headers=token).get_json()["request"]["contact_email"] == EMAIL
        erased = client.post(f"{path}/erase", headers=token)
        assert erased.status_code == 200 and erased.get_json()["status"] == "cancelled"
        assert client.get(f"{path}/data", headers=token).get_json()["request"]["contact_email"] is None

    def test_the_operations_are_for_the_customer_alone(self, client):
        doc = client.get(f"{API}/openapi.json").get_json()
        for path, method in (("/orders/{order_id}/data", "get"), ("/orders/{order_id}/erase", "post"),
                             ("/requests/{request_id}/data", "get"), ("/requests/{request_id}/erase", "post")):
            op = doc["paths"][API + path][method]
            assert op["x-roles"] == ["customer"] and op["security"] == [{"accessToken": []}]


# --- the pages --------------------------------------------------------------------
#
# The customer opens the link once; the page and its actions then answer on the
# token-free URL, by the cookie the link was exchanged for, with the link's CSRF
# token in each form.


def open_link(client, link: str):
    """Follow an emailed link as a browser does; the page, at its token-free address."""
    page = client.get(link, follow_redirects=True)
    assert page.status_code == 200, (link, page.status_code)
    assert link.rsplit("/", 1)[1] not in page.request.url
    return page


def link_csrf(page) -> str:
    found = re.search(r'name="link_csrf" value="([^"]+)"', page.get_data(as_text=True))
    assert found, "the page's forms carry the link's CSRF token"
    return found.group(1)


class TestPages:
    def test_no_page_or_answer_with_personal_data_is_kept_by_a_browser_or_proxy(self, client, ctx, maker, shop,
                                                                                  customer):
        c = customer
        personal_pages = [
            open_link(client, f"/s/{maker.slug}/o/{c.shipped.order.id}/{c.shipped.access_token}"),  # the order page
            open_link(client, f"/requests/{c.open_request.request.id}/{c.open_request.access_token}"),  # its offers
            client.get(f"/api/v1/orders/{c.shipped.order.id}", headers={"X-Access-Token": c.shipped.access_token}),
            client.get("/api/v1/assignments", headers={"Authorization": f"Bearer {shop.key}"}),  # ship-to
        ]
        for resp in personal_pages:
            assert resp.status_code == 200, resp.request.path
            assert resp.headers["Cache-Control"] == "no-store", resp.request.path
        # What says otherwise keeps its own: the catalog, the static files.
        assert client.get(f"/s/{maker.slug}/").headers["Cache-Control"] == "public, no-cache"
        with client.get("/static/app.css") as static:
            assert static.headers["Cache-Control"] != "no-store"

    def test_download_is_a_json_attachment(self, client, maker, customer):
        c = customer
        base = f"/s/{maker.slug}/o/{c.shipped.order.id}"
        page = open_link(client, f"{base}/{c.shipped.access_token}").get_data(as_text=True)
        assert "Download my data" in page and "Erase my data" in page
        resp = client.get(f"{base}/data")
        assert resp.status_code == 200 and resp.mimetype == "application/json"
        assert resp.headers["Content-Disposition"].startswith("attachment;")
        assert resp.headers["Cache-Control"] == "no-store"
        assert json.loads(resp.data)["order"]["customer"]["name"] == NAME
        assert client.get(f"{base}/{c.other.access_token}/data").status_code == 404

    def test_erasing_through_the_page_asks_first_then_cancels_and_erases(self, client, maker, customer):
        c = customer
        base = f"/s/{maker.slug}/o/{c.in_flight.order.id}"
        open_link(client, f"{base}/{c.in_flight.access_token}")
        confirm = client.get(f"{base}/erase")
        assert confirm.status_code == 200 and "cancels it first" in confirm.get_data(as_text=True)
        csrf = link_csrf(confirm)
        assert client.post(f"{base}/erase", data={"confirm": "yes"}).status_code == 400  # no CSRF token
        assert client.post(f"{base}/erase", data={"link_csrf": csrf}).status_code == 422
        done = client.post(f"{base}/erase", data={"confirm": "yes", "link_csrf": csrf})
        assert done.status_code == 303 and done.headers["Location"] == base
        page = client.get(base).get_data(as_text=True)
        assert "Your personal data was erased" in page and NAME not in page and STREET not in page
        assert "cancelled" in page and "Erase my data</a>" not in page
        assert client.get(f"{base}/erase").status_code == 303  # nothing left to erase
        # The link keeps working after the erasure, from any browser.
        assert "Your personal data was erased" in open_link(
            client.application.test_client(), f"{base}/{c.in_flight.access_token}").get_data(as_text=True)

    def test_the_request_page_downloads_and_erases(self, client, customer):
        r = customer.open_request
        base = f"/requests/{r.request.id}"
        open_link(client, f"{base}/{r.access_token}")
        resp = client.get(f"{base}/data")
        assert resp.headers["Content-Disposition"].startswith("attachment;")
        assert json.loads(resp.data)["request"]["ship_to"]["name"] == NAME
        confirm = client.get(f"{base}/erase")
        assert "withdraws it first" in confirm.get_data(as_text=True)
        assert client.post(f"{base}/erase", data={"confirm": "yes"}).status_code == 400  # no CSRF token
        assert client.post(f"{base}/erase", data={"confirm": "yes", "link_csrf": link_csrf(confirm)}).status_code == 303
        page = client.get(base).get_data(as_text=True)
        assert "Your personal data was erased" in page
        assert json.loads(client.get(f"{base}/data").data)["request"]["ship_to"]["name"] == "erased"


# --- logs --------------------------------------------------------------------------


class RefusingMailer:
    """An SMTP server that refuses the recipient, quoting the address (as they do)."""

    def send(self, message):
        raise smtplib.SMTPRecipientsRefused({message.to: (550, f"5.1.1 <{message.to}>: no such user".encode())})


def test_nothing_personal_is_ever_logged(ctx, clock, world, maker, shop, caplog):
    caplog.set_level(logging.DEBUG, logger="broker")
    caplog.set_level(logging.DEBUG, logger="jobs")
    c = build_customer(ctx, clock, world, maker, shop)
    payouts.connect(ctx, shop.actor, email="payouts@shop.example")
    payouts.run_payouts(ctx)
    deliver_emails(dataclasses.replace(ctx, mailer=RefusingMailer()))
    lookup.find_customer(ctx, EMAIL, "checking the logs")
    erase_everything(ctx, c)
    clock.advance(days=400)
    retention.run_retention(ctx)

    assert caplog.records, "the flows log something"
    # The refusal was logged, without the address the server quoted.
    assert any("<address>" in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    leaked = []
    for record in caplog.records:
        text = " ".join([record.getMessage(), repr(vars(record)), record.exc_text or ""]).lower()
        leaked += [f"{record.name}: {n}" for n in SENTINELS if n.lower() in text]
    assert leaked == []
