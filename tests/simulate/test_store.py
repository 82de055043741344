"""The synthetic store: determinism, schema sanity, named examples, identity, price response, exports."""

from __future__ import annotations

import itertools
import json
from dataclasses import fields
from datetime import UTC
from pathlib import Path

import numpy as np
import pytest

from shopkeep.errors import NotFoundError, ValidationError
from shopkeep.simulate import SEGMENTS, StoreConfig, SyntheticStore, event_to_wire, generate_store, item_to_wire
from shopkeep.simulate.taxonomy import SKIN_TYPES
from shopkeep.types import Event, EventType, Item, Money

SMALL = StoreConfig(n_items=600, n_shoppers=250, n_days=14, seed=11)


@pytest.fixture(scope="module")
def store() -> SyntheticStore:
    return generate_store(SMALL)


def _bytes(s: SyntheticStore, tmp: Path, tag: str) -> tuple[bytes, bytes]:
    cat, ev = tmp / f"{tag}-catalog.jsonl", tmp / f"{tag}-events.jsonl"
    assert s.write_catalog_jsonl(cat) == len(s.items)
    assert s.write_events_jsonl(ev) == len(s.events)
    return cat.read_bytes(), ev.read_bytes()


def test_same_seed_is_byte_identical_and_other_seed_differs(store: SyntheticStore, tmp_path: Path) -> None:
    again = generate_store(SMALL)
    assert _bytes(store, tmp_path, "a") == _bytes(again, tmp_path, "b")
    assert [s.segment for s in store.shoppers] == [s.segment for s in again.shoppers]
    other = generate_store(StoreConfig(n_items=600, n_shoppers=250, n_days=14, seed=12))
    cat_a, ev_a = _bytes(store, tmp_path, "a")
    cat_c, ev_c = _bytes(other, tmp_path, "c")
    assert cat_a != cat_c and ev_a != ev_c
    assert [i.title for i in store.items] != [i.title for i in other.items]


def test_sizes_and_department_mix(store: SyntheticStore) -> None:
    assert len(store.items) == 600 and len(store.shoppers) == 250
    depts = {i.category[0] for i in store.items}
    assert depts == {"Beauty & Personal Care", "Apparel", "Footwear", "Grocery"}
    beauty = sum(i.category[0] == "Beauty & Personal Care" for i in store.items)
    assert 0.35 < beauty / 600 < 0.55
    assert len({i.item_id for i in store.items}) == 600


def test_money_fields_are_sane(store: SyntheticStore) -> None:
    for it in store.items:
        assert it.price is not None and it.cost is not None
        assert isinstance(it.price.amount, int) and it.price.amount > 0 and it.price.currency == "USD"
        assert 0 < it.cost.amount < it.price.amount
        assert 0.3 <= it.cost.amount / it.price.amount <= 0.7
        if it.map_price is not None:
            assert 0 < it.map_price.amount <= it.price.amount
    assert any(it.map_price is not None for it in store.items)
    assert any(it.map_price is None for it in store.items)


_BOOL = {"fragrance_free", "vegan", "cruelty_free", "waterproof", "organic", "gluten_free"}
_STR = {"shade_family", "color", "size", "fit", "material", "key_ingredient"}


def test_attributes_are_typed(store: SyntheticStore) -> None:
    seen: set[str] = set()
    for it in store.items:
        for key, value in it.attributes.items():
            seen.add(key)
            if key in _BOOL:
                assert isinstance(value, bool), (key, value)
            elif key in _STR:
                assert isinstance(value, str) and value, (key, value)
            elif key in ("spf", "size_ml"):
                assert isinstance(value, int) and not isinstance(value, bool) and value > 0
            elif key == "skin_type":
                assert isinstance(value, tuple) and value and set(value) <= set(SKIN_TYPES)
            elif key == "dietary":
                assert isinstance(value, tuple) and all(isinstance(v, str) for v in value)
            else:
                pytest.fail(f"unexpected attribute {key}")
    assert seen >= _BOOL | {"spf", "size_ml", "skin_type", "dietary", "shade_family", "color", "size", "fit"}


def test_variants_share_groups_and_differ_in_their_variant_attribute(store: SyntheticStore) -> None:
    groups: dict[str, list[Item]] = {}
    for it in store.items:
        assert it.group_id is not None
        groups.setdefault(it.group_id, []).append(it)
    multi = [g for g in groups.values() if len(g) > 1]
    assert multi
    for g in multi:
        assert len({i.brand for i in g}) == 1 and len({i.category for i in g}) == 1
        keys = [tuple(sorted((k, str(v)) for k, v in i.attributes.items())) for i in g]
        assert len(set(keys)) > 1 or g[0].category[-1] in ("Lipstick", "Blush")  # random shades may repeat
    boots = [g for g in multi if g[0].category[-1] == "Hiking Boot"]
    assert boots and all(len({i.attributes["size"] for i in g}) == len(g) for g in boots)


def test_named_examples_exist(store: SyntheticStore) -> None:
    items = store.items
    red_dresses = [i for i in items if i.category[-1] == "Dress" and i.attributes.get("color") == "red"]
    assert red_dresses and any("Crimson Satin Evening Dress" in i.title for i in red_dresses)
    assert any(i.category[-1] == "Hiking Boot" and i.attributes.get("waterproof") is True
               and i.attributes.get("fit") == "wide" for i in items)
    assert any(i.category[-1] == "Moisturizer" and i.attributes.get("fragrance_free") is True for i in items)
    assert any(i.category[-1] == "Sunscreen" and int(i.attributes.get("spf", 0)) >= 30 for i in items)
    assert any(i.category[1] == "Fragrance" and i.category[-1] == "Eau de Parfum" for i in items)
    grocery = [i for i in items if i.category[0] == "Grocery"]
    assert any(i.attributes.get("organic") for i in grocery) and any(i.attributes.get("gluten_free") for i in grocery)


def test_stock_fulfillment_ratings_dates(store: SyntheticStore) -> None:
    items = store.items
    locations = {"warehouse", "store-01", "store-02", "store-03", "store-04", "store-05"}
    assert all(set(i.inventory) == locations for i in items)
    assert any(sum(i.inventory.values()) == 0 for i in items)
    for it in items:
        pickups = {f.location for f in it.fulfillment if f.kind == "pickup"}
        assert pickups == {loc for loc, q in it.inventory.items() if loc != "warehouse" and q > 0}
        assert all(f.same_day for f in it.fulfillment if f.kind == "pickup")
        ships = [f for f in it.fulfillment if f.kind == "ship"]
        assert bool(ships) == (sum(it.inventory.values()) > 0)
        assert all(f.sla_days is not None and f.sla_days > 0 for f in ships)
        assert it.created_at is not None and it.created_at.tzinfo is not None and it.created_at < SMALL.start
        assert (it.rating_avg is None) == (it.rating_count == 0)
        if it.rating_avg is not None:
            assert 1.0 <= it.rating_avg <= 5.0
    rated = [i for i in items if i.rating_count > 0]
    assert len(rated) > len(items) / 2
    assert any((SMALL.start - i.created_at).days < 14 for i in items if i.created_at)


def test_regulated_items_name_their_regions() -> None:
    s = generate_store(StoreConfig(n_items=3000, n_shoppers=5, n_days=1, seed=3))
    reg = [i for i in s.items if i.regulated_class]
    assert {i.regulated_class for i in reg} == {"age_restricted_alcohol", "retinoid"}
    assert all(i.regulated_regions for i in reg) and len(reg) < 0.05 * len(s.items)


def test_events_reference_existing_items_and_shoppers(store: SyntheticStore) -> None:
    items = {i.item_id for i in store.items}
    for e in store.events:
        assert isinstance(e, Event) and e.timestamp.tzinfo is not None and e.timestamp.utcoffset() is not None
        assert e.timestamp.tzinfo == UTC
        assert e.anonymous_id in store.shopper_by_id
        if e.user_id is not None:
            assert store.shopper_by_id[e.user_id] is store.shopper_by_id[e.anonymous_id]
        if e.type in (EventType.VIEW, EventType.ADD_TO_CART, EventType.PURCHASE, EventType.RETURN,
                      EventType.IMPRESSION, EventType.DWELL):
            assert e.item_id in items
        if e.type in (EventType.PURCHASE, EventType.RETURN):
            assert e.order_id and isinstance(e.price, Money) and e.quantity and e.quantity >= 1
        if e.type == EventType.SEARCH:
            assert e.query
        if e.type == EventType.RETURN:
            assert e.reason is not None


def test_time_order_and_sessions(store: SyntheticStore) -> None:
    ts = [e.timestamp for e in store.events]
    assert ts == sorted(ts)
    assert len({e.event_id for e in store.events}) == len(store.events)
    sessions: dict[str, list[Event]] = {}
    for e in store.events:
        if e.session_id:
            sessions.setdefault(e.session_id, []).append(e)
    for evs in sessions.values():
        assert len({e.anonymous_id for e in evs}) == 1
        gaps = [(b.timestamp - a.timestamp).total_seconds() for a, b in itertools.pairwise(evs)]
        assert all(0 <= g < 1800 for g in gaps)  # inside the sessionization timeout
    purchases = {(e.order_id, e.item_id): e.timestamp for e in store.events if e.type == EventType.PURCHASE}
    for e in store.events:
        if e.type == EventType.RETURN:
            assert purchases[(e.order_id, e.item_id)] < e.timestamp


def test_logins_link_anonymous_ids_to_users(store: SyntheticStore) -> None:
    logins = [e for e in store.events if e.type == EventType.LOGIN]
    assert logins and all(e.user_id and e.anonymous_id for e in logins)
    seqs = store.interaction_sequences()
    anon_only = [e for e in store.events if e.type == EventType.VIEW and e.user_id is None
                 and e.anonymous_id in {x.anonymous_id for x in logins}]
    assert anon_only
    e = anon_only[0]
    owner = store.shopper_by_id[e.anonymous_id or ""]
    assert owner.user_id is not None and e.item_id in seqs[owner.user_id]
    guests = [s for s in store.shoppers if s.user_id is None]
    assert guests and any(a in seqs for s in guests for a in s.anonymous_ids)


def test_searches_come_from_intent(store: SyntheticStore) -> None:
    queries = [e.query or "" for e in store.events if e.type == EventType.SEARCH]
    assert len(queries) > 100
    big = generate_store(StoreConfig(n_items=1500, n_shoppers=800, n_days=30, seed=5))
    qs = {e.query for e in big.events if e.type == EventType.SEARCH}
    assert any(q and q.startswith("fragrance-free") for q in qs)
    assert any(q and q.startswith("red dress under $") for q in qs)
    assert any(q and q.startswith("waterproof") for q in qs)
    assert any(e.type == EventType.FILTER and e.attribute and e.value for e in big.events)
    impressions = [e for e in big.events if e.type == EventType.IMPRESSION]
    assert impressions and all(e.trace_id and e.position is not None for e in impressions)


def test_segments_are_ground_truth_that_shows_in_behaviour(store: SyntheticStore) -> None:
    assert {s.segment for s in store.shoppers} <= set(SEGMENTS)
    assert len({s.segment for s in store.shoppers}) >= 8
    by_id = {i.item_id: i for i in store.items}
    share: dict[str, list[float]] = {"grocery": [], "other": []}
    for s in store.shoppers:
        ids = set(s.anonymous_ids)
        views = [by_id[e.item_id or ""] for e in store.events if e.type == EventType.VIEW and e.anonymous_id in ids]
        if len(views) >= 5:
            g = sum(v.category[0] == "Grocery" for v in views) / len(views)
            share["grocery" if s.segment.endswith("grocery") else "other"].append(g)
    assert np.mean(share["grocery"]) > 0.7 > 0.2 > np.mean(share["other"])


def test_purchase_probability_falls_with_price(store: SyntheticStore) -> None:
    shopper = store.shoppers[0]
    item = store.items[10]
    assert item.price is not None
    p = [store.purchase_probability(shopper, item, Money(int(item.price.amount * f), "USD"))
         for f in (0.5, 0.8, 1.0, 1.5, 3.0)]
    assert all(0.0 < x < 1.0 for x in p) and p == sorted(p, reverse=True)
    assert store.purchase_probability(shopper, item) == pytest.approx(p[2])
    batch = store.purchase_probabilities(shopper, store.items[:20])
    assert batch.shape == (20,)
    assert [store.purchase_probability(shopper, i) for i in store.items[:20]] == pytest.approx(batch.tolist())
    sensitive = max(store.shoppers, key=lambda s: s.price_sensitivity)
    relaxed = min(store.shoppers, key=lambda s: s.price_sensitivity)
    drop = {s.shopper_id: store.purchase_probability(s, item, item.price.amount * 2)
            / store.purchase_probability(s, item) for s in (sensitive, relaxed)}
    assert drop[sensitive.shopper_id] < drop[relaxed.shopper_id]
    with pytest.raises(NotFoundError):
        store.purchase_probability(shopper, "sku-nope")
    with pytest.raises(ValidationError, match="price"):
        store.purchase_probability(shopper, item, -3)


def test_ground_truth_matches_simulated_purchases() -> None:
    s = generate_store(StoreConfig(n_items=800, n_shoppers=600, n_days=30, seed=9))
    expected = 0.0
    for e in s.events:
        if e.type == EventType.VIEW and e.item_id:
            expected += s.purchase_probability(s.shopper_by_id[e.anonymous_id or ""], e.item_id)
    bought = sum(1 for e in s.events if e.type == EventType.PURCHASE)
    assert 0.8 < bought / expected < 1.25


def test_wire_formats_round_trip_through_json(store: SyntheticStore, tmp_path: Path) -> None:
    event_fields = {f.name for f in fields(Event)}
    item_fields = {f.name for f in fields(Item)}
    for e in store.events[:2000]:
        wire = json.loads(json.dumps(event_to_wire(e)))
        assert set(wire) <= event_fields and wire["type"] == e.type.value and wire["timestamp"].endswith("Z")
        if e.price is not None:
            assert wire["price"] == {"amount": e.price.amount, "currency": "USD"}
    wire_item = json.loads(json.dumps(item_to_wire(store.items[0])))
    assert set(wire_item) <= item_fields and isinstance(wire_item["price"]["amount"], int)
    path = tmp_path / "events.jsonl"
    store.write_events_jsonl(path, order="time")
    stamps = [json.loads(line)["timestamp"] for line in path.read_text().splitlines()]
    assert stamps == sorted(stamps)


def test_late_events_arrive_out_of_order(tmp_path: Path) -> None:
    s = generate_store(StoreConfig(n_items=300, n_shoppers=200, n_days=10, seed=2, late_event_rate=0.02))
    path = tmp_path / "events.jsonl"
    s.write_events_jsonl(path)
    stamps = [json.loads(line)["timestamp"] for line in path.read_text().splitlines()]
    assert stamps != sorted(stamps) and len(stamps) == len(s.events)
    with pytest.raises(ValidationError, match="order"):
        s.write_events_jsonl(path, order="random")


def test_departments_can_be_restricted() -> None:
    s = generate_store(StoreConfig(n_items=200, n_shoppers=50, n_days=5, seed=1, departments=("grocery",)))
    assert {i.category[0] for i in s.items} == {"Grocery"}
    assert {sh.segment for sh in s.shoppers} <= {"bargain_grocery", "healthy_grocery"}


@pytest.mark.parametrize(("kwargs", "field"), [({"n_items": 5}, "n_items"), ({"n_days": 0}, "n_days"),
                                               ({"departments": ("toys",)}, "departments"),
                                               ({"activity": 0.0}, "activity")])
def test_bad_config_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        StoreConfig(**kwargs)  # type: ignore[arg-type]
    assert err.value.field == field


def test_hundred_thousand_items_generate() -> None:
    """A 100k-item catalog generates (its speed is a benchmark's business, not a unit test's)."""
    s = generate_store(StoreConfig(n_items=100_000, n_shoppers=200, n_days=3, seed=4))
    assert len(s.items) == 100_000 and len({i.item_id for i in s.items}) == 100_000 and len(s.events) > 0
