"""Alembic environment. The database URL comes from the caller (`broker db upgrade`,
the tests) through the Alembic config, else from DATABASE_URL / the default."""

from __future__ import annotations

import contextlib

from alembic import context

import broker.models  # noqa: F401  (registers every table on Base.metadata)
from broker.config import Settings
from broker.db import Base, make_engine

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or Settings.from_env().database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


def _run(connection) -> None:
    # render_as_batch lets later migrations alter tables on SQLite too.
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                      compare_type=True)
    with _foreign_keys_checked_at_the_end(connection):
        with context.begin_transaction():
            context.run_migrations()
            _check_foreign_keys(connection)


@contextlib.contextmanager
def _foreign_keys_checked_at_the_end(connection):
    """On SQLite, a batch migration rebuilds a table (copy, DROP, rename); with
    foreign keys enforced, dropping a table that other rows point at fails, or
    leaves SQLite's count of deferred violations up although the rebuilt table
    has every id back. So, as SQLite's own procedure for altering a table says,
    enforcement is off while migrating (it can only be turned off outside a
    transaction: here, on the driver's connection, before Alembic begins one)
    and every foreign key is checked before the commit instead."""
    sqlite = connection.dialect.name == "sqlite" and not connection.in_transaction()
    if sqlite:
        connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        if sqlite:
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")


def _check_foreign_keys(connection) -> None:
    if connection.dialect.name != "sqlite":
        return  # PostgreSQL enforces them on every statement, migrations included
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        table, rowid, parent, _ = broken[0]
        raise RuntimeError(f"the migration left {len(broken)} rows pointing at nothing, e.g. {table} row "
                           f"{rowid} -> {parent}")


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
