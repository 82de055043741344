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


#: In-page WCAG 2.x check: every visible element with its own text gets the contrast ratio of its text
#: colour against the background it is painted on (ancestors' backgrounds composited, page white).
CONTRAST_JS = """
(minRatio) => {
  const parse = (c) => { const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const over = (top, under) => { const a = top[3];
    return [0, 1, 2].map((i) => top[i] * a + under[i] * (1 - a)).concat(1); };
  const lum = (c) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
  const background = (el) => { const layers = [];
    for (let e = el; e; e = e.parentElement) { const b = parse(getComputedStyle(e).backgroundColor);
      if (b && b[3] > 0) { layers.push(b); if (b[3] >= 1) break; } }
    let bg = [255, 255, 255, 1]; for (const l of layers.reverse()) bg = over(l, bg); return bg; };
  const out = []; let checked = 0;
  for (const el of document.body.querySelectorAll("*")) {
    if (el.closest("svg, [hidden], .sr-only") || el.tagName === "SCRIPT" || el.tagName === "OPTION") continue;
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    const isField = ["INPUT", "SELECT", "TEXTAREA", "BUTTON"].includes(el.tagName);
    if (!own && !isField) continue;
    const r = el.getBoundingClientRect(), st = getComputedStyle(el);
    if (r.width === 0 || r.height === 0 || st.visibility === "hidden" || st.display === "none") continue;
    if (+st.opacity === 0) continue;
    if (el.closest("details:not([open])") && !el.closest("summary")) continue;
    const bg = background(el), fg = over(parse(st.color), bg);
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a), ratio = (hi + 0.05) / (lo + 0.05);
    checked += 1;
    if (ratio < minRatio) out.push({tag: el.tagName, text: (el.textContent || el.value || "").trim().slice(0, 40),
                                    ratio: Math.round(ratio * 100) / 100, color: st.color});
  }
  return {checked, failures: out};
}
"""

#: Every form control has an accessible name (a label, aria-label or aria-labelledby).
UNLABELLED_JS = """
() => [...document.querySelectorAll("input, select, textarea, button")].filter((el) => {
  if (el.type === "hidden" || el.closest("[hidden]")) return false;
  const name = (el.labels && [...el.labels].map((l) => l.textContent).join(" ").trim())
    || el.getAttribute("aria-label") || (el.getAttribute("aria-labelledby") || "").split(" ")
      .map((id) => (document.getElementById(id) || {}).textContent || "").join(" ").trim()
    || (el.tagName === "BUTTON" ? el.textContent.trim() : "");
  return !name;
}).map((el) => el.outerHTML.slice(0, 80))
"""


def check_contrast(page: Any, minimum: float = 4.5) -> int:
    """Assert every visible text on ``page`` reaches ``minimum``:1 contrast; the number of texts checked."""
    result = page.evaluate(CONTRAST_JS, minimum)
    assert not result["failures"], f"text below {minimum}:1 contrast: {result['failures'][:10]}"
    assert not page.evaluate(UNLABELLED_JS), "form controls without an accessible name"
    checked: int = result["checked"]
    return checked
