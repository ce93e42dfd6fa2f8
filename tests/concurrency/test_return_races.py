"""Races on a return, through a real threaded HTTP server: the customer's
request sent many times at once, and the fulfiller and the manufacturer
deciding the same return at once.

On PostgreSQL the transactions really run at once (the order's row lock and
the partial unique index decide); on SQLite every writer takes the one write
lock, so there the same test checks the answers only. Each test has a database
of its own: the server's threads must see each other's commits.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from broker.clock import FrozenClock
from broker.context import Context
from broker.fulfilment import services as fulfilment
from broker.fulfilment.models import Assignment
from broker.ledger.services import check
from broker.migrate import upgrade
from broker.payments.models import Payment
from broker.returns.models import Return, ReturnStatus
from broker.settlement.services import settle
from tests.conftest import START, _server_url, make_settings, postgres_database
from tests.factories import HERE, World, north_of

THREADS = 12


@pytest.fixture
def database(tmp_path):
    server = _server_url()
    if server is None:
        url = f"sqlite:///{tmp_path / 'return-races.db'}"
        upgrade(url)
        yield url
        return
    with postgres_database(server, prefix="broker_return_race") as url:
        upgrade(url)
        yield url


@pytest.fixture
def ctx(database):
    from broker.db import make_engine

    engine = make_engine(database, **({} if database.startswith("sqlite") else {"pool_size": THREADS}))
    context = Context.from_settings(make_settings(database, admin_token="x"), engine=engine, clock=FrozenClock(START))
    yield context
    engine.dispose()


@pytest.fixture
def base(ctx):
    from web.app import create_app

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, create_app(context=ctx), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        # By the name Broker answers to (BROKER_PUBLIC_URL's host), on the loopback address.
        yield f"http://localhost:{server.server_port}/api/v1"
    finally:
        server.shutdown()
        thread.join(10)


def call(url: str, headers: dict, body: dict | None) -> int:
    request = urllib.request.Request(url, data=json.dumps(body or {}).encode(), method="POST",
                                     headers={**headers, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (a local test server)
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def all_at_once(calls) -> Counter:
    gate = threading.Barrier(len(calls))

    def run(job):
        gate.wait(timeout=30)
        return call(*job)

    with ThreadPoolExecutor(len(calls)) as pool:
        return Counter(pool.map(run, calls))


def shipped(ctx):
    world = World(ctx)
    maker = world.manufacturer()
    shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
    placed = world.order(maker)
    world.bid(shop, placed.order.id)
    ctx.clock.advance(hours=13)
    settle(ctx)
    with ctx.uow() as uow:
        assignment_id = uow.session.scalar(select(Assignment.id).where(Assignment.order_id == placed.order.id))
    fulfilment.record_shipment(ctx, shop.actor, assignment_id, fulfilment.RecordShipment("UPS", "1Z"))
    return placed, maker, shop


def test_the_same_return_asked_at_once_is_one_return(ctx, base):
    placed, _, _ = shipped(ctx)
    url = f"{base}/orders/{placed.order.id}/return"
    statuses = all_at_once([(url, {"X-Access-Token": placed.access_token}, {"reason": f"broken {i}"})
                            for i in range(THREADS)])
    assert statuses == {200: 1, 409: THREADS - 1}, statuses
    with ctx.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Return)) == 1


def test_deciding_a_return_at_once_refunds_it_once(ctx, base):
    placed, maker, shop = shipped(ctx)
    assert call(f"{base}/orders/{placed.order.id}/return", {"X-Access-Token": placed.access_token},
                {"reason": "broken"}) == 200
    calls = []
    for i in range(THREADS):
        who = {"Authorization": f"Bearer {(shop if i % 2 else maker).key}"}
        action = "accept" if i % 3 else "refuse"
        calls.append((f"{base}/orders/{placed.order.id}/return/{action}", who, {"note": "no"}
                      if action == "refuse" else {}))
    statuses = all_at_once(calls)
    assert statuses[200] == 1 and statuses[409] == THREADS - 1, statuses
    with ctx.uow() as uow:
        [ret] = uow.session.scalars(select(Return)).all()
        payment = uow.session.scalar(select(Payment))
        assert payment.refunded_amount == (5000 if ret.status == ReturnStatus.ACCEPTED else 0)
        assert check(uow.session).ok
