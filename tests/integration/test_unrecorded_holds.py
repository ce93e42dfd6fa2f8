"""A checkout (or a personal request) whose process stops between asking Stripe
for the card hold and recording it leaves an order awaiting a payment that will
never be recorded. The `unrecorded-holds` job finds it, releases the hold Stripe
made (asking again under the same idempotency key) and drops the reservation.

The process "stops" here as a kill would stop it: recording raises SystemExit,
and nothing of the checkout's own clean-up runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from broker.geo.geocoding import LocationQuery
from broker.orders import services as orders
from broker.orders.models import Order, OrderStatus
from broker.payments import holds
from broker.payments.models import Payment
from broker.payments.stripe_provider import MAX_NETWORK_RETRIES
from broker.personal import services as personal
from broker.personal.models import PersonalRequest
from jobs.definitions import run_unrecorded_holds
from tests.factories import HERE, World


@pytest.fixture
def killed(monkeypatch):
    """Recording the hold kills the process: no clean-up of the checkout's runs."""
    def die(*args, **kwargs):
        raise SystemExit("killed")

    monkeypatch.setattr(orders, "_record_hold", die)
    monkeypatch.setattr(holds, "record", die)
    monkeypatch.setattr(holds, "give_up", lambda *a, **k: None)
    monkeypatch.setattr(orders, "_drop_reservation", lambda *a, **k: False)
    monkeypatch.setattr(personal, "_drop_reservation", lambda *a, **k: False)
    return monkeypatch


def count(ctx, model, **where):
    with ctx.uow() as uow:
        return uow.session.scalar(select(func.count()).select_from(model).filter_by(**where))


def intents(fake):
    return {i["metadata"].get("order_id") or "request-" + i["metadata"]["request_id"]: i["status"]
            for i in fake.payment_intents.values()}


def test_a_checkout_killed_before_recording_its_hold_is_released_and_dropped(stripe_ctx, fake, killed, clock):
    world = World(stripe_ctx)
    maker = world.manufacturer(products=[("SKU-1", 12500)])
    with pytest.raises(SystemExit):
        world.order(maker)
    with stripe_ctx.uow() as uow:
        order_id = str(uow.session.scalar(select(Order.id)))
    assert count(stripe_ctx, Order, status=OrderStatus.AWAITING_PAYMENT) == 1
    assert count(stripe_ctx, Payment) == 0
    assert intents(fake) == {order_id: "requires_payment_method"}  # Stripe holds the intent
    killed.undo()

    # A checkout still within its time (or one whose payment is recorded) is left alone.
    clock.advance(seconds=(orders.UNRECORDED_AFTER - timedelta(minutes=1)).total_seconds())
    placed = World(stripe_ctx).order(maker)  # a live checkout: recorded, awaiting the customer's card
    run_unrecorded_holds(stripe_ctx)
    assert count(stripe_ctx, Order) == 2 and intents(fake)[order_id] == "requires_payment_method"

    clock.advance(minutes=2)
    run_unrecorded_holds(stripe_ctx)
    assert count(stripe_ctx, Order, id=int(order_id)) == 0
    assert intents(fake)[order_id] == "canceled"
    # The same intent, asked for again under its key, not a second one.
    assert len([i for i in fake.payment_intents.values() if i["metadata"].get("order_id") == order_id]) == 1
    # The recorded one stays, its intent untouched.
    assert count(stripe_ctx, Order, id=placed.order.id) == 1
    assert intents(fake)[str(placed.order.id)] == "requires_payment_method"
    # A second scheduler finds nothing left to do.
    run_unrecorded_holds(stripe_ctx)
    assert count(stripe_ctx, Order) == 1


def test_a_killed_checkout_is_kept_while_stripe_is_not_answering(stripe_ctx, fake, killed, clock):
    world = World(stripe_ctx)
    maker = world.manufacturer(products=[("SKU-1", 12500)])
    with pytest.raises(SystemExit):
        world.order(maker)
    killed.undo()
    clock.advance(seconds=(orders.UNRECORDED_AFTER + timedelta(minutes=1)).total_seconds())
    fake.fail_next(500, times=MAX_NETWORK_RETRIES + 1)  # every try of the one call
    run_unrecorded_holds(stripe_ctx)
    assert count(stripe_ctx, Order, status=OrderStatus.AWAITING_PAYMENT) == 1  # tried again next time
    run_unrecorded_holds(stripe_ctx)
    assert count(stripe_ctx, Order) == 0
    assert set(intents(fake).values()) == {"canceled"}


def test_a_personal_request_killed_before_recording_its_hold_is_released_and_dropped(stripe_ctx, fake, killed,
                                                                                        clock):
    with pytest.raises(SystemExit):
        personal.post_request(stripe_ctx, personal.PostRequest(
            description="a cast-iron kettle", quantity=1, max_price=9000, currency="USD",
            location=LocationQuery(lat=HERE[0], lon=HERE[1]),
            ship_to=personal.ShipTo("Grace Hopper", "77 Cobol Court", "San Francisco", "94103", "US")))
    killed.undo()
    assert count(stripe_ctx, PersonalRequest) == 1
    clock.advance(seconds=(personal.UNRECORDED_AFTER + timedelta(minutes=1)).total_seconds())
    run_unrecorded_holds(stripe_ctx)
    assert count(stripe_ctx, PersonalRequest) == 0
    assert list(intents(fake).values()) == ["canceled"]


def test_the_offline_provider_leaves_nothing_to_sweep(ctx, clock):
    world = World(ctx)
    maker = world.manufacturer()
    world.order(maker)
    clock.advance(hours=2)
    assert orders.sweep_unrecorded(ctx) == 0 and count(ctx, Order) == 1
