"""Explaining settlement: retailers' bid outcomes, run reports, and /healthz."""

import dataclasses
from datetime import timedelta

import pytest

from broker.clock import FrozenClock
from tests.conftest import ADMIN_TOKEN, START
from tests.factories import HERE, World, north_of

LATER = START + timedelta(hours=13)
OPERATOR = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def auth(key):
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def scene(ctx, client):
    """Two makers; A's order is contested by a near and a far retailer, a second A
    order has one bid, from a store that has since shrunk its radius; B's order
    has no bids."""
    world = World(ctx)
    a, b = world.manufacturer(), world.manufacturer()
    near = world.retailer(north_of(HERE, 2), dealer_of=[a], name="Near Shop")
    far = world.retailer(north_of(HERE, 30), radius=40, dealer_of=[a], name="Far Shop")
    contested = world.order(a, name="Zelda Customer", email="zelda@secret.example")
    world.bid(near, contested.order.id)
    world.bid(far, contested.order.id)
    shrinker = world.retailer(north_of(HERE, 20), radius=40, dealer_of=[a], name="Shrinking Shop")
    edge = world.order(a, to=north_of(HERE, 5))
    world.bid(shrinker, edge.order.id)
    from broker.accounts.services import StoreChanges, update_store

    update_store(ctx, shrinker.actor, shrinker.store_id, StoreChanges(service_radius_km=10))  # now out of range
    lonely = world.order(b)
    run = client.post("/api/v1/settlements", headers=OPERATOR, json={"as_of": LATER.isoformat()}).get_json()
    return dict(a=a, b=b, near=near, far=far, shrinker=shrinker, contested=contested, edge=edge, lonely=lonely,
                run=run)


class TestBidOutcomes:
    def test_winner_sees_it_won(self, scene, client):
        [outcome] = client.get("/api/v1/bids", headers=auth(scene["near"].key)).get_json()
        assert outcome["outcome"] == "won" and outcome["winner"] == "you" and outcome["won_round"] == 0

    def test_loser_sees_the_rule_and_the_winners_band_but_not_who(self, scene, client):
        response = client.get("/api/v1/bids", headers=auth(scene["far"].key))
        [contested] = response.get_json()
        assert contested["outcome"] == "lost"
        assert contested["rule"] == "nearest"
        assert contested["winner"] == "another retailer"
        assert contested["winner_distance_band"] == "under 5 km"
        assert contested["my_eligibility"] == ""
        assert set(contested) == {"listing_id", "kind", "area", "price", "currency", "bid_at", "my_distance_km",
                                  "outcome", "decided_at", "rule", "winner", "winner_distance_band",
                                  "my_eligibility", "won_round", "label", "reason"}  # nobody named
        assert (contested["label"], contested["reason"]) == (
            "Lost", "Lost: a nearer bidder won; the winner was under 5 km away.")
        text = response.get_data(as_text=True)
        for secret in ("Near Shop", "Zelda", "zelda@secret.example", "Secret Lane"):
            assert secret not in text

    def test_loser_learns_its_own_bid_was_ineligible(self, scene, client):
        [edge] = client.get("/api/v1/bids", headers=auth(scene["shrinker"].key)).get_json()
        assert edge["outcome"] == "lost"
        assert edge["winner"] == "the manufacturer" and edge["winner_distance_band"] is None
        assert edge["my_eligibility"] == "outside_service_radius"
        assert edge["rule"] == "no_eligible_bids"
        assert edge["reason"] == "Lost: out of reach: outside your store's service radius."

    def test_open_and_withdrawn_bids(self, ctx, client):
        from broker.board.services import withdraw_bid

        world = World(ctx)
        maker = world.manufacturer()
        shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        kept, dropped = world.order(maker), world.order(maker)
        world.bid(shop, kept.order.id)
        world.bid(shop, dropped.order.id)
        withdraw_bid(ctx, shop.actor, world.listing_id(dropped.order.id))
        outcomes = {o["listing_id"]: o["outcome"] for o in client.get("/api/v1/bids", headers=auth(shop.key)).get_json()}
        assert outcomes == {world.listing_id(kept.order.id): "pending", world.listing_id(dropped.order.id): "withdrawn"}


class TestRunReports:
    def test_operator_sees_the_whole_run(self, scene, client):
        assert scene["run"]["settled"] == 3
        [run] = client.get("/api/v1/settlements", headers=OPERATOR).get_json()
        assert (run["id"], run["status"], run["trigger"]) == (scene["run"]["id"], "completed", "api")
        assert (run["settled"], run["to_retailers"], run["to_manufacturer"]) == (3, 1, 2)
        assert run["seconds"] is not None and run["seconds"] >= 0

    def test_manufacturer_sees_only_its_own_listings_of_the_run(self, scene, client):
        report = client.get(f"/api/v1/settlements/{scene['run']['id']}", headers=auth(scene["a"].key)).get_json()
        assert (report["settled"], report["to_retailers"], report["to_manufacturer"]) == (2, 1, 1)
        assert report["by_rule"] == {"nearest": 1, "no_eligible_bids": 1}
        assert report["retailers"] == [{"retailer_id": scene["near"].id, "name": "Near Shop", "listings": 1,
                                         "average_distance_km": pytest.approx(2, abs=0.05)}]
        other = client.get(f"/api/v1/settlements/{scene['run']['id']}", headers=auth(scene["b"].key)).get_json()
        assert (other["settled"], other["to_manufacturer"], other["retailers"]) == (1, 1, [])

    def test_retailers_cannot_read_run_reports(self, scene, client):
        assert client.get("/api/v1/settlements", headers=auth(scene["near"].key)).status_code == 403
        assert client.get(f"/api/v1/settlements/{scene['run']['id']}",
                          headers=auth(scene["near"].key)).status_code == 403

    def test_unknown_run_is_404(self, scene, client):
        assert client.get("/api/v1/settlements/999999", headers=OPERATOR).status_code == 404


class TestHealth:
    def test_reports_database_and_last_settlement(self, scene, client):
        body = client.get("/healthz").get_json()
        assert body["status"] == "ok" and body["database"] == "ok"
        assert body["last_settlement"]["id"] == scene["run"]["id"]
        assert body["last_failed_settlement"] is None

    def test_a_failed_run_is_visible(self, ctx, client, monkeypatch):
        import broker.settlement.services as settlement

        World(ctx).order(World(ctx).manufacturer())

        def boom(*args, **kwargs):
            raise RuntimeError("database fell over")

        # Claiming the work fails, not one listing (a listing that fails alone is
        # parked and the run goes on: tests/integration/test_parking.py).
        monkeypatch.setattr(settlement, "_due", boom)
        with pytest.raises(RuntimeError):
            settlement.settle(ctx, as_of=LATER)
        body = client.get("/healthz").get_json()
        assert "database fell over" in body["last_failed_settlement"]["error"]
        runs = client.get("/api/v1/settlements", headers=OPERATOR).get_json()
        assert runs[0]["status"] == "failed" and runs[0]["settled"] == 0

    def test_database_down_is_503(self, app, client, monkeypatch):
        from sqlalchemy.exc import OperationalError

        ctx = app.extensions["broker"]

        class Down:
            def __call__(self):
                raise OperationalError("SELECT 1", {}, Exception("connection refused"))

        monkeypatch.setattr(ctx, "session_factory", Down())
        response = client.get("/healthz")
        assert response.status_code == 503 and response.get_json()["database"] == "down"


class TestEveryOutcomeIsTruthful:
    """What became of a bid after it won, or when a request ended, in `/bids`."""

    @pytest.fixture
    def won(self, scene, client):
        """The near shop's assignment of the contested order, and a way to read
        a shop's outcome for that order."""
        [assignment] = client.get("/api/v1/assignments", headers=auth(scene["near"].key)).get_json()
        listing_id = World(client.application.extensions["broker"]).listing_id(assignment["order_id"])

        def outcome(shop):
            return next(o for o in client.get("/api/v1/bids", headers=auth(shop.key)).get_json()
                        if o["listing_id"] == listing_id)
        return assignment, outcome

    def test_lapsed_assignment_is_not_reported_as_won(self, scene, won, ctx):
        from broker.fulfilment.services import check_deadlines

        _, outcome = won
        assert check_deadlines(dataclasses.replace(ctx, clock=FrozenClock(LATER + timedelta(hours=49)))).lapsed == 1
        mine = outcome(scene["near"])
        assert (mine["outcome"], mine["winner"], mine["won_round"]) == ("lapsed", "you", 0)
        assert mine["label"] == "Lapsed" and "did not ship in time" in mine["reason"]
        # The order went on to the far shop, which now has it.
        theirs = outcome(scene["far"])
        assert (theirs["outcome"], theirs["won_round"]) == ("won", 1)

    def test_released_assignment_is_reported_as_released(self, scene, won, client):
        assignment, outcome = won
        assert client.post(f"/api/v1/assignments/{assignment['id']}/release",
                           headers=auth(scene["near"].key)).status_code == 200
        assert outcome(scene["near"])["outcome"] == "released"
        assert outcome(scene["far"])["outcome"] == "won"

    def test_an_order_cancelled_after_the_award_is_reported_as_cancelled(self, scene, won, client):
        _, outcome = won
        contested = scene["contested"]
        assert client.post(f"/api/v1/orders/{contested.order.id}/cancel",
                           headers={"X-Access-Token": contested.access_token}).status_code == 200
        assert outcome(scene["near"])["outcome"] == "cancelled"
        assert outcome(scene["far"])["outcome"] == "lost"


class TestRequestOutcomes:
    @pytest.fixture
    def request_with_two_offers(self, ctx, client):
        world = World(ctx)
        near = world.retailer(north_of(HERE, 2), name="Near Offer")
        far = world.retailer(north_of(HERE, 9), name="Far Offer")
        posted = client.post("/api/v1/requests", json={
            "description": "a cast-iron kettle", "quantity": 1, "max_price": 9000, "currency": "USD",
            "location": {"lat": HERE[0], "lon": HERE[1]},
            "ship_to": {"name": "Grace Hopper", "line1": "77 Cobol Court", "city": "San Francisco",
                        "postal_code": "94103", "country": "US"}}).get_json()
        [listing] = client.get("/api/v1/board", headers=auth(near.key)).get_json()
        offers = {shop.id: client.post(f"/api/v1/board/{listing['id']}/bids", headers=auth(shop.key),
                                       json={"price": 8000}).get_json() for shop in (near, far)}
        return posted, near, far, offers

    def test_an_offer_the_customer_did_not_accept_says_so(self, request_with_two_offers, client):
        posted, near, far, offers = request_with_two_offers
        assert client.post(f"/api/v1/requests/{posted['id']}/accept", headers={"X-Access-Token": posted["access_token"]},
                           json={"bid_id": offers[far.id]["id"]}).status_code == 200
        [chose_another] = client.get("/api/v1/bids", headers=auth(near.key)).get_json()
        assert (chose_another["outcome"], chose_another["rule"]) == ("customer_chose_another", "customer_choice")
        assert chose_another["label"] == "Customer chose another offer"
        assert "withdr" not in chose_another["reason"].lower()
        [accepted] = client.get("/api/v1/bids", headers=auth(far.key)).get_json()
        assert accepted["outcome"] == "won"

    def test_a_request_that_expired_says_expired(self, request_with_two_offers, client, ctx):
        from broker.accounts.services import StoreChanges, update_store
        from broker.personal.services import expire_requests

        _, near, far, _ = request_with_two_offers
        for shop in (near, far):  # neither offer can win any more
            update_store(ctx, shop.actor, shop.store_id, StoreChanges(is_open=False))
        assert expire_requests(dataclasses.replace(ctx, clock=FrozenClock(START + timedelta(days=8)))).expired == 1
        [expired] = client.get("/api/v1/bids", headers=auth(near.key)).get_json()
        assert expired["outcome"] == "expired"
