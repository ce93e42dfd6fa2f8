"""The board query for one retailer among N open listings nationally, against a full scan.

    python benchmarks/board.py --listings 1000000 [--city "New York"] [--stores 2] \\
        [--radius-km 50] [--repeat 200] [--full-scan-repeat 3] \\
        [--database postgresql+psycopg://postgres@127.0.0.1/empty_db]

Generates N open order listings (each with its order and one order line) spread
around US metros by population like benchmarks/settlement.py, all from one
manufacturer, and one retailer authorised by it with --stores stores in one city
(--radius-km each) that has already bid on some listings near them. On
PostgreSQL the rows go in with COPY and the table is vacuumed and analysed
afterwards (as autovacuum would); on SQLite, with executemany inserts.

Then, in the same run:

* the board (`broker.board.services.board`, what GET /api/v1/board calls): the
  first page at the default page size, --repeat times after a few warm-up calls,
  as configured (its total stops at BROKER_BOARD_COUNT_LIMIT, 10,000 by default)
  and again counting every listing (limit 0);
* the full-scan baseline: the same answer computed by reading every open listing
  and checking its geodesic distance to the stores, without the bounding-box
  prefilter (--full-scan-repeat times; each one costs a geodesic per listing).

The answers (page ids, distances, stores, total) must agree or the script
fails; a stopped count must be at most the full scan's total. The last line is
one JSON object: listings, visible (the full scan's total), total_shown and
total_exact, p50_ms and p95_ms (as configured), exact_count_p50_ms and
exact_count_p95_ms, full_scan_p50_ms, full_scan_p95_ms, and the plans
PostgreSQL chose.
Without --database it uses a temporary SQLite file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, select, text  # noqa: E402

import broker.models as m  # noqa: E402
from broker.auth import Actor, ActorKind, digest  # noqa: E402
from broker.board.services import BoardFilter, board, nearest_covering_store  # noqa: E402
from broker.config import Settings  # noqa: E402
from broker.context import Context  # noqa: E402
from broker.geo.distance import approximate_point, bounding_box, distance_km, shown_distance_km  # noqa: E402
from broker.migrate import upgrade  # noqa: E402
from broker.pagination import PageRequest  # noqa: E402

# (name, lat, lon, weight): big US metros, weighted roughly by population (as in settlement.py).
CITIES = [("New York", 40.71, -74.01, 19), ("Los Angeles", 34.05, -118.24, 13), ("Chicago", 41.88, -87.63, 9),
          ("Houston", 29.76, -95.37, 7), ("Phoenix", 33.45, -112.07, 5), ("Philadelphia", 39.95, -75.17, 6),
          ("San Antonio", 29.42, -98.49, 3), ("San Diego", 32.72, -117.16, 3), ("Dallas", 32.78, -96.80, 8),
          ("San Francisco", 37.77, -122.42, 5), ("Seattle", 47.61, -122.33, 4), ("Denver", 39.74, -104.99, 3),
          ("Boston", 42.36, -71.06, 5), ("Miami", 25.76, -80.19, 6), ("Atlanta", 33.75, -84.39, 6),
          ("Minneapolis", 44.98, -93.27, 4), ("Portland", 45.52, -122.68, 2), ("Las Vegas", 36.17, -115.14, 2),
          ("Charlotte", 35.23, -80.84, 3), ("Washington", 38.91, -77.04, 6)]
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
PAGE = PageRequest()  # the API's default: first page, 50 a page


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def spread_points(rng: random.Random, n: int, spread_km: float = 30) -> list[tuple[float, float]]:
    picks = rng.choices(CITIES, weights=[c[3] for c in CITIES], k=n)
    return [(lat + rng.gauss(0, spread_km / 111), lon + rng.gauss(0, spread_km / 85)) for _, lat, lon, _ in picks]


def _copy(conn, table: str, columns: list[str], rows) -> None:
    """COPY rows into a table through psycopg (PostgreSQL only): far faster than INSERTs."""
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def generate(ctx: Context, listings: int, city: str, n_stores: int, radius_km: float, seed: int = 7) -> int:
    """Creates the data; returns the retailer's id."""
    rng = random.Random(seed)
    pg = ctx.engine.dialect.name == "postgresql"
    with ctx.engine.begin() as conn:
        conn.execute(insert(m.Manufacturer), [dict(name="Bench Co", slug="bench", currency="USD", lat=40.7,
                                                   lon=-74.0, area="New York", created_at=T0, frame_origins=[])])
        maker_id = conn.execute(select(m.Manufacturer.id)).scalar_one()
        conn.execute(insert(m.Product), [dict(manufacturer_id=maker_id, sku="SKU", name="Thing", price=5000,
                                              description="", active=True, in_stock=True, created_at=T0,
                                              updated_at=T0)])
        product_id = conn.execute(select(m.Product.id)).scalar_one()
        retailer_id = conn.execute(insert(m.Retailer).returning(m.Retailer.id),
                                   [dict(name="Bench Shop", email="s@example.com", active=True,
                                         created_at=T0)]).scalar_one()
        _, clat, clon, _ = next(c for c in CITIES if c[0] == city)
        # A store downtown and the others a few km out, all in the same city.
        conn.execute(insert(m.Store), [dict(retailer_id=retailer_id, name=f"Store {i}",
                                            lat=clat + (0 if i == 0 else rng.uniform(-0.08, 0.08)),
                                            lon=clon + (0 if i == 0 else rng.uniform(-0.1, 0.1)), area=city,
                                            service_radius_km=radius_km, is_open=True, created_at=T0)
                                       for i in range(n_stores)])
        conn.execute(insert(m.DealerAuthorisation), [dict(manufacturer_id=maker_id, retailer_id=retailer_id,
                                                          authorised_at=T0)])
    chunk = 50_000
    for start in range(0, listings, chunk):
        n = min(chunk, listings - start)
        points = spread_points(rng, n)
        ids = range(start + 1, start + n + 1)
        orders = [(i, maker_id, "open", "USD", 5000, "ship", "C", "c@example.com", "1 St", "", "City", "00000",
                   "US", lat, lon, "area", digest(f"bench-{i}"), T0, T0, 0) for i, (lat, lon) in zip(ids, points)]
        lines = [(i, i, product_id, "SKU", "Thing", 5000, 1, 5000) for i in ids]
        # As `broker.board.listings.new_listing` places them: at the centre of
        # the ship-to point's cell, with the point itself kept apart.
        rows = [(i, "order", maker_id, i, "open", *approximate_point(lat, lon), lat, lon, "area", 5000, "USD", T0)
                for i, (lat, lon) in zip(ids, points)]
        order_cols = ["id", "manufacturer_id", "status", "currency", "total", "delivery", "customer_name",
                      "customer_email", "ship_line1", "ship_line2", "ship_city", "ship_postal_code", "ship_country",
                      "ship_lat", "ship_lon", "area", "access_token_hash", "created_at", "updated_at",
                      "pickup_attempts"]
        line_cols = ["id", "order_id", "product_id", "sku", "name", "unit_price", "quantity", "line_total"]
        listing_cols = ["id", "kind", "manufacturer_id", "order_id", "status", "lat", "lon", "exact_lat",
                        "exact_lon", "area", "price", "currency", "listed_at"]
        with ctx.engine.begin() as conn:
            if pg:
                _copy(conn, "orders", order_cols, orders)
                _copy(conn, "order_lines", line_cols, lines)
                _copy(conn, "listings", listing_cols, rows)
            else:
                conn.execute(insert(m.Order), [dict(zip(order_cols, r)) for r in orders])
                conn.execute(insert(m.OrderLine), [dict(zip(line_cols, r)) for r in lines])
                conn.execute(insert(m.Listing), [dict(zip(listing_cols, r)) for r in rows])
        print(f"  generated {start + n} listings", file=sys.stderr)
    with ctx.engine.begin() as conn:
        if pg:
            for table in ("orders", "order_lines", "listings"):
                conn.execute(text(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))"))
        # The retailer has already bid on about one in ten listings near its first store.
        store = conn.execute(select(m.Store).where(m.Store.retailer_id == retailer_id).order_by(m.Store.id)).first()
        min_lat, max_lat, min_lon, max_lon = bounding_box(store.lat, store.lon, 5)
        near = conn.execute(select(m.Listing.id, m.Listing.lat, m.Listing.lon, m.Listing.exact_lat,
                                   m.Listing.exact_lon).where(
            m.Listing.lat.between(min_lat, max_lat), m.Listing.lon.between(min_lon, max_lon))).all()
        bids = []
        for r in near:
            if r.id % 10 == 0:
                cell = distance_km(store.lat, store.lon, r.lat, r.lon)
                bids.append(dict(listing_id=r.id, retailer_id=retailer_id, store_id=store.id,
                                 distance_km=shown_distance_km(cell), cell_distance_km=cell,
                                 exact_distance_km=distance_km(store.lat, store.lon, r.exact_lat, r.exact_lon),
                                 status="active", created_at=T0 + timedelta(hours=1)))
        if bids:
            conn.execute(insert(m.Bid), bids)
    if pg:
        with ctx.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    return retailer_id


def full_scan(ctx: Context, retailer_id: int, page: PageRequest) -> tuple[list[tuple[int, float, int]], int]:
    """The board's answer without the prefilter: every open listing, a geodesic each."""
    with ctx.engine.connect() as conn:
        stores = conn.execute(select(m.Store).where(m.Store.retailer_id == retailer_id, m.Store.is_open.is_(True))
                              .order_by(m.Store.id)).all()
        makers = set(conn.execute(select(m.DealerAuthorisation.manufacturer_id).where(
            m.DealerAuthorisation.retailer_id == retailer_id, m.DealerAuthorisation.revoked_at.is_(None))).scalars())
        visible = []
        for row in conn.execute(select(m.Listing.id, m.Listing.lat, m.Listing.lon, m.Listing.manufacturer_id)
                                .where(m.Listing.status == "open")):
            if row.manufacturer_id is not None and row.manufacturer_id not in makers:
                continue
            found = nearest_covering_store(stores, row.lat, row.lon)
            if found is not None:
                visible.append((shown_distance_km(found[1]), row.id, found[0].id))
    visible.sort()  # the board's order: the distance shown, then the listing id
    return [(i, km, s) for km, i, s in visible[page.offset:page.offset + page.page_size]], len(visible)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listings", type=int, default=100_000)
    parser.add_argument("--city", default="New York", choices=[c[0] for c in CITIES])
    parser.add_argument("--stores", type=int, default=2)
    parser.add_argument("--radius-km", type=float, default=50)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--full-scan-repeat", type=int, default=3)
    parser.add_argument("--database", help="an empty database URL (default: a temporary SQLite file)")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory()
    url = args.database or f"sqlite:///{tmp.name}/bench.db"
    upgrade(url)
    ctx = Context.from_settings(Settings(database_url=url, admin_token="x", secret_key="bench"))
    started = time.perf_counter()
    retailer_id = generate(ctx, args.listings, args.city, args.stores, args.radius_km)
    if ctx.engine.dialect.name == "postgresql":
        # Fresh statistics and a visibility map, as autovacuum would leave them:
        # the count is an index-only scan on the covering index (migration 0011).
        with ctx.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE listings"))
    print(f"generated in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    actor = Actor(ActorKind.RETAILER, retailer_id)
    plans = capture_plans(ctx, lambda: board(ctx, actor, BoardFilter(), PAGE))
    # The board as configured (the count stops at BROKER_BOARD_COUNT_LIMIT), then
    # counting every listing (limit 0), both against the full scan.
    exact_ctx = dataclasses.replace(ctx, settings=dataclasses.replace(ctx.settings, board_count_limit=0))
    runs = {}
    for name, run_ctx in (("board", ctx), ("exact_count", exact_ctx)):
        for _ in range(5):  # warm up caches and the connection pool
            page = board(run_ctx, actor, BoardFilter(), PAGE)
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            page = board(run_ctx, actor, BoardFilter(), PAGE)
            times.append((time.perf_counter() - t) * 1000)
        runs[name] = (page, times)
        print(f"{name}: {page.total}{'' if page.exact else '+'} visible; p50 {statistics.median(times):.2f} ms, "
              f"p95 {percentile(times, 95):.2f} ms", file=sys.stderr)

    scan_times = []
    for _ in range(args.full_scan_repeat):
        t = time.perf_counter()
        expected, expected_total = full_scan(ctx, retailer_id, PAGE)
        scan_times.append((time.perf_counter() - t) * 1000)
    print(f"full scan: p50 {statistics.median(scan_times):.0f} ms", file=sys.stderr)
    for name, (page, _) in runs.items():
        got = [(item.listing.id, item.distance_km, item.store_id) for item in page.items]
        # A stopped count is a lower bound: the limit, and no more than there are.
        total_ok = page.total == expected_total if page.exact else page.total <= expected_total
        if got != expected or not total_ok:
            sys.exit(f"{name} and the full scan disagree: {got[:5]}... {page.total} vs "
                     f"{expected[:5]}... {expected_total}")
    page, times = runs["board"]
    exact_page, exact_times = runs["exact_count"]
    bids_shown = sum(1 for item in page.items if item.my_bid is not None)
    print(json.dumps({"benchmark": "board", "database": url.split(":", 1)[0], "listings": args.listings,
                      "city": args.city, "stores": args.stores, "radius_km": args.radius_km,
                      "visible": expected_total, "total_shown": page.total, "total_exact": page.exact,
                      "count_limit": ctx.settings.board_count_limit,
                      "page_size": PAGE.page_size, "my_bids_on_page": bids_shown,
                      "repeat": args.repeat, "p50_ms": round(statistics.median(times), 2),
                      "p95_ms": round(percentile(times, 95), 2),
                      "exact_count_p50_ms": round(statistics.median(exact_times), 2),
                      "exact_count_p95_ms": round(percentile(exact_times, 95), 2),
                      "full_scan_repeat": args.full_scan_repeat,
                      "full_scan_p50_ms": round(statistics.median(scan_times), 1),
                      "full_scan_p95_ms": round(percentile(scan_times, 95), 1), "plans": plans}))
    ctx.engine.dispose()
    tmp.cleanup()


def capture_plans(ctx: Context, call) -> list[str]:
    """Runs `call` once and EXPLAINs (PostgreSQL) each statement it sent about listings."""
    if ctx.engine.dialect.name != "postgresql":
        call()
        return []
    from sqlalchemy import event

    captured: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "FROM listings" in statement:
            captured.append((statement, parameters))

    event.listen(ctx.engine, "before_cursor_execute", capture)
    try:
        call()
    finally:
        event.remove(ctx.engine, "before_cursor_execute", capture)
    plans = []
    raw = ctx.engine.raw_connection()
    try:
        with raw.cursor() as cur:
            for statement, parameters in captured:
                cur.execute("EXPLAIN " + statement, parameters)
                plan = "\n".join(r[0] for r in cur.fetchall())
                print(plan, file=sys.stderr)
                # The nodes only, for the JSON line: what scans what.
                plans.append("; ".join(line.strip().lstrip("-> ").split("  (")[0] for line in plan.splitlines()
                                       if "Scan" in line or "Aggregate" in line or "Sort" in line))
    finally:
        raw.close()
    return plans


if __name__ == "__main__":
    main()
