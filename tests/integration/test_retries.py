"""A request whose transaction loses a race is run again from the start, a few
times; then it answers 503 (409 for a duplicate) with Retry-After, never 500.

The races themselves are real in tests/concurrency/test_races.py (PostgreSQL);
here the database's answer is made to order, so each outcome is certain.
"""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.pool import NullPool

from broker import retry
from broker.accounts import services as accounts
from broker.accounts.models import DealerAuthorisation
from broker.notifications import services as notifications
from tests.factories import HERE, north_of


class Deadlock(Exception):
    sqlstate = "40P01"  # as psycopg's DeadlockDetected carries it


class Duplicate(Exception):
    sqlstate = "23505"


def deadlock() -> OperationalError:
    return OperationalError("UPDATE orders ...", {}, Deadlock("deadlock detected"))


def duplicate() -> IntegrityError:
    return IntegrityError("INSERT INTO dealer_authorisations ...", {}, Duplicate("duplicate key value"))


@pytest.fixture
def no_pause(monkeypatch):
    monkeypatch.setattr(retry, "pause", lambda attempt: None)


def losing(monkeypatch, module, name, error, times: int):
    """`module.name` raises `error()` the first `times` calls, then does its work."""
    real = getattr(module, name)
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) <= times:
            raise error()
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def test_a_request_that_loses_a_deadlock_is_run_again_and_succeeds(world, client, session, monkeypatch, no_pause,
                                                                    caplog):
    maker = world.manufacturer()
    shop = world.retailer(north_of(HERE, 1))
    calls = losing(monkeypatch, accounts, "authorise", deadlock, times=2)

    response = client.post("/api/v1/dealers", json={"retailer_id": shop.id},
                           headers={"Authorization": f"Bearer {maker.key}"})

    assert response.status_code == 201, response.get_json()
    assert len(calls) == 3
    assert session.scalar(select(func.count()).select_from(DealerAuthorisation)
                          .where(DealerAuthorisation.retailer_id == shop.id)) == 1
    assert [r.race for r in caplog.records if getattr(r, "event", "") == "transaction.retried"] == \
        ["deadlock", "deadlock"]


def test_a_request_that_keeps_losing_answers_503_with_retry_after(world, client, session, monkeypatch, no_pause):
    maker = world.manufacturer()
    shop = world.retailer(north_of(HERE, 1))
    calls = losing(monkeypatch, accounts, "authorise", deadlock, times=100)

    response = client.post("/api/v1/dealers", json={"retailer_id": shop.id},
                           headers={"Authorization": f"Bearer {maker.key}"})

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == 503 and "try again" in body["detail"]
    assert len(calls) == retry.ATTEMPTS
    assert session.scalar(select(func.count()).select_from(DealerAuthorisation)) == 0


def test_a_duplicate_that_persists_answers_409_with_retry_after(world, client, monkeypatch, no_pause):
    maker = world.manufacturer()
    shop = world.retailer(north_of(HERE, 1))
    losing(monkeypatch, accounts, "authorise", duplicate, times=100)

    response = client.post("/api/v1/dealers", json={"retailer_id": shop.id},
                           headers={"Authorization": f"Bearer {maker.key}"})

    assert response.status_code == 409 and response.headers["Retry-After"] == "1"


def test_a_page_that_keeps_losing_answers_503_with_retry_after(ctx, client, monkeypatch, no_pause):
    link = notifications.unsubscribe_url(ctx, "grace@navy.example", "digest")
    losing(monkeypatch, notifications, "unsubscribe", deadlock, times=100)

    response = client.post("/" + link.split("/", 3)[3])

    assert response.status_code == 503 and response.headers["Retry-After"] == "1"


def test_any_other_database_error_is_not_run_again(no_pause):
    calls = []

    def broken():
        calls.append(1)
        raise OperationalError("SELECT nonsense", {}, Exception("syntax error"))

    with pytest.raises(OperationalError):
        retry.run(broken)
    assert len(calls) == 1


def test_the_api_document_lists_the_503_and_its_retry_after(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue  # path-level parameters
            unavailable = operation["responses"]["503"]
            assert "busy with other changes" in unavailable["description"], (method, path)
            assert "Retry-After" in unavailable["headers"], (method, path)


# --- what counts as a lost race: the databases' own errors ---------------------------


def test_sqlite_busy_is_a_race(tmp_path):
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    holder = create_engine(url, poolclass=NullPool)
    waiter = create_engine(url, poolclass=NullPool, connect_args={"timeout": 0})
    with holder.connect() as held:
        held.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        held.commit()
        held.exec_driver_sql("BEGIN IMMEDIATE")
        with waiter.connect() as conn, pytest.raises(OperationalError) as raised:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        held.rollback()
    assert isinstance(raised.value.orig, sqlite3.OperationalError)
    assert retry.lost_race(raised.value) == retry.LOCKED
    holder.dispose()
    waiter.dispose()


def test_a_unique_violation_is_a_race_and_other_integrity_errors_are_not(engine):
    with engine.connect() as conn:
        conn.execute(text("CREATE TEMPORARY TABLE race_probe (x INTEGER PRIMARY KEY, y INTEGER NOT NULL)"))
        conn.execute(text("INSERT INTO race_probe (x, y) VALUES (1, 1)"))
        with pytest.raises(IntegrityError) as duplicate_row:
            with conn.begin_nested():
                conn.execute(text("INSERT INTO race_probe (x, y) VALUES (1, 2)"))
        with pytest.raises(IntegrityError) as missing_value:
            with conn.begin_nested():
                conn.execute(text("INSERT INTO race_probe (x, y) VALUES (2, NULL)"))
        conn.rollback()
    assert retry.lost_race(duplicate_row.value) == retry.DUPLICATE
    assert retry.lost_race(missing_value.value) is None


# --- a second run reads the same request -------------------------------------------------


def test_a_retried_webhook_reads_its_body_again(ctx, monkeypatch, no_pause):
    """The webhook view reads the raw body uncached, to check its signature; a
    second run must see the same bytes, not an empty stream."""
    import dataclasses
    import json

    from broker.payments import webhooks
    from tests.fakes.stripe_server import event, sign
    from web.app import create_app

    settings = dataclasses.replace(ctx.settings, stripe_webhook_secret="whsec_retry")
    client = create_app(context=dataclasses.replace(ctx, settings=settings),
                        test_config={"TESTING": True}).test_client()
    calls = losing(monkeypatch, webhooks, "apply_event", deadlock, times=1)
    body = json.dumps(event("invoice.created", {"id": "in_1"})).encode()

    response = client.post("/webhooks/stripe", data=body, headers={"Stripe-Signature": sign(body, "whsec_retry"),
                                                                   "Content-Type": "application/json"})

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["outcome"] == "ignored"
    assert len(calls) == 2


def test_a_retried_upload_reads_its_file_again(world, ctx, client, session, monkeypatch, no_pause):
    """The console's CSV import reads the uploaded file; a second run reads it from the start."""
    import io

    from broker.accounts.models import Role
    from broker.catalog import imports
    from broker.catalog.models import Product
    from tests.pages import csrf, sign_in, user_for

    maker = world.manufacturer(products=[])
    user_for(ctx, Role.MANUFACTURER, maker.id, "owner@maker.example")
    sign_in(client, "owner@maker.example")
    calls = losing(monkeypatch, imports, "import_products", deadlock, times=1)
    csv = b"sku,name,price,description,image_url,in_stock\nKETTLE,Kettle,25.00,,,true\n"

    response = client.post("/console/catalog/import", data={"file": (io.BytesIO(csv), "products.csv"),
                                                             "csrf_token": csrf(client, "/console/catalog")},
                           content_type="multipart/form-data")

    assert response.status_code == 302, response.get_data(as_text=True)
    assert len(calls) == 2
    assert session.scalar(select(Product.name).where(Product.manufacturer_id == maker.id)) == "Kettle"
