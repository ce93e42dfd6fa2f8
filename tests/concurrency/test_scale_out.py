"""Broker spread over processes as in production: three `broker serve` (gunicorn,
two workers each) and two `broker scheduler`, all on one PostgreSQL.

Retailers bid through every web process at once; both schedulers then fire the
settlement at the same minute. Afterwards every listing is awarded exactly once,
to one of its bidders, every acknowledged bid is in the database once, and no
bid was stored that was not acknowledged.

Then settlement split by manufacturer: two schedulers, one with shard 1/2 and
one with 2/2, over several manufacturers' orders and a personal request that
names no manufacturer. Each settles its own shard and together they decide
every listing exactly once.

PostgreSQL only (BROKER_TEST_DATABASE_URL): it is the production database, and
the one several hosts share. The first test takes about a minute and a half,
most of it waiting for the schedulers' next minute; the sharded schedulers
catch up at once instead (their shard's run is missed), in a few seconds.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from broker.board import services as board
from broker.board.models import Bid, Listing, ListingStatus
from broker.fulfilment.models import Assignment
from broker.migrate import upgrade
from broker.settlement.models import RunStatus, SettlementDecision, SettlementRun
from broker.settlement.services import settle
from tests.concurrency.test_settlement_processes import Processes, context
from tests.conftest import _server_url, postgres_database
from tests.factories import HERE, KM, World
from tests.integration.test_settlement_scope import post_request

pytestmark = pytest.mark.skipif(_server_url() is None, reason="scale-out runs on PostgreSQL "
                                                               "(BROKER_TEST_DATABASE_URL; CI sets it)")

SERVERS, WORKERS, SCHEDULERS = 3, 2, 2
RETAILERS, ORDERS = 8, 40
CLIENT_THREADS = 12
ADMIN = "x"  # Processes' operator token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float, what: str, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def settled_and_closed(ctx) -> bool:
    """No listing left open and no run still running: a run's last batch commits
    before the run is closed, so both are waited for."""
    with ctx.uow() as uow:
        still_open = uow.session.scalar(
            select(func.count()).select_from(Listing).where(Listing.status == ListingStatus.OPEN))
        running = uow.session.scalar(
            select(func.count()).select_from(SettlementRun).where(SettlementRun.status == RunStatus.RUNNING))
        return still_open == 0 and running == 0


def up(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def post_bid(base: str, key: str, listing_id: int) -> tuple[int, dict]:
    request = urllib.request.Request(f"{base}/api/v1/board/{listing_id}/bids", data=b"{}", method="POST",
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


@pytest.fixture
def database():
    with postgres_database(_server_url(), prefix="broker_scale") as url:
        upgrade(url)
        yield url


def test_several_web_processes_and_two_schedulers_keep_every_bid_and_award_each_listing_once(database, tmp_path):
    # The world: orders placed 13 hours ago (due now: min_board_hours is 12), and
    # retailers around them, all dealers, all in range of every order.
    placed_at = datetime.now(timezone.utc) - timedelta(hours=13)
    ctx = context(database, placed_at)
    world = World(ctx)
    maker = world.manufacturer("scale")
    shops = [world.retailer((HERE[0] + (i + 1) * 3 * KM, HERE[1]), radius=200, dealer_of=[maker])
             for i in range(RETAILERS)]
    for i in range(ORDERS):
        world.order(maker, to=(HERE[0] - (i % 10) * KM, HERE[1] + (i // 10) * KM))
    with ctx.uow() as uow:
        listing_ids = list(uow.session.scalars(select(Listing.id).order_by(Listing.id)))
    ctx.engine.dispose()

    procs = Processes(tmp_path, database)
    try:
        # Each scheduler's settlement fires at the start of every minute.
        env = dict(BROKER_SETTLE_CRON="* * * * *", BROKER_SECRET_KEY="scale-out", BROKER_MAIL_DIR=str(tmp_path / "mail"))
        bases = []
        for _ in range(SERVERS):
            port = free_port()
            procs.start("serve", "--port", str(port), "--workers", str(WORKERS), **env)
            bases.append(f"http://127.0.0.1:{port}")
        for base in bases:
            wait_until(lambda base=base: up(base), 60, f"{base} to answer")

        # Every retailer bids on every listing, each bid through the next web
        # process in turn, many at once.
        work = [(bases[n % SERVERS], shop, listing_id)
                for n, (shop, listing_id) in enumerate((s, lid) for lid in listing_ids for s in shops)]
        # The schedulers start only now, so no settlement runs while bids arrive.
        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            answers = list(pool.map(lambda job: (job, post_bid(job[0], job[1].key, job[2])), work))
        statuses = Counter(status for _, (status, _) in answers)
        assert statuses == {201: len(work)}, statuses
        acknowledged = Counter((body["listing_id"], shop.id) for (_, shop, _), (_, body) in answers)

        for _ in range(SCHEDULERS):
            procs.start("scheduler", **env)

        check = context(database, datetime.now(timezone.utc))
        try:
            wait_until(lambda: settled_and_closed(check), 150,
                       "the schedulers to settle every listing and close their runs")
            with check.uow() as uow:
                session = uow.session
                stored = Counter(session.execute(select(Bid.listing_id, Bid.retailer_id)).all())
                decisions = Counter(session.scalars(select(SettlementDecision.listing_id)))
                winners = dict(session.execute(
                    select(SettlementDecision.listing_id, SettlementDecision.winner_retailer_id)).all())
                assignments = Counter(session.scalars(select(Assignment.order_id)))
                runs = session.execute(select(SettlementRun.status, SettlementRun.settled)).all()
        finally:
            check.engine.dispose()
    finally:
        procs.kill_all()

    # Every acknowledged bid is stored once, and nothing else was stored.
    assert stored == acknowledged and set(stored.values()) == {1}
    # Every listing decided once, by one run or the other, for one of its bidders.
    assert decisions == Counter({listing_id: 1 for listing_id in listing_ids})
    assert all(winners[listing_id] in {shop.id for shop in shops} for listing_id in listing_ids)
    assert set(assignments.values()) == {1} and len(assignments) == ORDERS
    # Both schedulers ran; together they settled each listing once.
    completed = [settled for status, settled in runs if status == RunStatus.COMPLETED]
    assert sum(completed) == ORDERS, runs


MAKERS, ORDERS_PER_MAKER = 4, 8


def test_two_schedulers_with_shards_1_2_and_2_2_decide_every_listing_once(database, tmp_path):
    placed_at = datetime.now(timezone.utc) - timedelta(hours=13)
    ctx = context(database, placed_at)
    world = World(ctx)
    makers = [world.manufacturer(f"shard-{i}") for i in range(MAKERS)]
    shops = [world.retailer((HERE[0] + (i + 1) * 3 * KM, HERE[1]), radius=200, dealer_of=makers) for i in range(2)]
    maker_of: dict[int, int | None] = {}  # listing id -> manufacturer id
    for i in range(MAKERS * ORDERS_PER_MAKER):
        maker = makers[i % MAKERS]
        placed = world.order(maker, to=(HERE[0] - (i % 10) * KM, HERE[1]))
        maker_of[world.listing_id(placed.order.id)] = maker.id
        if i % 2:
            world.bid(shops[i % 4 // 2], placed.order.id)
    unbranded = post_request(ctx)  # no manufacturer: shard 1's
    board.place_bid(ctx, shops[0].actor, board.PlaceBid(unbranded, price=8000))
    maker_of[unbranded] = None
    # A run of everything an hour after the orders (nothing was due yet): the
    # schedulers then find their shard's run of the last minute missed, and run
    # it as they start rather than at the next minute.
    settle(ctx, as_of=placed_at + timedelta(hours=1), trigger="scheduled")
    ctx.engine.dispose()
    shard_of = {lid: f"shard {(maker_id or 0) % 2 + 1}/2" for lid, maker_id in maker_of.items()}
    assert set(shard_of.values()) == {"shard 1/2", "shard 2/2"}

    procs = Processes(tmp_path, database)
    try:
        env = dict(BROKER_SETTLE_CRON="* * * * *", BROKER_SECRET_KEY="scale-out", BROKER_MAIL_DIR=str(tmp_path / "mail"))
        procs.start("scheduler", "--shard", "1/2", **env)
        procs.start("scheduler", BROKER_SETTLE_SHARD="2/2", **env)

        check = context(database, datetime.now(timezone.utc))
        try:
            wait_until(lambda: settled_and_closed(check), 90, "the sharded schedulers to settle every listing")
            with check.uow() as uow:
                session = uow.session
                decided_by = session.execute(
                    select(SettlementDecision.listing_id, SettlementRun.scope)
                    .join(SettlementRun, SettlementRun.id == SettlementDecision.run_id)).all()
                runs = session.execute(
                    select(SettlementRun.scope, SettlementRun.status, SettlementRun.settled, SettlementRun.trigger)
                    .where(SettlementRun.scope.is_not(None))).all()
        finally:
            check.engine.dispose()
    finally:
        procs.kill_all()

    # Every listing decided once, by a run of its own manufacturer's shard.
    assert Counter(lid for lid, _ in decided_by) == Counter({lid: 1 for lid in maker_of})
    assert dict(decided_by) == shard_of
    # Each scheduler ran its own shard, and only its own. (A run the next minute
    # fired may have opened since, with nothing left to settle.)
    settled = Counter()
    for scope, status, count, trigger in runs:
        assert status != RunStatus.FAILED and trigger == "scheduled"
        settled[scope] += count
    assert settled == Counter(shard_of.values())
