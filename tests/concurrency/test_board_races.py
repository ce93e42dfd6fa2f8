"""Races on the board's writes, through a real threaded HTTP server: identical
bids sent at once, and a storm of bids, withdrawals and improved offers.

A race between well-formed requests must never answer 500: each gets an
answer that is true of the database afterwards. On PostgreSQL (where the
reviewer saw `UniqueViolation`s) many transactions really run at once; on
SQLite every writer takes the one write lock, so the same test there checks
only the answers.

Each test gets a database of its own (nothing can be rolled back: the server's
threads must see each other's commits).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from broker.board.models import Bid, BidStatus
from broker.clock import FrozenClock
from broker.context import Context
from broker.migrate import upgrade
from tests.conftest import START, _server_url, make_settings, postgres_database
from tests.factories import HERE, World, north_of

THREADS = 20


@pytest.fixture
def database(tmp_path):
    server = _server_url()
    if server is None:
        url = f"sqlite:///{tmp_path / 'races.db'}"
        upgrade(url)
        yield url
        return
    with postgres_database(server, prefix="broker_race") as url:
        upgrade(url)
        yield url


@pytest.fixture
def ctx(database):
    # A pool as large as the threads, so that they all really hold a transaction at once.
    from broker.db import make_engine

    engine = make_engine(database, **({} if database.startswith("sqlite") else {"pool_size": THREADS}))
    # The threaded server below is reached as 127.0.0.1: the host Broker answers for.
    context = Context.from_settings(make_settings(database, admin_token="x", public_url="http://127.0.0.1"),
                                    engine=engine, clock=FrozenClock(START))
    yield context
    engine.dispose()


@pytest.fixture
def base(ctx):
    """The app on a threaded HTTP server (a thread per request), as a URL."""
    from web.app import create_app

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, create_app(context=ctx), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/api/v1"
    finally:
        server.shutdown()
        thread.join(10)


def call(method: str, url: str, key: str, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw else {}


def all_at_once(jobs):
    """Run the calls in `jobs` from THREADS threads released together."""
    gate = threading.Barrier(min(THREADS, len(jobs)))

    def run(job):
        if job[0] < THREADS:
            gate.wait(timeout=30)
        return call(*job[1])

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(run, list(enumerate(jobs))))


def test_identical_bids_at_once_never_500(ctx, base):
    world = World(ctx)
    maker = world.manufacturer()
    shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
    orders = [world.listing_id(world.order(maker).order.id) for _ in range(3)]
    from tests.integration.test_location_privacy import post_request_at

    request = post_request_at(ctx, HERE)
    for listing_id, body in [(lid, {}) for lid in orders] + [(request, {"price": 7000})]:
        answers = all_at_once([("POST", f"{base}/board/{listing_id}/bids", shop.key, body)] * THREADS)
        statuses = Counter(status for status, _ in answers)
        # One bid made it, and every other caller was told it is the same bid.
        assert statuses == {201: 1, 200: THREADS - 1}, (statuses, [a for s, a in answers if s >= 500][:1])
        assert len({answer["id"] for _, answer in answers}) == 1
        with ctx.uow() as uow:
            assert uow.session.scalar(select(func.count()).select_from(Bid).where(Bid.listing_id == listing_id)) == 1


def test_bid_withdraw_storm_never_500(ctx, base):
    """Three retailers bid on, withdraw from and improve offers on four listings,
    THREADS calls at a time, in a shuffled order: every answer is one the API
    documents for the case, and afterwards each retailer has one bid row per
    listing at most, and its board shows exactly its active bids."""
    world = World(ctx)
    maker = world.manufacturer()
    shops = [world.retailer(north_of(HERE, 2 + i), dealer_of=[maker]) for i in range(3)]
    listings = [world.listing_id(world.order(maker).order.id) for _ in range(3)]
    from tests.integration.test_location_privacy import post_request_at

    request = post_request_at(ctx, HERE)
    rng = random.Random(20261126)
    jobs = []
    for _ in range(400):
        shop, listing_id = rng.choice(shops), rng.choice(listings + [request])
        url = f"{base}/board/{listing_id}/bids"
        if rng.random() < 0.4:
            jobs.append(("DELETE", url, shop.key, None))
        else:
            jobs.append(("POST", url, shop.key, {"price": rng.randrange(5000, 9000, 500)} if listing_id == request
                         else {}))
    answers = all_at_once(jobs)
    statuses = Counter(status for status, _ in answers)
    assert not [s for s in statuses if s >= 500], statuses
    # Bids made (201) or found (200), withdrawn (204) or not there to withdraw
    # (404), an offer raised instead of improved (422): nothing else.
    assert set(statuses) <= {200, 201, 204, 404, 422}, statuses
    for (method, _, _, body), (status, answer) in zip(jobs, answers):
        if status == 422:
            assert method == "POST" and "can only be improved" in answer["errors"]["price"][0]

    # Afterwards the board agrees with the database, and each retailer has at
    # most one bid per listing.
    with ctx.uow() as uow:
        rows = uow.session.execute(select(Bid.listing_id, Bid.retailer_id, Bid.status)).all()
    assert len({(lid, rid) for lid, rid, _ in rows}) == len(rows)
    active = {(lid, rid) for lid, rid, status in rows if status == BidStatus.ACTIVE}
    for shop in shops:
        status, board = call("GET", f"{base}/board?page_size=100", shop.key)
        assert status == 200
        assert {(item["id"], shop.id) for item in board if item["my_bid"]} == {
            (lid, rid) for lid, rid in active if rid == shop.id}
