"""Unit tests: parsing errors, each rule's effect and trace, PolicyStore, the example policy."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.errors import NotFoundError, ValidationError
from shopkeep.features.context import Context, ContextRequest, ScoredItem
from shopkeep.policy import (
    EMPTY_POLICY,
    PolicyStore,
    allowed_sources,
    apply_policy,
    eligibility_mask,
    pacing_keys,
    parse_policy,
)
from shopkeep.storage import open_store
from shopkeep.types import FulfillmentOption, Item, Money

from .strategies import NOW, NOW_MS

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "policies" / "default.json"


def _ctx(**kw: object) -> Context:
    return Context(request=ContextRequest(surface=kw.pop("surface", "home")), now_ms=NOW_MS, **kw)  # type: ignore[arg-type]


def _cat() -> CatalogSnapshot:
    its = []
    for i in range(10):
        its.append(Item(f"i{i}", f"Item {i}", brand="A" if i < 6 else "B", group_id=f"g{i // 2}",
                        category=("Beauty", "Hair", "Shampoo") if i % 2 else ("Apparel", "Tops"),
                        price=Money(1000 + i, "USD"), map_price=Money(1500, "USD") if i == 3 else None,
                        created_at=NOW - timedelta(days=2 if i == 9 else 100),
                        inventory={"store-01": i % 3, "warehouse": 0},
                        fulfillment=(FulfillmentOption("pickup", "store-01"),)))
    return CatalogSnapshot.from_items(its)


def _ranked(ids: list[str]) -> list[ScoredItem]:
    return [ScoredItem(i, float(len(ids) - r), {"popular": (1.0, r)}) for r, i in enumerate(ids)]


@pytest.mark.parametrize(("doc", "message"), [
    ({"rules": [{"kind": "pin", "item_id": "a", "position": 0, "window": {"end": "2026-13-01"}}]},
     "rules[0].window.end='2026-13-01': not an ISO date or timestamp"),
    ({"rules": [{"kind": "nope"}]}, "rules[0].kind='nope': must be one of"),
    ({"rules": [{"kind": "exclude", "select": {}}]}, "rules[0].select={}: must name"),
    ({"rules": [{"kind": "exclude", "select": {"brands": ["A"]}, "extra": 1}]}, "rules[0].extra=1: unknown field"),
    ({"rules": [{"kind": "diversity", "by": "brand", "max_per": 0, "top_k": 3}]}, "rules[0].max_per=0"),
    ({"rules": [{"kind": "novelty", "lambda": 1.5, "top_k": 3}]}, "rules[0].lambda=1.5: must be between"),
    ({"rules": [{"kind": "pin", "position": 1}]}, "rules[0].item_id=None: is required"),
    ({"rules": [{"kind": "inventory", "id": "x"}, {"kind": "map", "id": "x"}]}, "rules[1].id='x': duplicates"),
    ({"rules": [{"kind": "boost", "select": {"brands": ["A"]}}]}, "rules[0].multiply=1.0: a boost needs"),
    ({"rules": [{"kind": "pin", "item_id": "a", "position": 0,
                 "window": {"start": "2026-12-01", "end": "2026-11-01"}}]}, "must be after window.start"),
    ({"rules": [{"kind": "pin", "item_id": "a", "position": 0, "window": {"start": "2026-12-01T00:00:00"}}]},
     "must carry a UTC offset"),
    ({"rules": [{"kind": "repurchase", "categories": {"x": -1}}]}, "rules[0].categories.x=-1"),
    ({"rules": [{"kind": "regulated", "select": {"brands": ["A"]}}]}, "rules[0].regions=None: is required"),
    ({"rules": {"kind": "inventory"}}, "rules="),
    ("{not json", "not valid JSON"),
])
def test_parse_errors_name_rule_field_and_value(doc: object, message: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_policy(doc)  # type: ignore[arg-type]
    assert message in str(err.value)


def test_cross_references_and_version_hash() -> None:
    doc = {"rules": [{"kind": "pin", "item_id": "zz", "position": 0}]}
    with pytest.raises(ValidationError, match=r"rules\[0\].item_id='zz': unknown item"):
        parse_policy(doc, known_items={"a"})
    with pytest.raises(ValidationError, match=r"select.item_ids\[0\]='zz'"):
        parse_policy({"rules": [{"kind": "exclude", "select": {"item_ids": ["zz"]}}]}, known_items={"a"})
    a, b = parse_policy(json.dumps(doc)), parse_policy(doc)
    assert a.version == b.version and a.version.number == 0
    assert parse_policy({"rules": []}).version.hash != a.version.hash


def test_hard_rules_and_trace() -> None:
    snap = _cat()
    pol = parse_policy({"rules": [
        {"id": "ex", "kind": "exclude", "select": {"item_ids": ["i0"]}},
        {"id": "inv", "kind": "inventory"},
        {"id": "rp", "kind": "repurchase", "categories": {"shampoo": 30}, "default_days": None},
        {"id": "pin-ex", "kind": "pin", "item_id": "i0", "position": 0},
    ]})
    ctx = _ctx(store="store-01", purchased={"i2": NOW_MS - 1000, "i5": NOW_MS - 40 * 86_400_000})
    mask = eligibility_mask(snap, ctx, pol)
    # i0 excluded; i3/i6/i9 out of stock (i % 3 == 0); i2 bought (never again) + its group mate i3
    assert np.flatnonzero(mask).tolist() == [1, 4, 5, 7, 8]
    res = apply_policy(ctx, _ranked([f"i{i}" for i in range(10)]), snap, pol, k=10)
    assert [p.item_id for p in res.items] == ["i1", "i4", "i5", "i7", "i8"]
    kinds = {(f.rule_id, f.item_id) for f in res.trace}
    assert ("ex", "i0") in kinds and ("inv", "i3") in kinds and ("rp", "i2") in kinds and ("pin-ex", "i0") in kinds


def test_map_raise_and_hide() -> None:
    snap = _cat()
    ranked = _ranked(["i3", "i4"])
    raised = apply_policy(_ctx(), ranked, snap, EMPTY_POLICY, k=5)
    assert raised.items[0].display_price_minor == 1500 and "map:map-default" in raised.items[0].reasons
    assert raised.items[1].display_price_minor == 1004
    hidden = apply_policy(_ctx(), ranked, snap, parse_policy({"rules": [{"kind": "map", "mode": "hide"}]}), k=5)
    assert [p.item_id for p in hidden.items] == ["i4"]


def test_pins_boosts_and_pacing() -> None:
    snap = _cat()
    pol = parse_policy({"rules": [
        {"id": "pin", "kind": "pin", "item_id": "i8", "position": 1, "surfaces": ["home"]},
        {"id": "bst", "kind": "boost", "select": {"brands": ["B"]}, "add": 100, "max_share": 0.5},
    ]})
    ranked = _ranked(["i0", "i1", "i2", "i7"])
    res = apply_policy(_ctx(), ranked, snap, pol, k=3)
    assert [p.item_id for p in res.items] == ["i7", "i8", "i0"] and "pin:pin" in res.items[1].reasons
    day = "2026-11-25"
    assert pacing_keys(pol, NOW_MS) == (f"policy:slates:{day}", f"boost:bst:slates:{day}",
                                        f"boost:bst:impressions:{day}")
    assert res.pacing_increments == {f"policy:slates:{day}": 1.0, f"boost:bst:slates:{day}": 1.0,
                                     f"boost:bst:impressions:{day}": 1.0}
    spent = apply_policy(_ctx(), ranked, snap, pol, k=3, pacing={f"policy:slates:{day}": 1.0,
                                                                  f"boost:bst:slates:{day}": 1.0})
    assert [p.item_id for p in spent.items] == ["i0", "i8", "i1"]
    assert apply_policy(_ctx(surface="pdp"), ranked, snap, pol, k=3).items[1].item_id != "i8"
    with pytest.raises(ValidationError, match="k=-1"):
        apply_policy(_ctx(), ranked, snap, pol, k=-1)


def test_diversity_floor_novelty_consent() -> None:
    snap = _cat()
    ranked = _ranked([f"i{i}" for i in range(9)] + ["i9"])
    capped = apply_policy(_ctx(), ranked, snap, parse_policy(
        {"rules": [{"id": "cap", "kind": "diversity", "by": "brand", "max_per": 2, "top_k": 4}]}), k=4)
    assert [p.item_id for p in capped.items] == ["i0", "i1", "i6", "i7"]
    assert any(f.rule_id == "cap" and "held back" in f.effect for f in capped.trace)
    floor = apply_policy(_ctx(), ranked, snap, parse_policy(
        {"rules": [{"id": "new", "kind": "new_items", "max_age_days": 7, "min_slots": 1, "top_k": 3}]}), k=3)
    assert [p.item_id for p in floor.items] == ["i0", "i1", "i9"] and "new_items:new" in floor.items[2].reasons
    mmr = apply_policy(_ctx(), ranked, snap, parse_policy(
        {"rules": [{"id": "nov", "kind": "novelty", "lambda": 0.5, "top_k": 3}]}), k=3)
    assert mmr.items[1].item_id != "i1" and any(f.kind == "novelty" for f in mmr.trace)
    personal = [ScoredItem("i1", 2.0, {"sasrec": (2.0, 0)}), ScoredItem("i4", 1.0, {"popular": (1.0, 0)})]
    res = apply_policy(_ctx(personalize=False), personal, snap, EMPTY_POLICY, k=5)
    assert [p.item_id for p in res.items] == ["i4"] and not res.personalized
    assert allowed_sources(_ctx(personalize=False), EMPTY_POLICY) == {"popular", "trending"}
    assert allowed_sources(_ctx(), EMPTY_POLICY) is None


def test_regulated_and_avoid() -> None:
    items = [Item("w", "Wine", regulated_class="alcohol", regulated_regions=("US-UT",)),
             Item("p", "Perfume", brand="Acme", category=("Beauty", "Fragrance"), attributes={"fragrance_free": False}),
             Item("s", "Soap", brand="Zed", attributes={"fragrance_free": True})]
    snap = CatalogSnapshot.from_items(items)
    pol = parse_policy({"rules": [
        {"kind": "regulated", "class": "alcohol", "min_age": 21},
        {"kind": "regulated", "select": {"categories": ["fragrance"]}, "regions": ["EU-DE"], "unknown_region": "allow"},
        {"kind": "avoid", "aliases": {"ingredients=fragrance": {"attributes": {"fragrance_free": False}}}}]})
    assert eligibility_mask(snap, _ctx(region="US-UT"), pol).tolist() == [False, True, True]
    assert eligibility_mask(snap, _ctx(region="US-UT", age_verified=True), pol).tolist() == [True, True, True]
    assert eligibility_mask(snap, _ctx(region="EU-DE", age_verified=True), pol).tolist() == [True, False, True]
    assert eligibility_mask(snap, _ctx(), pol).tolist() == [False, True, True]
    assert eligibility_mask(snap, _ctx(region="US-CA"), pol).tolist() == [True, True, True]
    avoid = _ctx(region="US-CA", avoid={"ingredients": ("fragrance",), "brand": ("zed",)})
    assert eligibility_mask(snap, avoid, pol).tolist() == [True, False, False]


def test_policy_store_versions_atomic_and_rollback(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/p.db")
    ps = PolicyStore(store)
    assert ps.active() is EMPTY_POLICY and ps.history() == []
    v1 = ps.save({"name": "a", "rules": [{"kind": "inventory"}]})
    assert ps.save({"name": "a", "rules": [{"kind": "inventory"}]}).version == v1.version  # unchanged: no-op
    with pytest.raises(ValidationError):
        ps.save({"name": "a", "rules": [{"kind": "pin", "item_id": "zz", "position": 0}]}, known_items={"a"})
    assert ps.active().version.number == 1  # a refused save changes nothing
    ps.save({"name": "b", "rules": []})
    back = ps.activate(1)
    assert back.version.number == 3 and back.version.hash == v1.version.hash
    assert [v.number for v in PolicyStore(open_store(f"sqlite:///{tmp_path}/p.db")).history()] == [1, 2, 3]
    with pytest.raises(NotFoundError):
        ps.get(9)


def test_example_policy_on_synthetic_store() -> None:
    from shopkeep.simulate import StoreConfig, generate_store

    store = generate_store(StoreConfig(n_items=400, n_shoppers=5, n_days=2, seed=3))
    snap = CatalogSnapshot.from_items(store.items)
    pol = parse_policy(EXAMPLE.read_text(), known_items=snap.index)
    ctx = _ctx(store="store-01", region="US-UT")
    mask = eligibility_mask(snap, ctx, pol)
    assert 0 < mask.sum() < snap.n
    ranked = [ScoredItem(snap.item_ids[i], float(-i), {"popular": (0.0, i)}) for i in range(snap.n)]
    res = apply_policy(ctx, ranked, snap, pol, k=10)
    assert len(res.items) == 10
    if mask[snap.index["sku-0000001"]]:
        assert res.items[0].item_id == "sku-0000001" and "pin:brand-campaign-pin" in res.items[0].reasons
    brands = [snap.items[snap.index[p.item_id]].brand for p in res.items]
    assert max(brands.count(b) for b in brands) <= 2


def test_eligibility_speed_100k() -> None:
    """Warm per-request mask cost on 100k items stays well under a few ms (timing printed)."""
    items = [Item(f"s{i}", "x", brand=f"b{i % 50}", category=("C", f"c{i % 20}"), group_id=f"g{i // 3}",
                  attributes={"vegan": bool(i % 2)}, inventory={"store-01": i % 2, "warehouse": i % 5 == 0},
                  regulated_class="alcohol" if i % 97 == 0 else None) for i in range(100_000)]
    snap = CatalogSnapshot.from_items(items)
    pol = parse_policy({"rules": [{"kind": "exclude", "select": {"brands": ["b1"]}}, {"kind": "inventory"},
                                  {"kind": "regulated", "class": "alcohol", "regions": ["US-UT"], "min_age": 21},
                                  {"kind": "repurchase", "categories": {"c1": 30}}]})
    ctx = _ctx(store="store-01", region="US-UT", purchased={"s3": NOW_MS}, avoid={"vegan": ("false",)})
    eligibility_mask(snap, ctx, pol)
    t0 = time.perf_counter()
    for _ in range(20):
        mask = eligibility_mask(snap, ctx, pol)
    per_call_ms = (time.perf_counter() - t0) / 20 * 1000
    print(f"eligibility_mask 100k items, 4 rules + avoid + purchases: {per_call_ms:.3f} ms/call (warm)")
    assert not mask[3] and per_call_ms < 50  # generous bound for a shared 2-core CI machine
