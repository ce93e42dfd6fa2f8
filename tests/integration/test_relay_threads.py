"""The contact relay keeps one thread per assignment.

A customer tells the first fulfiller the gate code; the first fulfiller gives
the order back; the next one must not read what was said to the first. The
customer reads every thread of the order, each labelled with who it is with.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from broker.accounts import services as accounts
from broker.fulfilment import services as fulfilment
from broker.settlement.services import settle
from tests.conftest import START
from tests.factories import HERE, World, north_of

SETTLED = START + timedelta(hours=13)


def auth(key):
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def awarded(ctx, clock):
    """An order won by the nearer of two bidders, whose stores have names of their own."""
    world = World(ctx)
    maker = world.manufacturer()
    first = world.retailer(north_of(HERE, 2), dealer_of=[maker], name="First Cycles")
    second = world.retailer(north_of(HERE, 7), dealer_of=[maker], name="Second Cycles")
    accounts.update_store(ctx, first.actor, first.store_id, accounts.StoreChanges(name="First Cycles, Valencia St"))
    accounts.update_store(ctx, second.actor, second.store_id, accounts.StoreChanges(name="Second Cycles, Mission"))
    placed = world.order(maker)
    world.bid(first, placed.order.id)
    world.bid(second, placed.order.id)
    clock.now = SETTLED
    settle(ctx)
    return placed, first, second


def bodies(response):
    assert response.status_code == 200, response.get_json()
    return [m["body"] for m in response.get_json()]


def test_next_fulfiller_does_not_see_the_first_ones_messages(ctx, client, clock, awarded):
    placed, first, second = awarded
    order_id, token = placed.order.id, {"X-Access-Token": placed.access_token}
    messages = f"/api/v1/orders/{order_id}/messages"
    clock.advance(hours=1)
    assert client.post(messages, headers=token, json={"body": "The gate code is 4471"}).status_code == 201
    clock.advance(minutes=5)
    assert client.post(messages, headers=auth(first.key), json={"body": "Noted, thanks"}).status_code == 201

    clock.advance(hours=1)
    [mine] = client.get("/api/v1/assignments", headers=auth(first.key)).get_json()
    assert client.post(f"/api/v1/assignments/{mine['id']}/release", headers=auth(first.key)).status_code == 200

    # The next fulfiller starts with an empty thread, and writes in its own.
    assert bodies(client.get(messages, headers=auth(second.key))) == []
    clock.advance(minutes=5)
    assert client.post(messages, headers=auth(second.key), json={"body": "Hello from the new shop"}).status_code == 201
    clock.advance(minutes=5)
    assert client.post(messages, headers=token, json={"body": "Please ring twice"}).status_code == 201
    seen_by_second = client.get(messages, headers=auth(second.key))
    assert bodies(seen_by_second) == ["Hello from the new shop", "Please ring twice"]
    assert "4471" not in seen_by_second.get_data(as_text=True)
    # The first one has no thread any more, not even its own.
    assert client.get(messages, headers=auth(first.key)).status_code == 404
    assert client.post(messages, headers=auth(first.key), json={"body": "Still there?"}).status_code == 404

    # The customer reads both threads, each labelled with its store.
    everything = client.get(messages, headers=token).get_json()
    assert [(m["body"], m["fulfiller"], m["mine"]) for m in everything] == [
        ("The gate code is 4471", "First Cycles, Valencia St", True),
        ("Noted, thanks", "First Cycles, Valencia St", False),
        ("Hello from the new shop", "Second Cycles, Mission", False),
        ("Please ring twice", "Second Cycles, Mission", True),
    ]
    assert len({m["assignment_id"] for m in everything}) == 2


def test_a_lapse_also_starts_a_new_thread(ctx, client, clock, awarded):
    placed, first, second = awarded
    order_id, token = placed.order.id, {"X-Access-Token": placed.access_token}
    messages = f"/api/v1/orders/{order_id}/messages"
    assert client.post(messages, headers=token, json={"body": "Gate code 4471"}).status_code == 201
    clock.now = SETTLED + timedelta(hours=49)  # past the 48-hour window: the first lapses
    assert fulfilment.check_deadlines(ctx).lapsed == 1
    assert bodies(client.get(messages, headers=auth(second.key))) == []


def test_a_customer_cannot_write_before_anyone_has_the_order(ctx, client):
    world = World(ctx)
    placed = world.order(world.manufacturer())
    response = client.post(f"/api/v1/orders/{placed.order.id}/messages",
                           headers={"X-Access-Token": placed.access_token}, json={"body": "Gate code 4471"})
    assert response.status_code == 409
    assert "no one is fulfilling this order" in response.get_json()["detail"]


class TestPages:
    """The thread in the pages: the customer's order page and the winner's portal
    page; each side is emailed a notice with a link, never the text."""

    def test_both_sides_write_in_the_pages_and_the_notices_carry_no_text(self, ctx, client, awarded, session):
        import re

        from sqlalchemy import func, select

        from broker.accounts.models import Manufacturer, Role
        from broker.fulfilment.models import Assignment
        from broker.outbox.models import OutboxMessage
        from tests.pages import post, sign_in, user_for

        placed, first, _ = awarded
        order = placed.order
        slug = session.scalar(select(Manufacturer.slug).where(Manufacturer.id == order.manufacturer_id))
        path = f"/s/{slug}/o/{order.id}"
        page = client.get(f"{path}/{placed.access_token}", follow_redirects=True).get_data(as_text=True)
        assert 'id="messages"' in page and "Write to First Cycles, Valencia St" in page
        csrf = re.search(r'name="link_csrf" value="([^"]+)"', page).group(1)
        blank = client.post(f"{path}/message", data={"body": "  ", "link_csrf": csrf})
        assert blank.status_code == 422 and 'id="message-body-error"' in blank.get_data(as_text=True)
        key = re.search(r'<form method="post" action="[^"]*/message".*?name="form_key" value="([^"]+)"', page,
                        re.S).group(1)
        sent = client.post(f"{path}/message", data={"body": "The gate code is 4471", "link_csrf": csrf,
                                                    "form_key": key})
        assert sent.status_code == 303 and sent.headers["Location"] == f"{path}?done=message#messages"
        # A reload or a double click sends the same form again: one message, one notice.
        again = client.post(f"{path}/message", data={"body": "The gate code is 4471", "link_csrf": csrf,
                                                     "form_key": key})
        assert again.status_code == 303 and again.headers["Location"] == sent.headers["Location"]
        from broker.personal.models import Message
        assert session.scalar(select(func.count(Message.id))) == 1
        page = client.get(f"{path}?done=message").get_data(as_text=True)
        assert "Your message is sent" in page and "The gate code is 4471" in page

        notices = session.scalars(select(OutboxMessage.payload).where(OutboxMessage.topic == "email.message")).all()
        assert notices and all("4471" not in n["text"] and "gate" not in n["text"] for n in notices)
        assignment_id = session.scalar(select(Assignment.id).where(Assignment.order_id == order.id))
        assert all(f"/portal/orders/{assignment_id}#messages" in n["text"] for n in notices)

        user_for(ctx, Role.RETAILER, first.id, "clerk@first.example")
        client.delete_cookie("broker_order", path=path)
        sign_in(client, "clerk@first.example")
        portal = f"/portal/orders/{assignment_id}"
        assert "The gate code is 4471" in client.get(portal).get_data(as_text=True)
        replied = post(client, f"{portal}/messages", {"body": "Noted, see you at 5"}, form=portal)
        assert replied.status_code == 302
        assert "Message sent" in client.get(replied.headers["Location"]).get_data(as_text=True)
        to_customer = [n for n in session.scalars(select(OutboxMessage.payload).where(
            OutboxMessage.topic == "email.message")) if n["subject"].startswith("First Cycles")]
        assert to_customer and all("Noted" not in n["text"] and f"{path}#messages" in n["text"]
                                   for n in to_customer)
        assert all(placed.access_token not in n["text"] for n in to_customer)
