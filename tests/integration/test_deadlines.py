"""Lapses, deadline warnings and what a lapse does to a retailer's record."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from broker.fulfilment import services as fulfilment
from broker.fulfilment.models import Assignment, AssignmentStatus
from broker.outbox.models import OutboxMessage
from broker.reputation.services import fulfilment_scores
from broker.settlement.models import Cause, SettlementDecision
from broker.settlement.services import settle
from tests.conftest import START
from tests.factories import HERE, north_of

SETTLED_AT = START + timedelta(hours=13)


@pytest.fixture
def awarded(world, ctx, clock):
    """An order won by the nearer of two bidders."""
    maker = world.manufacturer()
    near = world.retailer(north_of(HERE, 2), dealer_of=[maker])
    far = world.retailer(north_of(HERE, 7), dealer_of=[maker])
    placed = world.order(maker)
    world.bid(near, placed.order.id)
    world.bid(far, placed.order.id)
    clock.now = SETTLED_AT
    settle(ctx)
    return placed, near, far


def assignments(session, order_id):
    return session.scalars(select(Assignment).where(Assignment.order_id == order_id).order_by(Assignment.id)).all()


class TestDeadlines:
    def test_nothing_happens_inside_the_window(self, awarded, ctx, clock, session):
        clock.now = SETTLED_AT + timedelta(hours=30)
        report = fulfilment.check_deadlines(ctx)
        assert (report.warned, report.lapsed) == (0, 0)

    def test_winner_is_warned_once_before_the_window_closes(self, awarded, ctx, clock, session):
        placed, near, _ = awarded
        clock.now = SETTLED_AT + timedelta(hours=43)  # 5 hours left; warnings start at 6
        assert fulfilment.check_deadlines(ctx).warned == 1
        clock.advance(hours=1)
        assert fulfilment.check_deadlines(ctx).warned == 0
        # An email to the retailer's address (its company has no users), written once.
        [message] = session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "email.deadline_warning")).all()
        assert (message.recipient_kind, message.payload["to"]) == ("email", "shop@example.com")
        assert f"Ship order {placed.order.id} by" in message.payload["subject"]

    def test_lapsed_order_goes_to_the_next_nearest_bidder(self, awarded, ctx, clock, session):
        placed, near, far = awarded
        clock.now = SETTLED_AT + timedelta(hours=48, minutes=1)

        report = fulfilment.check_deadlines(ctx)

        assert (report.lapsed, report.to_retailers, report.to_manufacturer) == (1, 1, 0)
        first, second = assignments(session, placed.order.id)
        assert (first.retailer_id, first.status) == (near.id, AssignmentStatus.LAPSED)
        assert (second.retailer_id, second.status) == (far.id, AssignmentStatus.ACTIVE)
        assert second.due_at == clock.now + timedelta(hours=48)
        causes = session.scalars(select(SettlementDecision.cause).order_by(SettlementDecision.round)).all()
        assert causes == [Cause.SETTLEMENT, Cause.LAPSE]
        assert session.scalar(select(func.count()).where(OutboxMessage.topic == "email.lapsed")) == 1

    def test_second_lapse_falls_back_to_the_manufacturer_and_it_never_lapses(self, awarded, ctx, clock, session):
        placed, *_ = awarded
        clock.now = SETTLED_AT + timedelta(hours=49)
        fulfilment.check_deadlines(ctx)
        clock.advance(hours=49)
        assert fulfilment.check_deadlines(ctx).to_manufacturer == 1
        clock.advance(days=30)
        assert fulfilment.check_deadlines(ctx).lapsed == 0
        last = assignments(session, placed.order.id)[-1]
        assert (last.fulfiller_kind, last.status) == ("manufacturer", AssignmentStatus.ACTIVE)

    def test_running_the_check_twice_lapses_once(self, awarded, ctx, clock, session):
        placed, *_ = awarded
        clock.now = SETTLED_AT + timedelta(hours=49)
        assert fulfilment.check_deadlines(ctx).lapsed == 1
        assert fulfilment.check_deadlines(ctx).lapsed == 0
        assert len(assignments(session, placed.order.id)) == 2

    def test_shipping_late_but_before_the_check_still_counts_as_shipped(self, awarded, ctx, clock, session):
        placed, near, _ = awarded
        [mine] = assignments(session, placed.order.id)
        clock.now = SETTLED_AT + timedelta(hours=48, minutes=30)
        fulfilment.record_shipment(ctx, near.actor, mine.id, fulfilment.RecordShipment("UPS", "1Z"))
        assert fulfilment.check_deadlines(ctx).lapsed == 0

    def test_lapses_and_releases_lower_the_fulfilment_score(self, awarded, ctx, clock, session):
        placed, near, far = awarded
        before = fulfilment_scores(session, [near.id, far.id])
        assert before[near.id] == before[far.id]  # both new: the prior
        clock.now = SETTLED_AT + timedelta(hours=49)
        fulfilment.check_deadlines(ctx)
        [second] = [a for a in assignments(session, placed.order.id) if a.status == AssignmentStatus.ACTIVE]
        fulfilment.release_assignment(ctx, far.actor, second.id)
        with ctx.uow() as uow:
            after = fulfilment_scores(uow.session, [near.id, far.id])
        assert after[near.id] < before[near.id] and after[far.id] < before[far.id]
