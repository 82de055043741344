"""audit_catalog on hand-built catalogs with known defects, the route and the CLI over a real SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shopkeep.catalog import CatalogRepository
from shopkeep.catalog.audit import audit_catalog
from shopkeep.cli.main import main
from shopkeep.config import load_config
from shopkeep.errors import ValidationError
from shopkeep.serving.app import create_app
from shopkeep.serving.auth import hash_entries
from shopkeep.storage import open_store
from shopkeep.types import Item, Money


def usd(cents: int) -> Money:
    return Money(cents, "USD")


def clean(i: int, **kw: object) -> Item:
    base: dict[str, object] = {"item_id": f"c{i}", "title": f"Cream number {i} deluxe", "brand": "Lumen",
                               "category": ("Skin",), "price": usd(2000 + 10 * i), "cost": usd(800),
                               "attributes": {"spf": 30, "vegan": True}}
    base.update(kw)
    return Item(**base)  # type: ignore[arg-type]


def kinds(items: list[Item]) -> dict[str, set[tuple[str, ...]]]:
    out: dict[str, set[tuple[str, ...]]] = {}
    for f in audit_catalog(items).findings:
        out.setdefault(f.kind, set()).add(f.item_ids)
    return out


def test_clean_catalog_has_no_findings() -> None:
    assert audit_catalog([clean(i) for i in range(8)]).findings == ()


def test_each_defect_is_found_with_its_item() -> None:
    items = [clean(i) for i in range(8)]
    items += [
        clean(10, price=usd(500), cost=usd(900)),                       # under cost
        clean(11, map_price=usd(5000)),                                 # under MAP
        clean(12, attributes={"spf": 150, "vegan": True}),              # SPF out of range
        clean(13, attributes={"spf": "30", "vegan": True}),             # type mismatch
        clean(14, attributes={"spf": 30, "vegan": True, "size_ml": -5}),  # negative size
        clean(15, rating_avg=7.5),                                      # rating out of range
        clean(16, price=usd(0), cost=None),                             # zero price
        clean(17, price=usd(900_000)),                                  # absurd price vs median
        clean(18, attributes={"vegan": True}),                          # missing spf (common in category)
        clean(19, brand=None),                                          # missing brand
        clean(20, group_id="g1"), clean(21, group_id="g1", brand="Other"),  # mixed brands in a group
        Item("d1", "Hydra Glow Serum 30 ml", brand="Nova", category=("Skin",), price=usd(3000)),
        Item("d2", "hydra glow SERUM, 30 ml", brand="NOVA ", category=("Skin",), price=usd(3100)),
        Item("d3", "Hydra Glow Serum 50 ml", brand="Nova", category=("Skin",), price=usd(3100)),  # not a dup
        clean(22, inventory={"store-1": -2}),
    ]
    found = kinds(items)
    assert found["price_below_cost"] == {("c10",)}
    assert found["price_below_map"] == {("c11",)}
    assert found["out_of_range"] == {("c12",), ("c14",), ("c15",), ("c22",)}
    assert found["type_mismatch"] == {("c13",)}
    assert found["zero_price"] == {("c16",)}
    assert ("c17",) in found["price_outlier"] and ("c16",) not in found["price_outlier"]
    assert ("c18",) in found["missing_attribute"]
    assert ("c19",) in found["missing_field"]
    assert found["inconsistent_group"] == {("c20", "c21")}
    assert found["duplicate"] == {("d1", "d2")}
    finding = next(f for f in audit_catalog(items).findings if f.kind == "price_below_cost")
    assert finding.severity == "error" and finding.field == "price" and finding.value == 500
    assert "5.00 USD" in finding.message and "9.00 USD" in finding.message


def test_inactive_items_are_skipped_and_variants_are_not_duplicates() -> None:
    a = clean(1, title="Lipstick Red", group_id="lip", attributes={"shade": "red"})
    b = clean(2, title="Lipstick Red", group_id="lip", attributes={"shade": "crimson"})
    c = clean(3, title="Lipstick Red", active=False)
    assert "duplicate" not in kinds([a, b, c])
    assert audit_catalog([a, b, c]).n_items == 2


def test_near_duplicates_scale_without_all_pairs() -> None:
    items = [Item(f"i{i}", f"Product {i} alpha beta gamma", brand="B") for i in range(3000)]
    items.append(Item("dup", "Product 7 alpha beta gamma", brand="b"))
    assert kinds(items)["duplicate"] == {("i7", "dup")}


@pytest.mark.parametrize("kw", [{"jaccard": 0.0}, {"jaccard": 1.5}, {"coverage": 0}, {"outlier_ratio": 1.0}])
def test_bad_parameters(kw: dict[str, float]) -> None:
    with pytest.raises(ValidationError) as err:
        audit_catalog([clean(1)], **kw)  # type: ignore[arg-type]
    assert err.value.field == next(iter(kw))


def test_bad_item_is_named() -> None:
    with pytest.raises(ValidationError, match=r"items\[1\]"):
        audit_catalog([clean(1), {"item_id": "x"}])  # type: ignore[list-item]


def test_route_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = f"sqlite:///{tmp_path}/s.db"
    store = open_store(uri)
    CatalogRepository(store).upsert_many([clean(1), clean(2, price=usd(100), cost=usd(900))])
    store.close()
    assert main(["catalog", "audit", "--store", uri, "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["counts"] == {"price_below_cost": 1} and out["findings"][0]["item_ids"] == ["c2"]
    config = load_config(None, env={"SHOPKEEP_STORAGE__URI": uri,
                                    "SHOPKEEP_SERVING__API_KEYS": hash_entries("r:read,a:admin")})
    with TestClient(create_app(config, auth=True)) as client:
        assert client.get("/v1/catalog/audit", headers={"Authorization": "Bearer r"}).status_code == 403
        r = client.get("/v1/catalog/audit", headers={"Authorization": "Bearer a"}, params={"severity": "error"})
        assert r.status_code == 200 and r.json()["findings"][0]["kind"] == "price_below_cost"
        bad = client.get("/v1/catalog/audit", headers={"Authorization": "Bearer a"}, params={"severity": "fatal"})
        assert bad.status_code in (400, 422)
