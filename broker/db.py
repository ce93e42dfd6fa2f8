"""The declarative base, column types, and the engine and session factory.

Nothing here connects at import time: `make_engine` is called by whoever needs a
database (the app factory, the CLI, the scheduler, the tests).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from collections.abc import Sequence

from sqlalchemy import BigInteger, DateTime, Engine, Integer, MetaData, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool, StaticPool
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY, so ids are BIGINT on PostgreSQL
# (a national network makes more than 2**31 bids over the years) and INTEGER there.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    SQLite has no time zones, so values are stored as naive UTC and given their
    zone back on the way out; PostgreSQL stores `timestamptz`.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None or value.tzinfo is timezone.utc:
            return value  # PostgreSQL's, on a connection in UTC (make_engine): as is
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def make_engine(url: str, **kwargs) -> Engine:
    # A failed statement's exception (logged by whoever catches it) would quote its
    # parameters: customers' names, emails and addresses. Logs never carry those.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        return _make_sqlite_engine(url, **kwargs)
    engine = create_engine(url, **kwargs)
    _sessions_in_utc(engine)
    _ping_when_idle(engine)
    return engine


def _sessions_in_utc(engine: Engine) -> None:
    """Timestamps come back in UTC, whatever the server's TimeZone: then the driver
    gives them datetime.timezone.utc, which UTCDateTime passes through as is (a
    settlement run reads a million of them). A SET on each new connection rather
    than a startup `options` parameter, which PgBouncer refuses; PgBouncer
    carries a client's time zone over to whichever server connection it gets."""

    @event.listens_for(engine, "connect")
    def _in_utc(dbapi_connection, _record):
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        try:
            dbapi_connection.execute("SET TIME ZONE 'UTC'")
        finally:
            dbapi_connection.autocommit = autocommit


# A pooled connection unused for this long is checked before it is handed out.
PING_AFTER_IDLE_SECONDS = 5.0


def _ping_when_idle(engine: Engine) -> None:
    """Hand out no connection the server has dropped (a restart, a failover, an
    idle timeout), without a round trip on every checkout.

    `pool_pre_ping` pings each time; an API call checks a connection out two or
    three times, so that was a fifth of a bid's round trips. A connection used a
    moment ago is as good as a ping; one idle longer is pinged first, and a
    dead one is replaced (SQLAlchemy's custom pessimistic disconnect handling).
    A server lost mid-request fails that request, as it would with pre-ping.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, proxy):
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return  # new, or used a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool discards this connection and tries again with a new one.
            raise DisconnectionError(f"the pooled connection is gone: {exc}") from exc


def _float_text(value: float | None) -> str | None:
    return None if value is None else repr(float(value))


def _make_sqlite_engine(url: str, **kwargs) -> Engine:
    memory = url in ("sqlite://", "sqlite:///:memory:")
    if memory:
        kwargs.setdefault("poolclass", StaticPool)
        kwargs.setdefault("connect_args", {"check_same_thread": False})
    else:
        # Each checkout gets its own connection; SQLite connections are cheap and
        # this keeps a connection from being shared by two threads of `broker run`.
        kwargs.setdefault("poolclass", NullPool)
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin,
        # so that we can begin them IMMEDIATE (below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        # Python's repr of a float (the shortest text that reads back as it), for
        # the JSON settlement writes in SQL (broker.settlement.awarding): SQLite's
        # own text for a REAL stops at 15 digits.
        dbapi_connection.create_function("broker_float_text", 1, _float_text, deterministic=True)
        cursor.execute("PRAGMA busy_timeout=30000")
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # SQLite has one writer. A transaction that reads and then writes under a
        # deferred BEGIN can fail to upgrade its lock (SQLITE_BUSY, which the busy
        # timeout does not retry) when another process wrote in between. Taking the
        # write lock up front serialises writers instead: this is the single-writer
        # lock that keeps two settlement runs from awarding one listing twice.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_session_factory(bind) -> sessionmaker:
    return sessionmaker(bind=bind, expire_on_commit=False)


def insert_if_absent(session: Session, model, values: dict, *, unique: Sequence[str]) -> int | None:
    """`INSERT ... ON CONFLICT (unique) DO NOTHING`, in the session's transaction:
    the new row's id, or None if a row with the same `unique` columns exists.

    For a row two requests may both write at once (a double-submitted form): a
    SELECT-then-INSERT lets both see nothing and the second fail on the unique
    constraint. Here PostgreSQL makes the second wait for the first and then do
    nothing; SQLite's writers never overlap. The caller then reads the row that is
    there, whoever wrote it."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = (dialect.insert(model).values(**values)
            .on_conflict_do_nothing(index_elements=list(unique)).returning(model.id))
    return session.scalar(stmt)
