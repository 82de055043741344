"""Merchandiser flow in the browser: a bad rule is flagged next to itself; a saved exclusion rule is
obeyed by the storefront; the what-if plot moves the expected way when a slider moves (by keyboard)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.e2e.conftest import WebApp
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
