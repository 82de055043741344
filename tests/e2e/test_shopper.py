"""Shopper flow in the browser: search → filter → view → cart; the home slate moves toward what the
shopper did, and the same request answers the same slate."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx
from tests.e2e.conftest import SCREENSHOTS, WebApp, check_contrast

from shopkeep.catalog.snapshot import CatalogSnapshot

HOME = "section.slate[data-surface='home']"


def slate_ids(page: Any, section: str) -> list[str]:
    """Item ids of a rendered slate, in order."""
    ids: list[str] = page.locator(f"{section} li.card").evaluate_all("els => els.map(e => e.dataset.itemId)")
    return ids


def wait_new_slate(page: Any, section: str, old_trace: str | None) -> str:
    """Wait until ``section`` shows a slate other than ``old_trace``; its trace id."""
    page.wait_for_function(
        "([sel, old]) => { const s = document.querySelector(sel);"
        " return s && s.dataset.traceId !== old && s.querySelector('li.card'); }", arg=[section, old_trace])
    trace: str = page.locator(section).get_attribute("data-trace-id")
    return trace


def share_like(snapshot: CatalogSnapshot, ids: list[str], leaf: str, brand: str | None) -> float:
    """Fraction of ``ids`` in the ``leaf`` category or of ``brand``."""
    hits = 0
    for item_id in ids:
        item = snapshot.items[snapshot.index[item_id]]
        hits += leaf in item.category or (brand is not None and item.brand == brand)
    return hits / max(len(ids), 1)


def shot_dir(tmp_path: Path) -> Path:
    """docs/screenshots when SHOPKEEP_SCREENSHOTS=1 (to refresh the README's pictures), else tmp_path."""
    return SCREENSHOTS if os.environ.get("SHOPKEEP_SCREENSHOTS") == "1" else tmp_path


def test_shopper_flow_personalizes_and_is_repeatable(webapp: WebApp, page: Any, tmp_path: Path) -> None:
    started = time.perf_counter()
    snap = webapp.snapshot
    page.goto(f"{webapp.base}/")
    trace = wait_new_slate(page, HOME, None)
    before = slate_ids(page, HOME)
    assert len(before) == 12
    page.get_by_role("button", name="Refresh").click()
    wait_new_slate(page, HOME, trace)
    assert slate_ids(page, HOME) == before, "the same request must answer the same slate"

    # search by keyboard: type the query and press Enter
    page.get_by_label("Search products").fill("serum")
    page.get_by_label("Search products").press("Enter")
    page.wait_for_selector("#results li.card")
    found = int(page.locator("#results-h").inner_text().split()[0])
    assert found > 0
    every = page.locator("#results li.card").evaluate_all("els => els.map(e => e.dataset.itemId)")
    for i in every:
        item = snap.items[snap.index[i]]
        assert "serum" in f"{item.title} {' '.join(item.category)}".lower(), item

    # filter on an attribute: the listing narrows to items with that value
    skin = page.get_by_label("skin type")
    value = skin.locator("option").nth(1).get_attribute("value")
    skin.select_option(value)
    page.wait_for_selector("#results[data-hash*='skin_type'] li.card")
    narrowed = page.locator("#results li.card").evaluate_all("els => els.map(e => e.dataset.itemId)")
    assert 0 < len(narrowed) <= len(every)
    for item_id in narrowed:
        assert value in snap.items[snap.index[item_id]].attributes["skin_type"]

    # view the first result, add it to the cart, see cart recommendations
    chosen = narrowed[0]
    page.locator(f"#results li.card[data-item-id='{chosen}'] a.title").click()
    page.wait_for_selector("section.slate[data-surface='pdp'] li.card")
    assert page.locator("article.pdp").get_attribute("data-item-id") == chosen
    page.locator("article.pdp button.add").click()
    page.wait_for_function("() => document.getElementById('cart-count').textContent === '1'")
    page.get_by_role("link", name="Cart (1)").click()
    page.wait_for_selector("section.slate[data-surface='cart'] li.card")
    assert page.locator("ul.cart li.line").get_attribute("data-item-id") == chosen

    # home again: the slate moved toward the serum / skin type the shopper looked at
    page.get_by_role("link", name="Home").click()
    trace = wait_new_slate(page, HOME, trace)
    after = slate_ids(page, HOME)
    item = snap.items[snap.index[chosen]]
    leaf = item.category[-1]
    assert share_like(snap, after, leaf, item.brand) > share_like(snap, before, leaf, item.brand), (before, after)
    assert after != before
    assert f"cat:{leaf.lower()}" in page.locator("aside.insight").inner_text()
    page.get_by_role("button", name="Refresh").click()
    wait_new_slate(page, HOME, trace)
    assert slate_ids(page, HOME) == after, "the same request must answer the same slate"

    # each recommendation says why (sources from explain=true)
    first = page.locator(f"{HOME} li.card").first
    first.locator(".why > summary").click()
    assert first.locator(".why .plain li").count() >= 1, "plain-language reasons first"
    assert all(t.strip() for t in first.locator(".why .plain li").all_inner_texts())
    page.screenshot(path=str(shot_dir(tmp_path) / "storefront.png"))
    assert time.perf_counter() - started < 30


def test_persona_switch_and_anonymous(webapp: WebApp, page: Any) -> None:
    persona = httpx.get(f"{webapp.base}/v1/web/personas").json()["personas"][1]
    snap = webapp.snapshot

    def share(ids: list[str]) -> float:
        return sum(snap.items[snap.index[i]].category[0] == persona["category"] for i in ids) / len(ids)

    page.goto(f"{webapp.base}/")
    trace = wait_new_slate(page, HOME, None)
    anonymous = slate_ids(page, HOME)
    page.get_by_label("Shop as").select_option(persona["id"])
    trace = wait_new_slate(page, HOME, trace)
    shopped = slate_ids(page, HOME)
    assert share(shopped) > share(anonymous) and share(shopped) >= 0.5, (persona, shopped)
    assert page.locator("#shopper-id").inner_text().startswith(f"persona-{persona['id']}-")
    assert f"brand:{persona['brand'].lower()}" in page.locator("aside.insight").inner_text()
    page.get_by_role("button", name="Start anonymous").click()
    wait_new_slate(page, HOME, trace)
    assert page.locator("#shopper-id").inner_text().startswith("anon-")
    assert "Nothing yet" in page.locator("aside.insight").inner_text()


def test_concierge_chat_why_and_personalization_switch(webapp: WebApp, page: Any, tmp_path: Path) -> None:
    started = time.perf_counter()
    snap = webapp.snapshot
    page.goto(f"{webapp.base}/#/item/{snap.item_ids[3]}")  # a viewed item: the home slate is personal
    page.wait_for_selector("section.slate[data-surface='pdp'] li.card")
    page.get_by_role("link", name="Home").click()
    trace = wait_new_slate(page, HOME, None)
    first = page.locator(f"{HOME} li.card").first
    first.locator(".why > summary").click()
    assert "Personalization is off" not in first.locator(".why .plain").inner_text()
    assert "personalized price" in page.locator("#disclosures").inner_text()

    # the switch (keyboard): off -> the engine serves a non-personal slate, and every "why" says so
    box = page.get_by_label("Personalize for me")
    box.focus()
    page.keyboard.press("Space")
    trace = wait_new_slate(page, HOME, trace)
    page.locator("#not-personal").wait_for()
    assert not box.is_checked()
    status = httpx.get(f"{webapp.base}/v1/transparency/settings/u-{page.locator('#shopper-id').inner_text()}")
    assert status.json()["personalization"] is False, "stored in the shopper's profile"
    for card in page.locator(f"{HOME} li.card").all()[:3]:
        card.locator(".why > summary").click()
        assert "Personalization is off" in card.locator(".why .plain").inner_text()
    box.check()
    wait_new_slate(page, HOME, trace)
    assert page.locator("#not-personal").count() == 0

    # the concierge: disclosed as automated; products it suggests carry data-item-id
    page.get_by_role("link", name="Concierge").click()
    assert "automated assistant" in page.locator("#assistant-disclosure").inner_text().lower()
    page.get_by_label("Message to the concierge").fill("a moisturizer for dry skin")
    page.get_by_label("Message to the concierge").press("Enter")
    page.wait_for_selector("#chat-log li.bot")
    for turn in range(4):
        if page.locator("#chat-log .chat-product").count():
            break
        options = page.locator("#chat-log li.bot").last.locator(".options button")
        assert options.count(), "the concierge either suggests products or asks with options"
        options.first.click()
        page.wait_for_function("n => document.querySelectorAll('#chat-log li.bot').length > n", arg=turn + 1)
    bots = page.locator("#chat-log li.bot")
    assert all(b.get_attribute("data-automated") == "true" for b in bots.all())
    products = page.locator("#chat-log .chat-product").evaluate_all("els => els.map(e => e.dataset.itemId)")
    assert products and all(p in snap.index for p in products)
    check_contrast(page)
    page.screenshot(path=str(shot_dir(tmp_path) / "concierge.png"))
    assert time.perf_counter() - started < 40
