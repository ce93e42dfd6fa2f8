"""Well-formed requests racing each other never answer 500.

Each test fires the same request (or two requests that touch the same rows)
from many threads at once, through the real app, on one PostgreSQL database
with real commits and real row locks, and checks that every answer is one a
client can act on (a success, a 409, a 503 with Retry-After) and that the
money and the rows come out right.

Where a race needs an unlucky interleaving to show, the payment provider
waits, inside its call and so while its transaction holds its row locks, until
another transaction is waiting for a lock (`Gate`): a provider call over a
network takes about that long, so this is the interleaving production sees.

PostgreSQL only (BROKER_TEST_DATABASE_URL): SQLite takes its one write lock at
the start of every transaction, so there these requests simply queue.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.pool import NullPool

from broker.accounts.models import DealerApplication, DealerAuthorisation, Manufacturer
from broker.board.models import Listing
from broker.catalog.models import Product
from broker.clock import FrozenClock
from broker.context import Context
from broker.fulfilment import services as fulfilment
from broker.fulfilment.models import Assignment
from broker.ledger import services as ledger
from broker.migrate import upgrade
from broker.orders import delivered
from broker.notifications.models import EmailOptOut
from broker.notifications.services import address_hash, unsubscribe_url
from broker.orders.models import Order
from broker.outbox.models import OutboxMessage
from broker.payments.models import OfflineAccount, OfflineRefund, OfflineTransfer, Payment, PaymentStatus
from broker.payments.offline import OfflineProvider
from broker.payouts.models import ConnectedAccount, Payout
from broker.personal import services as personal
from broker.personal.models import PersonalRequest, RequestStatus
from broker.reputation.models import Review
from broker.settlement.services import settle
from tests.conftest import ADMIN_TOKEN, START, _server_url, make_settings, postgres_database
from tests.factories import HERE, World, north_of

pytestmark = pytest.mark.skipif(_server_url() is None, reason="races on row locks run on PostgreSQL "
                                                               "(BROKER_TEST_DATABASE_URL; CI sets it)")

ROOT = Path(__file__).resolve().parents[2]
API = "/api/v1"
THREADS = 8
# A lost insert race needs every thread to read before the first commits: some
# rounds of it, each on new rows, make that all but certain.
ROUNDS = 4


# --- the database and the app ---------------------------------------------------


@pytest.fixture(scope="module")
def database():
    with postgres_database(_server_url(), prefix="broker_race") as url:
        upgrade(url)
        yield url


class Gate(OfflineProvider):
    """The offline provider, whose writes take as long as another transaction
    needs to start waiting for a lock (at most `patience` seconds): the call
    happens while its own transaction holds its locks, as a call to Stripe does.

    `entered` is set when a gated call starts, so a test can start the other
    side of a race at that moment."""

    def __init__(self, url: str, *, gated=("capture", "refund", "transfer"), patience: float = 2.0):
        self.watch = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        self.gated = set(gated)
        self.patience = patience
        self.entered = threading.Event()

    def wait_for_a_waiter(self) -> None:
        self.entered.set()
        deadline = time.monotonic() + self.patience
        with self.watch.connect() as conn:
            while time.monotonic() < deadline:
                waiting = conn.scalar(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"))
                if waiting:
                    return
                time.sleep(0.01)

    def capture(self, session, ref, **kwargs):
        if "capture" in self.gated:
            self.wait_for_a_waiter()
        return super().capture(session, ref, **kwargs)

    def refund(self, session, ref, **kwargs):
        if "refund" in self.gated:
            self.wait_for_a_waiter()
        return super().refund(session, ref, **kwargs)

    def transfer(self, session, **kwargs):
        if "transfer" in self.gated:
            self.wait_for_a_waiter()
        return super().transfer(session, **kwargs)


_engines: list = []


@pytest.fixture(autouse=True)
def _dispose_engines():
    """Every context a test makes has its pool closed after it (the threads are done)."""
    yield
    while _engines:
        _engines.pop().dispose()


def make_ctx(url: str, when, payments=None) -> Context:
    ctx = Context.from_settings(make_settings(url), clock=FrozenClock(when), payments=payments or OfflineProvider())
    _engines.append(ctx.engine)
    if isinstance(payments, Gate):
        _engines.append(payments.watch)
    return ctx


def deadlocks(caplog) -> list[str]:
    """The deadlocks PostgreSQL broke during the test, as `broker.retry` logged them."""
    return [r.getMessage() for r in caplog.records if getattr(r, "race", None) == "deadlock"]


def make_app(ctx: Context):
    from web.app import create_app

    return create_app(context=ctx, test_config={"TESTING": True})


def at_once(calls) -> list:
    """Run every call in its own thread, all released together; their results
    in order (an exception is a result too: the test says what it expects)."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i, call):
        try:
            barrier.wait(timeout=30)
            results[i] = call()
        except BaseException as exc:  # reported by the test, not lost in a thread
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a racing request hung"
    return results


def post(app, path, *, json=None, headers=None):
    def call():
        response = app.test_client().post(path, json=json if json is not None else {}, headers=headers or {})
        return response.status_code, response.get_json(silent=True), dict(response.headers)

    return call


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def statuses(results) -> Counter:
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors
    return Counter(status for status, _, _ in results)


def assert_no_server_errors(results) -> None:
    failed = [(status, body) for status, body, _ in results if status >= 500 and status != 503]
    assert not failed, failed
    for status, body, headers in results:
        if status == 503:
            assert "Retry-After" in headers, (status, body, headers)


def ledger_check_passes(url: str) -> str:
    """`broker ledger check`, the operator's command, on the database."""
    done = subprocess.run([sys.executable, "-m", "web.cli", "ledger", "check"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "DATABASE_URL": url, "BROKER_SECRET_KEY": "test-secret"})
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def shipped_orders(world: World, ctx: Context, url: str, count: int, *, price: int = 10000):
    """`count` orders won by one retailer and shipped (captured, earnings
    accrued), and the retailer's payout account connected."""
    maker = world.manufacturer(products=[("SKU-1", price)])
    shop = world.retailer(north_of(HERE, 1), dealer_of=[maker])
    placed = [world.order(maker) for _ in range(count)]
    for order in placed:
        world.bid(shop, order.order.id)
    later = make_ctx(url, START + timedelta(hours=13))
    settle(later)
    with later.uow() as uow:
        assignments = list(uow.session.scalars(
            select(Assignment.id).where(Assignment.order_id.in_([p.order.id for p in placed]))))
    for assignment_id in assignments:
        fulfilment.record_shipment(later, shop.actor, assignment_id,
                                   fulfilment.RecordShipment("UPS", f"T{assignment_id}"))
    World(later).payouts_ready(shop.actor, "shop@example.com")
    return maker, shop, placed


# --- money: refunds, captures and payouts -----------------------------------------


def test_refunds_racing_payouts_never_500(database, caplog):
    """Refunds and payout runs on the same orders at once: each takes the
    order's lock before the payment's and the earning's (broker.locks), so none
    waits for another that waits for it; every refund is made once and every
    earning is paid once, less what was refunded before it was paid."""
    world = World(make_ctx(database, START))
    maker, shop, placed = shipped_orders(world, world.ctx, database, 6)
    gate = Gate(database, gated=("transfer",), patience=0.5)
    ctx = make_ctx(database, START + timedelta(hours=20), payments=gate)
    app = make_app(ctx)
    refunds = [post(app, f"{API}/orders/{p.order.id}/refund", json={"amount": 1000}, headers=bearer(maker.key))
               for p in placed for _ in range(2)]
    runs = [post(app, f"{API}/payouts", headers=bearer(ADMIN_TOKEN)) for _ in range(3)]

    results = at_once(refunds + runs)

    assert_no_server_errors(results)
    assert not deadlocks(caplog)
    assert [status for status, _, _ in results[:len(refunds)]] == [200] * len(refunds), results
    assert [status for status, _, _ in results[len(refunds):]] == [201] * len(runs), results
    with ctx.uow() as uow:
        s = uow.session
        ids = [p.order.id for p in placed]
        # Every refund happened once, at the provider and in Broker's books.
        assert s.scalar(select(func.sum(Payment.refunded_amount)).where(Payment.order_id.in_(ids))) == 12 * 1000
        assert s.scalar(select(func.sum(OfflineRefund.amount))) == 12 * 1000
        # Every earning was paid once, and what was paid is what was transferred.
        assert s.scalar(select(func.count()).select_from(Payout)) == len(placed)
        assert s.scalar(select(func.count()).select_from(OfflineTransfer)) == len(placed)
        assert s.scalar(select(func.sum(OfflineTransfer.amount))) == s.scalar(select(func.sum(Payout.amount)))
        assert ledger.check(s).ok, ledger.check(s)
    assert "balances" in ledger_check_passes(database)


def test_concurrent_refund_and_capture_never_deadlock_500(database, caplog):
    """The hourly check captures a hold about to lapse while the manufacturer
    refunds the same order: each takes the order's lock first, so one waits
    for the other instead of each waiting for the other."""
    world = World(make_ctx(database, START))
    maker = world.manufacturer(products=[("SKU-1", 10000)])
    shop = world.retailer(north_of(HERE, 1), dealer_of=[maker])
    placed = world.order(maker)
    world.bid(shop, placed.order.id)
    settle(make_ctx(database, START + timedelta(hours=13)))
    # The hold (114 hours) lapses within the check's margin.
    when = START + timedelta(hours=112)
    gate = Gate(database, gated=("capture",))
    ctx = make_ctx(database, when, payments=gate)
    app = make_app(ctx)
    outcome: dict = {}

    def hourly_check():
        try:
            outcome["captured"] = fulfilment.capture_expiring_holds(ctx)
        except BaseException as exc:
            outcome["error"] = exc

    check = threading.Thread(target=hourly_check)
    check.start()
    assert gate.entered.wait(30), "the capture never reached the provider"
    refund = post(app, f"{API}/orders/{placed.order.id}/refund", json={"amount": 2500},
                  headers=bearer(maker.key))()
    check.join(60)

    assert "error" not in outcome, outcome
    assert not deadlocks(caplog)
    assert outcome["captured"] == 1
    assert refund[0] == 200, refund
    with ctx.uow() as uow:
        payment = uow.session.scalar(select(Payment).where(Payment.order_id == placed.order.id))
        assert (payment.status, payment.captured_amount, payment.refunded_amount) == \
            (PaymentStatus.CAPTURED, 10000, 2500)
        assert ledger.check(uow.session).ok


# --- one row written twice at once -----------------------------------------------------


def test_double_submitted_review_is_one_review(database):
    world = World(make_ctx(database, START))
    maker, shop, placed = shipped_orders(world, world.ctx, database, 1)
    delivered.confirm_delivery(world.ctx, placed[0].order.id, placed[0].access_token)  # reviews follow delivery
    app = make_app(world.ctx)
    token = {"X-Access-Token": placed[0].access_token}
    path = f"{API}/orders/{placed[0].order.id}/reviews"

    results = at_once([post(app, path, json={"rating": 5, "comment": "quick"}, headers=token)
                       for _ in range(THREADS)])

    assert statuses(results) == Counter({201: 1, 409: THREADS - 1}), results
    with world.ctx.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Review)
                                  .where(Review.order_id == placed[0].order.id)) == 1


def test_double_accept_of_an_offer_never_500(database):
    world = World(make_ctx(database, START))
    shop = world.retailer(north_of(HERE, 1))
    posted = personal.post_request(world.ctx, personal.PostRequest(
        description="a kettle", quantity=1, max_price=9000, currency="USD",
        location=personal.LocationQuery(lat=HERE[0], lon=HERE[1]),
        ship_to=personal.ShipTo("Grace Hopper", "77 Cobol Court", "San Francisco", "94103", "US")))
    app = make_app(world.ctx)
    with world.ctx.uow() as uow:
        listing_id = uow.session.scalar(select(Listing.id).where(Listing.request_id == posted.request.id))
    offered = app.test_client().post(f"{API}/board/{listing_id}/bids", json={"price": 8000},
                                     headers=bearer(shop.key))
    assert offered.status_code == 201, offered.get_json()
    bid_id = offered.get_json()["id"]
    token = {"X-Access-Token": posted.access_token}

    results = at_once([post(app, f"{API}/requests/{posted.request.id}/accept", json={"bid_id": bid_id},
                            headers=token) for _ in range(THREADS)])

    assert statuses(results) == Counter({200: 1, 409: THREADS - 1}), results
    with world.ctx.uow() as uow:
        request = uow.session.get(PersonalRequest, posted.request.id)
        assert request.status == RequestStatus.AWARDED
        assert uow.session.scalar(select(func.count()).select_from(Order)
                                  .where(Order.id == request.order_id)) == 1
        assert ledger.check(uow.session).ok


def test_concurrent_dealer_authorisation_is_idempotent(database):
    world = World(make_ctx(database, START))
    maker = world.manufacturer()
    app = make_app(world.ctx)
    for _ in range(ROUNDS):
        shop = world.retailer(north_of(HERE, 1))

        results = at_once([post(app, f"{API}/dealers", json={"retailer_id": shop.id}, headers=bearer(maker.key))
                           for _ in range(THREADS)])

        assert statuses(results) == Counter({201: THREADS}), results
        with world.ctx.uow() as uow:
            assert uow.session.scalar(select(func.count()).select_from(DealerAuthorisation).where(
                DealerAuthorisation.manufacturer_id == maker.id, DealerAuthorisation.retailer_id == shop.id)) == 1


def test_double_connect_makes_one_payout_account(database):
    world = World(make_ctx(database, START))
    app = make_app(world.ctx)
    for _ in range(ROUNDS):
        shop = world.retailer(north_of(HERE, 1))

        results = at_once([post(app, f"{API}/connect", json={"email": "shop@example.com"},
                                headers=bearer(shop.key)) for _ in range(THREADS)])

        assert statuses(results) == Counter({200: THREADS}), results
        assert len({body["account_ref"] for _, body, _ in results}) == 1
        with world.ctx.uow() as uow:
            s = uow.session
            assert s.scalar(select(func.count()).select_from(ConnectedAccount).where(
                ConnectedAccount.owner_kind == "retailer", ConnectedAccount.owner_id == shop.id)) == 1
            assert s.scalar(select(func.count()).select_from(OfflineAccount)
                            .where(OfflineAccount.idempotency_key == f"retailer-{shop.id}-account")) == 1


def test_one_sku_added_twice_at_once_is_one_product_and_409s(database):
    world = World(make_ctx(database, START))
    maker = world.manufacturer(products=[])
    app = make_app(world.ctx)
    for round in range(ROUNDS):
        sku = f"KETTLE-{round}"

        results = at_once([post(app, f"{API}/products", json={"sku": sku, "name": "Kettle", "price": 2500},
                                headers=bearer(maker.key)) for _ in range(THREADS)])

        assert statuses(results) == Counter({201: 1, 409: THREADS - 1}), results
        with world.ctx.uow() as uow:
            assert uow.session.scalar(select(func.count()).select_from(Product)
                                      .where(Product.manufacturer_id == maker.id, Product.sku == sku)) == 1


def test_one_slug_taken_twice_at_once_is_one_manufacturer_and_409s(database):
    ctx = make_ctx(database, START)
    app = make_app(ctx)
    for round in range(ROUNDS):
        slug = f"acme-race-{round}"
        body = {"name": "Acme", "slug": slug, "currency": "USD", "location": {"lat": HERE[0], "lon": HERE[1]}}

        results = at_once([post(app, f"{API}/manufacturers", json=body, headers=bearer(ADMIN_TOKEN))
                           for _ in range(THREADS)])

        assert statuses(results) == Counter({201: 1, 409: THREADS - 1}), results
        with ctx.uow() as uow:
            assert uow.session.scalar(select(func.count()).select_from(Manufacturer)
                                      .where(Manufacturer.slug == slug)) == 1


def test_double_unsubscribe_never_500(database):
    ctx = make_ctx(database, START)
    app = make_app(ctx)
    for round in range(ROUNDS):
        address = f"racer{round}@example.com"
        path = "/" + unsubscribe_url(ctx, address, "digest").split("/", 3)[3]

        def click(path=path):
            response = app.test_client().post(path)
            return response.status_code, None, dict(response.headers)

        results = at_once([click for _ in range(THREADS)])

        assert statuses(results) == Counter({200: THREADS}), results
        with ctx.uow() as uow:
            assert uow.session.scalar(select(func.count()).select_from(EmailOptOut).where(
                EmailOptOut.topic == "digest", EmailOptOut.address_hash == address_hash(address))) == 1


def test_double_submitted_dealer_application_is_one_application(database):
    from broker.accounts import applications
    from broker.accounts.models import Role
    from tests.pages import user_for

    world = World(make_ctx(database, START))
    maker = world.manufacturer()
    for round in range(ROUNDS):
        shop = world.retailer(north_of(HERE, 1))
        applicant = user_for(world.ctx, Role.RETAILER, shop.id, f"owner{round}@shop.example")

        results = at_once([lambda: applications.apply(world.ctx, applicant, maker.id, "hello")
                           for _ in range(THREADS)])

        errors = [r for r in results if isinstance(r, BaseException)]
        assert not errors, errors
        with world.ctx.uow() as uow:
            assert uow.session.scalar(select(func.count()).select_from(DealerApplication).where(
                DealerApplication.manufacturer_id == maker.id, DealerApplication.retailer_id == shop.id)) == 1


def test_double_submitted_invitation_is_one_email(database):
    from broker.accounts import invitations
    from broker.accounts.models import DealerInvitation

    world = World(make_ctx(database, START))
    maker = world.manufacturer()
    for round in range(ROUNDS):
        address = f"newshop{round}@example.com"

        results = at_once([lambda: invitations.invite(world.ctx, maker.actor, address)
                           for _ in range(THREADS)])

        errors = [r for r in results if isinstance(r, BaseException)]
        assert not errors, errors
        with world.ctx.uow() as uow:
            assert uow.session.scalar(select(func.count()).select_from(DealerInvitation).where(
                DealerInvitation.manufacturer_id == maker.id, DealerInvitation.email == address)) == 1
            assert uow.session.scalar(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.topic == "email.dealer_invitation", OutboxMessage.payload["to"].as_string() == address)) == 1



def test_stock_changes_racing_place_one_standing_bid_and_never_500(database):
    """Eight stock feeds at once for a store with a standing bid and an order in
    reach: one bid (ON CONFLICT DO NOTHING), every feed answered."""
    from broker.board.models import Bid
    from broker.stock import services as stock

    world = World(make_ctx(database, START))
    app = make_app(world.ctx)
    maker = world.manufacturer(products=[("BIKE", 5000)])
    for round_ in range(ROUNDS):
        shop = world.retailer(north_of(HERE, 1), dealer_of=[maker])
        stock.create_standing_bid(world.ctx, shop.actor, stock.NewStandingBid(max_distance_km=25))
        placed = world.order(maker, sku="BIKE")

        def feed(n):
            def call():
                response = app.test_client().patch(f"{API}/stores/{shop.store_id}/stock", headers=bearer(shop.key),
                                                   json={"items": [{"sku": "BIKE", "quantity": n}]})
                return response.status_code, response.get_json(silent=True), dict(response.headers)
            return call

        results = at_once([feed(n) for n in range(1, THREADS + 1)])
        assert statuses(results) == Counter({200: THREADS}), results
        # This round's order and the earlier rounds' (still open): each bid on once, by one of the feeds.
        assert sum(body["standing_bids_placed"] for _, body, _ in results) == round_ + 1
        with world.ctx.uow() as uow:
            assert uow.session.scalar(select(func.count()).select_from(Bid).where(Bid.retailer_id == shop.id)) == \
                round_ + 1
            assert uow.session.scalar(select(func.count()).select_from(Bid).where(
                Bid.retailer_id == shop.id, Bid.listing_id == world.listing_id(placed.order.id))) == 1


def test_two_settlement_runs_at_once_never_award_a_store_more_than_its_stock(database):
    """A store with one bike bids on four bike orders; two runs settle at once,
    one listing a batch: the store wins one, the rest go to the next bidder."""
    import dataclasses

    from broker.stock import services as stock

    base = make_ctx(database, START)
    world = World(dataclasses.replace(base, settings=dataclasses.replace(base.settings, settle_batch_size=1)))
    maker = world.manufacturer(products=[("BIKE", 5000)])
    near = world.retailer(north_of(HERE, 1), dealer_of=[maker])
    far = world.retailer(north_of(HERE, 9), dealer_of=[maker])
    stock.set_stock(world.ctx, near.actor, near.store_id, [stock.StockItem("BIKE", 1)], snapshot=True)
    placed = [world.order(maker, sku="BIKE") for _ in range(4)]
    for p in placed:
        world.bid(near, p.order.id)
        world.bid(far, p.order.id)
    later = dataclasses.replace(world.ctx, clock=FrozenClock(START + timedelta(hours=13)))
    results = at_once([lambda: settle(later), lambda: settle(later)])
    assert not [r for r in results if isinstance(r, BaseException)], results
    with world.ctx.uow() as uow:
        winners = Counter(uow.session.scalars(select(Assignment.retailer_id).where(
            Assignment.order_id.in_([p.order.id for p in placed]))))
    assert winners == Counter({near.id: 1, far.id: 3})
