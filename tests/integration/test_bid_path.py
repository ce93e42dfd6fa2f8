"""The bid path (broker/board/bidding.py): what it answers is what it stored, and
it stays the few statements it is.

A new bid's answer is built from the values sent, not read back from the row:
these tests read the row and compare, for a new bid, a resized one and one
placed again after a withdrawal.
"""

from __future__ import annotations


import pytest
from sqlalchemy import select

from broker.board.models import Bid
from tests.integration.test_query_counts import counting
from tests.factories import HERE, World, north_of

BIKE, HELMET = ("BIKE", 90000), ("HELMET", 10000)


@pytest.fixture
def scene(ctx):
    world = World(ctx)
    maker = world.manufacturer(products=[BIKE, HELMET])
    shop = world.retailer(north_of(HERE, 3), dealer_of=[maker], name="Bike shop")
    placed = world.order(maker, items=[("BIKE", 1), ("HELMET", 1)])
    return shop, placed, world.listing_id(placed.order.id)


def post(client, shop, listing_id, body):
    return client.post(f"/api/v1/board/{listing_id}/bids", json=body,
                       headers={"Authorization": f"Bearer {shop.key}"})


def stored(session, shop, listing_id) -> dict:
    bid = session.scalar(select(Bid).where(Bid.listing_id == listing_id, Bid.retailer_id == shop.id)
                         .execution_options(populate_existing=True))
    return {"id": bid.id, "listing_id": bid.listing_id, "store_id": bid.store_id, "distance_km": bid.distance_km,
            "price": bid.price, "shipping": bid.shipping, "tax": bid.tax, "status": bid.status,
            "created_at": bid.created_at.isoformat(), "items": bid.lines, "standing_bid_id": bid.standing_bid_id}


class TestTheAnswerIsTheRow:
    def test_a_new_bid_on_lines(self, client, session, scene):
        shop, placed, listing_id = scene
        response = post(client, shop, listing_id, {"items": [{"sku": "BIKE", "quantity": 1}]})
        assert response.status_code == 201
        assert response.get_json() == stored(session, shop, listing_id)
        assert response.get_json()["items"] == [{"line_id": placed.order.lines[0].id, "sku": "BIKE", "quantity": 1}]

    def test_a_repeat_that_resizes_the_bid(self, client, session, scene):
        shop, _, listing_id = scene
        first = post(client, shop, listing_id, {"items": [{"sku": "BIKE", "quantity": 1}]}).get_json()
        response = post(client, shop, listing_id, {})
        assert response.status_code == 200
        assert response.get_json() == stored(session, shop, listing_id)
        assert response.get_json()["items"] is None
        assert (response.get_json()["id"], response.get_json()["created_at"]) == (first["id"], first["created_at"])

    def test_a_bid_placed_again_after_its_withdrawal(self, client, clock, session, scene):
        shop, _, listing_id = scene
        first = post(client, shop, listing_id, {}).get_json()
        headers = {"Authorization": f"Bearer {shop.key}"}
        assert client.delete(f"/api/v1/board/{listing_id}/bids", headers=headers).status_code == 204
        clock.advance(minutes=5)
        response = post(client, shop, listing_id, {"items": [{"sku": "HELMET", "quantity": 1}]})
        assert response.status_code == 201
        assert response.get_json() == stored(session, shop, listing_id)
        assert response.get_json()["id"] == first["id"]
        assert response.get_json()["created_at"] > first["created_at"]
        assert response.get_json()["status"] == "active"


class TestStatements:
    """The key check, the listing locked and read with the retailer's stores, the
    insert: a bid that is more than that has grown an ORM load or a lookup per store."""

    def test_a_new_bid_runs_three_statements_and_a_repeat_four(self, ctx, client, scene):
        shop, _, listing_id = scene
        with counting(ctx.engine) as statements:
            assert post(client, shop, listing_id, {}).status_code == 201
        assert len(statements) == 3, statements
        with counting(ctx.engine) as statements:
            assert post(client, shop, listing_id, {}).status_code == 200
        assert len(statements) == 4, statements
