"""No N+1: the main endpoints and pages run the same number of SQL statements
whether they show a few items or many.

Each case builds a world with `n` items, counts the statements one request runs,
adds more items, and counts again. A query per item (an N+1) makes the second
count larger and fails the test, wherever in the stack it hides.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest
from sqlalchemy import event

from broker.accounts.models import Role
from broker.settlement.services import settle
from tests.conftest import make_settings
from tests.factories import HERE, World, north_of
from tests.pages import sign_in, user_for


@pytest.fixture
def settings(database_url):
    # What a page costs to build: the storefront's cache of rendered pages would
    # answer the second request without a statement (tests/integration/test_storefront_cache.py).
    # One signed-in client across two settlements (the clock moves 26 hours): a
    # session that lasts (how long one does is tests/integration/test_sessions.py's).
    return make_settings(database_url, storefront_cache_seconds=0, session_idle_minutes=30 * 24 * 60,
                         session_hours=30 * 24)


@contextlib.contextmanager
def counting(engine):
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK")):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


class Scene:
    """A manufacturer with a catalog, two dealers near San Francisco, orders on
    the board with bids, and, after `settle`, orders won by `near`."""

    def __init__(self, ctx, clock):
        self.ctx, self.clock, self.world = ctx, clock, World(ctx)
        self.maker = self.world.manufacturer("counts", products=[("SKU-1", 5000)])
        self.near = self.world.retailer(north_of(HERE, 2), dealer_of=[self.maker], name="Near")
        self.far = self.world.retailer(north_of(HERE, 9), dealer_of=[self.maker], name="Far")
        self.products = 1
        user_for(ctx, Role.RETAILER, self.near.id, "near@shop.example")
        user_for(ctx, Role.MANUFACTURER, self.maker.id, "ops@maker.example")

    def add(self, n: int) -> None:
        """n more products, and n more orders both dealers bid on."""
        for i in range(n):
            self.products += 1
            self.world.product(self.maker, f"SKU-{self.products}", 1000 + self.products)
            placed = self.world.order(self.maker, to=north_of(HERE, i % 5))
            self.world.bid(self.near, placed.order.id)
            self.world.bid(self.far, placed.order.id)

    def settle(self) -> None:
        self.clock.now = self.clock.now + timedelta(hours=13)
        settle(self.ctx)


def key(shop) -> dict:
    return {"Authorization": f"Bearer {shop.key}"}


API_CASES = {
    "board": lambda s: ("/api/v1/board", key(s.near)),
    "bid outcomes": lambda s: ("/api/v1/bids", key(s.far)),
    "manufacturer's orders": lambda s: ("/api/v1/orders", key(s.maker)),
    "retailer's assignments": lambda s: ("/api/v1/assignments", key(s.near)),
    "manufacturer's products": lambda s: ("/api/v1/products", key(s.maker)),
    "storefront catalog (API)": lambda s: (f"/api/v1/storefronts/{s.maker.slug}/products", {}),
    "storefront catalog (page)": lambda s: (f"/s/{s.maker.slug}/", {}),
}
PORTAL = ["/portal/", "/portal/orders", "/portal/outcomes", "/portal/scorecard", "/portal/earnings"]
CONSOLE = ["/console/", "/console/orders", "/console/catalog", "/console/settlements", "/console/earnings"]


def _statements(ctx, client, path: str, headers: dict) -> int:
    client.get(path, headers=headers)  # warm: first-use lookups are not the page's
    with counting(ctx.engine) as statements:
        response = client.get(path, headers=headers)
    assert response.status_code == 200, (path, response.status_code)
    return len(statements)


@pytest.mark.parametrize("settled", [False, True], ids=["on the board", "settled"])
@pytest.mark.parametrize("case", sorted(API_CASES))
def test_the_api_runs_as_many_statements_for_many_items_as_for_few(ctx, clock, client, case, settled):
    scene = Scene(ctx, clock)
    scene.add(2)
    if settled:
        scene.settle()
    few = _statements(ctx, client, *API_CASES[case](scene))
    scene.add(6)
    if settled:
        scene.settle()
    many = _statements(ctx, client, *API_CASES[case](scene))
    assert many == few, f"{case}: {few} statements for a few items, {many} for more"


@pytest.mark.parametrize("path", PORTAL + CONSOLE)
def test_the_pages_run_as_many_statements_for_many_items_as_for_few(ctx, clock, client, path):
    scene = Scene(ctx, clock)
    sign_in(client, "near@shop.example" if path.startswith("/portal") else "ops@maker.example")
    scene.add(2)
    scene.settle()
    few = _statements(ctx, client, path, {})
    scene.add(6)
    scene.settle()
    many = _statements(ctx, client, path, {})
    assert many == few, f"{path}: {few} statements for a few items, {many} for more"
