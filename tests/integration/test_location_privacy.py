"""Where a customer is, and what a retailer may learn of it before the award.

The attack these tests replay: a retailer adds stores wherever it likes, bids
from each (naming it with `store_id`), reads every distance it is shown, and
withdraws; a least-squares trilateration on those distances then finds the
ship-to point. Before the award everything a retailer observes must come from
the listing's cell (about 2 km wide), so the same attack on two customers at
opposite corners of one cell must see the very same numbers, and can place
neither of them more precisely than the cell. Settlement still ranks by the
exact distance, and the winner sees the exact address.
"""

from __future__ import annotations

import json
import math
import re
from datetime import timedelta

import pytest
from geopy.distance import geodesic
from sqlalchemy import select

from broker.accounts import services as accounts
from broker.accounts.models import Role
from broker.board.models import Bid, Listing
from broker.geo.distance import approximate_point, distance_km
from broker.geo.geocoding import LocationQuery
from broker.notifications.digest import new_listings
from broker.personal import services as personal
from broker.settlement.services import settle
from tests.conftest import START
from tests.factories import World
from tests.pages import sign_in, user_for

LATER = START + timedelta(hours=13)

# One grid cell, [37.76, 37.78) x [-122.42, -122.40), centre (37.77, -122.41),
# and two customers in it, each a few dozen metres from an opposite corner.
CENTRE = (37.77, -122.41)
NEAR_NW = (37.7795, -122.4196)
NEAR_SE = (37.7605, -122.4004)


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def toward(point, bearing: float, km: float) -> tuple[float, float]:
    found = geodesic(kilometers=km).destination(point, bearing)
    return found.latitude, found.longitude


def bearing_of(origin, target) -> float:
    """The initial bearing from `origin` to `target`, in degrees (a flat
    approximation: good to a fraction of a degree over a few kilometres)."""
    dy = target[0] - origin[0]
    dx = (target[1] - origin[1]) * math.cos(math.radians(origin[0]))
    return math.degrees(math.atan2(dx, dy)) % 360


def trilaterate(stores: list[tuple[float, float]], distances: list[float]) -> tuple[float, float]:
    """The point whose distances to `stores` best fit `distances` (least
    squares, Gauss-Newton in a plane tangent at the stores' centroid)."""
    lat0 = sum(s[0] for s in stores) / len(stores)
    lon0 = sum(s[1] for s in stores) / len(stores)
    ky, kx = 111.0, 111.0 * math.cos(math.radians(lat0))
    xy = [((s[1] - lon0) * kx, (s[0] - lat0) * ky) for s in stores]
    x = y = 0.0
    for _ in range(100):
        # Normal equations of the linearised residuals r_i = |p - s_i| - d_i.
        a11 = a12 = a22 = b1 = b2 = 0.0
        for (sx, sy), d in zip(xy, distances):
            rng = math.hypot(x - sx, y - sy) or 1e-9
            jx, jy, r = (x - sx) / rng, (y - sy) / rng, rng - d
            a11, a12, a22 = a11 + jx * jx, a12 + jx * jy, a22 + jy * jy
            b1, b2 = b1 + jx * r, b2 + jy * r
        det = a11 * a22 - a12 * a12
        dx, dy = (a22 * b1 - a12 * b2) / det, (a11 * b2 - a12 * b1) / det
        x, y = x - dx, y - dy
        if math.hypot(dx, dy) < 1e-9:
            break
    return lat0 + y / ky, lon0 + x / kx


def ring_of_stores(client, key: str, n: int) -> list[tuple[int, tuple[float, float]]]:
    """`n` stores added by lat/lon around the cell, 4 to 25 km out, evenly spread
    in bearing (a well-conditioned trilateration), each covering the cell."""
    stores = []
    for i in range(n):
        point = toward(CENTRE, 360 * i / n + 7, 4 + 21 * ((i * 7) % n) / n)
        response = client.post("/api/v1/stores", headers=auth(key), json={
            "name": f"Probe {i}", "location": {"lat": point[0], "lon": point[1]}, "service_radius_km": 60})
        assert response.status_code == 201, response.get_json()
        stores.append((response.get_json()["id"], point))
    return stores


def observe(client, key: str, listing_id: int, stores, price: int | None = None) -> list[tuple]:
    """Bid on the listing from each store in turn and read every distance shown:
    the bid's answer, the board's distance and `my_bid`, the bid outcomes'
    `my_distance_km`; then withdraw."""
    seen = []
    for store_id, _ in stores:
        body = {"store_id": store_id} | ({"price": price} if price else {})
        answer = client.post(f"/api/v1/board/{listing_id}/bids", headers=auth(key), json=body)
        assert answer.status_code == 201, answer.get_json()
        [item] = [i for i in client.get("/api/v1/board?page_size=100", headers=auth(key)).get_json()
                  if i["id"] == listing_id]
        [outcome] = [o for o in client.get("/api/v1/bids?page_size=100", headers=auth(key)).get_json()
                     if o["listing_id"] == listing_id and o["outcome"] == "pending"]
        seen.append((answer.get_json()["distance_km"], item["my_bid"]["distance_km"], outcome["my_distance_km"],
                     item["distance_km"], item["area"]))
        assert client.delete(f"/api/v1/board/{listing_id}/bids", headers=auth(key)).status_code == 204
    return seen


def assert_nothing_finer_than_the_cell(stores, seen_nw, seen_se, n, what):
    # Everything the retailer saw is the same for both customers...
    assert seen_nw == seen_se
    # ...in whole kilometres, and the same in every view of the same bid.
    assert all(a == b == c and a == int(a) for a, b, c, _, _ in seen_nw)
    for name, exact, seen in (("NW", NEAR_NW, seen_nw), ("SE", NEAR_SE, seen_se)):
        estimate = trilaterate([point for _, point in stores], [a for a, _, _, _, _ in seen])
        error, off_centre = distance_km(*estimate, *exact), distance_km(*estimate, *CENTRE)
        print(f"{what}, {n} stores: the {name} customer trilaterated to {error:.3f} km from their door, "
              f"{off_centre:.3f} km from the cell's centre ({distance_km(*exact, *CENTRE):.3f} km from it)")
        # It lands on the cell's centre, within the rounding to whole kilometres...
        assert off_centre < 0.5
        # ...so no nearer the customer than the cell allows: each is about 1.35 km from the centre.
        assert error > 1.0


@pytest.mark.parametrize("n", [3, 10, 50])
def test_retailer_cannot_trilaterate_a_listing(ctx, client, n):
    world = World(ctx)
    maker = world.manufacturer()
    # Its first store is far away and small: the probes are the stores that matter.
    shop = world.retailer(toward(CENTRE, 0, 300), radius=1, dealer_of=[maker])
    nw = world.listing_id(world.order(maker, to=NEAR_NW).order.id)
    se = world.listing_id(world.order(maker, to=NEAR_SE).order.id)
    stores = ring_of_stores(client, shop.key, n)
    assert_nothing_finer_than_the_cell(stores, observe(client, shop.key, nw, stores),
                                       observe(client, shop.key, se, stores), n, "order")


def post_request_at(ctx, point, *, description="a cast-iron kettle") -> int:
    posted = personal.post_request(ctx, personal.PostRequest(
        description=description, quantity=1, max_price=9000, currency="USD",
        location=LocationQuery(lat=point[0], lon=point[1]),
        ship_to=personal.ShipTo("Grace Hopper", "77 Cobol Court", "San Francisco", "94103", "US")))
    with ctx.uow() as uow:
        return uow.session.scalar(select(Listing.id).where(Listing.request_id == posted.request.id))


@pytest.mark.parametrize("n", [3, 10, 50])
def test_retailer_without_a_dealer_cannot_trilaterate_a_free_text_request(ctx, client, n):
    world = World(ctx)
    shop = world.retailer(toward(CENTRE, 0, 300), radius=1)  # a dealer of nobody
    nw, se = post_request_at(ctx, NEAR_NW), post_request_at(ctx, NEAR_SE)
    stores = ring_of_stores(client, shop.key, n)
    assert_nothing_finer_than_the_cell(stores, observe(client, shop.key, nw, stores, price=8000),
                                       observe(client, shop.key, se, stores, price=8000), n, "request")


def test_covering_is_decided_by_the_cell(ctx, client):
    """A store's radius edge passes between the customer and the cell's centre:
    coverage follows the centre, on the board, when bidding, and at settlement."""
    world = World(ctx)
    maker = world.manufacturer()
    nw = world.order(maker, to=NEAR_NW)
    listing_id = world.listing_id(nw.order.id)
    away = bearing_of(NEAR_NW, CENTRE)  # from the customer, past the centre
    # 10 km from the centre on the far side: the customer is about 11.4 km away.
    reaches_centre = world.retailer(toward(CENTRE, away, 10), radius=10.7, dealer_of=[maker], name="Centre Shop")
    # 10 km from the customer on the near side: the centre is about 11.4 km away.
    reaches_customer = world.retailer(toward(NEAR_NW, (away + 180) % 360, 10), radius=10.7, dealer_of=[maker],
                                      name="Door Shop")

    def on_board(shop):
        return [i["id"] for i in client.get("/api/v1/board", headers=auth(shop.key)).get_json()]

    assert on_board(reaches_centre) == [listing_id]
    assert on_board(reaches_customer) == []
    assert client.post(f"/api/v1/board/{listing_id}/bids", headers=auth(reaches_customer.key),
                       json={}).status_code == 404
    named = client.post(f"/api/v1/board/{listing_id}/bids", headers=auth(reaches_customer.key),
                        json={"store_id": reaches_customer.store_id})
    assert named.status_code == 422
    assert "does not cover this listing's area" in named.get_json()["errors"]["store_id"][0]
    assert client.post(f"/api/v1/board/{listing_id}/bids", headers=auth(reaches_centre.key),
                       json={}).status_code == 201

    # A bid placed with a wider radius, whose store then shrinks to reach the
    # customer but not the centre, is out of range at settlement.
    accounts.update_store(ctx, reaches_customer.actor, reaches_customer.store_id,
                          accounts.StoreChanges(service_radius_km=30))
    assert client.post(f"/api/v1/board/{listing_id}/bids", headers=auth(reaches_customer.key),
                       json={}).status_code == 201
    accounts.update_store(ctx, reaches_customer.actor, reaches_customer.store_id,
                          accounts.StoreChanges(service_radius_km=10.7))
    settle(ctx, as_of=LATER)
    [won] = client.get("/api/v1/bids", headers=auth(reaches_centre.key)).get_json()
    assert (won["outcome"], won["rule"]) == ("won", "only_eligible_bid")
    [lost] = client.get("/api/v1/bids", headers=auth(reaches_customer.key)).get_json()
    assert (lost["outcome"], lost["my_eligibility"]) == ("lost", "outside_service_radius")


def test_settlement_ranks_by_exact_distance(ctx, client):
    """Two bidders at the same distance from the cell's centre are shown the same
    distance; the one exactly nearer the customer wins, although it bid later
    and has the higher id."""
    world = World(ctx)
    maker = world.manufacturer()
    listing_id = world.listing_id(world.order(maker, to=NEAR_NW).order.id)
    towards_customer = bearing_of(CENTRE, NEAR_NW)
    farther = world.retailer(toward(CENTRE, (towards_customer + 180) % 360, 6), dealer_of=[maker], name="Far Side")
    nearer = world.retailer(toward(CENTRE, towards_customer, 6), dealer_of=[maker], name="Near Side")
    shown = [client.post(f"/api/v1/board/{listing_id}/bids", headers=auth(shop.key), json={}).get_json()["distance_km"]
             for shop in (farther, nearer)]
    assert shown == [6.0, 6.0]
    settle(ctx, as_of=LATER)
    [won] = client.get("/api/v1/bids", headers=auth(nearer.key)).get_json()
    assert (won["outcome"], won["rule"]) == ("won", "nearest")
    [lost] = client.get("/api/v1/bids", headers=auth(farther.key)).get_json()
    assert (lost["outcome"], lost["rule"], lost["winner_distance_band"]) == ("lost", "nearest", "under 10 km")


def test_winner_sees_the_exact_address(ctx, client):
    """Before the award the retailer has the area and a whole-kilometre
    distance from the cell; once it wins, the street."""
    world = World(ctx)
    maker = world.manufacturer()
    placed = world.order(maker, to=NEAR_NW)
    listing_id = world.listing_id(placed.order.id)
    shop = world.retailer(toward(NEAR_NW, 0, 3), dealer_of=[maker])
    before = client.get("/api/v1/board", headers=auth(shop.key))
    [item] = before.get_json()
    expected = round(distance_km(*toward(NEAR_NW, 0, 3), *CENTRE))
    assert item["distance_km"] == expected != round(distance_km(*toward(NEAR_NW, 0, 3), *NEAR_NW), 3)
    assert "Secret Lane" not in before.get_data(as_text=True)
    client.post(f"/api/v1/board/{listing_id}/bids", headers=auth(shop.key), json={})
    settle(ctx, as_of=LATER)
    [assignment] = client.get("/api/v1/assignments", headers=auth(shop.key)).get_json()
    assert assignment["ship_to"]["line1"] == "1 Secret Lane"
    assert assignment["ship_to"]["postal_code"] == "94103"
    order = client.get(f"/api/v1/orders/{placed.order.id}", headers=auth(shop.key)).get_json()
    assert order["ship_to"]["line1"] == "1 Secret Lane"


def test_board_order_does_not_depend_on_the_exact_point(ctx, client):
    """Two listings in one cell are the same distance away as shown; the board
    lists them by id, although the later one is nearer the store exactly."""
    world = World(ctx)
    maker = world.manufacturer()
    first = world.listing_id(world.order(maker, to=NEAR_NW).order.id)
    second = world.listing_id(world.order(maker, to=NEAR_SE).order.id)
    shop = world.retailer(toward(NEAR_SE, bearing_of(NEAR_NW, NEAR_SE), 4), dealer_of=[maker])
    items = client.get("/api/v1/board", headers=auth(shop.key)).get_json()
    assert [i["id"] for i in items] == [first, second]
    assert items[0]["distance_km"] == items[1]["distance_km"]


def test_the_area_of_a_point_given_by_coordinates_is_its_cells(ctx, client):
    """Two customers in one cell, either side of a line where rounding the point
    to 0.1° would change: both listings read the same area."""
    world = World(ctx)
    shop = world.retailer((37.70, -122.40))
    # The cell [37.74, 37.76) x [-122.42, -122.40) holds 37.75, where "%.1f" turns.
    south, north = post_request_at(ctx, (37.7493, -122.4049)), post_request_at(ctx, (37.7507, -122.4051))
    areas = {i["id"]: i["area"] for i in client.get("/api/v1/board", headers=auth(shop.key)).get_json()}
    assert areas[south] == areas[north] == "near 37.8, -122.4"


def test_portal_board_map_and_digest_show_the_cell(ctx, client):
    """The portal's list and map, and the daily digest, show both customers of a
    cell at the same place and the same distance."""
    world = World(ctx)
    maker = world.manufacturer()
    shop = world.retailer(toward(CENTRE, 200, 7), dealer_of=[maker])
    nw = world.listing_id(world.order(maker, to=NEAR_NW).order.id)
    se = world.listing_id(world.order(maker, to=NEAR_SE).order.id)
    user_for(ctx, Role.RETAILER, shop.id, "probe@example.com")
    sign_in(client, "probe@example.com")
    page = client.get("/portal/").get_data(as_text=True)
    data = json.loads(re.search(r'id="board-map-data">(.*?)</script>', page, re.S).group(1))
    spots = {i["id"]: (i["lat"], i["lon"], i["distance_km"]) for i in data["listings"]}
    assert spots[nw] == spots[se] == (*approximate_point(*NEAR_NW), round(distance_km(*toward(CENTRE, 200, 7),
                                                                                       *CENTRE)))
    with ctx.uow() as uow:
        found = {f.listing.id: f.distance_km for f in new_listings(uow.session, shop.id, since=START - timedelta(1),
                                                                     now=START + timedelta(hours=1))}
    assert found[nw] == found[se] == spots[nw][2]


def test_losers_band_is_from_the_winners_shown_distance(ctx, client):
    """The winner is 4.8 km from the customer but about 6 km from the cell's
    centre, as it was shown: a loser reads "under 10 km", not "under 5 km"."""
    world = World(ctx)
    maker = world.manufacturer()
    listing_id = world.listing_id(world.order(maker, to=NEAR_NW).order.id)
    outward = bearing_of(CENTRE, NEAR_NW)
    winner = world.retailer(toward(NEAR_NW, outward, 4.8), dealer_of=[maker])
    loser = world.retailer(toward(CENTRE, (outward + 180) % 360, 20), dealer_of=[maker])
    for shop in (winner, loser):
        client.post(f"/api/v1/board/{listing_id}/bids", headers=auth(shop.key), json={})
    settle(ctx, as_of=LATER)
    [lost] = client.get("/api/v1/bids", headers=auth(loser.key)).get_json()
    assert (lost["outcome"], lost["winner_distance_band"]) == ("lost", "under 10 km")
    with ctx.uow() as uow:
        exact = uow.session.scalar(select(Bid.exact_distance_km).where(Bid.retailer_id == winner.id))
    assert exact == pytest.approx(4.8, abs=0.01)


def test_a_store_that_moves_is_measured_again_from_the_cell(ctx, client):
    world = World(ctx)
    maker = world.manufacturer()
    listing_id = world.listing_id(world.order(maker, to=NEAR_NW).order.id)
    shop = world.retailer(toward(CENTRE, 90, 5), dealer_of=[maker])
    client.post(f"/api/v1/board/{listing_id}/bids", headers=auth(shop.key), json={})
    moved_to = toward(CENTRE, 90, 12.2)
    accounts.update_store(ctx, shop.actor, shop.store_id,
                          accounts.StoreChanges(location=LocationQuery(lat=moved_to[0], lon=moved_to[1])))
    [item] = client.get("/api/v1/board", headers=auth(shop.key)).get_json()
    assert item["distance_km"] == item["my_bid"]["distance_km"] == 12.0
    with ctx.uow() as uow:
        bid = uow.session.scalar(select(Bid).where(Bid.retailer_id == shop.id))
        assert bid.exact_distance_km == distance_km(*moved_to, *NEAR_NW)
        assert bid.cell_distance_km == distance_km(*moved_to, *CENTRE)


def test_filter_by_distance_uses_the_distance_shown(ctx, client):
    world = World(ctx)
    maker = world.manufacturer()
    listing_id = world.listing_id(world.order(maker, to=NEAR_NW).order.id)
    shop = world.retailer(toward(CENTRE, 90, 9.8), dealer_of=[maker])  # shown as 10 km
    listed = {q: [i["id"] for i in client.get(f"/api/v1/board?max_distance_km={q}",
                                             headers=auth(shop.key)).get_json()]
              for q in ("9.9", "10", "10.4", "0.5")}
    assert listed == {"9.9": [], "10": [listing_id], "10.4": [listing_id], "0.5": []}
