"""Two payout runs at once (a manual one and the scheduled one) pay each earning
once: real commits, real row locks, on SQLite or PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from broker.clock import FrozenClock
from broker.context import Context
from broker.fulfilment import services as fulfilment
from broker.fulfilment.models import Assignment
from broker.ledger import services as ledger
from broker.migrate import upgrade
from broker.payments.models import OfflineTransfer
from broker.payments.offline import OfflineProvider
from broker.payouts import services as payouts
from broker.payouts.models import Earning, EarningStatus, Payout
from broker.settlement.services import settle
from tests.conftest import START, _server_url, make_settings, postgres_database
from tests.factories import HERE, World, north_of

ORDERS = 40


class SlowTransfers(OfflineProvider):
    """Transfers that take a while, as over a network: the two runs overlap."""

    def transfer(self, session, **kwargs):
        time.sleep(0.01)
        return super().transfer(session, **kwargs)


@pytest.fixture
def database(tmp_path):
    server = _server_url()
    if server is None:
        url = f"sqlite:///{tmp_path / 'payouts.db'}"
        upgrade(url)
        yield url
        return
    with postgres_database(server, prefix="broker_pay") as url:
        upgrade(url)
        yield url


def make_ctx(url, now):
    return Context.from_settings(make_settings(url, admin_token="x"), clock=FrozenClock(now),
                                 payments=SlowTransfers())


def test_two_payout_runs_at_once_pay_each_earning_once(database):
    ctx = make_ctx(database, START)
    world = World(ctx)
    maker = world.manufacturer(products=[("SKU-1", 10000)])
    shops = [world.retailer(north_of(HERE, 1 + i), dealer_of=[maker]) for i in range(4)]
    for i in range(ORDERS):
        placed = world.order(maker)
        world.bid(shops[i % len(shops)], placed.order.id)
    later = make_ctx(database, START + timedelta(hours=13))
    settle(later)
    with later.uow() as uow:
        assignments = [(a.id, a.retailer_id) for a in uow.session.scalars(select(Assignment))]
    by_id = {shop.id: shop for shop in shops}
    for assignment_id, retailer_id in assignments:
        fulfilment.record_shipment(later, by_id[retailer_id].actor, assignment_id,
                                   fulfilment.RecordShipment("UPS", f"T{assignment_id}"))
    for shop in shops:
        World(later).payouts_ready(shop.actor, "shop@example.com")
    ctx.engine.dispose()
    later.engine.dispose()

    runners = [make_ctx(database, START + timedelta(hours=20)) for _ in range(2)]
    barrier = threading.Barrier(len(runners))
    reports, errors = [], []

    def run(runner):
        try:
            barrier.wait(timeout=30)
            reports.append(payouts.run_payouts(runner, batch_size=5))
        except Exception as exc:  # reported below; a thread cannot fail the test itself
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sum(r.payouts for r in reports) == ORDERS
    if _server_url() is not None:
        # PostgreSQL: SKIP LOCKED lets both runs work at once, each on its own earnings.
        # (SQLite has one writer: one run does it all while the other waits, then finds nothing.)
        assert all(r.payouts > 0 for r in reports), [r.payouts for r in reports]

    check = runners[0]
    with check.uow() as uow:
        s = uow.session
        assert s.scalar(select(func.count()).select_from(Payout)) == ORDERS
        assert s.scalar(select(func.count()).select_from(OfflineTransfer)) == ORDERS
        assert s.scalar(select(func.count(func.distinct(Earning.payout_id)))) == ORDERS
        assert s.scalar(select(func.count()).where(Earning.status != EarningStatus.PAID)) == 0
        assert s.scalar(select(func.sum(OfflineTransfer.amount))) == ORDERS * 9000
        result = ledger.check(s)
        assert result.ok, result
    for runner in runners:
        runner.engine.dispose()
