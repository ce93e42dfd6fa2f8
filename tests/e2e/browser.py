"""What the browser tests share: the system's Chromium driven by Playwright, a
WSGI server on a free port, and the rule that without a browser they skip on a
laptop but fail in CI (BROKER_REQUIRE_BROWSER=1)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-background-networking", "--disable-gpu",
                 "--disable-component-update", "--no-first-run"]
REQUIRE_BROWSER = os.environ.get("BROKER_REQUIRE_BROWSER") == "1"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
STEP_TIMEOUT_MS = 10_000

try:
    from playwright.sync_api import expect, sync_playwright  # noqa: F401 - re-exported for the tests
except ImportError as exc:  # pragma: no cover - depends on the machine
    MISSING: str | None = f"Playwright is not installed ({exc}); pip install -e '.[test]'"
else:
    MISSING = None if os.path.exists(CHROMIUM) else f"{CHROMIUM} does not exist; apt-get install chromium"

# Each browser module sets `pytestmark = SKIP_WITHOUT_BROWSER`: no marks when the
# browser is there, or when CI requires it (then a missing one fails the tests).
SKIP_WITHOUT_BROWSER = ([pytest.mark.skip(reason=f"browser tests need a browser: {MISSING}")]
                        if MISSING and not REQUIRE_BROWSER else [])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A WSGI app on 127.0.0.1:<port> in a thread, stopped and joined on close.
    `name` is the host its origin is reached by: "localhost" is the same address,
    but another *site* than 127.0.0.1 (a cross-site frame, for the browser).
    Give `port` when the app must know its own address first (its BROKER_PUBLIC_URL)."""

    def __init__(self, app, port: int | None = None, *, name: str = "127.0.0.1"):
        self.port = port or free_port()
        self.origin = f"http://{name}:{self.port}"
        self._server = make_server("127.0.0.1", self.port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"wsgi-{self.port}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)
        self._server.server_close()  # waits for the request threads


@contextlib.contextmanager
def chromium():
    """Headless Chromium for one module, closed at the end."""
    if MISSING:
        pytest.fail(f"BROKER_REQUIRE_BROWSER=1 but {MISSING}", pytrace=False)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def watched_page(browser, *, any_console_error: bool = True, width: int = 1280, height: int = 900):
    """A page that fails the test on what it reports: a script error, a dialog, a
    Content-Security-Policy violation (an inline style or script slipping in), and,
    with `any_console_error`, every other console error too (a page whose flow
    includes a 4xx response logs one, and turns it off)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(STEP_TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []

    def console(message) -> None:
        csp = "Content Security Policy" in message.text or "Content-Security-Policy" in message.text
        if csp or (any_console_error and message.type == "error"):
            errors.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: (errors.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"the pages reported errors: {errors}"


def sideways_overflow(page) -> int:
    """How many pixels the page scrolls sideways (0 or less: it fits)."""
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


def assert_no_sideways_scrolling(page) -> None:
    overflow = sideways_overflow(page)
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px"


def serious_axe_violations(page) -> list[str]:
    """axe-core's serious and critical violations on the page, one line each."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [f"{v['id']} ({v['impact']}): {[node['target'] for node in v['nodes']][:5]}"
            for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
