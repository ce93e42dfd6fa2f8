"""Settlement and the deadline check racing each other for real: several
processes (or threads) at once, real commits, real row locks, a real `kill -9`.

The rest of the suite runs each test inside a transaction that is rolled back;
nothing here can, because other processes must see what is committed. So every
test gets a brand-new database of its own (a file under tmp_path on SQLite; a
`broker_conc_<random>` database on the PostgreSQL server named by
BROKER_TEST_DATABASE_URL, dropped afterwards). Building the world through the
services takes seconds, so it is built once per module, into a template
database, and each test's database is a copy of it: a fresh database with the
same rows (and therefore the same ids and the same dry-run plan).

The world: two manufacturers, eight retailers around San Francisco (two of them
at the very same spot, so that distances tie), a few hundred orders shipped to
random points nearby, each with 0-4 bids placed at a few distinct times (ties
on distance are then broken by the earlier bid or the lower retailer id). After
the bidding one retailer loses a dealer authorisation and another closes its
store, so some bids can no longer win. One order in ten is placed too late to be
due at the settlement time.

Settlement subprocesses run `python -m web.cli settle --as-of <seeded time>`
with the wall clock, months after the seeded time: every card hold looks about
to lapse, so settlement also captures each payment early (in the batch's
transaction), and the racing runs go through the payment path too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from broker.accounts import services as accounts
from broker.board.models import Listing, ListingStatus
from broker.clock import FrozenClock
from broker.context import Context
from broker.db import make_engine
from broker.fulfilment import services as fulfilment
from broker.fulfilment.models import Assignment, AssignmentStatus
from broker.migrate import upgrade
from broker.orders.models import Order, OrderStatus
from broker.outbox.models import OutboxMessage
from broker.settlement.models import Cause, RunStatus, SettlementDecision, SettlementRun
from broker.settlement.services import settle
from tests.conftest import START, _server_url, make_settings, postgres_database
from tests.factories import HERE, KM, World, north_of

ROOT = Path(__file__).resolve().parents[2]
BROKER = [sys.executable, "-m", "web.cli"]

T0 = START
# min_board_hours is 12: everything placed at T0 is due at AS_OF, what is placed
# LATE is not.
AS_OF = T0 + timedelta(hours=13)
LATE = T0 + timedelta(hours=6)
SHIP_WITHIN = timedelta(hours=48)

ON_POSTGRES = _server_url() is not None
ORDERS = 300 if ON_POSTGRES else 150
SEED = 1234

# Every wait is bounded: a process that hangs fails the test, it does not hang it.
PROCESS_TIMEOUT = 120
POLL_TIMEOUT = 60


# --- databases ------------------------------------------------------------------


def _seeding_engine(url: str):
    """The application's engine; on PostgreSQL without waiting for each commit to
    reach the disk (the seed is rebuilt on every run anyway: it halves the time)."""
    engine = make_engine(url)
    if not url.startswith("sqlite"):
        @event.listens_for(engine, "connect")
        def _fast_commits(dbapi_connection, _record):
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET synchronous_commit TO off")
            dbapi_connection.commit()
    return engine


def context(url: str, now, *, engine=None) -> Context:
    return Context.from_settings(make_settings(url, admin_token="x"), engine=engine, clock=FrozenClock(now))


# --- the world ----------------------------------------------------------------------


def around(km_north: float, km_east: float) -> tuple[float, float]:
    lat, lon = north_of(HERE, km_north)
    return lat, lon + km_east * KM / math.cos(math.radians(lat))


# (km north, km east) of HERE. The first two share a spot: their distances tie.
RETAILER_SPOTS = [(2, 0), (2, 0), (-3, 4), (5, -5), (-8, -2), (0, 9), (12, 6), (-15, -10)]
ONLY_FIRST_MAKER = 5  # a dealer of the first manufacturer only
REVOKED = 6  # loses the first manufacturer's authorisation after bidding
CLOSED = 7  # closes its store after bidding


@dataclasses.dataclass(frozen=True)
class Seeded:
    due: frozenset[int]  # listing ids due at AS_OF
    not_due: frozenset[int]
    order_of: dict[int, int]  # listing id -> order id
    plan: dict[int, int | None]  # listing id -> winning retailer (None: the manufacturer)
    rules: Counter


def seed_world(url: str) -> Seeded:
    rng = random.Random(SEED)
    engine = _seeding_engine(url)
    ctx = context(url, T0, engine=engine)
    try:
        world = World(ctx)
        first, second = world.manufacturer(), world.manufacturer()
        shops = [
            world.retailer(around(*spot), radius=60,
                           dealer_of=[first] if i == ONLY_FIRST_MAKER else [first, second])
            for i, spot in enumerate(RETAILER_SPOTS)
        ]
        listings: dict[int, int] = {}
        late: set[int] = set()
        for _ in range(ORDERS):
            maker = first if rng.random() < 0.6 else second
            when = LATE if rng.random() < 0.1 else T0
            placed = world.order(maker, to=around(rng.uniform(-20, 20), rng.uniform(-20, 20)), when=when)
            order_id = placed.order.id
            eligible = [s for i, s in enumerate(shops) if maker is first or i != ONLY_FIRST_MAKER]
            for shop in rng.sample(eligible, rng.choice([0, 1, 1, 2, 2, 3, 4])):
                # Four distinct bid times: ties on distance often tie on time too.
                world.bid(shop, order_id, when=when + timedelta(minutes=rng.randrange(0, 60, 15)))
            listing_id = world.listing_id(order_id)
            listings[listing_id] = order_id
            if when == LATE:
                late.add(listing_id)
        accounts.revoke_dealer(ctx, first.actor, shops[REVOKED].id)
        accounts.update_store(ctx, shops[CLOSED].actor, shops[CLOSED].store_id,
                              accounts.StoreChanges(is_open=False))
        report = settle(ctx, as_of=AS_OF, dry_run=True)
        plan = {d["listing_id"]: d["retailer_id"] for d in report.decisions}
        return Seeded(
            due=frozenset(set(listings) - late), not_due=frozenset(late), order_of=listings,
            plan=plan,
            rules=Counter(d["rule"] for d in report.decisions),
        )
    finally:
        engine.dispose()


@dataclasses.dataclass(frozen=True)
class Template:
    url: str
    world: Seeded


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    server = _server_url()
    if server is None:
        url = f"sqlite:///{tmp_path_factory.mktemp('concurrency') / 'template.db'}"
        upgrade(url)
        yield Template(url, seed_world(url))
        return
    with postgres_database(server) as url:
        upgrade(url)
        yield Template(url, seed_world(url))


@pytest.fixture
def db(template, tmp_path):
    """A brand-new database of this test's own: a copy of the seeded template."""
    server = _server_url()
    if server is None:
        url = f"sqlite:///{tmp_path / 'broker.db'}"
        with contextlib.closing(sqlite3.connect(make_url(template.url).database)) as source, \
                contextlib.closing(sqlite3.connect(make_url(url).database)) as target:
            source.backup(target)
        yield url
        return
    with postgres_database(server, template=make_url(template.url).database) as url:
        yield url


@pytest.fixture
def world(template) -> Seeded:
    return template.world


# --- processes --------------------------------------------------------------------


@dataclasses.dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str

    def report(self) -> dict:
        assert self.returncode == 0, f"settle exited {self.returncode}:\n{self.stderr}"
        return json.loads(self.stdout)


class Processes:
    """`python -m web.cli ...` subprocesses with a clean environment and their
    output in files (no pipe can fill up); whatever is still running at the end
    of the test is killed."""

    def __init__(self, workdir: Path, url: str):
        self.workdir, self.url = workdir, url
        self.running: dict[int, tuple[subprocess.Popen, object, object]] = {}
        self.count = 0

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("BROKER_", "DATABASE_URL", "STRIPE_", "PGAPPNAME"))}
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        # Broker's commands refuse to sign links with a key made up per process.
        env.update(DATABASE_URL=self.url, BROKER_ADMIN_TOKEN="x", BROKER_SECRET_KEY="settlement-processes")
        env.update(extra)
        return env

    def start(self, *args: str, **env: str) -> subprocess.Popen:
        self.count += 1
        out = open(self.workdir / f"proc{self.count}.out", "w+", encoding="utf-8")
        err = open(self.workdir / f"proc{self.count}.err", "w+", encoding="utf-8")
        try:
            proc = subprocess.Popen(BROKER + list(args), cwd=self.workdir, env=self.env(**env),
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True)
        except BaseException:
            out.close()
            err.close()
            raise
        self.running[proc.pid] = (proc, out, err)
        return proc

    def wait(self, proc: subprocess.Popen, timeout: float = PROCESS_TIMEOUT) -> Finished:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{proc.args} still running after {timeout}s")
        _, out, err = self.running.pop(proc.pid)
        with out, err:
            out.seek(0)
            err.seek(0)
            return Finished(proc.returncode, out.read(), err.read())

    def run(self, *args: str, **env: str) -> Finished:
        return self.wait(self.start(*args, **env))

    def kill_all(self) -> None:
        for proc, out, err in self.running.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            out.close()
            err.close()
        self.running.clear()


@pytest.fixture
def processes(db, tmp_path):
    procs = Processes(tmp_path, db)
    try:
        yield procs
    finally:
        procs.kill_all()


def settle_args(*extra: str) -> list[str]:
    return ["settle", "--as-of", AS_OF.isoformat(), *extra]


# --- reading the outcome --------------------------------------------------------------


@dataclasses.dataclass
class State:
    """Every row the invariants are about, read in one consistent snapshot."""

    listings: dict[int, tuple]  # id -> (status, settlement run id)
    orders: dict[int, str]
    decisions: dict[int, list]  # listing id -> [(round, winner, run id, decision id, cause)]
    assignments: dict[int, list]  # order id -> [(id, decision id, retailer id, status)]
    runs: dict[int, tuple]  # id -> (status, settled, to_retailers, to_manufacturer, finished_at)
    outbox: list[tuple[str, str]]


def _reading_engine(url: str):
    if not url.startswith("sqlite"):
        # One snapshot per transaction, even while other processes commit.
        return make_engine(url, isolation_level="REPEATABLE READ")
    # Not the application's engine: that one begins every transaction IMMEDIATE,
    # taking the write lock, so a reader would wait for each batch to commit (and
    # only ever look between batches). A deferred transaction reads a snapshot of
    # the WAL without blocking anyone.
    engine = create_engine(url, poolclass=NullPool)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA busy_timeout=30000")

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN")

    return engine


@contextlib.contextmanager
def reader(url: str):
    """An engine of the test's own for reading, disposed afterwards."""
    engine = _reading_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def read_state(url: str) -> State:
    with reader(url) as engine, engine.begin() as conn:
        state = State(
            listings={r[0]: tuple(r[1:]) for r in conn.execute(
                select(Listing.id, Listing.status, Listing.settlement_run_id))},
            orders=dict(conn.execute(select(Order.id, Order.status)).all()),
            decisions={}, assignments={},
            runs={r[0]: tuple(r[1:]) for r in conn.execute(
                select(SettlementRun.id, SettlementRun.status, SettlementRun.settled, SettlementRun.to_retailers,
                       SettlementRun.to_manufacturer, SettlementRun.finished_at))},
            outbox=[tuple(r) for r in conn.execute(select(OutboxMessage.topic, OutboxMessage.dedupe_key))],
        )
        for row in conn.execute(
            select(SettlementDecision.listing_id, SettlementDecision.round, SettlementDecision.winner_retailer_id,
                   SettlementDecision.run_id, SettlementDecision.id, SettlementDecision.cause)
            .order_by(SettlementDecision.round)
        ):
            state.decisions.setdefault(row[0], []).append(tuple(row[1:]))
        for row in conn.execute(
            select(Assignment.order_id, Assignment.id, Assignment.decision_id, Assignment.retailer_id,
                   Assignment.status).order_by(Assignment.id)
        ):
            state.assignments.setdefault(row[0], []).append(tuple(row[1:]))
        return state


def awarded_count(engine) -> int:
    with engine.begin() as conn:
        return conn.scalar(select(func.count()).where(Listing.status == ListingStatus.AWARDED))


def half_awarded(state: State, world: Seeded) -> list[str]:
    """Listings that are neither untouched nor settled once and completely."""
    problems = []
    for listing_id, order_id in sorted(world.order_of.items()):
        status, run_id = state.listings[listing_id]
        decisions = state.decisions.get(listing_id, [])
        assignments = state.assignments.get(order_id, [])
        order = state.orders[order_id]
        if status == ListingStatus.OPEN and not decisions and not assignments and order == OrderStatus.OPEN:
            continue
        if (status == ListingStatus.AWARDED and order == OrderStatus.AWARDED
                and [d[0] for d in decisions] == [0] and run_id is not None and decisions[0][2] == run_id
                and len(assignments) == 1
                and assignments[0][1] == decisions[0][3] and assignments[0][3] == AssignmentStatus.ACTIVE):
            continue
        problems.append(f"listing {listing_id} {status}, order {order_id} {order}, "
                        f"decisions {decisions}, assignments {assignments}")
    return problems


def settled_as_planned(state: State, world: Seeded) -> list[str]:
    """Every due listing awarded once, to the planned winner; the rest untouched."""
    problems = half_awarded(state, world)
    for listing_id in sorted(world.due):
        order_id = world.order_of[listing_id]
        if state.listings[listing_id][0] != ListingStatus.AWARDED:
            problems.append(f"due listing {listing_id} is {state.listings[listing_id][0]}")
            continue
        winners = [a[2] for a in state.assignments.get(order_id, [])]
        if winners != [world.plan[listing_id]]:
            problems.append(f"listing {listing_id}: assigned to {winners}, planned {world.plan[listing_id]}")
    for listing_id in sorted(world.not_due):
        if state.listings[listing_id][0] != ListingStatus.OPEN or state.decisions.get(listing_id):
            problems.append(f"listing {listing_id}, not due, is {state.listings[listing_id][0]}")
    return problems


# --- the tests --------------------------------------------------------------------


def test_concurrent_settlement_processes_award_every_listing_once(db, world, processes):
    # The seeded world exercises every way a listing is decided, ties included.
    assert {"nearest", "only_eligible_bid", "no_bids", "no_eligible_bids"} <= set(world.rules)
    assert world.rules["earliest_bid"] + world.rules["lowest_retailer_id"] > 0
    assert set(world.plan) == world.due

    dry = processes.run(*settle_args("--dry-run", "--json")).report()
    assert {d["listing_id"]: d["retailer_id"] for d in dry["plan"]} == world.plan
    assert dry["settled"] == len(world.due) and read_state(db).decisions == {}

    # A pause between batches on PostgreSQL so that the four runs overlap (rather
    # than the first one started finishing the lot while the others import).
    pause = {"BROKER_SETTLE_BATCH_PAUSE_MS": "20"} if ON_POSTGRES else {}
    racers = [processes.start(*settle_args("--json"), BROKER_SETTLE_BATCH_SIZE="10", **pause) for _ in range(4)]
    reports = [processes.wait(p).report() for p in racers]

    assert sum(r["settled"] for r in reports) == len(world.due), reports
    assert sum((Counter(r["by_rule"]) for r in reports), Counter()) == world.rules
    state = read_state(db)
    assert settled_as_planned(state, world) == []
    assert Counter(len(d) for d in state.decisions.values()) == {1: len(world.due)}
    # Each run's row says what that run reported, and every decision names its run.
    for r in reports:
        status, settled, to_retailers, to_manufacturer, finished_at = state.runs[r["run_id"]]
        assert (status, settled, to_retailers, to_manufacturer) == \
            (RunStatus.COMPLETED, r["settled"], r["to_retailers"], r["to_manufacturer"])
        assert finished_at is not None
        assert sum(1 for ds in state.decisions.values() if ds[0][2] == r["run_id"]) == r["settled"]
    if ON_POSTGRES:
        # SKIP LOCKED really shared the work out.
        assert sum(1 for r in reports if r["settled"]) > 1, [r["settled"] for r in reports]

    again = processes.run(*settle_args("--json")).report()
    assert again["settled"] == 0
    assert read_state(db).decisions == state.decisions


def _in_a_batch(engine, app_name: str) -> bool:
    """Whether the settle process is inside a batch's transaction right now (best
    effort: it may commit a moment later)."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        # Every write transaction holds SQLite's one write lock (BEGIN IMMEDIATE).
        with contextlib.closing(sqlite3.connect(url.database, timeout=0, isolation_level=None)) as conn:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:
                return True
            conn.execute("ROLLBACK")
            return False
    with engine.begin() as conn:
        return bool(conn.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name "
            "AND xact_start IS NOT NULL AND state <> 'idle'"), {"name": app_name}))


def test_killed_settlement_leaves_no_half_awarded_listing_and_a_rerun_finishes_the_job(db, world, processes):
    due = len(world.due)
    ctx = context(db, AS_OF)
    try:
        plan = {d["listing_id"]: d["retailer_id"] for d in settle(ctx, as_of=AS_OF, dry_run=True).decisions}
    finally:
        ctx.engine.dispose()
    assert plan == world.plan

    app_name = f"broker-settle-{uuid.uuid4().hex[:8]}"  # names its connections in pg_stat_activity
    victim = processes.start(*settle_args(), BROKER_SETTLE_BATCH_SIZE="5", BROKER_SETTLE_BATCH_PAUSE_MS="50",
                             PGAPPNAME=app_name)
    # Kill it a quarter of the way in or later, preferably inside a batch.
    deadline = time.monotonic() + POLL_TIMEOUT
    with reader(db) as engine:
        while True:
            if victim.poll() is not None:
                finished = processes.wait(victim)
                pytest.fail(f"settle finished (exit {finished.returncode}) before it was killed:\n{finished.stderr}")
            awarded = awarded_count(engine)
            if time.monotonic() > deadline:
                pytest.fail(f"settle awarded {awarded} of {due} listings in {POLL_TIMEOUT}s")
            mid_batch = awarded >= due // 4 and _in_a_batch(engine, app_name)
            if mid_batch or awarded >= due * 3 // 4:
                break
            time.sleep(0.01)
    os.kill(victim.pid, signal.SIGKILL)
    killed = processes.wait(victim)
    assert killed.returncode == -signal.SIGKILL

    state = read_state(db)
    assert half_awarded(state, world) == [], f"killed {'inside' if mid_batch else 'between'} batches"
    awarded = {lid for lid, (status, _) in state.listings.items() if status == ListingStatus.AWARDED}
    assert 0 < len(awarded) < due and awarded <= world.due
    [(run_id, run)] = state.runs.items()
    status, settled, to_retailers, to_manufacturer, finished_at = run
    # The run's counters were committed with each batch: they are exactly its awards.
    assert (status, finished_at) == (RunStatus.RUNNING, None)
    assert settled == len(awarded)
    assert to_retailers == sum(1 for lid in awarded if plan[lid] is not None)
    assert to_manufacturer == sum(1 for lid in awarded if plan[lid] is None)
    assert {state.decisions[lid][0][2] for lid in awarded} == {run_id}

    rerun = processes.run(*settle_args("--json")).report()
    assert rerun["settled"] == due - len(awarded)
    final = read_state(db)
    assert settled_as_planned(final, world) == []
    assert {lid: ds[0][2] for lid, ds in final.decisions.items()} == \
        {lid: run_id if lid in awarded else rerun["run_id"] for lid in world.due}
    assert final.runs[run_id] == run  # the killed run's row keeps what it committed


def test_concurrent_deadline_checks_reroute_each_lapsed_assignment_once(db, world):
    ctx = context(db, AS_OF)
    try:
        assert settle(ctx, as_of=AS_OF).settled == len(world.due)
    finally:
        ctx.engine.dispose()
    settled = read_state(db)
    assert settled_as_planned(settled, world) == []
    # (assignment id, order id, listing id) of every order a retailer won.
    won = sorted((settled.assignments[world.order_of[lid]][0][0], world.order_of[lid], lid)
                 for lid in world.due if world.plan[lid] is not None)
    assert won and len(won) < len(world.due)

    def race(now, threads: int = 3) -> list[fulfilment.LapseReport]:
        contexts = [context(db, now) for _ in range(threads)]
        start = threading.Barrier(threads)
        results: list = [None] * threads

        def check(i: int) -> None:
            try:
                start.wait(timeout=30)
                results[i] = fulfilment.check_deadlines(contexts[i])
            except BaseException as exc:  # noqa: BLE001 (reported below)
                results[i] = exc

        workers = [threading.Thread(target=check, args=(i,), daemon=True) for i in range(threads)]
        try:
            for w in workers:
                w.start()
            for w in workers:
                w.join(PROCESS_TIMEOUT)
            assert not any(w.is_alive() for w in workers), "a deadline check is still running"
        finally:
            for c in contexts:
                c.engine.dispose()
        failures = [r for r in results if isinstance(r, BaseException)]
        assert not failures, failures
        return results

    # Warnings first (5 hours before the windows close), then the lapses.
    warned = race(AS_OF + SHIP_WITHIN - timedelta(hours=5))
    assert sum(r.warned for r in warned) == len(won)
    assert sum(r.lapsed for r in warned) == 0

    lapsed = race(AS_OF + SHIP_WITHIN + timedelta(minutes=1))
    assert sum(r.lapsed for r in lapsed) == len(won)
    assert sum(r.to_retailers + r.to_manufacturer for r in lapsed) == len(won)

    state = read_state(db)
    for assignment_id, order_id, listing_id in won:
        first, *rest = state.assignments[order_id]
        assert first[0] == assignment_id and first[3] == AssignmentStatus.LAPSED, state.assignments[order_id]
        assert [a[3] for a in rest] == [AssignmentStatus.ACTIVE], state.assignments[order_id]
        assert [(d[0], d[4]) for d in state.decisions[listing_id]] == [(0, Cause.SETTLEMENT), (1, Cause.LAPSE)]
        # The next winner is a retailer that has not held the order yet, or the manufacturer.
        assert rest[0][2] != first[2]
    for listing_id in world.due:
        order_id = world.order_of[listing_id]
        assert [a[3] for a in state.assignments[order_id]].count(AssignmentStatus.ACTIVE) == 1
        assert [d[0] for d in state.decisions[listing_id]] in ([0], [0, 1])
        assert state.orders[order_id] == OrderStatus.AWARDED
    # One warning and one lapse email per won assignment (each retailer has one
    # address), and one award email per order re-routed to another retailer.
    topics = Counter(topic for topic, _ in state.outbox)
    assert (topics["email.deadline_warning"], topics["email.lapsed"]) == (len(won), len(won))
    assert topics["email.award"] == sum(r.to_retailers for r in lapsed)
    assert sorted(key.rsplit("-", 1)[0] for topic, key in state.outbox if topic == "email.lapsed") == \
        sorted(f"assignment-{assignment_id}" for assignment_id, _, _ in won)
