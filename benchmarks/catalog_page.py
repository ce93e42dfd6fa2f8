"""Server time of a storefront's catalog page for a store with N products.

    python benchmarks/catalog_page.py [--products 1000] [--requests 300] [--database URL]

Builds a fresh database (a temporary SQLite file unless --database names an empty
PostgreSQL database), adds one manufacturer with N products through the real
services, and times GET /s/<slug>/ (the first page, 48 products) and a deep page
through the WSGI app in-process: what the server spends, without network or
client. Those pages are built every time (the storefront's page cache is off);
`first_page_cached` is the first page again as a repeat visitor gets it, from
the cache. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from broker.auth import OPERATOR, Actor, ActorKind  # noqa: E402
from broker.accounts.services import NewManufacturer, create_manufacturer  # noqa: E402
from broker.catalog.services import NewProduct, add_product  # noqa: E402
from broker.config import Settings  # noqa: E402
from broker.context import Context  # noqa: E402
from broker.geo.geocoding import LocationQuery  # noqa: E402
from broker.migrate import upgrade  # noqa: E402
from web.app import create_app  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--database", help="an empty database URL (default: a temporary SQLite file)")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory()
    url = args.database or f"sqlite:///{tmp.name}/bench.db"
    upgrade(url)
    # Flask's test client asks for `localhost`: Broker answers only its public host.
    ctx = Context.from_settings(Settings(database_url=url, admin_token="x", secret_key="bench",
                                         storefront_cache_seconds=0, public_url="http://localhost"))
    maker, _ = create_manufacturer(ctx, OPERATOR, NewManufacturer("Bench Co", "bench", "USD",
                                                                    LocationQuery(lat=37.77, lon=-122.42)))
    actor = Actor(ActorKind.MANUFACTURER, maker.id)
    started = time.perf_counter()
    for i in range(args.products):
        add_product(ctx, actor, NewProduct(f"SKU-{i:05d}", f"Product {i:05d}", 1000 + i,
                                           "A product description of ordinary length.",
                                           f"https://img.example/{i}.jpg"))
    print(f"created {args.products} products in {time.perf_counter() - started:.1f}s", file=sys.stderr)

    client = create_app(context=ctx).test_client()
    cached = dataclasses.replace(ctx, settings=dataclasses.replace(ctx.settings, storefront_cache_seconds=3600),
                                 page_cache=None)
    cached_client = create_app(context=cached).test_client()
    results = {}
    last_page = max(1, (args.products + 47) // 48)
    for name, path, client in (("first_page", "/s/bench/", client),
                               ("last_page", f"/s/bench/?page={last_page}", client),
                               ("first_page_cached", "/s/bench/", cached_client)):
        for _ in range(10):  # warm up
            client.get(path)
        times = []
        for _ in range(args.requests):
            t = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - t) * 1000)
            assert response.status_code == 200
        results[name] = {"p50_ms": round(statistics.median(times), 2), "p95_ms": round(percentile(times, 95), 2),
                         "mean_ms": round(statistics.fmean(times), 2)}
        print(f"{name}: p50 {results[name]['p50_ms']} ms, p95 {results[name]['p95_ms']} ms", file=sys.stderr)
    print(json.dumps({"benchmark": "catalog_page", "database": url.split(":", 1)[0], "products": args.products,
                      "requests": args.requests, **results}))
    ctx.engine.dispose()
    tmp.cleanup()


if __name__ == "__main__":
    main()
