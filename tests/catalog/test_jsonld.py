"""schema.org JSON-LD, the product feed and check_feed: claims match the catalog and follow every change."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shopkeep.catalog import CatalogRepository
from shopkeep.catalog.jsonld import IN_STOCK, OUT_OF_STOCK, check_feed, product_feed, product_jsonld
from shopkeep.cli.main import main
from shopkeep.config import load_config
from shopkeep.errors import ValidationError
from shopkeep.serving.app import create_app
from shopkeep.storage import open_store
from shopkeep.types import Item, Money

ITEMS = [
    Item("sku-1", "Lip Mask", brand="Lumen", category=("Beauty", "Lips"), price=Money(2499, "USD"),
         inventory={"warehouse": 3}, rating_avg=4.4, rating_count=10, attributes={"vegan": True}),
    Item("sku-2", "Serum", brand="Nova", price=Money(1200, "JPY"), inventory={"warehouse": 0}),
    Item("sku 3/x", "Unpriced", active=True),
    Item("old", "Gone", price=Money(100, "USD"), active=False),
]


def test_product_fields() -> None:
    docs = {d["sku"]: d for d in product_feed(ITEMS, base_url="https://s.example/p/")}
    assert set(docs) == {"sku-1", "sku-2", "sku 3/x"}
    one = docs["sku-1"]
    assert one["@type"] == "Product" and one["brand"] == {"@type": "Brand", "name": "Lumen"}
    assert one["offers"] == {"@type": "Offer", "price": "24.99", "priceCurrency": "USD", "availability": IN_STOCK,
                             "url": "https://s.example/p/sku-1"}
    assert one["aggregateRating"]["ratingValue"] == 4.4 and one["aggregateRating"]["ratingCount"] == 10
    assert one["category"] == "Beauty > Lips" and one["additionalProperty"][0]["name"] == "vegan"
    assert docs["sku-2"]["offers"]["price"] == "1200" and docs["sku-2"]["offers"]["availability"] == OUT_OF_STOCK
    assert "offers" not in docs["sku 3/x"] and docs["sku 3/x"]["url"].endswith("sku%203%2Fx")
    assert check_feed(list(docs.values()), ITEMS) == []


def test_check_feed_names_every_bad_claim() -> None:
    feed = list(product_feed(ITEMS))
    feed[0] = {**feed[0], "offers": {**feed[0]["offers"], "price": "19.99"}}
    feed[1] = {**feed[1], "offers": {**feed[1]["offers"], "availability": IN_STOCK}}
    feed.append(product_jsonld(ITEMS[3], in_stock=True))  # inactive
    feed.append({"sku": 5})
    feed.append("junk")
    feed.append(feed[0])
    found = {(m.item_id, m.field) for m in check_feed(feed, [*ITEMS, Item("new", "New", price=Money(1, "USD"))])}
    assert found == {("sku-1", "offers.price"), ("sku-2", "offers.availability"), ("old", "sku"),
                     (None, "feed[4]"), (None, "feed[5]"), ("sku-1", "sku"), ("new", "sku")}


def test_bad_items_rejected() -> None:
    with pytest.raises(ValidationError, match=r"items\[0\]"):
        list(product_feed([{"item_id": "x"}]))  # type: ignore[list-item]
    with pytest.raises(ValidationError):
        product_jsonld("x", in_stock=True)  # type: ignore[arg-type]


def test_feed_follows_price_and_stock_changes_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = f"sqlite:///{tmp_path}/s.db"
    store = open_store(uri)
    CatalogRepository(store).upsert_many([replace(it, price=Money(1200, "USD")) if it.item_id == "sku-2" else it
                                          for it in ITEMS])  # the engine's snapshot holds one currency
    store.close()
    config = load_config(None, env={"SHOPKEEP_STORAGE__URI": uri})
    with TestClient(create_app(config, auth=False)) as client:
        def feed() -> list[dict[str, object]]:
            r = client.get("/v1/feed/products.jsonl")
            assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
            return [json.loads(line) for line in r.text.splitlines()]

        before = feed()
        engine = client.app.state.engine  # type: ignore[attr-defined]
        assert check_feed(before, engine.catalog.iter_items(include_inactive=True)) == []
        body = {"item_id": "sku-1", "title": "Lip Mask", "brand": "Lumen", "price": {"amount": 1999, "currency": "USD"},
                "inventory": {"warehouse": 0}}
        assert client.put("/v1/items/sku-1", json=body).status_code == 200
        stale = check_feed(before, engine.catalog.iter_items(include_inactive=True))
        assert {m.field for m in stale if m.item_id == "sku-1"} == {"offers.price", "offers.availability"}
        after = feed()
        assert check_feed(after, engine.catalog.iter_items(include_inactive=True)) == []
        doc = client.get("/v1/products/sku-1/jsonld").json()
        assert doc["offers"]["price"] == "19.99" and doc["offers"]["availability"] == OUT_OF_STOCK
        assert client.get("/v1/products/nope/jsonld").status_code == 404
        assert client.get("/v1/products/old/jsonld").status_code == 404
    out = tmp_path / "feed.jsonl"
    assert main(["catalog", "feed", "--store", uri, "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 3
