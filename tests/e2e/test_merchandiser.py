"""Merchandiser flow in the browser: a bad rule is flagged next to itself; a saved exclusion rule is
obeyed by the storefront; the what-if plot moves the expected way when a slider moves (by keyboard)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from tests.e2e.conftest import WebApp, check_contrast
from tests.e2e.test_shopper import HOME, shot_dir, slate_ids, wait_new_slate


def brands_of(webapp: WebApp, ids: list[str]) -> list[str | None]:
    """The brand of each item id."""
    return [webapp.snapshot.items[webapp.snapshot.index[i]].brand for i in ids]


def set_last_rule(page: Any, rule: dict[str, Any]) -> int:
    """Add a rule from the template picker and replace its JSON with ``rule``; its index."""
    page.get_by_role("button", name="Add rule").click()
    areas = page.locator("#rules textarea")
    index = areas.count() - 1
    areas.nth(index).fill(json.dumps(rule))
    return index


def test_keyboard_labels_and_contrast(webapp: WebApp, page: Any) -> None:
    started = time.perf_counter()
    page.goto(f"{webapp.base}/")
    trace = wait_new_slate(page, HOME, None)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # the skip link's #main is an anchor, not a route: the page is not rendered again (no new slate, the
    # "why" opened next stays open); the wait lets a wrongly scheduled re-render show itself
    page.wait_for_timeout(500)
    assert page.locator("main").get_attribute("aria-busy") == "false"
    assert page.locator(HOME).get_attribute("data-trace-id") == trace
    page.locator(f"{HOME} li.card .why > summary").first.focus()
    page.keyboard.press("Enter")
    assert page.locator(f"{HOME} li.card .why").first.get_attribute("open") is not None
    assert page.locator(HOME).get_attribute("data-trace-id") == trace
    counted = check_contrast(page)
    for route in ("#/search?q=serum", "#/concierge", "#/cart"):
        page.goto(f"{webapp.base}/{route}")
        page.wait_for_selector("main[aria-busy='false'] h1")
        counted += check_contrast(page)
    page.goto(f"{webapp.base}/console")
    page.wait_for_selector("#rules textarea")
    page.wait_for_selector("#whatif-now-marker")
    counted += check_contrast(page)
    assert counted > 100, "the check saw the pages' text"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    assert time.perf_counter() - started < 30


def test_rule_edit_is_validated_inline_and_obeyed(webapp: WebApp, page: Any, tmp_path: Path) -> None:
    started = time.perf_counter()
    page.goto(f"{webapp.base}/")
    wait_new_slate(page, HOME, None)
    shown = slate_ids(page, HOME)
    brand = max(set(brands_of(webapp, shown)) - {None}, key=brands_of(webapp, shown).count)
    assert brand is not None

    page.goto(f"{webapp.base}/console")
    page.wait_for_selector("#rules textarea")
    before = page.locator("#policy-version").inner_text()
    index = set_last_rule(page, {"id": "e2e-bad", "kind": "boost", "select": {"brands": [brand]},
                                 "multiply": "lots"})
    page.get_by_role("button", name="Save policy").click()
    error = page.locator(f"#rule-{index}-err")
    error.wait_for(state="visible")
    assert "multiply" in error.inner_text()
    assert page.locator(f"#rule-{index}").get_attribute("aria-invalid") == "true"
    assert page.locator(".rule-error:not(:empty)").count() == 1, "only the offending rule is flagged"
    assert page.locator("#policy-version").inner_text() == before, "nothing saved"

    page.locator(f"#rule-{index}").fill(json.dumps({"id": "e2e-no-brand", "kind": "exclude",
                                                    "select": {"brands": [brand]}}))
    page.get_by_role("button", name="Save policy").click()
    page.wait_for_function("() => document.getElementById('policy-version').textContent.includes('saved')")
    assert page.locator(".rule-error:not(:empty)").count() == 0

    store = page.context.new_page()
    store.goto(f"{webapp.base}/")
    wait_new_slate(store, HOME, None)
    now = slate_ids(store, HOME)
    assert len(now) == len(shown)
    assert brand not in brands_of(webapp, now), f"{brand} is excluded but still recommended"
    product = next(i for i in shown if brands_of(webapp, [i])[0] != brand)
    store.goto(f"{webapp.base}/#/item/{product}")
    store.wait_for_selector("section.slate[data-surface='pdp'] li.card")
    pdp = store.locator("section.slate[data-surface='pdp'] li.card").evaluate_all(
        "els => els.map(e => e.dataset.itemId)")
    assert brand not in brands_of(webapp, pdp)
    # browsing obeys the exclusion too: the brand has no listing and no filter value
    store.goto(f"{webapp.base}/#/search")
    store.wait_for_selector("#results li.card")
    options = store.get_by_label("Brand").locator("option").evaluate_all("els => els.map(e => e.value)")
    assert brand not in options and len(options) > 2
    listed = store.locator("#results li.card").evaluate_all("els => els.map(e => e.dataset.itemId)")
    assert listed and brand not in brands_of(webapp, listed)
    store.goto(f"{webapp.base}/#/search?brand={brand}")
    store.wait_for_function("() => /^0 products/.test(document.getElementById('results-h')?.textContent || '')")
    assert store.locator("li.card").count() == 0
    store.close()
    assert time.perf_counter() - started < 30


def test_whatif_slider_moves_the_plot(webapp: WebApp, page: Any, tmp_path: Path) -> None:
    started = time.perf_counter()
    page.goto(f"{webapp.base}/console")
    marker = page.locator("#whatif-now-marker")
    marker.wait_for()

    def point(margin: str, diversity: str = "0") -> tuple[float, float, float]:
        page.wait_for_selector(f"#whatif-plot[data-margin='{margin}'][data-diversity='{diversity}']")
        return (float(marker.get_attribute("data-x")), float(marker.get_attribute("data-y")),
                float(page.locator("#now-brands").inner_text()))

    rel0, margin0, _ = point("0")
    assert rel0 == 1.0
    slider = page.get_by_role("slider", name="Margin weight")
    slider.focus()
    slider.press("End")  # keyboard: the slider's maximum
    rel1, margin1, brands1 = point("4")
    assert margin1 > margin0, "a larger margin weight must raise the expected margin"
    assert rel1 < rel0, "and give up some relevance"
    diversity = page.get_by_role("slider", name="Diversity")
    diversity.focus()
    diversity.press("End")
    _, _, brands2 = point("4", "3")
    assert brands2 > brands1, "more diversity must show more distinct brands"
    page.get_by_role("heading", name="Live metrics").scroll_into_view_if_needed()
    page.wait_for_selector("#metrics-body table")
    page.screenshot(path=str(shot_dir(tmp_path) / "console.png"), full_page=True)
    assert time.perf_counter() - started < 30


def test_offers_audit_log(webapp: WebApp, page: Any) -> None:
    body = {"shopper_key": "psk-e2e", "item": {"item_id": "sku-1", "price": {"amount": 4000, "currency": "USD"},
                                               "cost": {"amount": 2000, "currency": "USD"}},
            "features": {"loyalty_member": 0, "deal_affinity": 4.0, "engagement": -1.5, "log_price": 3.7,
                         "offers_seen": 0}}
    decision = httpx.post(f"{webapp.base}/v1/offers/decide", json=body, timeout=120.0).json()
    started = time.perf_counter()
    page.goto(f"{webapp.base}/console#audit")
    row = page.locator(f"#audit-body tr[data-decision-id='{decision['decision_id']}']")
    row.wait_for()
    assert "psk-e2e" in row.inner_text() and decision["action"] in row.inner_text()
    row.get_by_role("button").click()
    page.locator("#decision-h").wait_for()
    assert page.evaluate("document.activeElement.id") == "decision-h"
    assert page.locator("#audit-detail tbody tr").count() >= 2, "every candidate with its verdict"
    check_contrast(page)
    assert time.perf_counter() - started < 20
