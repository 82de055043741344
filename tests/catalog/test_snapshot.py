"""CatalogSnapshot: columns, stock per location, attribute/category masks, live updates."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import numpy as np
import pytest

from shopkeep.catalog import CatalogRepository
from shopkeep.catalog.snapshot import CatalogSnapshot, normalize_value
from shopkeep.errors import ValidationError
from shopkeep.storage import open_store
from shopkeep.types import FulfillmentOption, Item, Money

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _items() -> list[Item]:
    return [
        Item("a", "Serum", group_id="g1", brand="Lumen", category=("Beauty", "Skincare", "Serums"),
             price=Money(2500, "USD"), cost=Money(1000, "USD"), map_price=Money(2200, "USD"),
             attributes={"vegan": True, "skin_type": ("dry", "Oily"), "spf": 30, "size_ml": 50.0},
             inventory={"warehouse": 3, "store-01": 0},
             fulfillment=(FulfillmentOption("ship", "warehouse", sla_days=2),),
             rating_avg=4.5, rating_count=10, created_at=T0, regulated_class="retinoid",
             regulated_regions=("EU",)),
        Item("b", "Serum 2", group_id="g1", brand="Lumen", category=("Beauty", "Skincare"),
             price=Money(2600, "USD"), attributes={"vegan": False, "skin_type": ("normal",), "spf": 15},
             inventory={"warehouse": 0, "store-01": 2},
             fulfillment=(FulfillmentOption("ship", "warehouse", sla_days=2),
                          FulfillmentOption("pickup", "store-01", same_day=True))),
        Item("c", "Tee", brand="Knit", category=("Apparel", "Tops"), attributes={"color": "Blue"},
             inventory={"store-02": 4}, active=False),
        Item("d", "Ebook", category=("Books",), fulfillment=(FulfillmentOption("digital"),),
             inventory={"store-01": 0}),
        Item("e", "Untracked", category=("Grocery",)),
    ]


def test_columns() -> None:
    s = CatalogSnapshot.from_items(_items())
    assert s.n == len(s) == 5 and s.item_ids == ("a", "b", "c", "d", "e")
    assert s.index["c"] == 2 and s.items[2].title == "Tee"
    assert s.price_minor.tolist() == [2500, 2600, -1, -1, -1]
    assert s.cost_minor.tolist() == [1000, -1, -1, -1, -1]
    assert s.map_minor.tolist() == [2200, -1, -1, -1, -1]
    assert s.currency == "USD"
    assert s.brands == ("Lumen", "Knit") and s.brand.tolist() == [0, 0, 1, -1, -1]
    assert s.group.tolist() == [0, 0, -1, -1, -1] and s.groups == ("g1",)
    assert s.created_ms.tolist() == [int(T0.timestamp() * 1000), -1, -1, -1, -1]
    assert s.active.tolist() == [True, True, False, True, True]
    assert s.rating[0] == pytest.approx(4.5) and np.isnan(s.rating[1])
    assert s.category_paths[0] == ("Beauty", "Skincare", "Serums")
    assert s.regulated.tolist() == [0, -1, -1, -1, -1] and s.regulated_classes == ("retinoid",)
    assert s.price_minor.dtype == np.int64 and s.brand.dtype == np.int32 and s.rating.dtype == np.float32
    with pytest.raises(ValueError):
        s.price_minor[0] = 1  # read-only: the snapshot is immutable


def test_in_stock_per_location() -> None:
    s = CatalogSnapshot.from_items(_items())
    # a: warehouse ships; b: store-01 pickup only (warehouse empty); c: store-02 only;
    # d: digital; e: untracked inventory.
    assert s.in_stock("store-01").tolist() == [True, True, False, True, True]
    assert s.in_stock("store-02").tolist() == [True, False, True, True, True]
    assert s.in_stock("store-99").tolist() == [True, False, False, True, True]
    assert s.in_stock().tolist() == [True, True, True, True, True]
    none = CatalogSnapshot.from_items([Item("z", "Z", inventory={"store-01": 0})])
    assert none.in_stock().tolist() == [False] and none.in_stock("store-01").tolist() == [False]


def test_ship_option_without_location_and_warehouse_default() -> None:
    s = CatalogSnapshot.from_items([
        Item("x", "X", inventory={"store-03": 1}, fulfillment=(FulfillmentOption("delivery"),)),
        Item("y", "Y", inventory={"warehouse-east": 5, "store-01": 0}),
        Item("w", "W", inventory={"store-03": 1}, fulfillment=(FulfillmentOption("ship", "store-09"),)),
    ])
    assert s.can_ship.tolist() == [True, True, False]
    assert s.in_stock("store-01").tolist() == [True, True, False]


def test_attribute_masks_bool_number_list_string() -> None:
    s = CatalogSnapshot.from_items(_items())
    assert s.attribute_mask("vegan", True).tolist() == [True, False, False, False, False]
    assert s.attribute_mask("vegan", "true").tolist() == [True, False, False, False, False]
    assert s.attribute_mask("vegan", False).tolist() == [False, True, False, False, False]
    assert s.attribute_mask("spf", 30).tolist() == [True, False, False, False, False]
    assert s.attribute_mask("spf", 30.0).tolist() == [True, False, False, False, False]
    assert s.attribute_mask("size_ml", 50).tolist() == [True, False, False, False, False]
    assert s.attribute_mask("skin_type", "oily").tolist() == [True, False, False, False, False]
    assert s.attribute_mask("skin_type", ["normal", "dry"]).tolist() == [True, True, False, False, False]
    assert s.attribute_mask("color", " blue ").tolist() == [False, False, True, False, False]
    assert not s.attribute_mask("nope", 1).any() and not s.attribute_mask("spf", 50).any()


def test_category_brand_region_masks() -> None:
    s = CatalogSnapshot.from_items(_items())
    assert s.category_mask("SKINCARE").tolist() == [True, True, False, False, False]
    assert s.category_mask("beauty").sum() == 2 and s.category_mask("serums").tolist()[0]
    assert not s.category_mask("garden").any()
    assert s.brand_mask("lumen").tolist() == [True, True, False, False, False]
    assert not s.brand_mask("nobody").any()
    assert s.region_mask("eu").tolist() == [True, False, False, False, False]


def test_affinity_keys_and_indices() -> None:
    s = CatalogSnapshot.from_items(_items())
    assert s.affinity_keys(0) == (
        "cat:beauty", "cat:skincare", "cat:serums", "brand:lumen", "attr:size_ml=50",
        "attr:skin_type=dry", "attr:skin_type=oily", "attr:spf=30", "attr:vegan=true", "group:g1")
    assert s.affinity_keys(4) == ("cat:grocery",)
    assert s.indices(["e", "a", "missing"]).tolist() == [4, 0, -1]
    assert s.indices([]).tolist() == []
    assert normalize_value(2.5) == "2.5"


def test_with_items_updates_and_appends_without_touching_original() -> None:
    s = CatalogSnapshot.from_items(_items())
    a2 = dataclasses.replace(s.items[0], price=Money(1999, "USD"), brand="NewCo", inventory={"store-07": 1},
                             fulfillment=(), attributes={"vegan": False}, map_price=None,
                             regulated_class=None, regulated_regions=())
    f = Item("f", "Fresh", brand="Knit", category=("Apparel",), price=Money(500, "USD"),
             inventory={"store-08": 2}, created_at=T0)
    u = s.with_items([a2, f])
    assert u.n == 6 and u.item_ids[-1] == "f" and u.index["f"] == 5
    assert u.price_minor.tolist() == [1999, 2600, -1, -1, -1, 500]
    assert u.brands == ("Lumen", "Knit", "NewCo") and u.brand.tolist() == [2, 0, 1, -1, -1, 1]
    assert u.in_stock("store-07").tolist() == [True, False, False, True, True, False]
    assert u.in_stock("store-08").tolist()[5] and not u.in_stock("warehouse").tolist()[0]
    assert u.attribute_mask("vegan", False).tolist() == [True, True, False, False, False, False]
    assert u.category_mask("apparel").tolist() == [False, False, True, False, False, True]
    assert u.map_minor.tolist()[0] == -1 and u.regulated.tolist()[0] == -1
    # the original is unchanged
    assert s.price_minor.tolist()[0] == 2500 and s.n == 5 and s.in_stock("warehouse").tolist()[0]
    assert s.attribute_mask("vegan", True).tolist()[0]
    # the last copy of an id in one batch wins
    v = s.with_items([dataclasses.replace(f, price=Money(1, "USD")), f])
    assert v.price_minor.tolist()[-1] == 500 and v.n == 6
    assert s.with_items([]).price_minor.tolist() == s.price_minor.tolist()


def test_validation_errors() -> None:
    with pytest.raises(ValidationError, match="appears twice"):
        CatalogSnapshot.from_items([Item("a", "A"), Item("a", "B")])
    with pytest.raises(ValidationError, match="one currency"):
        CatalogSnapshot.from_items([Item("a", "A", price=Money(1, "USD")), Item("b", "B", price=Money(1, "EUR"))])
    with pytest.raises(ValidationError, match=r"items\[0\]"):
        CatalogSnapshot.from_items(["a"])  # type: ignore[list-item]
    s = CatalogSnapshot.from_items([Item("a", "A", price=Money(1, "USD"))])
    with pytest.raises(ValidationError, match="one currency"):
        s.with_items([Item("b", "B", price=Money(1, "EUR"))])
    with pytest.raises(ValidationError, match=r"items\[0\]"):
        s.with_items([{"item_id": "x"}])  # type: ignore[list-item]
    empty = CatalogSnapshot.from_items([])
    assert empty.n == 0 and empty.currency == "USD" and empty.in_stock("x").shape == (0,)
    assert empty.with_items([Item("q", "Q", price=Money(5, "EUR"))]).currency == "EUR"


def test_from_repository_includes_inactive() -> None:
    repo = CatalogRepository(open_store("memory://"))
    repo.upsert_many(_items())
    s = CatalogSnapshot.from_repository(repo)
    assert s.n == 5 and s.active.tolist().count(False) == 1
    assert "CatalogSnapshot(n=5" in repr(s)


def _index_as_lists(snap: CatalogSnapshot) -> dict[str, dict[str, list[int]]]:
    return {k: {v: ix.tolist() for v, ix in sorted(t.items())} for k, t in sorted(snap.attribute_index().items())}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_attribute_index_carried_by_with_items_equals_a_fresh_build(seed: int) -> None:
    """with_items edits the old snapshot's attribute index for the changed rows only; the result must be
    exactly what a snapshot built from scratch over the same items computes (values gained, lost and
    changed, keys that vanish, new items appended)."""
    rng = np.random.default_rng(seed)
    colors, sizes = ["red", "blue", "green"], ["s", "m", "l"]

    def item(i: int) -> Item:
        attrs: dict[str, object] = {"color": str(rng.choice(colors))}
        if rng.random() < 0.5:
            attrs["size"] = tuple(rng.choice(sizes, size=int(rng.integers(1, 3))).tolist())
        if rng.random() < 0.2:
            attrs["vegan"] = bool(rng.random() < 0.5)
        return Item(f"i{i}", f"Item {i}", category=("C",), attributes=attrs)

    base = CatalogSnapshot.from_items([item(i) for i in range(40)])
    before = _index_as_lists(base)
    base.attribute_index()  # built: with_items must carry it over
    changed = [item(int(i)) for i in rng.choice(40, size=8, replace=False)] + [item(40 + i) for i in range(5)]
    updated = base.with_items(changed)
    fresh = CatalogSnapshot.from_items(list(updated.items))
    assert _index_as_lists(updated) == _index_as_lists(fresh)
    assert _index_as_lists(base) == before  # the original is untouched
    for v in colors:
        assert updated.attribute_mask("color", v).tolist() == fresh.attribute_mask("color", v).tolist()


def test_in_stock_mask_is_cached_and_read_only() -> None:
    s = CatalogSnapshot.from_items(_items())
    first = s.in_stock("store-01")
    assert s.in_stock("store-01") is first
    with pytest.raises(ValueError):
        first[0] = not first[0]
    assert s.in_stock("nowhere").tolist() == (s.can_ship | s.untracked).tolist()


@pytest.mark.parametrize("seed", [0, 1])
def test_affinity_matrix_matches_the_per_item_keys_and_survives_with_items(seed: int) -> None:
    """match() equals the per-item sum over affinity_keys; key_rows() lists exactly the holders; after
    with_items (changed and appended rows) both equal a fresh build's."""
    rng = np.random.default_rng(seed)

    def item(i: int) -> Item:
        return Item(f"i{i}", f"Item {i}", brand=str(rng.choice(["Acme", "Brio"])),
                    category=("Home", str(rng.choice(["Lamps", "Rugs", "Vases"]))),
                    attributes={"color": str(rng.choice(["red", "blue"])), "size": str(rng.choice(["s", "m"]))},
                    group_id=f"g{i % 7}")

    snap = CatalogSnapshot.from_items([item(i) for i in range(60)])
    snap.warm()
    changed = [item(int(i)) for i in rng.choice(60, size=10, replace=False)] + [item(60 + i) for i in range(4)]
    for s in (snap, snap.with_items(changed)):
        keys = [s.affinity_keys(i) for i in range(s.n)]
        vocab = sorted({k for ks in keys for k in ks})
        weights = {k: float(rng.random()) for k in rng.choice(vocab, size=6, replace=False)} | {"item:zz": 5.0}
        rows = rng.integers(0, s.n, size=30)
        expected = [sum(weights.get(k, 0.0) for k in keys[r]) for r in rows]
        assert np.allclose(s.affinity_matrix().match(weights, rows), expected, rtol=0, atol=1e-12)
        for k in vocab:
            assert s.affinity_matrix().key_rows(k).tolist() == [i for i in range(s.n) if k in keys[i]]
        assert s.affinity_matrix().key_rows("cat:nothing").tolist() == []


def test_affinity_keys_read_off_the_matrix_equal_the_computed_ones() -> None:
    s = CatalogSnapshot.from_items(_items())
    computed = [s.affinity_keys(i) for i in range(s.n)]
    s.warm()
    assert [s.affinity_keys(i) for i in range(s.n)] == computed
    f = Item("f", "Fresh", brand="Knit", category=("Apparel", "Tops"), attributes={"color": "Red"})
    a2 = dataclasses.replace(s.items[0], attributes={"vegan": False}, brand=None)
    u = s.with_items([a2, f])
    assert [u.affinity_keys(i) for i in range(u.n)] == [u._item_keys(i) for i in range(u.n)]
    assert u.affinity_keys(0) == ("cat:beauty", "cat:skincare", "cat:serums", "attr:vegan=false", "group:g1")
