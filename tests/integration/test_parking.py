"""A row a job cannot get through never stops the job: it is recorded with its
error, tried again after a backoff, parked after a few failures, shown to the
operator (`broker jobs parked`, `/healthz`), and put back by the operator
(`broker jobs retry`). Meanwhile the job does the rest of its work, every run.

Each test puts one poison row in a job's way: written into its table the way
bad data gets there (an address that slipped in before validation, a payment
whose provider record is gone, an order whose state was changed by hand), or,
where no data can break the code, a bug that only that row triggers.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update

import web.cli
from broker.board.models import Listing, ListingStatus
from broker.fulfilment import services as fulfilment
from broker.fulfilment.models import Assignment, AssignmentStatus
from broker.notifications import digest
from broker.notifications.delivery import deliver_emails
from broker.orders.models import Delivery, Order, OrderStatus
from broker.outbox.delivery import deliver_due
from broker.outbox.models import OutboxMessage
from broker.outbox.services import enqueue
from broker.parking import services as parking
from broker.parking.models import JobFailure
from broker.payments.models import Payment, PaymentStatus
from broker.payouts import services as payouts
from broker.payouts.models import ConnectedAccount, Earning, EarningStatus
from broker.personal import services as personal
from broker.personal.models import PersonalRequest, RequestStatus
from broker.privacy import erasure, retention
from broker.settlement.models import RunStatus, SettlementRun
from broker.settlement.services import settle
from tests.conftest import START
from tests.factories import HERE, north_of
from tests.integration.test_callback_delivery import CallbackSettings

SETTLED_AT = START + timedelta(hours=13)


@pytest.fixture
def cli(ctx, monkeypatch):
    """`broker ...` as the operator types it, on the test's database."""
    monkeypatch.setattr(web.cli, "_context", lambda *a, **kw: ctx)

    def run(*args):
        result = CliRunner().invoke(web.cli.main, list(args))
        return result

    return run


def failure(session, job: str, kind: str, row_id: int) -> JobFailure | None:
    session.expire_all()
    return session.scalar(select(JobFailure).where(JobFailure.job == job, JobFailure.row_kind == kind,
                                                   JobFailure.row_id == row_id))


def add_email(ctx, to: str, key: str) -> int:
    """An email in the outbox, written straight into the table as any service would."""
    with ctx.uow() as uow:
        enqueue(uow.session, topic="email.order_shipped", dedupe_key=key, recipient_kind="email", recipient_id=None,
                payload={"to": to, "subject": f"Shipped {key}", "text": "On its way.", "unsubscribe_url": None},
                now=ctx.now())
        uow.commit()
        return uow.session.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == key))


def sent(session, message_id: int) -> bool:
    session.expire_all()
    return session.get(OutboxMessage, message_id).sent_at is not None


# --- emails: the finding ------------------------------------------------------------


def test_poison_email_is_parked_and_the_rest_are_sent(ctx, clock, session, client, cli):
    # `ada@` got in before addresses were validated at the door; building its
    # To: header raises IndexError inside the email package.
    poison = add_email(ctx, "ada@", "poison")
    for run in range(1, parking.MAX_ATTEMPTS + 1):
        good = add_email(ctx, f"grace{run}@navy.example", f"good-{run}")

        report = deliver_emails(ctx)

        assert sent(session, good), f"run {run} did not send the good email"
        assert report.sent == 1
        recorded = failure(session, "emails", "outbox_message", poison)
        assert recorded.attempts == run and "IndexError" in recorded.last_error
        if run < parking.MAX_ATTEMPTS:
            assert (report.failed, report.parked, recorded.parked_at) == (1, 0, None)
        clock.advance(minutes=10)  # past the backoff: the job tries it again

    assert (report.failed, report.parked) == (0, 1)
    assert recorded.parked_at is not None and recorded.next_attempt_at is None
    assert (recorded.first_failed_at, recorded.last_failed_at) == (START, START + timedelta(minutes=40))
    assert not sent(session, poison)
    # Parked: no run tries it again, however long it waits.
    clock.advance(days=3)
    assert deliver_emails(ctx).handled == 0
    assert failure(session, "emails", "outbox_message", poison).attempts == parking.MAX_ATTEMPTS

    health = client.get("/healthz").get_json()
    assert (health["parked_rows"], health["parked_by_job"]) == (1, {"emails": 1})
    listed = cli("jobs", "parked")
    assert listed.exit_code == 0, listed.output
    assert f"{recorded.id}  job emails  outbox_message {poison}  5 attempts" in listed.output
    assert "IndexError" in listed.output and "ada@" not in listed.output  # addresses are masked
    assert "1 parked" in listed.output

    put_back = cli("jobs", "retry", str(recorded.id))
    assert put_back.exit_code == 0 and "1 put back" in put_back.output
    assert failure(session, "emails", "outbox_message", poison) is None
    assert client.get("/healthz").get_json()["parked_rows"] == 0
    # Back in the queue: tried at the next run, with a fresh count.
    assert deliver_emails(ctx).failed == 1
    assert failure(session, "emails", "outbox_message", poison).attempts == 1


def test_retry_all_puts_every_parked_row_back_and_an_unknown_id_is_refused(ctx, clock, session, cli):
    for n in range(2):
        add_email(ctx, "ada@", f"poison-{n}")
    for _ in range(parking.MAX_ATTEMPTS):
        deliver_emails(ctx)
        clock.advance(minutes=10)
    assert len(parking.list_parked(ctx)) == 2

    refused = cli("jobs", "retry", "999999")
    assert refused.exit_code != 0 and "no parked row 999999" in refused.output
    assert cli("jobs", "retry").exit_code != 0  # neither IDs nor --all
    done = cli("jobs", "retry", "--all")
    assert done.exit_code == 0 and "2 put back" in done.output
    assert parking.list_parked(ctx) == []
    assert "0 parked" in cli("jobs", "parked").output


def test_a_mail_server_refusing_is_retried_longer_than_a_poison_email(ctx, clock, session):
    """A transient failure (the server down) gets the channel's own budget (about
    a day and a half); only what raises something unexpected is parked after 5."""

    class Down:
        def send(self, message):
            raise ConnectionRefusedError("the mail server is down")

    message = add_email(ctx, "grace@navy.example", "down")
    down = dataclasses.replace(ctx, mailer=Down())
    for _ in range(parking.MAX_ATTEMPTS + 1):
        assert deliver_emails(down).failed == 1
        clock.advance(hours=7)
    recorded = failure(session, "emails", "outbox_message", message)
    assert recorded.parked_at is None and "ConnectionRefusedError" in recorded.last_error
    assert deliver_emails(ctx).sent == 1
    assert failure(session, "emails", "outbox_message", message) is None  # sent: the record is gone


# --- callbacks -------------------------------------------------------------------------


def test_a_callback_whose_sending_raises_is_parked_and_the_others_are_delivered(ctx, clock, session):
    lan = dataclasses.replace(ctx, settings=CallbackSettings(ctx.settings, allow_private_callbacks=True))

    def add(key: str) -> int:
        with ctx.uow() as uow:
            enqueue(uow.session, topic="callback.offer", dedupe_key=key, recipient_kind="agent", recipient_id=1,
                    payload={"url": f"http://127.0.0.1/{key}", "body": {"key": key}}, now=ctx.now())
            uow.commit()
            return uow.session.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == key))

    poison = add("poison")
    delivered = []

    def transport(request):
        if request.message_id == poison:
            raise RuntimeError("a bug only this callback meets")
        delivered.append(request.message_id)
        return 200

    for run in range(parking.MAX_ATTEMPTS):
        good = add(f"good-{run}")
        report = deliver_due(lan, http=transport)
        assert good in delivered and report.sent == 1
        clock.advance(minutes=10)
    recorded = failure(session, "callbacks", "outbox_message", poison)
    assert recorded.parked_at is not None and "RuntimeError" in recorded.last_error


# --- deadlines: early captures, warnings, lapses, pickups ---------------------------------


def run_hourly(ctx, clock, runs=parking.MAX_ATTEMPTS):
    reports = []
    for _ in range(runs):
        reports.append(fulfilment.check_deadlines(ctx))
        clock.advance(hours=1)
    return reports


def test_a_pickup_that_cannot_expire_is_parked_and_the_lapse_beside_it_goes_ahead(world, ctx, clock, session):
    maker = world.manufacturer()
    near = world.retailer(north_of(HERE, 2), dealer_of=[maker])
    far = world.retailer(north_of(HERE, 7), dealer_of=[maker])
    pickup = world.order(maker)
    shipped_late = world.order(maker)
    for placed in (pickup, shipped_late):
        world.bid(near, placed.order.id)
        world.bid(far, placed.order.id)
    with ctx.uow() as uow:
        uow.session.execute(update(Order).where(Order.id == pickup.order.id).values(delivery=Delivery.PICKUP))
        uow.commit()
    clock.now = SETTLED_AT
    settle(ctx)
    # Someone marked the pickup order delivered by hand, leaving its assignment
    # active: cancelling it now is a move the order's state machine refuses.
    with ctx.uow() as uow:
        uow.session.execute(update(Order).where(Order.id == pickup.order.id).values(status=OrderStatus.DELIVERED))
        uow.commit()
    clock.now = SETTLED_AT + timedelta(hours=80)  # past both windows (48 h to ship, 72 h to collect)

    reports = run_hourly(ctx, clock)

    assert reports[0].lapsed == 1 and reports[0].failed == 1
    assert [r.parked for r in reports] == [0, 0, 0, 0, 1]
    assignment = session.scalar(select(Assignment).where(Assignment.order_id == pickup.order.id))
    recorded = failure(session, "deadlines", "assignment", assignment.id)
    assert recorded.parked_at is not None and "delivered" in recorded.last_error
    # The other order went on to the next bidder on the first run.
    rounds = session.scalars(select(Assignment.status).where(Assignment.order_id == shipped_late.order.id)
                             .order_by(Assignment.id)).all()
    assert rounds[0] == AssignmentStatus.LAPSED


def test_a_hold_the_provider_cannot_capture_is_parked_and_the_others_are_captured(world, ctx, clock, session):
    maker = world.manufacturer()
    shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
    lost, fine = world.order(maker), world.order(maker)
    for placed in (lost, fine):
        world.bid(shop, placed.order.id)
    clock.now = SETTLED_AT
    settle(ctx)
    with ctx.uow() as uow:  # the provider no longer knows this payment
        uow.session.execute(update(Payment).where(Payment.order_id == lost.order.id)
                            .values(provider_ref="off_gone"))
        uow.commit()
    clock.now = START + timedelta(hours=112)  # both holds (114 h) lapse within the margin

    reports = run_hourly(ctx, clock)

    assert reports[0].captured_early == 1
    assert session.scalar(select(Payment.status).where(Payment.order_id == fine.order.id)) == PaymentStatus.CAPTURED
    payment_id = session.scalar(select(Payment.id).where(Payment.order_id == lost.order.id))
    recorded = failure(session, "deadlines", "payment", payment_id)
    assert recorded.parked_at is not None and "no offline charge" in recorded.last_error


def test_a_warning_that_cannot_be_written_does_not_keep_the_others_from_theirs(world, ctx, clock, session,
                                                                                monkeypatch):
    maker = world.manufacturer()
    shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
    first, second = world.order(maker), world.order(maker)
    for placed in (first, second):
        world.bid(shop, placed.order.id)
    clock.now = SETTLED_AT
    settle(ctx)
    bad = session.scalar(select(Assignment.id).where(Assignment.order_id == first.order.id))
    warn = fulfilment.events.deadline_warning

    def deadline_warning(session_, ctx_, assignment, now):
        if assignment.id == bad:
            raise KeyError("a template value only this assignment lacks")
        warn(session_, ctx_, assignment, now)

    monkeypatch.setattr(fulfilment.events, "deadline_warning", deadline_warning)
    clock.now = SETTLED_AT + timedelta(hours=43)

    report = fulfilment.check_deadlines(ctx)

    assert (report.warned, report.failed) == (1, 1)
    assert failure(session, "deadlines", "warning", bad).attempts == 1


# --- personal requests' expiry ------------------------------------------------------------


def test_a_request_whose_hold_cannot_be_released_is_parked_and_the_others_expire(ctx, clock, session):
    def post(name):
        return personal.post_request(ctx, personal.PostRequest(
            description=f"a {name}", quantity=1, max_price=9000, currency="USD",
            location=personal.LocationQuery(lat=HERE[0], lon=HERE[1]), expires_at=START + timedelta(hours=5),
            ship_to=personal.ShipTo("Grace Hopper", "77 Cobol Court", "San Francisco", "94103", "US")))

    stuck, fine = post("kettle"), post("teapot")
    with ctx.uow() as uow:
        uow.session.execute(update(Payment).where(Payment.request_id == stuck.request.id)
                            .values(provider_ref="off_gone"))
        uow.commit()
    clock.now = START + timedelta(hours=6)

    reports = []
    for _ in range(parking.MAX_ATTEMPTS):
        reports.append(personal.expire_requests(ctx))
        clock.advance(hours=1)

    assert reports[0].expired == 1
    assert [r.parked for r in reports] == [0, 0, 0, 0, 1]
    session.expire_all()
    assert session.get(PersonalRequest, fine.request.id).status == RequestStatus.EXPIRED
    assert session.get(PersonalRequest, stuck.request.id).status == RequestStatus.OPEN
    assert failure(session, "requests", "request", stuck.request.id).parked_at is not None


# --- payouts --------------------------------------------------------------------------------


def test_an_earning_that_cannot_be_paid_is_parked_and_the_others_are_paid(world, ctx, clock, session):
    maker = world.manufacturer(products=[("SKU-1", 10000)])
    shops = [world.retailer(north_of(HERE, 1 + n), dealer_of=[maker]) for n in range(2)]
    placed = [world.order(maker) for _ in shops]
    for shop, order in zip(shops, placed):
        world.bid(shop, order.order.id)
    clock.now = SETTLED_AT
    settle(ctx)
    for shop in shops:
        assignment = session.scalar(select(Assignment.id).where(Assignment.retailer_id == shop.id))
        fulfilment.record_shipment(ctx, shop.actor, assignment, fulfilment.RecordShipment("UPS", "1Z"))
        world.payouts_ready(shop.actor)
    with ctx.uow() as uow:  # the first shop's payout account was deleted at the provider
        uow.session.execute(update(ConnectedAccount).where(ConnectedAccount.owner_id == shops[0].id)
                            .values(account_ref="offacct_gone"))
        uow.commit()

    first = payouts.run_payouts(ctx)
    assert (first.payouts, first.failed, first.parked) == (1, 1, 0)
    for _ in range(parking.MAX_ATTEMPTS - 1):
        clock.advance(days=1)
        last = payouts.run_payouts(ctx)
    assert (last.payouts, last.parked) == (0, 1)

    session.expire_all()
    statuses = dict(session.execute(select(Earning.owner_id, Earning.status)).tuples().all())
    assert statuses == {shops[0].id: EarningStatus.ACCRUED, shops[1].id: EarningStatus.PAID}
    earning = session.scalar(select(Earning.id).where(Earning.owner_id == shops[0].id))
    assert "no offline account" in failure(session, "payouts", "earning", earning).last_error


# --- settlement -------------------------------------------------------------------------------


def test_a_listing_that_cannot_be_settled_is_parked_and_its_batch_is_settled(world, ctx, clock, session, cli):
    maker = world.manufacturer()
    shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
    placed = [world.order(maker) for _ in range(4)]
    for order in placed:
        world.bid(shop, order.order.id)
    poison = placed[1].order.id
    # Cancelled by hand while its listing stayed open: awarding it is a move the
    # order's state machine refuses, and the whole batch's transaction with it.
    with ctx.uow() as uow:
        uow.session.execute(update(Order).where(Order.id == poison).values(status=OrderStatus.CANCELLED))
        uow.commit()
    listing = world.listing_id(poison)
    clock.now = SETTLED_AT

    report = settle(ctx)

    assert (report.settled, report.parked) == (3, [listing])
    session.expire_all()
    run = session.get(SettlementRun, report.run_id)
    assert (run.status, run.parked) == (RunStatus.COMPLETED, 1)
    assert session.scalar(select(func.count()).select_from(Listing).where(
        Listing.status == ListingStatus.AWARDED)) == 3
    assert failure(session, "settlement", "listing", listing).parked_at is not None
    # The next run and a dry run leave it out, rather than failing on it again.
    clock.advance(days=1)
    assert settle(ctx).settled == 0 and settle(ctx, dry_run=True).settled == 0
    assert "settlement" in cli("jobs", "parked").output

    # Fixed, and put back: the next run settles it.
    with ctx.uow() as uow:
        uow.session.execute(update(Order).where(Order.id == poison).values(status=OrderStatus.OPEN))
        uow.commit()
    assert cli("jobs", "retry", "--all").exit_code == 0
    assert settle(ctx).settled == 1


def test_the_api_and_the_command_say_which_listings_a_run_parked(world, ctx, clock, session, client, cli):
    from tests.conftest import ADMIN_TOKEN

    maker = world.manufacturer()
    placed = world.order(maker)
    with ctx.uow() as uow:
        uow.session.execute(update(Order).where(Order.id == placed.order.id).values(status=OrderStatus.CANCELLED))
        uow.commit()
    listing = world.listing_id(placed.order.id)
    clock.now = SETTLED_AT
    operator = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    made = client.post("/api/v1/settlements", json={}, headers=operator)

    assert made.status_code == 201 and made.get_json()["parked"] == [listing]
    run = client.get(f"/api/v1/settlements/{made.get_json()['id']}", headers=operator).get_json()
    assert run["parked"] == 1
    mine = client.get(f"/api/v1/settlements/{made.get_json()['id']}",
                      headers={"Authorization": f"Bearer {maker.key}"}).get_json()
    assert mine["parked"] is None  # a manufacturer is not told of other manufacturers' listings


def test_broker_settle_names_the_listings_it_parked(world, ctx, clock, cli):
    import json

    maker = world.manufacturer()
    placed = world.order(maker)
    with ctx.uow() as uow:
        uow.session.execute(update(Order).where(Order.id == placed.order.id).values(status=OrderStatus.CANCELLED))
        uow.commit()
    listing = world.listing_id(placed.order.id)
    clock.now = SETTLED_AT

    text = cli("settle")
    assert text.exit_code == 0, text.output
    assert f"parked 1 listings it could not settle: {listing}" in text.output
    with ctx.uow() as uow:  # put back, for a second run that reports it again
        uow.session.execute(update(JobFailure).values(parked_at=None, next_attempt_at=None))
        uow.commit()
    assert json.loads(cli("settle", "--json").stdout)["parked"] == [listing]


# --- retention ----------------------------------------------------------------------------------


def test_an_order_that_cannot_be_erased_is_parked_and_the_others_are_erased(world, ctx, clock, session,
                                                                            monkeypatch):
    from broker.orders import services as orders

    maker = world.manufacturer()
    placed = [world.order(maker) for _ in range(3)]
    for order in placed:
        orders.cancel_order(ctx, order.order.id, order.access_token)
    bad = placed[1].order.id
    erase = erasure.anonymise_order

    def erase_order(session_, order, now, purpose):
        if order.id == bad:
            raise ValueError("a bug only this order meets")
        erase(session_, order, now, purpose)

    monkeypatch.setattr(erasure, "anonymise_order", erase_order)
    clock.now = START + timedelta(days=100)

    reports = []
    for _ in range(parking.MAX_ATTEMPTS):
        reports.append(retention.run_retention(ctx))
        clock.advance(days=1)

    assert (reports[0].orders, reports[0].failed) == (2, 1)
    assert [r.parked for r in reports] == [0, 0, 0, 0, 1]
    session.expire_all()
    erased = {o.order.id: session.get(Order, o.order.id).erased_at is not None for o in placed}
    assert erased == {placed[0].order.id: True, bad: False, placed[2].order.id: True}
    assert failure(session, "retention", "order", bad).parked_at is not None


# --- the digest ---------------------------------------------------------------------------------


def test_a_retailer_whose_digest_cannot_be_made_does_not_keep_the_others_from_theirs(world, ctx, clock, session,
                                                                                     monkeypatch):
    from broker.identity import services as identity
    from broker.identity.models import User

    maker = world.manufacturer()
    shops = [world.retailer(north_of(HERE, 2), dealer_of=[maker]) for _ in range(2)]
    for n, shop in enumerate(shops):
        user, _ = identity.add_user(ctx, role=identity.Role.RETAILER, company_id=shop.id,
                                    email=f"owner{n}@shop.example", name="Owner")
        with ctx.uow() as uow:
            # Verified: the digest goes only to an address its owner confirmed.
            uow.session.execute(update(User).where(User.id == user.id).values(digest_opt_in=True,
                                                                              verified_at=clock()))
            uow.commit()
    world.order(maker)
    new_listings = digest.new_listings

    def listings(session_, retailer_id, **kwargs):
        if retailer_id == shops[0].id:
            raise ZeroDivisionError("a bug only this retailer's stores meet")
        return new_listings(session_, retailer_id, **kwargs)

    monkeypatch.setattr(digest, "new_listings", listings)
    clock.advance(hours=1)

    report = digest.send_digests(ctx)

    assert (report.sent, report.failed) == (1, 1)
    assert failure(session, "digest", "retailer", shops[0].id).attempts == 1
