"""A real `koban serve` with a fixed data set, and a headless Debian chromium.

The browser tests skip (saying why) when chromium or Playwright is missing; CI
installs both. Screenshots go to test-artifacts/ui/.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.conftest import KobanServer
from ui import shop_data

CHROMIUM = os.environ.get("KOBAN_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"


@pytest.fixture(scope="module")
def koban(tmp_path_factory) -> Iterator[KobanServer]:
    root = tmp_path_factory.mktemp("ui")
    server = KobanServer(root / "data", root / "server.log").start()
    try:
        server.trace_start_ns = shop_data.load(server.url)
        server.wait_for(lambda: server.client().logs("service:web")["rows"], what="the test data to be queryable")
        server.wait_for(lambda: _has_trace(server), what="the test trace to be queryable")
        yield server
    finally:
        server.stop()


def _has_trace(server: KobanServer) -> bool:
    import httpx

    r = httpx.get(f"{server.url}/api/traces/{shop_data.TRACE_ID}", timeout=5)
    return r.status_code == 200 and len(r.json()["spans"]) == shop_data.SPAN_COUNT


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).exists()):
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install playwright; no browser download needed)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, request) -> Iterator[object]:
    """A fresh page; JavaScript errors on it fail the test. Saved as a screenshot."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, timezone_id="Europe/Berlin")
    context.set_default_timeout(10_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
