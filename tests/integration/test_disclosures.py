"""Every answer that carries a customer's name or street to anyone but the customer
wrote a disclosure-log row for it, through `privacy.disclosures.disclose_to`.

The shipment and return-accept answers once handed the retailer the name and the
address with no row in the customer's log. Here every operation of the API (the
authorisation matrix's targets, as each party that may call them) and every page
of the portal and the console is called, and wherever a customer's name or
street shows in the answer, the call must have logged that order for that party.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from broker.accounts.models import Role
from broker.clock import FrozenClock
from broker.context import Context
from broker.geo.geocoding import OfflineGeocoder
from broker.orders.services import OrderView, Party
from broker.payments.offline import OfflineProvider
from broker.privacy.models import Disclosure
from broker.privacy.disclosures import Disclosed, UnloggedDisclosure
from tests.conftest import START, make_settings
from tests.integration.test_authorisation_matrix import (
    API,
    MATRIX,
    ORDER_TAGS,
    World,
    body_for,
    build_world,
    credentials,
    customer_name,
    customer_street,
    operations,
)
from tests.integration.test_console_pages import sign_in

PARTIES = ("retailer", "other_retailer", "manufacturer", "other_manufacturer", "operator")


@dataclasses.dataclass
class Scene:
    world: World
    ctx: Context
    app: object
    connection: object
    doc: dict
    pages: dict  # "R1" / "M1" -> a signed-in test client


@pytest.fixture(scope="module")
def scene(engine, database_url):
    from web.app import create_app

    with engine.connect() as connection:
        outer = connection.begin()
        clock = FrozenClock(START)
        factory = sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
        ctx = Context(settings=make_settings(database_url), engine=engine, session_factory=factory,
                      geocoder=OfflineGeocoder(), payments=OfflineProvider(), clock=clock)
        world = build_world(ctx, clock)
        app = create_app(context=ctx, test_config={"TESTING": True})
        pages = {"R1": app.test_client(), "M1": app.test_client()}
        sign_in(pages["R1"], ctx, Role.RETAILER, world.ids["R1"])
        sign_in(pages["M1"], ctx, Role.MANUFACTURER, world.ids["M1"])
        doc = app.test_client().get(f"{API}/openapi.json").get_json()
        yield Scene(world, ctx, app, connection, doc, pages)
        outer.rollback()


def _party(world: World, identity: str) -> tuple[str, int | None]:
    if identity == "operator":
        return "operator", None
    return ("retailer" if identity.startswith("R") else "manufacturer"), world.ids[identity]


def _rows(connection, order_id: int, party: tuple[str, int | None]) -> int:
    kind, party_id = party
    return connection.scalar(select(func.count()).select_from(Disclosure).where(
        Disclosure.order_id == order_id, Disclosure.party_kind == kind,
        Disclosure.party_id.is_(None) if party_id is None else Disclosure.party_id == party_id))


def _shown(text: str) -> list[str]:
    """The orders whose customer's name or street is in the answer."""
    low = text.lower()
    return [tag for tag in ORDER_TAGS if customer_name(tag).lower() in low or customer_street(tag).lower() in low]


def _check(scene: Scene, label: str, party, send) -> list[str]:
    """Call `send` in a savepoint; every order whose customer it shows must have
    gained a row for `party`. Returns the orders shown."""
    w, connection = scene.world, scene.connection
    savepoint = connection.begin_nested()
    try:
        before = {tag: _rows(connection, w.order_id[tag], party) for tag in ORDER_TAGS}
        resp = send()
        assert resp.status_code < 500, (label, resp.get_data(as_text=True)[:500])
        shown = _shown(resp.get_data(as_text=True))
        unlogged = [tag for tag in shown if _rows(connection, w.order_id[tag], party) <= before[tag]]
        assert unlogged == [], f"{label} showed orders {unlogged}' customers to {party} without logging it"
        return shown
    finally:
        savepoint.rollback()


def test_every_response_with_personal_data_is_logged(scene):
    w = scene.world
    client = scene.app.test_client()
    ops = operations(scene.doc)
    showing: set[str] = set()
    for key, targets in MATRIX.items():
        for target in targets:
            for role in sorted(target.allowed & set(PARTIES)):
                headers, identity = credentials(w, role, target)
                path = API + key[1].format(**target.params(w))
                body = body_for(ops[key], target, w, scene.doc)
                label = f"{key[0]} {key[1]} [{target.label}] as {role}"
                shown = _check(scene, label, _party(w, identity),
                               lambda: client.open(path, method=key[0], headers=headers, json=body))
                if shown:
                    showing.add(f"{key[0]} {key[1]}")

    pages = 0
    for rule in scene.app.url_map.iter_rules():
        if "GET" not in rule.methods or not rule.rule.startswith(("/portal", "/console")):
            continue
        who = "R1" if rule.rule.startswith("/portal") else "M1"
        values = {"assignment_id": w.assignment_of["A" if who == "R1" else "F"], "order_id": w.order_id["A"],
                  "run_id": w.run_id, "sku": "M1-1"}
        path = re.sub(r"<(?:[^:<>]+:)?(\w+)>", lambda m: str(values.get(m.group(1), 1)), rule.rule)
        shown = _check(scene, f"page {path}", _party(w, who), lambda: scene.pages[who].get(path))
        pages += 1
        if shown:
            showing.add(f"page {rule.rule}")

    # The control: the answers that carry a customer's details were all called, and did.
    assert {"POST /assignments/{assignment_id}/shipment", "POST /orders/{order_id}/return/accept",
            "POST /assignments/{assignment_id}/pickup", "GET /assignments", "GET /orders",
            "GET /orders/{order_id}", "POST /orders/{order_id}/refund",
            "page /portal/orders", "page /portal/orders/<int:assignment_id>",
            "page /portal/orders/<int:assignment_id>/slip", "page /console/to-ship", "page /console/orders",
            "page /console/orders/<int:order_id>"} <= showing, showing
    assert pages > 15


def test_a_released_assignment_answers_without_the_address(scene):
    w = scene.world
    headers, _ = credentials(w, "retailer", MATRIX[("POST", "/assignments/{assignment_id}/release")][0])
    savepoint = scene.connection.begin_nested()
    try:
        resp = scene.app.test_client().post(f"{API}/assignments/{w.assignment_of['A']}/release", headers=headers)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        assert resp.get_json()["ship_to"] is None
        assert _shown(resp.get_data(as_text=True)) == []
    finally:
        savepoint.rollback()


def test_the_operator_s_lookup_is_logged_for_each_order(scene):
    from broker.privacy.lookup import find_customer

    w = scene.world
    savepoint = scene.connection.begin_nested()
    try:
        found = find_customer(scene.ctx, "quillfeather@private.example", "the customer asked what we hold")
        assert [r.id for r in found] == [w.order_id["A"]]
        assert _rows(scene.connection, w.order_id["A"], ("operator", None)) == 1
    finally:
        savepoint.rollback()


def test_a_view_that_would_show_a_customer_unlogged_cannot_be_made(scene):
    """The lock behind the test above: a new service that forgot `disclose_to`
    fails loudly instead of answering with the customer's details."""
    with scene.ctx.uow() as uow:
        from broker.orders.models import Order

        order = uow.session.get(Order, scene.world.order_id["A"])
    with pytest.raises(UnloggedDisclosure):
        OrderView(order, Party.FULFILLER, None, None, True, False)
    with pytest.raises(UnloggedDisclosure):
        Disclosed("retailer", 1, frozenset({"name", "address"}))
    assert OrderView(order, Party.CUSTOMER, None, None, True, True).show_customer
    assert not OrderView(order, Party.MANUFACTURER, None, None, False, False).show_customer
