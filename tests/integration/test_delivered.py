"""Delivered: the customer confirms it, or it is assumed after
BROKER_DELIVERED_AFTER_DAYS by the hourly job; a pickup is delivered at the
hand-over. Then, once, the customer is invited to rate the store."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from broker.errors import Conflict, NotFound
from broker.fulfilment import services as fulfilment
from broker.fulfilment.models import Assignment
from broker.notifications.delivery import deliver_emails
from broker.notifications.services import unsubscribe, unsubscribe_url
from broker.orders import delivered as delivery
from broker.orders import services as orders
from broker.orders.models import DeliveredHow, Order, OrderStatus
from broker.outbox.queue import HELD
from broker.outbox.models import OutboxMessage
from broker.privacy import erasure
from broker.returns import services as returns
from broker.settlement.services import settle
from jobs.definitions import JOBS
from tests.factories import HERE, north_of
from tests.pages import emails_in

API = "/api/v1"


@pytest.fixture
def maker(world):
    return world.manufacturer()


@pytest.fixture
def shop(world, maker):
    return world.retailer(north_of(HERE, 2), dealer_of=[maker])


def awarded(world, ctx, clock, maker, shop, **kwargs):
    placed = world.order(maker, **kwargs)
    world.bid(shop, placed.order.id)
    clock.advance(hours=13)
    settle(ctx)
    return placed


def assignment_id(ctx, order_id: int) -> int:
    with ctx.uow() as uow:
        return uow.session.scalar(select(Assignment.id).where(Assignment.order_id == order_id))


def shipped(world, ctx, clock, maker, shop, **kwargs):
    placed = awarded(world, ctx, clock, maker, shop, **kwargs)
    fulfilment.record_shipment(ctx, shop.actor, assignment_id(ctx, placed.order.id),
                               fulfilment.RecordShipment("UPS", "1Z"))
    return placed


def order_row(session, order_id: int) -> Order:
    return session.scalar(select(Order).where(Order.id == order_id).execution_options(populate_existing=True))


def invitations(session, order_id: int) -> list[OutboxMessage]:
    return list(session.scalars(select(OutboxMessage).where(
        OutboxMessage.topic == "email.review_invitation", OutboxMessage.dedupe_key == f"order-{order_id}")
        .execution_options(populate_existing=True)))


def invitations_sent(mail_dir) -> list[str]:
    """The plain-text bodies of the review invitations sent, decoded (a long
    link is wrapped by quoted-printable in the raw file)."""
    bodies = []
    for message in emails_in(mail_dir):
        part = message.get_body(preferencelist=("plain",))
        text = part.get_content() if part is not None else message.get_content()
        if "How was your order" in message["Subject"]:
            bodies.append(text)
    return bodies


def test_the_customer_confirms_delivery(world, ctx, clock, maker, shop, client, session):
    placed = shipped(world, ctx, clock, maker, shop)
    token = {"X-Access-Token": placed.access_token}
    clock.advance(days=2)
    response = client.post(f"{API}/orders/{placed.order.id}/delivered", headers=token)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["status"], body["delivered_how"], body["delivered_at"]) == (
        "delivered", "customer", clock.now.isoformat())
    # Saying it twice changes nothing; nobody else can say it.
    clock.advance(hours=1)
    again = client.post(f"{API}/orders/{placed.order.id}/delivered", headers=token).get_json()
    assert again["delivered_at"] == body["delivered_at"]
    assert client.post(f"{API}/orders/{placed.order.id}/delivered",
                       headers={"X-Access-Token": "x" * 43}).status_code == 404
    assert client.post(f"{API}/orders/{placed.order.id}/delivered",
                       headers={"Authorization": f"Bearer {shop.key}"}).status_code == 401


def test_an_order_not_shipped_cannot_be_confirmed(world, ctx, clock, maker, shop):
    placed = awarded(world, ctx, clock, maker, shop)
    with pytest.raises(Conflict, match="once it has shipped"):
        delivery.confirm_delivery(ctx, placed.order.id, placed.access_token)
    with pytest.raises(NotFound):
        delivery.confirm_delivery(ctx, placed.order.id, "not-it")


def test_delivery_is_assumed_after_the_configured_days(world, ctx, clock, maker, shop, session):
    ctx = dataclasses.replace(ctx, settings=dataclasses.replace(ctx.settings, delivered_after_days=3))
    placed = shipped(world, ctx, clock, maker, shop)
    shipped_at = order_row(session, placed.order.id).shipped_at
    confirmed = shipped(world, ctx, clock, maker, shop, email="grace@example.com")
    delivery.confirm_delivery(ctx, confirmed.order.id, confirmed.access_token)
    clock.now = shipped_at + timedelta(days=3) - timedelta(minutes=1)
    assert delivery.assume_deliveries(ctx).assumed == 0  # a minute early
    clock.advance(minutes=2)
    report = delivery.assume_deliveries(ctx)
    assert (report.assumed, report.failed) == (1, 0)
    row = order_row(session, placed.order.id)
    assert (row.status, row.delivered_how, row.delivered_at) == (OrderStatus.DELIVERED, DeliveredHow.ASSUMED,
                                                                 clock.now)
    assert order_row(session, confirmed.order.id).delivered_how == DeliveredHow.CUSTOMER  # left as it was
    # A second scheduler, or the next hour, finds nothing to do.
    assert delivery.assume_deliveries(ctx).assumed == 0


def test_a_refunded_or_pickup_order_is_never_assumed_delivered(world, ctx, clock, maker, shop, session):
    refunded = shipped(world, ctx, clock, maker, shop)
    returns.request_return(ctx, refunded.order.id, refunded.access_token, "Broken")
    returns.accept_return(ctx, shop.actor, refunded.order.id)
    clock.advance(days=ctx.settings.delivered_after_days + 1)
    assert delivery.assume_deliveries(ctx).assumed == 0
    assert order_row(session, refunded.order.id).status == OrderStatus.REFUNDED


def test_one_order_that_fails_does_not_stop_the_others(world, ctx, clock, maker, shop, session, monkeypatch, caplog):
    first = shipped(world, ctx, clock, maker, shop)
    second = shipped(world, ctx, clock, maker, shop, email="grace@example.com")
    clock.advance(days=ctx.settings.delivered_after_days + 1)
    real = delivery.mark_delivered

    def broken_for_the_first(session_, ctx_, order, how, now):
        if order.id == first.order.id:
            raise RuntimeError("a bug in one row")
        return real(session_, ctx_, order, how, now)

    monkeypatch.setattr(delivery, "mark_delivered", broken_for_the_first)
    report = delivery.assume_deliveries(ctx)
    assert (report.assumed, report.failed) == (1, 1)
    assert order_row(session, first.order.id).status == OrderStatus.SHIPPED  # nothing half-written
    assert order_row(session, second.order.id).status == OrderStatus.DELIVERED
    assert any(getattr(r, "event", "") == "job.row_failed" and r.row_id == first.order.id for r in caplog.records)
    monkeypatch.undo()
    clock.advance(hours=1)  # the job's next run, past the failed row's backoff (broker.parking)
    assert delivery.assume_deliveries(ctx).assumed == 1  # tried again


def test_the_delivered_job_runs_hourly():
    [spec] = [job for job in JOBS if job.id == "delivered"]
    assert spec.func.__name__ == "run_delivered" and spec.misfire_grace_seconds == 3600


def test_a_pickup_is_delivered_when_it_is_handed_over(world, ctx, clock, maker, shop, session):
    pickup = orders.place_order(ctx, maker.slug, orders.PlaceOrder(
        items=[orders.Item("SKU-1", 1)], customer=orders.Customer("Pat", "pat@example.com"),
        ship_to=orders.Address("", "", "94103", "US", lat=HERE[0], lon=HERE[1]), delivery=orders.Delivery.PICKUP))
    world.bid(shop, pickup.order.id)
    clock.advance(hours=13)
    settle(ctx)
    fulfilment.collect_pickup(ctx, shop.actor, assignment_id(ctx, pickup.order.id), pickup.pickup_code)
    row = order_row(session, pickup.order.id)
    assert (row.status, row.delivered_how, row.delivered_at) == (OrderStatus.DELIVERED, DeliveredHow.PICKUP,
                                                                 row.shipped_at)
    assert invitations(session, pickup.order.id)[0].next_attempt_at is None  # released: on its way


class TestReviewInvitation:
    def test_the_review_invitation_follows_delivery_once(self, world, ctx, clock, maker, shop, session, mail_dir,
                                                         client):
        placed = shipped(world, ctx, clock, maker, shop)
        deliver_emails(ctx)
        assert invitations_sent(mail_dir) == []  # written at checkout, with the order's link, and parked
        delivery.confirm_delivery(ctx, placed.order.id, placed.access_token)
        delivery.confirm_delivery(ctx, placed.order.id, placed.access_token)
        deliver_emails(ctx)
        [sent] = invitations_sent(mail_dir)
        link = re.search(r"http://localhost(/s/[^/\s]+/o/\d+/[^\s]+)", sent)
        assert link, sent
        # Its link opens the order, whose page now has the rating form.
        page = client.get(link.group(1), follow_redirects=True).get_data(as_text=True)
        assert "Rate the store that shipped it" in page and "Send my rating" in page
        assert "Ada" in sent and "1 Secret Lane" not in sent and "UPS" not in sent  # the link, and no details
        assert "Unsubscribe:" in sent
        assert len(invitations(session, placed.order.id)) == 1

    def test_no_invitation_for_a_refunded_or_cancelled_order(self, world, ctx, clock, maker, shop, session, mail_dir):
        refunded = shipped(world, ctx, clock, maker, shop)
        returns.request_return(ctx, refunded.order.id, refunded.access_token, "Broken")
        returns.accept_return(ctx, shop.actor, refunded.order.id)
        cancelled = world.order(maker, email="grace@example.com")
        orders.cancel_order(ctx, cancelled.order.id, cancelled.access_token)
        for placed in (refunded, cancelled):
            [held] = invitations(session, placed.order.id)
            assert held.cancelled_at is not None and held.payload["text"] == ""  # the link in it is gone too
            assert held.next_attempt_at != HELD
        clock.advance(days=30)
        delivery.assume_deliveries(ctx)
        deliver_emails(ctx)
        assert invitations_sent(mail_dir) == []

    def test_no_invitation_for_an_erased_order(self, world, ctx, clock, maker, shop, session, mail_dir):
        placed = shipped(world, ctx, clock, maker, shop)
        erasure.erase_order(ctx, placed.order.id, placed.access_token)
        delivery.confirm_delivery(ctx, placed.order.id, placed.access_token)
        deliver_emails(ctx)
        assert invitations_sent(mail_dir) == []

    def test_an_address_that_unsubscribed_is_not_invited(self, world, ctx, clock, maker, shop, session, mail_dir):
        first = shipped(world, ctx, clock, maker, shop)
        delivery.confirm_delivery(ctx, first.order.id, first.access_token)
        deliver_emails(ctx)
        [sent] = invitations_sent(mail_dir)
        assert "Unsubscribe:" in sent
        # What the link in it does (the unsubscribe pages are tested with the other optional emails).
        unsubscribe(ctx, unsubscribe_url(ctx, "ada@example.com", "review_invitation").rsplit("/", 1)[1])
        second = shipped(world, ctx, clock, maker, shop)  # the same customer again
        delivery.confirm_delivery(ctx, second.order.id, second.access_token)
        deliver_emails(ctx)
        assert len(invitations_sent(mail_dir)) == 1

    def test_an_order_placed_without_a_parked_invitation_gets_one_pointing_to_its_confirmation(
            self, world, ctx, clock, maker, shop, session, mail_dir):
        placed = shipped(world, ctx, clock, maker, shop)
        with ctx.uow() as uow:  # as an order placed before invitations were written at checkout
            for message in uow.session.scalars(select(OutboxMessage).where(
                    OutboxMessage.topic == "email.review_invitation")):
                uow.session.delete(message)
            uow.commit()
        delivery.confirm_delivery(ctx, placed.order.id, placed.access_token)
        deliver_emails(ctx)
        [sent] = invitations_sent(mail_dir)
        assert "the link in your order confirmation email" in sent and "/o/" not in sent


def test_the_order_page_has_a_received_button_and_the_rating_form_after_it(world, ctx, clock, maker, shop, client):
    placed = shipped(world, ctx, clock, maker, shop)
    page = client.get(f"/s/{maker.slug}/o/{placed.order.id}/{placed.access_token}", follow_redirects=True)
    text = page.get_data(as_text=True)
    assert "I have received it" in text and "Send my rating" not in text
    csrf = re.search(r'name="link_csrf" value="([^"]+)"', text).group(1)
    done = client.post(f"/s/{maker.slug}/o/{placed.order.id}/delivered", data={"link_csrf": csrf})
    assert done.status_code == 303
    text = client.get(f"/s/{maker.slug}/o/{placed.order.id}").get_data(as_text=True)
    assert "I have received it" not in text and "Delivered on" in text and "Send my rating" in text
