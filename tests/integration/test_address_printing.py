"""Every place an address is printed prints it in its country's format (one
formatter, broker.addresses): the console's order and to-ship pages, the
customer's order page, the confirmation email and the data download. (The
portal's packing slip: tests/integration/test_portal_pages.py.)"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from broker.accounts.models import Role
from broker.orders import services as orders
from broker.outbox.models import OutboxMessage
from broker.settlement.services import settle
from tests.conftest import START
from tests.factories import World
from tests.integration.test_console_pages import sign_in

BERLIN = orders.Address("Invalidenstraße 117", "Berlin", "10115", "DE")
PRINTED = ["Max Mustermann", "Invalidenstraße 117", "10115 Berlin", "GERMANY"]


def address_blocks(page: str) -> list[list[str]]:
    return [[line.strip() for line in re.split(r"<br>", block) if line.strip()]
            for block in re.findall(r"<address[^>]*>(.*?)</address>", page, re.DOTALL)]


@pytest.fixture
def berlin_order(ctx):
    world = World(ctx)
    maker = world.manufacturer(slug="berliner-raeder", currency="EUR")
    placed = orders.place_order(ctx, maker.slug, orders.PlaceOrder(
        items=[orders.Item("SKU-1", 1)], customer=orders.Customer("Max Mustermann", "max@example.com"),
        ship_to=BERLIN))
    return maker, placed


def test_the_console_prints_a_fallback_order_as_its_country_writes_it(ctx, client, berlin_order):
    maker, placed = berlin_order
    settle(World(ctx).at(START + timedelta(hours=13)), as_of=START + timedelta(hours=13))  # nobody bid
    sign_in(client, ctx, Role.MANUFACTURER, maker.id)
    for path in ("/console/to-ship", f"/console/orders/{placed.order.id}"):
        page = client.get(path).get_data(as_text=True)
        assert PRINTED in address_blocks(page), path


def test_the_customer_s_page_email_and_download_print_it_as_its_country_writes_it(ctx, client, session,
                                                                                   berlin_order):
    maker, placed = berlin_order
    page = client.get(f"/s/{maker.slug}/o/{placed.order.id}/{placed.access_token}", follow_redirects=True)
    assert page.status_code == 200
    assert PRINTED in address_blocks(page.get_data(as_text=True))
    email = session.scalar(select(OutboxMessage).where(OutboxMessage.topic == "email.order_confirmation"))
    assert "\n".join(f"  {line}" for line in PRINTED) in email.payload["text"]
    data = client.get(f"/api/v1/orders/{placed.order.id}/data", headers={"X-Access-Token": placed.access_token})
    ship_to = data.get_json()["order"]["ship_to"]
    assert ship_to["formatted"] == PRINTED
    assert (ship_to["region"], ship_to["precision"], ship_to["area"]) == ("", "city", "Berlin, DE 101xx")
