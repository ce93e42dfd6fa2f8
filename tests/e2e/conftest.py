"""Fixtures every browser test uses (the browser itself is per module: it must
close before that module's servers stop)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.e2e.browser import ARTIFACTS, MISSING, chromium


@pytest.fixture(scope="module")
def _browser_available():
    if MISSING:
        pytest.fail(f"BROKER_REQUIRE_BROWSER=1 but {MISSING}", pytrace=False)


@pytest.fixture
def shot(request):
    """`shot(page, "step")` saves artifacts/screenshots/<test>/<NN>-<step>.png."""
    folder = ARTIFACTS / re.sub(r"[^\w.=-]+", "-", request.node.name).strip("-")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    count = 0

    def take(page, step: str) -> Path:
        nonlocal count
        count += 1
        path = folder / f"{count:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    take.folder = folder
    return take


@pytest.fixture(scope="module")
def browser(site):
    """Chromium for a module's tests. Depends on the module's `site` so that it
    closes (and drops its connections) before the site's servers stop; a module
    whose server has another name says so with a `browser` of its own."""
    with chromium() as browser:
        yield browser
