"""PostgreSQL connections: a connection the server dropped is never handed out,
one used a moment ago is handed out without a round trip to check it, and
every session is in UTC whatever the server's time zone."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from broker import db


@pytest.fixture
def pg_engine(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("the pool's ping is PostgreSQL's (SQLite connects per checkout)")
    engine = db.make_engine(database_url, pool_size=1, max_overflow=0)
    yield engine
    engine.dispose()


@pytest.fixture
def pings(pg_engine, monkeypatch):
    made = []
    real = pg_engine.dialect.do_ping

    def counting(dbapi_connection):
        made.append(dbapi_connection)
        return real(dbapi_connection)

    monkeypatch.setattr(pg_engine.dialect, "do_ping", counting)
    return made


def backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_a_connection_used_a_moment_ago_is_not_pinged(pg_engine, pings):
    first = backend_pid(pg_engine)
    assert [backend_pid(pg_engine) for _ in range(5)] == [first] * 5
    assert pings == []


def test_an_idle_connection_is_pinged_and_a_dead_one_replaced(pg_engine, pings, monkeypatch, database_url):
    dropped = backend_pid(pg_engine)
    admin = db.make_engine(database_url)
    with admin.connect() as other:  # the server drops it, as a restart would
        other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dropped})
    admin.dispose()
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
    replaced = backend_pid(pg_engine)  # no error: the ping found it dead and the pool reconnected
    assert replaced != dropped
    assert len(pings) == 1
    assert backend_pid(pg_engine) == replaced  # the new one is alive: pinged and kept
    assert len(pings) == 2


def test_sessions_are_in_utc_and_timestamps_come_back_as_utc(pg_engine):
    from datetime import datetime, timezone

    from sqlalchemy import column, select

    from broker.db import UTCDateTime

    with pg_engine.connect() as conn:
        assert conn.execute(text("SHOW timezone")).scalar_one() == "UTC"
        # Another zone for this session only: the value is still read as UTC.
        moment = conn.execute(select(column("t", UTCDateTime)).select_from(
            text("(SELECT timestamptz '2026-03-02 09:00:00+00' AS t) AS x"))).scalar_one()
        assert moment == datetime(2026, 3, 2, 9, tzinfo=timezone.utc) and moment.tzinfo is timezone.utc
        conn.execute(text("SET timezone = 'America/New_York'"))
        moment = conn.execute(select(column("t", UTCDateTime)).select_from(
            text("(SELECT timestamptz '2026-03-02 09:00:00+00' AS t) AS x"))).scalar_one()
        assert moment == datetime(2026, 3, 2, 9, tzinfo=timezone.utc) and moment.tzinfo is timezone.utc
        conn.rollback()
