"""Orders more than one retailer can fill: bids on lines, plans, parts, and the
money that follows the parts (offline provider; the Stripe fake's run is in
test_stripe_flow.py)."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from broker.auth import ANONYMOUS
from broker.board import services as board
from broker.errors import Conflict, Invalid
from broker.fulfilment import services as fulfilment
from broker.fulfilment.models import Assignment, AssignmentStatus
from broker.ledger import services as ledger
from broker.orders import services as orders
from broker.orders.models import Order, OrderStatus
from broker.payments.models import Payment, PaymentStatus
from broker.payments.webhooks import apply_event
from broker.payouts import services as payouts
from broker.payouts.models import ConnectedAccount, Earning, EarningKind
from broker.returns import services as returns
from broker.settlement.models import SettlementDecision
from broker.settlement.services import settle
from tests.conftest import START
from tests.factories import HERE, World, north_of

LATER = START + timedelta(hours=13)
BIKE, HELMET = ("BIKE", 90000), ("HELMET", 10000)


@pytest.fixture
def world(ctx):
    return World(ctx)


@pytest.fixture
def maker(world):
    return world.manufacturer(products=[BIKE, HELMET])


def parts_of(session, order_id):
    return list(session.scalars(select(Assignment).where(Assignment.order_id == order_id)
                                .order_by(Assignment.id).execution_options(populate_existing=True)))


def skus(assignment, placed):
    by_id = {line.id: line.sku for line in placed.order.lines}
    if assignment.lines is None:
        return {line.sku: line.quantity for line in placed.order.lines}
    return {by_id[line["line_id"]]: line["quantity"] for line in assignment.lines}


def one(session, model, **where):
    return session.scalar(select(model).filter_by(**where).execution_options(populate_existing=True))


def ship(ctx, shop_or_maker, assignment):
    return fulfilment.record_shipment(ctx, shop_or_maker.actor, assignment.id,
                                      fulfilment.RecordShipment("UPS", f"1Z{assignment.id}"))


@pytest.fixture
def split(world, maker, ctx, clock, session):
    """A bike and a helmet to the same door: the bike shop 2 km away has only
    the bike, the helmet shop 5 km away only the helmet."""
    bikes = world.retailer(north_of(HERE, 2), dealer_of=[maker], name="Bike shop")
    helmets = world.retailer(north_of(HERE, 5), dealer_of=[maker], name="Helmet shop")
    placed = world.order(maker, items=[("BIKE", 1), ("HELMET", 1)])
    world.bid(bikes, placed.order.id, items=[("BIKE", 1)])
    world.bid(helmets, placed.order.id, items=[("HELMET", 1)])
    return bikes, helmets, placed


class TestBidsOnLines:
    def test_a_bid_names_its_lines_and_a_whole_bid_names_none(self, world, maker, split, session):
        bikes, _, placed = split
        bid = one(session, board.Bid, retailer_id=bikes.id)
        assert bid.lines == [{"line_id": placed.order.lines[0].id, "sku": "BIKE", "quantity": 1}]
        # Naming every line in full is the whole order.
        whole = world.bid(bikes, placed.order.id, items=[("BIKE", 1), ("HELMET", 1)])
        assert whole.lines is None

    @pytest.mark.parametrize("items, field", [
        ([("NOPE", 1)], "items.0.sku"),
        ([("BIKE", 0)], "items.0.quantity"),
        ([("BIKE", 2)], "items.0.quantity"),
        ([("BIKE", 1), ("BIKE", 1)], "items.1"),
        ([], "items"),
    ])
    def test_lines_that_are_not_the_orders_are_refused_with_what_is_wrong(self, world, maker, items, field):
        shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        placed = world.order(maker, items=[("BIKE", 1), ("HELMET", 1)])
        with pytest.raises(Invalid) as raised:
            world.bid(shop, placed.order.id, items=items)
        assert field in raised.value.errors

    def test_every_wrong_item_is_named_at_once(self, world, maker):
        shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        placed = world.order(maker, items=[("BIKE", 1), ("HELMET", 1)])
        with pytest.raises(Invalid) as raised:
            world.bid(shop, placed.order.id, items=[("NOPE", 1), ("HELMET", 3)])
        assert set(raised.value.errors) == {"items.0.sku", "items.1.quantity"}


class TestBidsOnLinesOverTheApi:
    def test_items_are_bid_and_wrong_ones_are_a_problem_naming_each(self, world, maker, client):
        shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        placed = world.order(maker, items=[("BIKE", 1), ("HELMET", 1)])
        url = f"/api/v1/board/{world.listing_id(placed.order.id)}/bids"
        auth = {"Authorization": f"Bearer {shop.key}"}
        bad = client.post(url, headers=auth, json={"items": [{"sku": "NOPE", "quantity": 1},
                                                             {"sku": "HELMET", "quantity": 5}]})
        assert bad.status_code == 422 and bad.mimetype == "application/problem+json"
        assert set(bad.get_json()["errors"]) == {"items.0.sku", "items.1.quantity"}
        both = client.post(url, headers=auth, json={"items": [], "lines": []})
        assert both.status_code == 422
        made = client.post(url, headers=auth, json={"lines": [{"sku": "HELMET", "quantity": 1}]})
        assert made.status_code == 201
        assert made.get_json()["items"] == [{"line_id": placed.order.lines[1].id, "sku": "HELMET", "quantity": 1}]
        board_item = client.get("/api/v1/board", headers=auth).get_json()[0]
        assert board_item["my_bid"]["items"] == made.get_json()["items"]
        assert [line["line_id"] for line in board_item["items"]] == [line.id for line in placed.order.lines]


    def test_the_customer_reads_the_parts_over_the_api(self, split, ctx, clock, client):
        bikes, _, placed = split
        clock.now = LATER
        settle(ctx)
        body = client.get(f"/api/v1/orders/{placed.order.id}",
                          headers={"X-Access-Token": placed.access_token}).get_json()
        assert [([i["sku"] for i in p["items"]], p["fulfiller"], p["status"]) for p in body["parts"]] == [
            (["BIKE"], "retailer", "active"), (["HELMET"], "retailer", "active")]
        assert body["fulfilment"]["assignment_id"] == body["parts"][-1]["assignment_id"]  # older clients
        assert "Bike shop" not in str(body)  # which retailer is none of the customer's business here


class TestPlans:
    def test_an_order_no_retailer_can_fill_whole_is_split_between_two(self, split, ctx, clock, session):
        bikes, helmets, placed = split
        clock.now = LATER
        report = settle(ctx)
        assert (report.settled, report.to_retailers, report.by_rule) == (1, 1, {"fewest_shipments": 1})
        first, second = parts_of(session, placed.order.id)
        assert (first.retailer_id, skus(first, placed)) == (bikes.id, {"BIKE": 1})
        assert (second.retailer_id, skus(second, placed)) == (helmets.id, {"HELMET": 1})
        decisions = list(session.scalars(select(SettlementDecision).order_by(SettlementDecision.part)))
        assert [(d.round, d.part, d.rule) for d in decisions] == [(0, 0, "fewest_shipments"),
                                                                   (0, 1, "fewest_shipments")]
        # Each part's decision records every candidate, for every bidder to be told why.
        assert {c["retailer_id"] for c in decisions[1].candidates} == {bikes.id, helmets.id}
        assert one(session, Order, id=placed.order.id).status == OrderStatus.AWARDED

    def test_the_run_report_counts_a_split_order_once(self, maker, split, ctx, clock):
        from broker.settlement import reports

        clock.now = LATER
        run = settle(ctx)
        report = reports.run_report(ctx, maker.actor, run.run_id)
        assert (report.summary.settled, report.summary.to_retailers, report.by_rule) == (
            1, 1, {"fewest_shipments": 1})

    def test_a_whole_order_bidder_within_reach_beats_any_split(self, world, maker, split, ctx, clock, session):
        bikes, helmets, placed = split
        everything = world.retailer(north_of(HERE, 30), dealer_of=[maker], name="Big shop")
        world.bid(everything, placed.order.id)
        clock.now = LATER
        assert settle(ctx).by_rule == {"fewest_shipments": 1}  # the only bidder able to fill it all
        [only] = parts_of(session, placed.order.id)
        assert (only.retailer_id, only.lines) == (everything.id, None)

    def test_lines_nobody_bid_on_go_to_the_manufacturer(self, world, maker, ctx, clock, session):
        bikes = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        placed = world.order(maker, items=[("BIKE", 1), ("HELMET", 2)])
        world.bid(bikes, placed.order.id, items=[("BIKE", 1), ("HELMET", 1)])
        clock.now = LATER
        settle(ctx)
        mine, makers = parts_of(session, placed.order.id)
        assert (mine.retailer_id, skus(mine, placed)) == (bikes.id, {"BIKE": 1, "HELMET": 1})
        assert (makers.fulfiller_kind, skus(makers, placed)) == ("manufacturer", {"HELMET": 1})

    def test_the_customer_sees_one_order_with_its_parts(self, split, ctx, clock):
        _, _, placed = split
        clock.now = LATER
        settle(ctx)
        view = orders.get_order(ctx, ANONYMOUS, placed.order.id, placed.access_token)
        assert [{line["line_id"]: line["quantity"] for line in part.lines} for part in view.parts] == [
            {placed.order.lines[0].id: 1}, {placed.order.lines[1].id: 1}]

    def test_the_order_page_shows_the_customer_its_parts(self, maker, split, ctx, clock, session, client):
        bikes, helmets, placed = split
        clock.now = LATER
        settle(ctx)
        bike_part, _ = parts_of(session, placed.order.id)
        ship(ctx, bikes, bike_part)
        page = client.get(f"/s/{maker.slug}/o/{placed.order.id}/{placed.access_token}",
                          follow_redirects=True).get_data(as_text=True)
        assert "Your order comes in 2 parts" in page
        assert f"1 × Product BIKE:\n      shipped with UPS, tracking number 1Z{bike_part.id}" in page
        assert "1 × Product HELMET:\n      being prepared" in page

    def test_the_console_shows_the_manufacturer_the_parts(self, maker, split, ctx, clock, client):
        from broker.accounts.models import Role
        from tests.integration.test_console_pages import sign_in

        bikes, helmets, placed = split
        clock.now = LATER
        settle(ctx)
        sign_in(client, ctx, Role.MANUFACTURER, maker.id)
        page = client.get(f"/console/orders/{placed.order.id}").get_data(as_text=True)
        assert f"1 × BIKE:\n    retailer #{bikes.id}" in page and f"1 × HELMET:\n    retailer #{helmets.id}" in page

    def test_a_released_part_is_re_planned_alone(self, world, maker, split, ctx, clock, session):
        bikes, helmets, placed = split
        other = world.retailer(north_of(HERE, 9), dealer_of=[maker], name="Other bike shop")
        world.bid(other, placed.order.id, items=[("BIKE", 1)])
        clock.now = LATER
        settle(ctx)
        bike_part, helmet_part = parts_of(session, placed.order.id)
        fulfilment.release_assignment(ctx, bikes.actor, bike_part.id)
        parts = parts_of(session, placed.order.id)
        assert [(p.retailer_id, p.status) for p in parts] == [
            (bikes.id, AssignmentStatus.RELEASED), (helmets.id, AssignmentStatus.ACTIVE),
            (other.id, AssignmentStatus.ACTIVE)]
        assert skus(parts[2], placed) == {"BIKE": 1}
        assert parts[1].id == helmet_part.id  # untouched
        [decision] = session.scalars(select(SettlementDecision).where(SettlementDecision.round == 1))
        assert (decision.cause, decision.winner_retailer_id, decision.part) == ("release", other.id, 0)


class TestMoneyPerPart:
    def test_the_card_is_charged_once_for_exactly_what_shipped(self, split, ctx, clock, session):
        bikes, helmets, placed = split
        clock.now = LATER
        settle(ctx)
        bike_part, helmet_part = parts_of(session, placed.order.id)
        ship(ctx, bikes, bike_part)
        payment = one(session, Payment, order_id=placed.order.id)
        # One part still on a shelf: nothing is charged yet, and the order is not shipped.
        assert (payment.status, payment.captured_amount) == (PaymentStatus.AUTHORIZED, 0)
        assert one(session, Order, id=placed.order.id).status == OrderStatus.AWARDED
        with pytest.raises(Conflict):
            orders.cancel_order(ctx, placed.order.id, placed.access_token)
        ship(ctx, helmets, helmet_part)
        payment = one(session, Payment, order_id=placed.order.id)
        assert (payment.status, payment.captured_amount) == (PaymentStatus.CAPTURED, 100000)
        assert one(session, Order, id=placed.order.id).status == OrderStatus.SHIPPED
        earnings = {e.owner_id: (e.gross, e.fee, e.amount, e.assignment_id) for e in session.scalars(
            select(Earning).where(Earning.order_id == placed.order.id))}
        assert earnings == {bikes.id: (90000, 9000, 81000, bike_part.id),
                            helmets.id: (10000, 1000, 9000, helmet_part.id)}
        assert ledger.check(session).ok

    def test_ledger_balances_after_split_shipments_a_partial_return_and_a_payout(self, split, world, ctx, clock, session):
        bikes, helmets, placed = split
        clock.now = LATER
        settle(ctx)
        bike_part, helmet_part = parts_of(session, placed.order.id)
        ship(ctx, bikes, bike_part)
        ship(ctx, helmets, helmet_part)
        world.payouts_ready(bikes.actor, email="bikes@example.com")
        assert payouts.run_payouts(ctx).amount == {"USD": 81000}
        returns.request_return(ctx, placed.order.id, placed.access_token, "Too small", assignment_id=helmet_part.id)
        returns.accept_return(ctx, helmets.actor, placed.order.id)
        payment = one(session, Payment, order_id=placed.order.id)
        assert (payment.captured_amount, payment.refunded_amount, payment.status) == (100000, 10000, "captured")
        helmet_earning = one(session, Earning, assignment_id=helmet_part.id, kind=EarningKind.SALE)
        assert (helmet_earning.gross, helmet_earning.status) == (0, "reversed")
        bike_earning = one(session, Earning, assignment_id=bike_part.id, kind=EarningKind.SALE)
        assert (bike_earning.gross, bike_earning.status) == (90000, "paid")
        result = ledger.check(session)
        assert result.ok, result
        assert ledger.balance(session, ledger.CASH, "USD") == 100000 - 10000 - 81000


    @pytest.mark.parametrize("outcome", ["lost", "won"])
    def test_a_dispute_freezes_every_parts_earning_and_its_outcome_applies_to_each(self, split, world, ctx, clock,
                                                                                  session, outcome):
        bikes, helmets, placed = split
        clock.now = LATER
        settle(ctx)
        bike_part, helmet_part = parts_of(session, placed.order.id)
        ship(ctx, bikes, bike_part)
        ship(ctx, helmets, helmet_part)
        charge = one(session, Payment, order_id=placed.order.id).charge_ref

        def states():
            return {e.owner_id: e.status for e in session.scalars(
                select(Earning).where(Earning.order_id == placed.order.id, Earning.kind == EarningKind.SALE)
                .execution_options(populate_existing=True))}

        def dispute(kind, **obj):
            apply_event(ctx, {"id": f"evt_{kind}_{outcome}", "type": kind,
                              "data": {"object": {"id": "dp_split", "amount": 100000, "charge": charge, **obj}}})

        dispute("charge.dispute.created")
        assert states() == {bikes.id: "frozen", helmets.id: "frozen"}
        world.payouts_ready(bikes.actor, email="bikes@example.com")
        world.payouts_ready(helmets.actor, email="helmets@example.com")
        assert payouts.run_payouts(ctx).payouts == 0  # neither part is paid while the charge is disputed
        dispute("charge.dispute.closed", status=outcome)
        expected = "reversed" if outcome == "lost" else "accrued"
        assert states() == {bikes.id: expected, helmets.id: expected}
        result = ledger.check(session)
        assert result.ok, result
        if outcome == "lost":
            assert ledger.balance(session, ledger.payable("retailer", bikes.id), "USD") == 0
            assert ledger.balance(session, ledger.payable("retailer", helmets.id), "USD") == 0


class TestParts:
    def test_each_fulfiller_is_shown_and_mailed_only_its_part(self, split, ctx, clock, session):
        from api import present
        from broker.outbox.models import OutboxMessage

        bikes, helmets, placed = split
        clock.now = LATER
        settle(ctx)
        _, helmet_part = parts_of(session, placed.order.id)
        view = fulfilment.get_assignment(ctx, helmets.actor, helmet_part.id)
        assert [(i["sku"], i["quantity"], i["line_total"]) for i in present.assignment(view)["items"]] == [
            ("HELMET", 1, 10000)]
        ship(ctx, helmets, helmet_part)
        [mail] = session.scalars(select(OutboxMessage).where(OutboxMessage.topic.like("%order_shipped")))
        assert "HELMET" in str(mail.payload) or "Product HELMET" in str(mail.payload)
        assert "Product BIKE" not in str(mail.payload)

    def test_a_lapsed_part_is_re_planned_alone(self, world, maker, split, ctx, clock, session):
        bikes, helmets, placed = split
        clock.now = LATER
        settle(ctx)
        bike_part, helmet_part = parts_of(session, placed.order.id)
        ship(ctx, helmets, helmet_part)
        clock.now = LATER + timedelta(hours=49)
        report = fulfilment.check_deadlines(ctx)
        assert (report.lapsed, report.to_manufacturer) == (1, 1)
        parts = parts_of(session, placed.order.id)
        assert [(p.fulfiller_kind, p.status) for p in parts] == [
            ("retailer", "lapsed"), ("retailer", "shipped"), ("manufacturer", "active")]
        assert skus(parts[2], placed) == {"BIKE": 1}
        ship(ctx, maker, parts[2])
        payment = one(session, Payment, order_id=placed.order.id)
        assert (payment.status, payment.captured_amount) == (PaymentStatus.CAPTURED, 100000)
        assert {(e.owner_kind, e.gross) for e in session.scalars(select(Earning).where(
            Earning.order_id == placed.order.id))} == {("retailer", 10000), ("manufacturer", 90000)}
        assert ledger.check(session).ok

    def test_a_hold_captured_early_pays_each_part_as_it_ships(self, ctx, clock, session):
        import dataclasses

        short = dataclasses.replace(ctx, settings=dataclasses.replace(ctx.settings, auth_hold_hours=60))
        w = World(short)
        maker = w.manufacturer(products=[BIKE, HELMET])
        bikes = w.retailer(north_of(HERE, 2), dealer_of=[maker])
        helmets = w.retailer(north_of(HERE, 5), dealer_of=[maker])
        placed = w.order(maker, items=[("BIKE", 1), ("HELMET", 1)])
        w.bid(bikes, placed.order.id, items=[("BIKE", 1)])
        w.bid(helmets, placed.order.id, items=[("HELMET", 1)])
        clock.now = LATER  # 13h on the board + 48h to ship > 60h hold: captured at the award
        settle(short)
        assert one(session, Payment, order_id=placed.order.id).status == PaymentStatus.CAPTURED
        bike_part, helmet_part = parts_of(session, placed.order.id)
        ship(short, bikes, bike_part)
        assert [e.gross for e in session.scalars(select(Earning).where(Earning.order_id == placed.order.id))] == [
            90000]
        ship(short, helmets, helmet_part)
        assert sorted(e.gross for e in session.scalars(select(Earning).where(
            Earning.order_id == placed.order.id))) == [10000, 90000]
        assert ledger.check(session).ok


class TestMoneyPerPartWithStripe:
    """The same money story through the real SDK against the Stripe fake: one
    PaymentIntent, captured once when the last part ships, for what shipped."""

    def test_split_shipments_a_partial_return_and_a_payout_with_stripe(self, stripe_ctx, fake, clock, session):
        from broker.payments import services as payments
        from broker.payments.models import Payment

        sctx = stripe_ctx
        world = World(sctx)
        maker = world.manufacturer(products=[BIKE, HELMET])
        bikes = world.retailer(north_of(HERE, 2), dealer_of=[maker], name="Bike shop")
        helmets = world.retailer(north_of(HERE, 5), dealer_of=[maker], name="Helmet shop")
        placed = world.order(maker, items=[("BIKE", 1), ("HELMET", 1)])
        [pi] = fake.payment_intents.values()
        fake.authorize(pi["id"])
        with sctx.uow() as uow:
            payment = uow.session.scalar(select(Payment).where(Payment.order_id == placed.order.id))
            changes = payments.sync(uow.session, payment, sctx.payments.retrieve(uow.session, pi["id"]),
                                    hold_hours=sctx.settings.auth_hold_hours, now=clock.now)
            order = uow.session.get(Order, placed.order.id)
            orders.payment_changed(uow.session, sctx, order, payment, changes, clock.now)
            uow.commit()
        world.bid(bikes, placed.order.id, items=[("BIKE", 1)])
        world.bid(helmets, placed.order.id, items=[("HELMET", 1)])
        clock.now = LATER
        settle(sctx)
        bike_part, helmet_part = parts_of(session, placed.order.id)
        ship(sctx, bikes, bike_part)
        # Nothing captured at Stripe while a part is still to ship.
        assert fake.requests_to(f"/v1/payment_intents/{pi['id']}/capture") == []
        assert fake.payment_intents[pi["id"]]["status"] == "requires_capture"
        ship(sctx, helmets, helmet_part)
        [capture] = fake.requests_to(f"/v1/payment_intents/{pi['id']}/capture")
        assert fake.payment_intents[pi["id"]]["status"] == "succeeded"
        assert fake.payment_intents[pi["id"]]["amount_received"] == 100000
        returns.request_return(sctx, placed.order.id, placed.access_token, "Too small", assignment_id=helmet_part.id)
        returns.accept_return(sctx, helmets.actor, placed.order.id)
        [refund] = fake.refunds.values()
        assert refund["amount"] == 10000
        payouts.connect(sctx, bikes.actor, email="bikes@example.com")
        account = one(session, ConnectedAccount, owner_id=bikes.id)
        with sctx.uow() as uow:  # Stripe's account.updated webhook: onboarding is complete
            from broker.payments.stripe_provider import account_ready
            assert payouts.account_updated(uow.session, account.account_ref,
                                           account_ready(fake.complete_onboarding(account.account_ref)), clock.now)
            uow.commit()
        assert payouts.run_payouts(sctx).amount == {"USD": 81000}
        result = ledger.check(session)
        assert result.ok, result
