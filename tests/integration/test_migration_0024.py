"""Migration 0024 on a database with orders: down to 0020 (no shipping, no tax)
and up again. Orders placed before it were their goods alone: their subtotal
is their total, with no shipping, no tax and no method, and they print as before."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import select, text

from broker.clock import FrozenClock
from broker.context import Context
from broker.migrate import alembic_config, upgrade
from broker.orders.models import Order
from broker.orders.totals import order_totals
from tests.conftest import START, _server_url, make_settings, postgres_database
from tests.factories import World


@pytest.fixture
def database(tmp_path):
    server = _server_url()
    if server is None:
        url = f"sqlite:///{tmp_path / 'migration.db'}"
        upgrade(url)
        yield url
        return
    with postgres_database(server, prefix="broker_mig") as url:
        upgrade(url)
        yield url


def test_orders_from_before_are_their_goods_alone(database):
    ctx = Context.from_settings(make_settings(database, admin_token="x"), clock=FrozenClock(START))
    try:
        world = World(ctx)
        maker = world.manufacturer(products=[("SKU-1", 5000)])
        placed = world.order(maker, quantity=2)
        config = alembic_config(database)
        command.downgrade(config, "0020")
        with ctx.engine.connect() as connection:
            columns = {row[1] for row in connection.execute(text("PRAGMA table_info(orders)"))} \
                if connection.dialect.name == "sqlite" else set(connection.execute(text(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = 'orders'")).scalars())
            assert "subtotal" not in columns and "tax" not in columns
        command.upgrade(config, "head")
        with ctx.uow() as uow:
            order = uow.session.scalar(select(Order).where(Order.id == placed.order.id))
            assert (order.total, order.subtotal, order.shipping, order.tax, order.shipping_method) == \
                (10000, 10000, 0, 0, None)
            assert [line.label for line in order_totals(order)] == ["Total"]
    finally:
        ctx.engine.dispose()
