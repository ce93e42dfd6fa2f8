"""Instructions a request costs in the app, counted by valgrind: the cached catalog
page and hello-world Flask, in-process.

    python benchmarks/request_instructions.py [--requests 300] [--products 200]

(needs valgrind: `apt-get install valgrind`.) A timer on a shared machine moves
more than a change of a few percent does; an instruction count does not. The
script runs itself again under `valgrind --tool=callgrind`, which counts only
inside `itertools.starmap`'s step (`--toggle-collect=starmap_next`): the requests
are driven by `starmap`, and nothing else runs inside it. The data is the HTTP
benchmark's (`http_load.generate`: one store with N products, on a temporary
SQLite file); each request goes through `app.wsgi_app` with a WSGI environ as
gunicorn builds one. The page cache lives an hour here: a page that expires in
the middle is rendered again (about 30 million instructions), and the counts
would scatter.

The last line is one JSON object: catalog and hello-world instructions a
request, and their ratio. Counted in CPython's interpreter, so compare runs on
one Python version.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import deque
from itertools import repeat, starmap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def environ(path: str) -> dict:
    return {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000", "HTTP_HOST": "127.0.0.1:8000", "wsgi.url_scheme": "http",
            "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
            "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
            "REMOTE_ADDR": "127.0.0.1", "HTTP_USER_AGENT": "wrk", "HTTP_ACCEPT": "*/*"}


def call(app, path: str) -> str:
    status = []
    body = b"".join(app.wsgi_app(environ(path), lambda s, h, e=None: status.append(s)))
    if not status[0].startswith("200") or not body:
        raise SystemExit(f"{path}: {status[0]}")
    return status[0]


def measured(which: str, requests: int, products: int) -> None:
    """Inside valgrind: build, warm, then the counted requests."""
    from flask import Flask

    import http_load
    from broker.config import Settings
    from broker.context import Context
    from broker.migrate import upgrade

    tmp = tempfile.mkdtemp()
    url = f"sqlite:///{tmp}/bench.db"
    upgrade(url)
    ctx = Context.from_settings(Settings(database_url=url, admin_token="bench-admin", secret_key="bench"))
    slug, _, _ = http_load.generate(ctx, products, 5, 10)
    os.environ.update(DATABASE_URL=url, BROKER_SECRET_KEY="bench", BROKER_ADMIN_TOKEN="bench-admin",
                      BROKER_MAIL_DIR=f"{tmp}/mail", BROKER_STOREFRONT_CACHE_SECONDS="3600",
                      BROKER_PUBLIC_URL="http://127.0.0.1:8000")
    if which == "catalog":
        from web.app import create_app

        app, path = create_app(), f"/s/{slug}/"
    else:
        app, path = Flask("hello"), "/"
        app.get("/")(lambda: "Hello, World!")
    for _ in range(200):
        call(app, path)
    deque(starmap(call, repeat((app, path), requests)), maxlen=0)
    shutil.rmtree(tmp, ignore_errors=True)


def count(which: str, requests: int, products: int) -> int:
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--toggle-collect=starmap_next", "--callgrind-out-file=/dev/null",
         sys.executable, __file__, "--inside", which, "--requests", str(requests), "--products", str(products)],
        capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode or not found:
        raise SystemExit(f"valgrind failed: {done.stdout[-2000:]} {done.stderr[-2000:]}")
    return round(int(found.group(1)) / requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--inside", choices=["catalog", "hello"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        measured(args.inside, args.requests, args.products)
        return
    if not shutil.which("valgrind"):
        sys.exit("needs valgrind (apt-get install -y valgrind)")
    catalog = count("catalog", args.requests, args.products)
    hello = count("hello", args.requests, args.products)
    print(f"cached catalog page: {catalog:,} instructions a request; hello-world Flask: {hello:,}", file=sys.stderr)
    print(json.dumps({"benchmark": "request_instructions", "python": sys.version.split()[0],
                      "requests": args.requests, "catalog_instructions": catalog, "hello_instructions": hello,
                      "hello_over_catalog": round(hello / catalog, 3)}))


if __name__ == "__main__":
    main()
