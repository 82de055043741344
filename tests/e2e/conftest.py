"""The web app in headless Chromium: a real ``shopkeep serve`` process (auth off, as ``shopkeep demo``
runs it) over a small synthetic store, driven by Playwright with Debian's /usr/bin/chromium.

Chromium is never downloaded: ``.ci/run`` installs the distribution package. Without it (or without
the ``playwright`` package) the tests skip with the reason, and fail under SHOPKEEP_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import REPO_ROOT, need
from tests.serving.conftest import build_store, stop

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.cli.demo_service import free_port, start_server, wait_ready

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"


@dataclass
class WebApp:
    """A running server for the browser."""

    base: str
    snapshot: CatalogSnapshot


@pytest.fixture(scope="module")
def webapp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebApp]:
    """One server per test module, auth off (the browser sends no key, as in ``shopkeep demo``)."""
    need(CHROMIUM.exists(), f"{CHROMIUM} is absent (apt-get install -y chromium)", kind="services")
    need(importlib.util.find_spec("playwright") is not None, "the playwright package is not installed "
         "(pip install -e '.[dev]')", kind="services")
    folder = tmp_path_factory.mktemp("web")
    uri, artifacts, snapshot = build_store(folder, n_items=400, seed=5)
    port = free_port()
    proc = start_server(uri, artifacts, port, keys=None, log_file=folder / "server.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, 90.0, proc)
        if "/v1/search" in httpx.get(f"{base}/openapi.json").json()["paths"]:
            # the search index builds on first use; build it before the browser's 4 s search timeout
            httpx.post(f"{base}/v1/search", json={"query": "warm up", "anonymous_id": "warm"}, timeout=120.0)
        yield WebApp(base, snapshot)
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def browser(webapp: WebApp) -> Iterator[Any]:
    """Headless Chromium from the distribution (never a Playwright download)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (its own session storage) with a desktop viewport; JS errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(10_000)
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"
