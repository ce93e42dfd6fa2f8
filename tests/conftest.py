"""Test fixtures.

The suite runs against SQLite by default and against PostgreSQL when
BROKER_TEST_DATABASE_URL points at a server (CI runs both). Either way the
database is new, built by `alembic upgrade head`, and dropped at the end; each
test runs inside a transaction that is rolled back afterwards, so services may
commit as they do in production without leaving anything behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import NullPool

from broker.clock import FrozenClock
from broker.config import Settings
from broker.context import Context
from broker.db import make_engine
from broker.geo.geocoding import OfflineGeocoder
from broker.migrate import upgrade
from broker.notifications.mailer import FolderMailer
from broker.payments.offline import OfflineProvider
from tests.factories import World

START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
ADMIN_TOKEN = "operator-test-token"


# --- running on every core ----------------------------------------------------
#
# `pytest` alone, or given folders, runs in one worker process per core
# (pytest-xdist's `-n auto`, set here rather than in addopts so that
# `-p no:xdist` still works). Given only files or tests, it runs in this process,
# where the workers' start (a few seconds each) would cost more than it saves;
# `-n auto` there, or `-n 0` (or `-p no:xdist`) anywhere, says otherwise, and
# `--pdb` always runs in this process.
# Each worker has its own database (its own temporary folder on SQLite, its own
# randomly named database on PostgreSQL), mail folders and free ports.
#
# Tests that must not be split between workers are grouped (`--dist loadgroup`):
# each browser module keeps its Chromium and servers on one worker, and the
# concurrency tests, which start real processes and time their races, run one
# after another on one worker while the other cores run the rest.


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    if not config.pluginmanager.hasplugin("xdist") or hasattr(config, "workerinput"):
        return
    if config.option.numprocesses is None and _whole_folders(config):
        config.option.numprocesses = "auto"
    if config.option.dist == "no":
        config.option.dist = "loadgroup"


def _whole_folders(config) -> bool:
    here = config.invocation_params.dir
    return all((here / arg.split("::")[0]).is_dir() for arg in config.args if not arg.startswith("-"))


def _xdist_group(path: Path) -> str | None:
    try:
        parts = path.relative_to(Path(__file__).parent).parts
    except ValueError:
        return None
    if parts[0] == "concurrency":
        return "concurrency"
    if parts[0] == "e2e":
        return f"e2e-{path.stem}"
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    # pytest-xdist hands tests to its workers by id: of tests that share one, it
    # runs one and says nothing of the others (schemathesis's items once did).
    seen = Counter(item.nodeid for item in items)
    shared = sorted(nodeid for nodeid, n in seen.items() if n > 1)
    if shared:
        raise pytest.UsageError(f"{len(shared)} test ids are each given to more than one test, and only one of "
                                f"each would run on several workers: {', '.join(shared[:5])}")
    if getattr(config.option, "dist", "no") != "loadgroup":
        return
    for item in items:
        group = _xdist_group(item.path)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


def _server_url() -> str | None:
    return os.environ.get("BROKER_TEST_DATABASE_URL") or None


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    server = _server_url()
    if server is None:
        path = tmp_path_factory.mktemp("db") / "broker-test.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        yield url
        return
    with postgres_database(server) as url:
        upgrade(url)
        yield url


@contextlib.contextmanager
def postgres_database(server: str, *, prefix: str = "broker_test", template: str | None = None):
    """A new database on the server (a copy of `template`, if given), dropped on exit."""
    base = make_url(server)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def engine(database_url):
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def clock():
    return FrozenClock(START)


def make_settings(database_url: str, **overrides) -> Settings:
    # Flask's test client names the host `localhost`: it is this Broker's public
    # address here, so requests for it are answered and links are built on it.
    values = dict(database_url=database_url, admin_token=ADMIN_TOKEN, secret_key="test-secret",
                  min_board_hours=12, ship_within_hours=48, settle_cron="0 2 * * *", timezone="UTC",
                  public_url="http://localhost")
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database_url):
    return make_settings(database_url)


@pytest.fixture
def connection(engine):
    with engine.connect() as connection:
        outer = connection.begin()
        yield connection
        if outer.is_active:
            outer.rollback()


@pytest.fixture
def mail_dir(tmp_path):
    """Where the test's emails land (the default folder mailer)."""
    return tmp_path / "mail"


@pytest.fixture
def ctx(settings, engine, connection, clock, mail_dir):
    factory = sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    return Context(settings=settings, engine=engine, session_factory=factory, geocoder=OfflineGeocoder(),
                   payments=OfflineProvider(), clock=clock, mailer=FolderMailer(mail_dir, settings.mail_from))


@pytest.fixture
def app(ctx):
    from web.app import create_app

    return create_app(context=ctx, test_config={"TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def session(ctx):
    """A session for assertions, in the same rolled-back transaction."""
    with ctx.uow() as uow:
        yield uow.session


@pytest.fixture
def world(ctx):
    """Manufacturers, retailers, orders and bids made through the services
    (tests/factories.py), in the test's rolled-back transaction."""
    return World(ctx)


# --- Stripe, against its fake (tests/fakes/stripe_server.py) ---------------------

STRIPE_WEBHOOK_SECRET = "whsec_test"


@pytest.fixture(scope="session", autouse=True)
def no_stripe_telemetry():
    """By default the SDK sends timings of earlier requests with each one and
    writes an id to ~/.config/stripe/telemetry_id: not from a test run."""
    import stripe

    stripe.enable_telemetry = False


@pytest.fixture
def fake():
    """The Stripe fake, on a port of its own."""
    from tests.fakes.stripe_server import FakeStripe

    with FakeStripe() as server:
        yield server


@pytest.fixture
def stripe_ctx(ctx, fake):
    """`ctx` paying through the Stripe provider, against the fake; webhooks are
    signed with STRIPE_WEBHOOK_SECRET."""
    from broker.payments.stripe_provider import StripeProvider

    settings = dataclasses.replace(ctx.settings, stripe_secret_key="sk_test_broker",
                                   stripe_webhook_secret=STRIPE_WEBHOOK_SECRET, stripe_api_base=fake.url)
    provider = StripeProvider(settings)
    yield dataclasses.replace(ctx, settings=settings, payments=provider)
    provider.close()
