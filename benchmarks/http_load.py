"""Requests per second under gunicorn: the storefront's catalog page and placing bids,
beside a hello-world Flask app served the same way, all measured by wrk in one run.

    python benchmarks/http_load.py --database postgresql+psycopg://postgres@127.0.0.1/empty_db \\
        [--workers 4] [--duration 10] [--connections 8] [--products 200] [--retailers 200] [--listings 1000]

Builds the data (one manufacturer and its storefront with N products; R retailers,
each with a store, an API key and the manufacturer's authorisation, all in one
city; L open order listings there), then starts gunicorn as `broker serve` does
(sync workers, access log to stdout) on

* a minimal Flask app (one route returning "Hello, World!"): the ceiling of
  Flask + gunicorn on this machine;
* `web.app:create_app()`: GET /s/<slug>/ (the first catalog page), then
  POST /api/v1/board/<listing>/bids with each retailer's API key.

Each bid goes to a (listing, retailer) pair never posted before: wrk's threads
take different retailers, and consecutive requests different listings, so no
two bids wait for the same row lock. Afterwards the bids in the database are
compared with the pairs acknowledged with a 201 (each 201's body names the
listing and the store, hence the retailer): an acknowledged pair missing is
lost, a pair acknowledged twice or stored twice is duplicated. Requests wrk
cut off at the end of the run may still be stored: they are counted apart as
unacknowledged, and there can be at most --connections of them.

The client shares the machine: wrk (C, a Lua script for the bids) is light,
but on 2 cores every cycle it spends is one the server does not get. Its CPU
time and the server's are measured and printed for each case.

(Not `http.py`: a file of that name in this folder would shadow the standard
library's `http` package for every script here, settlement.py included.)

The last line is one JSON object: catalog_rps, minimal_rps, catalog_ratio,
bid_rps, bid_errors, bids_lost, bids_duplicated and the details. Without
--database it uses a temporary SQLite file (writes from several workers then
wait for SQLite's lock: only PostgreSQL's numbers mean anything).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

from sqlalchemy import func, insert, select  # noqa: E402

import broker.models as m  # noqa: E402
from broker.accounts.models import Role  # noqa: E402
from broker.accounts.services import NewManufacturer, create_manufacturer  # noqa: E402
from broker.auth import OPERATOR, Actor, ActorKind, digest  # noqa: E402
from broker.catalog.services import NewProduct, add_product  # noqa: E402
from broker.config import Settings  # noqa: E402
from broker.context import Context  # noqa: E402
from broker.geo.distance import approximate_point  # noqa: E402
from broker.geo.geocoding import LocationQuery  # noqa: E402
from broker.migrate import upgrade  # noqa: E402

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
CITY = (41.88, -87.63)
ROOT = Path(__file__).resolve().parents[1]

MINIMAL_APP = '''
from flask import Flask


def create_app():
    app = Flask(__name__)

    @app.get("/")
    def hello():
        return "Hello, World!"

    return app
'''

# wrk: one Lua state per thread. Thread t owns retailers t, t + T, t + 2T, ...
# and walks the listings from its own offset, so pairs never repeat and
# consecutive requests lock different listings.
BIDS_LUA = '''
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  nthreads = tonumber(args[1])
  listing_ids = {}
  for id in string.gmatch(args[2], "[^,]+") do table.insert(listing_ids, id) end
  keys = {}
  for key in string.gmatch(args[3], "[^,]+") do table.insert(keys, key) end
  n = 0
  created, other, acked = 0, 0, {}
  offset = math.floor(#listing_ids * tid / nthreads)
end

function request()
  local L = #listing_ids
  local listing = listing_ids[((offset + n) % L) + 1]
  local retailer = tid + nthreads * math.floor(n / L)
  n = n + 1
  if retailer >= #keys then
    -- Out of fresh pairs: a request that cannot succeed, and says so.
    return wrk.format("POST", "/api/v1/board/0/bids", {["Content-Type"] = "application/json"}, "{}")
  end
  return wrk.format("POST", "/api/v1/board/" .. listing .. "/bids",
                    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. keys[retailer + 1]},
                    "{}")
end

function response(status, headers, body)
  if status == 201 then
    created = created + 1
    local l = string.match(body, '"listing_id":%s*(%d+)')
    local s = string.match(body, '"store_id":%s*(%d+)')
    table.insert(acked, l .. ":" .. s)
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local c, o, pairs = 0, 0, {}
  for _, thread in ipairs(threads) do
    c = c + thread:get("created")
    o = o + thread:get("other")
    for _, p in ipairs(thread:get("acked")) do table.insert(pairs, p) end
  end
  io.write("WRKJSON " .. string.format('{"created": %d, "other": %d, "requests": %d, "duration_us": %d, ' ..
    '"socket_errors": %d, "p50_ms": %.2f, "p99_ms": %.2f, "pairs": "%s"}',
    c, o, summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, table.concat(pairs, ",")) .. "\\n")
end
'''

# Counting responses by status, for the GET cases.
GET_LUA = '''
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok, other = 0, 0 end
function response(status, headers, body)
  if status == 200 then ok = ok + 1 else other = other + 1 end
end
function done(summary, latency, requests)
  local o, k = 0, 0
  for _, thread in ipairs(threads) do k = k + thread:get("ok"); o = o + thread:get("other") end
  io.write("WRKJSON " .. string.format('{"ok": %d, "other": %d, "requests": %d, "duration_us": %d, ' ..
    '"socket_errors": %d, "p50_ms": %.2f, "p99_ms": %.2f}', k, o, summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000) .. "\\n")
end
'''


def generate(ctx: Context, products: int, retailers: int, listings: int, seed: int = 7) -> tuple[str, list[str],
                                                                                                  list[int]]:
    """Returns the store's slug, the retailers' API keys and the listing ids."""
    rng = random.Random(seed)
    maker, _ = create_manufacturer(ctx, OPERATOR, NewManufacturer("Bench Co", "bench", "USD",
                                                                    LocationQuery(lat=CITY[0], lon=CITY[1])))
    actor = Actor(ActorKind.MANUFACTURER, maker.id)
    for i in range(products):
        add_product(ctx, actor, NewProduct(f"SKU-{i:05d}", f"Product {i:05d}", 1000 + i,
                                           "A product description of ordinary length.",
                                           f"https://img.example/{i}.jpg"))
    keys = [f"bk_r_bench_{i:06d}_{rng.getrandbits(64):016x}" for i in range(retailers)]
    with ctx.engine.begin() as conn:
        retailer_ids = list(conn.execute(
            insert(m.Retailer).returning(m.Retailer.id, sort_by_parameter_order=True),
            [dict(name=f"Shop {i}", email=f"shop{i}@example.com", active=True, created_at=T0)
             for i in range(retailers)]).scalars())
        conn.execute(insert(m.Store), [dict(retailer_id=rid, name="Store", lat=CITY[0] + rng.gauss(0, 0.05),
                                            lon=CITY[1] + rng.gauss(0, 0.05), area="Chicago",
                                            service_radius_km=60, is_open=True, created_at=T0)
                                       for rid in retailer_ids])
        conn.execute(insert(m.DealerAuthorisation), [dict(manufacturer_id=maker.id, retailer_id=rid,
                                                          authorised_at=T0) for rid in retailer_ids])
        conn.execute(insert(m.ApiKey), [dict(key_hash=digest(key), prefix=key[:10], role=Role.RETAILER,
                                             retailer_id=rid, created_at=T0)
                                        for key, rid in zip(keys, retailer_ids)])
        points = [(CITY[0] + rng.gauss(0, 0.08), CITY[1] + rng.gauss(0, 0.1)) for _ in range(listings)]
        order_ids = list(conn.execute(insert(m.Order).returning(m.Order.id, sort_by_parameter_order=True), [
            dict(manufacturer_id=maker.id, status="open", currency="USD", total=5000, delivery="ship",
                 customer_name="C", customer_email="c@example.com", ship_line1="1 St", ship_line2="",
                 ship_city="Chicago", ship_postal_code="60601", ship_country="US", ship_lat=lat, ship_lon=lon,
                 area="Chicago", access_token_hash=digest(f"bench-{i}"), created_at=T0, updated_at=T0,
                 pickup_attempts=0) for i, (lat, lon) in enumerate(points)]).scalars())
        product_id = conn.execute(select(m.Product.id).limit(1)).scalar_one()
        conn.execute(insert(m.OrderLine), [dict(order_id=oid, product_id=product_id, sku="SKU-00000",
                                                name="Product 00000", unit_price=5000, quantity=1, line_total=5000)
                                           for oid in order_ids])
        listing_ids = list(conn.execute(insert(m.Listing).returning(m.Listing.id, sort_by_parameter_order=True), [
            dict(kind="order", manufacturer_id=maker.id, order_id=oid, status="open",
                 lat=approximate_point(lat, lon)[0], lon=approximate_point(lat, lon)[1], exact_lat=lat, exact_lon=lon,
                 area="Chicago", price=5000, currency="USD", listed_at=T0)
            for oid, (lat, lon) in zip(order_ids, points)]).scalars())
    return maker.slug, keys, listing_ids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of running processes, from /proc (Linux)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class Gunicorn:
    """gunicorn with `broker serve`'s settings (sync workers, access log to stdout), in its own process."""

    def __init__(self, app: str, workers: int, env: dict[str, str], pythonpath: str | None = None):
        self.port = free_port()
        command = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind", f"127.0.0.1:{self.port}",
                   "--access-logfile", "-"]
        if pythonpath:
            command += ["--pythonpath", pythonpath]
        self.process = subprocess.Popen([*command, app], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, path: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"gunicorn exited: {self.process.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        sys.exit("gunicorn did not answer within 60 s")

    def pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [self.process.pid, *(int(p) for p in children.read_text().split())] if children.exists() else []

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def run_wrk(server: Gunicorn, path: str, script: str, args: list[str], *, threads: int, connections: int,
            duration: float) -> dict:
    """wrk against one server; its summary plus the client's and the server's CPU seconds."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        server_cpu = cpu_seconds(server.pids())
        client_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s",
                               "--timeout", "10s", "-s", f.name, server.url + path, "--", *args],
                              capture_output=True, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        server_cpu = cpu_seconds(server.pids()) - server_cpu
    finally:
        os.unlink(f.name)
    line = next((l for l in done.stdout.splitlines() if l.startswith("WRKJSON ")), None)
    if done.returncode or line is None:
        sys.exit(f"wrk failed: {done.stdout[-2000:]} {done.stderr[-2000:]}")
    result = json.loads(line[len("WRKJSON "):])
    result["client_cpu_s"] = round(after.ru_utime + after.ru_stime - client_cpu.ru_utime - client_cpu.ru_stime, 2)
    result["server_cpu_s"] = round(server_cpu, 2)
    result["rps"] = round(result["requests"] / (result["duration_us"] / 1e6), 1)
    return result


def warm(server: Gunicorn, path: str, n: int = 50) -> None:
    for _ in range(n):
        with urllib.request.urlopen(server.url + path, timeout=10) as response:
            response.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", help="an empty database URL (default: a temporary SQLite file)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (default 4)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per case (default 10)")
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--retailers", type=int, default=200)
    parser.add_argument("--listings", type=int, default=1000)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("needs wrk (apt-get install -y wrk)")

    tmp = tempfile.TemporaryDirectory()
    url = args.database or f"sqlite:///{tmp.name}/bench.db"
    upgrade(url)
    settings = Settings(database_url=url, admin_token="bench-admin", secret_key="bench")
    ctx = Context.from_settings(settings)
    started = time.perf_counter()
    slug, keys, listing_ids = generate(ctx, args.products, args.retailers, args.listings)
    print(f"generated in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    Path(tmp.name, "bench_minimal_app.py").write_text(textwrap.dedent(MINIMAL_APP))
    env = {**os.environ, "DATABASE_URL": url, "BROKER_SECRET_KEY": "bench", "BROKER_ADMIN_TOKEN": "bench-admin",
           "BROKER_MAIL_DIR": str(Path(tmp.name, "mail"))}
    common = dict(threads=args.threads, connections=args.connections, duration=args.duration)
    results: dict[str, dict] = {}

    server = Gunicorn("bench_minimal_app:create_app()", args.workers, env, pythonpath=tmp.name)
    try:
        server.wait_ready("/")
        warm(server, "/")
        results["minimal"] = run_wrk(server, "/", GET_LUA, [], **common)
    finally:
        server.stop()
    print(f"minimal: {results['minimal']}", file=sys.stderr)

    server = Gunicorn("web.app:create_app()", args.workers, env)
    try:
        server.wait_ready(f"/s/{slug}/")
        warm(server, f"/s/{slug}/")
        results["catalog"] = run_wrk(server, f"/s/{slug}/", GET_LUA, [], **common)
        print(f"catalog: {results['catalog']}", file=sys.stderr)
        results["bids"] = run_wrk(server, "/", BIDS_LUA, [str(args.threads), ",".join(map(str, listing_ids)),
                                                        ",".join(keys)], **common)
    finally:
        server.stop()

    bids = results["bids"]
    acked = [tuple(map(int, p.split(":"))) for p in bids.pop("pairs").split(",") if p]
    with ctx.engine.connect() as conn:
        store_retailer = dict(conn.execute(select(m.Store.id, m.Store.retailer_id)).all())
        stored = conn.execute(select(m.Bid.listing_id, m.Bid.retailer_id)).all()
        stored_rows = conn.execute(select(func.count()).select_from(m.Bid)).scalar_one()
    acked_pairs = [(listing, store_retailer[store]) for listing, store in acked]
    stored_pairs = {tuple(row) for row in stored}
    lost = len(set(acked_pairs) - stored_pairs)
    duplicated = (len(acked_pairs) - len(set(acked_pairs))) + (stored_rows - len(stored_pairs))
    unacknowledged = len(stored_pairs - set(acked_pairs))
    bid_seconds = bids["duration_us"] / 1e6
    print(f"bids: {bids}; stored {stored_rows}, lost {lost}, duplicated {duplicated}, "
          f"unacknowledged {unacknowledged}", file=sys.stderr)
    cores = os.cpu_count()

    def share(case: dict) -> dict:
        seconds = case["duration_us"] / 1e6
        return {"client_cpu_share": round(case["client_cpu_s"] / (seconds * cores), 2),
                "server_cpu_share": round(case["server_cpu_s"] / (seconds * cores), 2)}

    minimal_rps, catalog_rps = results["minimal"]["rps"], results["catalog"]["rps"]
    print(json.dumps({
        "benchmark": "http", "database": url.split(":", 1)[0], "cores": cores, "workers": args.workers,
        "client": f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s on the same machine",
        "minimal_rps": minimal_rps, "catalog_rps": catalog_rps,
        "catalog_ratio": round(catalog_rps / minimal_rps, 3) if minimal_rps else None,
        "bid_rps": round(bids["created"] / bid_seconds, 1), "bids_created": bids["created"],
        "bid_errors": bids["other"] + bids["socket_errors"], "bids_lost": lost, "bids_duplicated": duplicated,
        "bids_unacknowledged": unacknowledged, "bids_stored": stored_rows,
        "minimal_errors": results["minimal"]["other"] + results["minimal"]["socket_errors"],
        "catalog_errors": results["catalog"]["other"] + results["catalog"]["socket_errors"],
        "latency_p50_ms": {k: v["p50_ms"] for k, v in results.items()},
        "latency_p99_ms": {k: v["p99_ms"] for k, v in results.items()},
        "cpu": {k: share(v) for k, v in results.items()},
        "note": "client and server share the machine: the client's CPU is time the server did not get",
    }))
    ctx.engine.dispose()
    tmp.cleanup()


if __name__ == "__main__":
    main()
