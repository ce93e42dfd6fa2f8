"""One email rule at every door an address comes in by (broker/email_address.py).

An order placed with `ada@` once made the emails job raise every minute from then
on. Every door below gets the same table of bad addresses and must refuse each
one, for a person, before anything is written: the storefront's checkout and the
orders API, a personal request's contact (API and page), retailer sign-up,
a manufacturer's invitation, colleagues, connected accounts, the operator's
`POST /retailers`, `broker user add` and `broker customer find`.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from broker.accounts.models import Role
from broker.db import make_engine
from broker.identity.models import User
from broker.privacy.models import Disclosure
from broker.email_address import check_email
from tests.conftest import ADMIN_TOKEN
from tests.factories import HERE, north_of
from tests.integration.test_bad_input import assert_unchanged, database
from tests.pages import CSRF, post, sign_in, user_for

BAD = [
    "ada@",
    "ada@localhost",
    "a@b",
    "ada",
    "@example.com",
    "ada@@example.com",
    "ada@exa mple.com",
    "ada lovelace@example.com",
    "ada@example.com\r\nBcc: everyone@example.com",
    "ada\n@example.com",
    "ada@.example.com",
    "ada@example..com",
    "ada@example.invalid",
    "ada@example.test",
    "ada@[127.0.0.1]",
    '"ada lovelace"@example.com',
    "ädä@example.com",
    "a" * 65 + "@example.com",
    "ada@" + "a" * 250 + ".com",
]
GOOD = "Ada.Lovelace@Example.COM"


def _refused(resp, field: str) -> None:
    """A 422 naming the field, or the input boundary's 400 for a line break."""
    assert resp.status_code in (400, 422), resp.get_data(as_text=True)[:500]
    if resp.status_code == 422 and resp.mimetype == "application/problem+json":
        assert field in resp.get_json()["errors"], resp.get_json()
    elif resp.status_code == 422:
        assert "email address" in resp.get_data(as_text=True), resp.get_data(as_text=True)


def test_the_rule_refuses_the_table_and_keeps_a_good_address():
    for address in BAD:
        with pytest.raises(ValueError, match="email address"):
            check_email(address)
    assert check_email(f"  {GOOD} ") == "Ada.Lovelace@example.com"
    assert check_email("ada@münchen.de") == "ada@xn--mnchen-3ya.de"  # sendable by every mail server


@pytest.fixture
def maker(world):
    return world.manufacturer(products=(("SKU-1", 5000),))


ORDER = {"items": [{"sku": "SKU-1", "quantity": 1}], "customer": {"name": "Ada"},
         "ship_to": {"line1": "1 Main St", "city": "San Francisco", "postal_code": "94103", "country": "US"}}


def test_the_orders_api_refuses_every_bad_address(client, ctx, maker):
    before = database(ctx)
    for address in BAD:
        body = {**ORDER, "customer": {"name": "Ada", "email": address}}
        _refused(client.post(f"/api/v1/storefronts/{maker.slug}/orders", json=body), "customer.email")
    assert_unchanged(ctx, before)
    ok = client.post(f"/api/v1/storefronts/{maker.slug}/orders", json={**ORDER, "customer": {
        "name": "Ada", "email": GOOD}})
    assert ok.status_code == 201, ok.get_data(as_text=True)


def test_the_storefront_checkout_refuses_every_bad_address(client, ctx, maker):
    before = database(ctx)
    form = {"name": "Ada", "line1": "1 Main St", "city": "San Francisco", "postal_code": "94103", "country": "US",
            "delivery": "ship", "payment": "test-approve"}
    for address in BAD:
        resp = client.post(f"/s/{maker.slug}/checkout?cart=SKU-1:1", data={**form, "email": address})
        _refused(resp, "email")
    assert_unchanged(ctx, before)
    ok = client.post(f"/s/{maker.slug}/checkout?cart=SKU-1:1", data={**form, "email": GOOD})
    assert ok.status_code == 303, ok.get_data(as_text=True)[:500]


REQUEST = {"description": "a brass kettle", "quantity": 1, "max_price": 9000, "currency": "USD",
           "location": {"lat": HERE[0], "lon": HERE[1]},
           "ship_to": {"name": "Ada", "line1": "1 Main St", "city": "San Francisco", "postal_code": "94103",
                       "country": "US"}}


def test_a_personal_request_s_contact_refuses_every_bad_address(app, ctx):
    before = database(ctx)
    for address in BAD:
        client = app.test_client()  # posting requests is rate limited per client
        _refused(client.post("/api/v1/requests", json={**REQUEST, "contact": address},
                             environ_base={"REMOTE_ADDR": f"10.1.{len(address) % 250}.{BAD.index(address)}"}),
                 "contact")
        form = {"description": "a kettle", "quantity": "1", "max_price": "90.00", "currency": "USD",
                "postal_code": "94103", "country": "US", "name": "Ada", "line1": "1 Main St",
                "city": "San Francisco", "prefer": "nearest", "days": "7", "contact": address}
        _refused(client.post("/requests/new", data=form,
                             environ_base={"REMOTE_ADDR": f"10.2.{len(address) % 250}.{BAD.index(address)}"}),
                 "contact")
    assert_unchanged(ctx, before)


def test_sign_up_refuses_every_bad_address(app, ctx):
    before = database(ctx)
    form = {"company": "Bay Bikes", "name": "Robin", "password": "correct horse battery", "store_name": "Mission",
            "postal_code": "94103", "country": "US", "service_radius_km": "40"}
    for i, address in enumerate(BAD):
        client = app.test_client()
        environ = {"REMOTE_ADDR": f"10.3.0.{i}"}  # sign-up is rate limited per address
        page = client.get("/signup", environ_base=environ).get_data(as_text=True)
        token = CSRF.search(page).group(1)
        _refused(client.post("/signup", data={**form, "email": address, "csrf_token": token}, environ_base=environ),
                 "email")
    assert_unchanged(ctx, before)


def test_invitations_and_colleagues_refuse_every_bad_address(client, ctx, world, maker):
    user_for(ctx, Role.MANUFACTURER, maker.id, "owner@maker.example")
    sign_in(client, "owner@maker.example")
    before = database(ctx)
    for address in BAD:
        _refused(post(client, "/console/dealers/invite", {"email": address}, form="/console/dealers"), "email")
        _refused(post(client, "/account/users", {"email": address, "name": "Pat"}, form="/account"), "email")
    assert_unchanged(ctx, before)


def test_the_operator_s_and_a_payee_s_addresses_refuse_every_bad_address(client, ctx, world, maker):
    shop = world.retailer(north_of(HERE, 2))
    before = database(ctx)
    for address in BAD:
        retailer = {"name": "Corner", "email": address, "location": {"lat": HERE[0], "lon": HERE[1]},
                    "service_radius_km": 10}
        _refused(client.post("/api/v1/retailers", json=retailer, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}),
                 "email")
        _refused(client.post("/api/v1/connect", json={"email": address},
                             headers={"Authorization": f"Bearer {shop.key}"}), "email")
    assert_unchanged(ctx, before)


def test_the_command_line_refuses_every_bad_address(database_url, monkeypatch):
    """The commands run in their own process's connection, so this test holds no
    transaction of its own (SQLite would be locked against them); it counts the
    users and disclosures with a connection of its own instead."""
    from web import cli
    from web.cli import main

    # A command's process ends with it, and its connections with that; here they
    # are closed after each command instead.
    made = []
    real_context = cli._context
    monkeypatch.setattr(cli, "_context", lambda *args, **kwargs: made.append(real_context(*args, **kwargs))
                        or made[-1])
    engine = make_engine(database_url)

    def counts():
        with engine.connect() as connection:
            return [connection.scalar(select(func.count()).select_from(t)) for t in (User, Disclosure)]

    before = counts()
    runner = CliRunner()
    # On PostgreSQL the commands refuse to start without a secret key (they sign links).
    env = {"DATABASE_URL": database_url, "BROKER_ADMIN_TOKEN": ADMIN_TOKEN, "BROKER_SECRET_KEY": "test-secret"}
    try:
        for address in BAD:
            added = runner.invoke(main, ["user", "add", "--retailer", "1", address], env=env)
            assert added.exit_code != 0 and "email address" in added.output, (address, added.output)
            found = runner.invoke(main, ["customer", "find", "--reason", "the customer asked", address], env=env)
            assert found.exit_code != 0 and "email address" in found.output, (address, found.output)
            while made:
                made.pop().engine.dispose()
        assert counts() == before
    finally:
        engine.dispose()
