"""`Context.read`: on PostgreSQL a single read runs without a transaction
around it (no BEGIN and ROLLBACK round trips); an API key is checked that way."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from broker.accounts import services as accounts
from broker.auth import ActorKind
from broker.context import Context
from tests.conftest import make_settings
from tests.factories import World


@pytest.fixture
def live(database_url):
    """A context as a web process has it: sessions on the engine, not a test's transaction."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite reads take no round trip; `read` is `uow` there")
    ctx = Context.from_settings(make_settings(database_url))
    yield ctx
    ctx.engine.dispose()


def in_transaction_block(uow) -> bool:
    # now() is when the transaction began: after a first statement, a later one
    # sees now() < statement_timestamp() only inside a transaction block.
    uow.session.execute(text("SELECT pg_sleep(0.01)"))
    return uow.session.execute(text("SELECT now() < statement_timestamp()")).scalar_one()


def test_a_read_runs_outside_a_transaction_and_a_unit_of_work_inside_one(live):
    with live.read() as uow:
        assert not in_transaction_block(uow)
    with live.uow() as uow:
        assert in_transaction_block(uow)
    with live.uow() as uow:  # the pooled connection came back to its usual self
        assert in_transaction_block(uow)


def test_an_api_key_is_checked_with_a_read(ctx, monkeypatch):
    maker = World(ctx).manufacturer()
    reads = []
    real = Context.read
    monkeypatch.setattr(Context, "read", lambda self: reads.append(self) or real(self))
    assert accounts.authenticate(ctx, maker.key).kind is ActorKind.MANUFACTURER
    assert len(reads) == 1


def test_given_sessions_are_used_for_reads_too(ctx):
    assert ctx.read()._session_factory is ctx.session_factory
