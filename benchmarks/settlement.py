"""Settlement at scale, against its floor.

    python benchmarks/settlement.py --listings 100000 --bids-per-listing 10 --retailers 10000 \\
        [--database postgresql+psycopg://postgres@127.0.0.1/empty_db]

Generates synthetic data in bulk (retailers clustered around US cities, listings
spread by population, each with up to K bids from retailers whose stores cover
it; a share of the orders, `--multi-line`, have two or three lines, and a share
of their bids, `--partial-bids`, name only some of the lines, so that
settlement plans splits), then, in the same run:

* the floor: the time to read the same due listings and their bids with the
  bidding stores' coordinates from the database, and nothing else;
* the real settlement (`broker.settlement.services.settle`), which does that and
  decides, records every decision with its candidates, creates assignments and
  moves orders, in batches.

The last line is one JSON object: listings, bids, settle_s, read_floor_s, ratio
(settle over floor) and peak_rss_mb. Without --database it uses a temporary
SQLite file.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

# The repository root instead of this folder: benchmarks/http.py would shadow the
# standard library's http (which geopy imports).
sys.path[0] = str(Path(__file__).resolve().parents[1])

from sqlalchemy import func, insert, select  # noqa: E402

import broker.models as m  # noqa: E402
from broker.auth import digest  # noqa: E402
from broker.config import Settings  # noqa: E402
from broker.context import Context  # noqa: E402
from broker.geo.distance import approximate_point, distance_km, shown_distance_km  # noqa: E402
from broker.migrate import upgrade  # noqa: E402
from broker.settlement.services import WORKERS as settlement_workers, settle  # noqa: E402

# (lat, lon, weight): big US metros, weighted roughly by population.
CITIES = [(40.71, -74.01, 19), (34.05, -118.24, 13), (41.88, -87.63, 9), (29.76, -95.37, 7), (33.45, -112.07, 5),
          (39.95, -75.17, 6), (29.42, -98.49, 3), (32.72, -117.16, 3), (32.78, -96.80, 8), (37.77, -122.42, 5),
          (47.61, -122.33, 4), (39.74, -104.99, 3), (42.36, -71.06, 5), (25.76, -80.19, 6), (33.75, -84.39, 6),
          (44.98, -93.27, 4), (45.52, -122.68, 2), (36.17, -115.14, 2), (35.23, -80.84, 3), (38.91, -77.04, 6)]
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def around(rng: random.Random, spread_km: float) -> tuple[float, float]:
    lat, lon, _ = rng.choices(CITIES, weights=[c[2] for c in CITIES])[0]
    return lat + rng.gauss(0, spread_km / 111), lon + rng.gauss(0, spread_km / 85)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


SKUS = ("SKU", "SKU-2", "SKU-3")


def generate(ctx: Context, listings: int, per_listing: int, retailers: int, seed: int = 7, multi_line: float = 0.0,
             partial_bids: float = 0.0) -> int:
    rng = random.Random(seed)
    with ctx.engine.begin() as conn:
        conn.execute(insert(m.Manufacturer), [dict(name="Bench Co", slug="bench", currency="USD", lat=40.7,
                                                   lon=-74.0, area="New York", created_at=T0, frame_origins=[])])
        maker_id = conn.execute(select(m.Manufacturer.id)).scalar_one()
        conn.execute(insert(m.Product), [dict(manufacturer_id=maker_id, sku=sku, name="Thing", price=5000,
                                              description="", active=True, in_stock=True, created_at=T0,
                                              updated_at=T0) for sku in SKUS])
        product_id = conn.execute(select(m.Product.id).where(m.Product.sku == "SKU")).scalar_one()
        conn.execute(insert(m.Retailer), [dict(name=f"Shop {i}", email="s@example.com", active=True, created_at=T0)
                                          for i in range(retailers)])
        retailer_ids = list(conn.execute(select(m.Retailer.id).order_by(m.Retailer.id)).scalars())
        stores = []
        for rid in retailer_ids:
            lat, lon = around(rng, 25)
            stores.append(dict(retailer_id=rid, name="Store", lat=lat, lon=lon, area="x",
                               service_radius_km=rng.choice([15, 25, 40, 60]), is_open=True, created_at=T0))
        conn.execute(insert(m.Store), stores)
        store_rows = list(conn.execute(select(m.Store.id, m.Store.retailer_id, m.Store.lat, m.Store.lon,
                                              m.Store.service_radius_km)))
        conn.execute(insert(m.DealerAuthorisation), [dict(manufacturer_id=maker_id, retailer_id=rid,
                                                          authorised_at=T0) for rid in retailer_ids])
    # Stores bucketed on a 1-degree grid, to find covering ones quickly.
    grid: dict[tuple[int, int], list] = {}
    for row in store_rows:
        grid.setdefault((int(row.lat), int(row.lon)), []).append(row)
    bids = 0
    chunk = 5000
    for start in range(0, listings, chunk):
        n = min(chunk, listings - start)
        points = [around(rng, 30) for _ in range(n)]
        with ctx.engine.begin() as conn:
            order_rows = [dict(manufacturer_id=maker_id, status="open", currency="USD", total=5000, delivery="ship",
                               customer_name="C", customer_email="c@example.com", ship_line1="1 St", ship_line2="",
                               ship_city="City", ship_postal_code="00000", ship_country="US", ship_lat=lat,
                               ship_lon=lon, area="area", access_token_hash=digest(f"bench-{start + i}"),
                               created_at=T0, updated_at=T0, pickup_attempts=0)
                          for i, (lat, lon) in enumerate(points)]
            order_ids = list(conn.execute(insert(m.Order).returning(m.Order.id, sort_by_parameter_order=True),
                                          order_rows).scalars())
            widths = [rng.choice((2, 3)) if rng.random() < multi_line else 1 for _ in order_ids]
            line_ids = list(conn.execute(
                insert(m.OrderLine).returning(m.OrderLine.id, sort_by_parameter_order=True),
                [dict(order_id=oid, product_id=product_id, sku=SKUS[k], name="Thing", unit_price=5000, quantity=1,
                      line_total=5000) for oid, width in zip(order_ids, widths) for k in range(width)]).scalars())
            lines_of, at = [], 0
            for width in widths:
                lines_of.append(line_ids[at:at + width])
                at += width
            listing_ids = list(conn.execute(
                insert(m.Listing).returning(m.Listing.id, sort_by_parameter_order=True),
                [dict(kind="order", manufacturer_id=maker_id, order_id=oid, status="open",
                      lat=approximate_point(lat, lon)[0], lon=approximate_point(lat, lon)[1], exact_lat=lat,
                      exact_lon=lon, area="area", price=5000, currency="USD", listed_at=T0)
                 for oid, (lat, lon) in zip(order_ids, points)]).scalars())
            bid_rows = []
            for lid, (lat, lon), lines in zip(listing_ids, points, lines_of):
                near = [s for dl in (-1, 0, 1) for dn in (-1, 0, 1) for s in grid.get((int(lat) + dl, int(lon) + dn), [])]
                rng.shuffle(near)
                taken = set()
                for s in near:
                    if len(taken) >= per_listing:
                        break
                    if s.retailer_id in taken:
                        continue
                    # Coverage from the listing's cell, as the board decides it.
                    cell = distance_km(s.lat, s.lon, *approximate_point(lat, lon)) if abs(s.lat - lat) < 1 else 999
                    if cell <= s.service_radius_km:
                        taken.add(s.retailer_id)
                        part = None
                        if len(lines) > 1 and rng.random() < partial_bids:
                            chosen = sorted(rng.sample(range(len(lines)), rng.randrange(1, len(lines))))
                            part = [{"line_id": lines[k], "sku": SKUS[k], "quantity": 1} for k in chosen]
                        bid_rows.append(dict(listing_id=lid, retailer_id=s.retailer_id, store_id=s.id,
                                             distance_km=shown_distance_km(cell), cell_distance_km=cell,
                                             exact_distance_km=distance_km(s.lat, s.lon, lat, lon), status="active",
                                             created_at=T0 + timedelta(minutes=rng.randrange(600)), lines=part))
            if bid_rows:
                conn.execute(insert(m.Bid), bid_rows)
            bids += len(bid_rows)
        print(f"  generated {start + n} listings, {bids} bids", file=sys.stderr)
    return bids


def read_floor(ctx: Context, cutoff: datetime, batch: int) -> float:
    """Read what settlement must read, in the same batches, and nothing more."""
    started = time.perf_counter()
    with ctx.engine.connect() as conn:
        after = 0
        while True:
            ids = list(conn.execute(select(m.Listing.id, m.Listing.lat, m.Listing.lon).where(
                m.Listing.status == "open", m.Listing.listed_at <= cutoff, m.Listing.id > after)
                .order_by(m.Listing.id).limit(batch)))
            if not ids:
                break
            after = ids[-1].id
            conn.execute(select(m.Bid.listing_id, m.Bid.retailer_id, m.Bid.created_at, m.Bid.exact_distance_km,
                                m.Bid.cell_distance_km, m.Bid.lines, m.Store.lat, m.Store.lon,
                                m.Store.service_radius_km)
                         .join(m.Store, m.Store.id == m.Bid.store_id)
                         .where(m.Bid.listing_id.in_([r.id for r in ids]), m.Bid.status == "active")).all()
            # Plans need the orders' lines.
            conn.execute(select(m.OrderLine.order_id, m.OrderLine.id, m.OrderLine.sku, m.OrderLine.quantity)
                         .where(m.OrderLine.order_id.in_(select(m.Listing.order_id).where(
                             m.Listing.id.in_([r.id for r in ids]))))).all()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listings", type=int, default=20000)
    parser.add_argument("--bids-per-listing", type=int, default=10)
    parser.add_argument("--retailers", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--multi-line", type=float, default=0.3, help="share of orders with two or three lines")
    parser.add_argument("--partial-bids", type=float, default=0.5,
                        help="share of the bids on those orders that name only some lines")
    parser.add_argument("--database", help="an empty database URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    url = args.database or f"sqlite:///{tmp.name}/bench.db"
    upgrade(url)
    ctx = Context.from_settings(Settings(database_url=url, admin_token="x", secret_key="bench",
                                         settle_batch_size=args.batch))
    started = time.perf_counter()
    bids = generate(ctx, args.listings, args.bids_per_listing, args.retailers, multi_line=args.multi_line,
                    partial_bids=args.partial_bids)
    if ctx.engine.dialect.name == "postgresql":
        # Statistics for the tables just loaded, as autovacuum would have them long
        # before a real board closes; without them the floor's and settlement's
        # plans depend on whether autovacuum happened to pass during generation.
        with ctx.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    print(f"generated in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    as_of = T0 + timedelta(hours=13)
    cutoff = as_of - timedelta(hours=12)
    floor = read_floor(ctx, cutoff, args.batch)
    print(f"read floor: {floor:.2f}s", file=sys.stderr)
    started = time.perf_counter()
    report = settle(ctx, as_of=as_of, trigger="benchmark")
    took = time.perf_counter() - started
    assert report.settled == args.listings, report
    print(f"settled {report.settled} in {took:.2f}s: {report.to_retailers} to retailers, "
          f"{report.by_rule.get('fewest_shipments', 0)} by fewest shipments", file=sys.stderr)
    with ctx.engine.connect() as conn:
        split = conn.execute(select(func.count(m.SettlementDecision.listing_id.distinct()))
                             .where(m.SettlementDecision.part > 0)).scalar()
    workers = settlement_workers if ctx.engine.dialect.name == "postgresql" else 1
    print(json.dumps({"benchmark": "settlement", "database": url.split(":", 1)[0], "listings": args.listings,
                      "bids": bids, "retailers": args.retailers, "settle_s": round(took, 2),
                      "read_floor_s": round(floor, 2), "ratio": round(took / floor, 2) if floor else None,
                      "peak_rss_mb": round(rss_mb(), 1), "settle_workers": workers,
                      "multi_line": args.multi_line, "partial_bids": args.partial_bids, "split_orders": split}))
    ctx.engine.dispose()
    tmp.cleanup()


if __name__ == "__main__":
    main()
