"""The board against a brute force: every open listing measured by geodesic.

The board counts and orders in the database with an approximation and checks
only the listings near a store's edge exactly; past `board_count_limit` it stops
counting. Whatever the limit, its pages must be the brute force's pages (in the
board's order: the distance shown, in whole kilometres, then the listing id),
and its total the brute force's total or, marked inexact, a true lower bound.

The listings here are written at arbitrary points, not at cell centres, to put
many within metres of a store's edge: the search must be right wherever a
listing's position is.
"""

from __future__ import annotations

import dataclasses
import json
import random

import pytest
from geopy.distance import geodesic
from sqlalchemy import insert, select

from broker.accounts import services as accounts
from broker.accounts.models import Store
from broker.board import services as board
from broker.board.models import Listing, ListingKind, ListingStatus
from broker.geo.distance import shown_distance_km
from broker.geo.geocoding import LocationQuery
from broker.pagination import PageRequest

CENTRE = (40.71, -74.01)


@pytest.fixture
def crowd(world, ctx):
    """A retailer with two overlapping stores (50 and 20 km), and 400 open
    listings around them: most inside, some just either side of each edge,
    some far; one in ten from another manufacturer."""
    maker, other = world.manufacturer(), world.manufacturer()
    shop = world.retailer(CENTRE, radius=50, dealer_of=[maker])
    accounts.add_store(ctx, shop.actor, accounts.NewStore("Depot", LocationQuery(lat=40.85, lon=-73.80), 20))
    rng = random.Random(7)
    rows = []
    for i in range(400):
        if i % 5 == 0:  # on an edge: within a few metres of 50 km from the first store
            point = geodesic(kilometers=50 + rng.uniform(-0.004, 0.004)).destination(CENTRE, rng.uniform(0, 360))
            lat, lon = point.latitude, point.longitude
        else:
            lat, lon = CENTRE[0] + rng.gauss(0, 0.35), CENTRE[1] + rng.gauss(0, 0.45)
        rows.append(dict(kind=ListingKind.ORDER, manufacturer_id=other.id if i % 10 == 3 else maker.id,
                         status=ListingStatus.OPEN, lat=lat, lon=lon, exact_lat=lat, exact_lon=lon, area="NY",
                         price=5000, currency="USD", listed_at=ctx.now()))
    # Written directly: 400 checkouts would take most of the test's time, and the
    # board reads only the listings table for what is checked here.
    with ctx.uow() as uow:
        uow.session.execute(insert(Listing), rows)
        uow.commit()
    return shop


def brute_force(ctx, shop, max_km=None):
    with ctx.uow() as uow:
        stores = list(uow.session.scalars(select(Store).where(Store.retailer_id == shop.id).order_by(Store.id)))
        makers = set(board._authorising_manufacturers(uow.session, shop.id))
        listings = uow.session.execute(select(Listing.id, Listing.lat, Listing.lon, Listing.manufacturer_id)
                                       .where(Listing.status == ListingStatus.OPEN)).all()
    seen = []
    for row in listings:
        if row.manufacturer_id not in makers:
            continue
        found = board.nearest_covering_store(stores, row.lat, row.lon)
        if found is not None and (max_km is None or shown_distance_km(found[1]) <= max_km):
            seen.append((shown_distance_km(found[1]), row.id, found[0].id))
    return sorted(seen)


def call(ctx, shop, limit, page, size=25, max_km=None):
    limited = dataclasses.replace(ctx, settings=dataclasses.replace(ctx.settings, board_count_limit=limit))
    found = board.board(limited, shop.actor, board.BoardFilter(max_distance_km=max_km), PageRequest(page, size))
    return [(item.distance_km, item.listing.id, item.store_id) for item in found.items], found.total, found.exact


@pytest.mark.parametrize("limit", [0, 10_000, 50])
@pytest.mark.parametrize("max_km", [None, 30.0, 12.7])
@pytest.mark.parametrize("decided_here", [0, 500], ids=["in-sql", "in-python"])
def test_pages_and_total_match_a_brute_force(ctx, crowd, limit, max_km, decided_here, monkeypatch):
    monkeypatch.setattr(board, "DECIDED_HERE", decided_here)
    expected = brute_force(ctx, crowd, max_km)
    assert len(expected) > (200 if max_km is None else 20)  # the world is what the test thinks it is
    for page in (1, 2, 9, 20):
        items, total, exact = call(ctx, crowd, limit, page, max_km=max_km)
        assert items == expected[(page - 1) * 25:page * 25]
        if exact:
            assert total == len(expected)
        else:
            # Only a limit can make it inexact, and then it is a true lower bound.
            assert limit and total == limit <= len(expected)


def test_a_large_board_stops_counting_at_the_limit_and_a_small_one_is_exact(ctx, crowd):
    expected = brute_force(ctx, crowd)
    assert call(ctx, crowd, 50, 1)[1:] == (50, False)
    assert call(ctx, crowd, 0, 1)[1:] == (len(expected), True)
    # A limit above the board's size changes nothing.
    assert call(ctx, crowd, len(expected) + 1, 1)[1:] == (len(expected), True)


def test_the_api_says_whether_the_total_is_exact(ctx, client, crowd):
    expected = brute_force(ctx, crowd)
    headers = {"Authorization": f"Bearer {crowd.key}"}
    resp = client.get("/api/v1/board?page_size=10", headers=headers)
    assert resp.status_code == 200
    assert resp.headers["X-Total-Exact"] == "true"
    assert resp.json and len(resp.json) == 10
    assert json.loads(resp.headers["X-Pagination"])["total"] == len(expected)

    limited = dataclasses.replace(ctx.settings, board_count_limit=50)
    client.application.extensions["broker"] = dataclasses.replace(ctx, settings=limited)
    resp = client.get("/api/v1/board?page_size=10&page=8", headers=headers)
    assert resp.headers["X-Total-Exact"] == "false"
    assert json.loads(resp.headers["X-Pagination"])["total"] == 50
    # Pages past the count are still served, in board order.
    assert [item["id"] for item in resp.json] == [listing_id for _, listing_id, _ in expected[70:80]]


def test_the_limit_counts_only_what_the_retailer_may_see(world, ctx):
    """Another manufacturer's listings, closed ones and requests filtered out
    by kind are in the same rectangle, but must not bring a small board to the limit."""
    maker, other = world.manufacturer(), world.manufacturer()
    shop = world.retailer(CENTRE, dealer_of=[maker])
    kinds = ([(maker.id, ListingStatus.OPEN)] * 3 + [(other.id, ListingStatus.OPEN)] * 20
             + [(maker.id, ListingStatus.AWARDED)] * 20)
    rows = [dict(kind=ListingKind.ORDER, manufacturer_id=mid, status=status, lat=CENTRE[0] + i * 1e-4,
                 lon=CENTRE[1], exact_lat=CENTRE[0] + i * 1e-4, exact_lon=CENTRE[1], area="NY", price=5000,
                 currency="USD", listed_at=ctx.now())
            for i, (mid, status) in enumerate(kinds)]
    with ctx.uow() as uow:
        uow.session.execute(insert(Listing), rows)
        uow.commit()
    assert call(ctx, shop, 10, 1)[1:] == (3, True)
    limited = dataclasses.replace(ctx, settings=dataclasses.replace(ctx.settings, board_count_limit=2))
    only_requests = board.board(limited, shop.actor, board.BoardFilter(kind=ListingKind.REQUEST), PageRequest())
    assert (only_requests.total, only_requests.exact) == (0, True)
    assert call(ctx, shop, 2, 1)[1:] == (2, False)


def test_the_portal_shows_a_stopped_count_with_a_plus_and_a_next_page(ctx, app, client, crowd):
    from broker.accounts.models import Role
    from tests.pages import sign_in, user_for

    user_for(ctx, Role.RETAILER, crowd.id, "counter@example.com")
    sign_in(client, "counter@example.com")
    expected = brute_force(ctx, crowd)
    page = client.get("/portal/").get_data(as_text=True)
    assert f"{len(expected):,} listings</h2>" in page

    app.extensions["broker"] = dataclasses.replace(
        ctx, settings=dataclasses.replace(ctx.settings, board_count_limit=50))
    page = client.get("/portal/").get_data(as_text=True)
    assert "50+ listings</h2>" in page
    last_counted = client.get("/portal/?page=2").get_data(as_text=True)  # 50 counted, 25 a page
    assert "page=3" in last_counted


ELSEWHERE = (39.95, -75.16)  # about 130 km from CENTRE: its stores' boxes are apart from the others'


@pytest.fixture
def chain(world, ctx):
    """A chain of twelve stores: eight in a ring around one city, overlapping,
    and four around another; 300 listings around both, a fifth of them on the
    ring's edges."""
    maker = world.manufacturer()
    shop = world.retailer(geodesic(kilometers=15).destination(CENTRE, 0)[:2], radius=12, dealer_of=[maker])
    rng = random.Random(11)
    sites = [(geodesic(kilometers=15).destination(CENTRE, 45 * i)[:2], 12) for i in range(1, 8)]
    sites += [(geodesic(kilometers=rng.uniform(0, 8)).destination(ELSEWHERE, 90 * i)[:2], 6 + i) for i in range(4)]
    for n, ((lat, lon), radius) in enumerate(sites):
        accounts.add_store(ctx, shop.actor, accounts.NewStore(f"Store {n}", LocationQuery(lat=lat, lon=lon), radius))
    rows = []
    for i in range(300):
        if i % 5 == 0:
            store = geodesic(kilometers=15).destination(CENTRE, 45 * rng.randrange(8))
            point = geodesic(kilometers=12 + rng.uniform(-0.004, 0.004)).destination(store, rng.uniform(0, 360))
            lat, lon = point.latitude, point.longitude
        else:
            city = CENTRE if i % 2 else ELSEWHERE
            lat, lon = city[0] + rng.gauss(0, 0.2), city[1] + rng.gauss(0, 0.25)
        rows.append(dict(kind=ListingKind.ORDER, manufacturer_id=maker.id, status=ListingStatus.OPEN, lat=lat,
                         lon=lon, exact_lat=lat, exact_lon=lon, area="NY", price=5000, currency="USD",
                         listed_at=ctx.now()))
    with ctx.uow() as uow:
        uow.session.execute(insert(Listing), rows)
        uow.commit()
    return shop


@pytest.mark.parametrize("max_km", [None, 7.0])
@pytest.mark.parametrize("decided_here", [0, 40, 500], ids=["in-sql", "some-in-python", "in-python"])
def test_a_chains_board_matches_a_brute_force(ctx, chain, max_km, decided_here, monkeypatch):
    monkeypatch.setattr(board, "DECIDED_HERE", decided_here)
    expected = brute_force(ctx, chain, max_km)
    assert len(expected) > 40 and {store for _, _, store in expected} == set(range(min(s for *_, s in expected),
                                                                               min(s for *_, s in expected) + 12))
    for page in (1, 2, 5):
        items, total, exact = call(ctx, chain, 0, page, max_km=max_km)
        assert items == expected[(page - 1) * 25:page * 25]
        assert exact and total == len(expected)
