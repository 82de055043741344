"""Affinity dominance after filter events, and complements sanity (rules, exclusions)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

from shopkeep.catalog.snapshot import CatalogSnapshot, normalize_value
from shopkeep.errors import NotFittedError, ValidationError
from shopkeep.features.context import Context, ContextRequest
from shopkeep.retrieval import AffinitySource, AssociationRules, ComplementsSource, Retriever, baskets_from_events
from shopkeep.types import Item

VIEW, FILTER = 1.0, 2.0  # the features' default event weights


def _attribute_values(snap: CatalogSnapshot, lo: float, hi: float) -> list[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for it in snap.items:
        for key, value in it.attributes.items():
            values = value if isinstance(value, tuple | list) else (value,)
            counts.update({(key, normalize_value(v)) for v in values})
    return sorted(kv for kv, n in counts.items() if lo * snap.n <= n <= hi * snap.n)


def _session(world: Any, rng: np.random.Generator, key: str, value: str) -> Context:
    """A session that viewed a few random items, then filtered three times on ``key=value``."""
    snap = world.snapshot
    hist = tuple(world.sequences[sorted(world.sequences)[int(rng.integers(len(world.sequences)))]][:6])
    aff: dict[str, float] = {}
    for item in hist:
        for k in snap.affinity_keys(snap.index[item]):
            aff[k] = aff.get(k, 0.0) + VIEW
    fkey = f"attr:{key}={value}"
    aff[fkey] = aff.get(fkey, 0.0) + 3 * FILTER
    return Context(ContextRequest(surface="home"), now_ms=0, recent_items=hist, affinities=aff)


def test_three_filters_dominate_the_home_slate(world: Any) -> None:
    snap = world.snapshot
    values = _attribute_values(snap, 0.05, 0.30)
    assert len(values) >= 5
    rng = np.random.default_rng(11)
    home = Retriever.for_surface("home", world.sources, index=snap.index)
    shares = []
    for n in rng.choice(len(values), size=min(12, len(values)), replace=False):
        key, value = values[int(n)]
        ctx = _session(world, rng, key, value)
        mask = snap.in_stock() & (rng.random(snap.n) < 0.9)
        top = home.retrieve([ctx], [mask], k=10)[0]
        matching = snap.attribute_mask(key, value)
        shares.append(float(matching[snap.indices([f.item_id for f in top])].mean()))
        assert shares[-1] >= 0.7, (key, value, shares[-1])
    assert np.mean(shares) >= 0.9


def test_affinity_orders_by_strongest_key_and_scales_its_weight(world: Any) -> None:
    snap = world.snapshot
    src: AffinitySource = world.sources["affinity"]
    key, value = _attribute_values(snap, 0.05, 0.30)[0]
    strong = {f"attr:{key}={value}": 6.0, "cat:beauty": 5.0, "brand:nope": 1.0, "item:sku-0000001": 9.0}
    ctx = Context(ContextRequest(), now_ms=0, affinities=strong)
    cands = src.retrieve([ctx], [np.ones(snap.n, dtype=bool)], k=snap.n)[0]
    match = snap.attribute_mask(key, value)
    n_match = int(match.sum())
    assert match[snap.indices([c.item_id for c in cands[:n_match]])].all(), "strongest key first"
    assert len(cands) == int((match | snap.category_mask("beauty")).sum()), "only matching items"
    assert src.context_weight(ctx) == src.explicit_boost, "attr above every cat, no recent items: explicit"
    faint = Context(ContextRequest(), now_ms=0, affinities={"cat:beauty": 1.0})
    assert src.context_weight(faint) == pytest.approx(0.25)
    assert src.context_weight(Context(ContextRequest(), now_ms=0)) == 0.0
    with pytest.raises(ValidationError):
        AffinitySource(snap, prior=np.ones(3))


def _grocery_snapshot() -> CatalogSnapshot:
    items = [
        Item("pasta", "Pasta", category=("Grocery", "Pasta")),
        Item("penne", "Penne", category=("Grocery", "Pasta")),
        Item("sauce", "Tomato sauce", category=("Grocery", "Sauces")),
        Item("sauce-xl", "Tomato sauce XL", group_id="g-sauce", category=("Grocery", "Sauces", "Big")),
        Item("sauce-s", "Tomato sauce S", group_id="g-sauce", category=("Grocery", "Sauces", "Small")),
        Item("cheese", "Parmesan", category=("Grocery", "Cheese")),
        Item("soap", "Soap", category=("Home", "Soap")),
    ]
    return CatalogSnapshot.from_items(items)


def test_complements_rules_and_exclusions() -> None:
    baskets = [["pasta", "sauce", "cheese"]] * 6 + [["pasta", "penne", "sauce-xl", "sauce-s"]] * 3 + \
        [["soap"]] * 8 + [["penne", "cheese"]] * 2 + [["pasta", "soap"]]
    rules = AssociationRules(min_count=2, min_lift=1.0).fit(baskets)
    conf = dict((b, c) for b, c, _ in rules.rules_for("pasta"))
    assert conf["sauce"] == pytest.approx(6 / 10) and "soap" not in conf  # one co-occurrence < min_count
    lifts = {b: lift for b, _, lift in rules.rules_for("pasta")}
    assert lifts["sauce"] == pytest.approx((6 / 10) / (6 / 20))
    snap = _grocery_snapshot()
    src = ComplementsSource(rules, snap)
    pdp = Context(ContextRequest(surface="pdp", item_id="pasta"), now_ms=0)
    got = [c.item_id for c in src.retrieve([pdp], [np.ones(snap.n, dtype=bool)], 10)[0]]
    assert got[0] == "sauce" and "cheese" in got
    assert "penne" not in got, "a substitute in the same leaf category"
    assert "pasta" not in got and "soap" not in got
    cart = Context(ContextRequest(surface="cart"), now_ms=0, cart_items=("sauce-xl",))
    got = [c.item_id for c in src.retrieve([cart], [np.ones(snap.n, dtype=bool)], 10)[0]]
    assert "sauce-s" not in got, "a variant of the same group"
    assert "pasta" in got
    none = Context(ContextRequest(surface="home"), now_ms=0)
    assert src.retrieve([none], [np.ones(snap.n, dtype=bool)], 5) == [[]]
    with pytest.raises(NotFittedError):
        ComplementsSource(AssociationRules(), snap)
    with pytest.raises(ValidationError):
        AssociationRules(min_count=0).fit(baskets)


def test_baskets_from_the_synthetic_store(world: Any) -> None:
    baskets = baskets_from_events(world.store.events)
    assert baskets and all(len(set(b)) == len(b) for b in baskets)
    purchases = {e.item_id for e in world.store.events if str(e.type) == "purchase"}
    assert purchases <= {i for b in baskets for i in b}


def _browse(world: Any, rng: np.random.Generator, n: int) -> Context:
    """A session that only viewed ``n`` random items (every key of an item +VIEW)."""
    snap = world.snapshot
    hist = tuple(snap.item_ids[int(i)] for i in rng.choice(snap.n, size=n, replace=False))
    aff: dict[str, float] = {}
    for item in hist:
        for k in snap.affinity_keys(snap.index[item]):
            aff[k] = aff.get(k, 0.0) + VIEW
    return Context(ContextRequest(surface="home"), now_ms=0, recent_items=hist, affinities=aff)


def test_affinity_weight_is_boosted_by_filters_and_not_by_browsing(world: Any) -> None:
    """The explicit-signal rule both ways: browsing never boosts; three filters on a random value do."""
    snap = world.snapshot
    src: AffinitySource = world.sources["affinity"]
    rng = np.random.default_rng(3)
    for n in (1, 2, 3, 5, 8, 20):
        for _ in range(10):
            ctx = _browse(world, rng, n)
            assert not src.explicit(ctx), (n, ctx.recent_items)
            assert src.context_weight(ctx) <= (src.focus_boost if src.focused(ctx) else 1.0)
    values = _attribute_values(snap, 0.05, 0.30)
    for n in rng.choice(len(values), size=min(15, len(values)), replace=False):
        key, value = values[int(n)]
        ctx = _session(world, rng, key, value)
        assert src.explicit(ctx), (key, value)
        assert src.context_weight(ctx) == pytest.approx(src.explicit_boost)
        # the tie case: every viewed item holds the value and sits in one category, so w(attr) == w(cat)
        holders = np.flatnonzero(snap.attribute_mask(key, value))
        top_cat = snap.items[int(holders[0])].category[0]
        same = [int(i) for i in holders if snap.items[int(i)].category[:1] == (top_cat,)][:4]
        aff: dict[str, float] = {}
        for i in same:
            for k in snap.affinity_keys(i):
                aff[k] = aff.get(k, 0.0) + VIEW
        hist = tuple(snap.item_ids[i] for i in same)
        assert aff[f"attr:{key}={value}"] == aff[f"cat:{top_cat.strip().lower()}"]
        assert not src.explicit(Context(ContextRequest(), now_ms=0, recent_items=hist, affinities=aff))
        aff[f"attr:{key}={value}"] += 3 * FILTER
        assert src.explicit(Context(ContextRequest(), now_ms=0, recent_items=hist, affinities=aff))
    off = Context(ContextRequest(), now_ms=0, personalize=False, affinities={f"attr:{key}={value}": 9.0})
    assert not src.explicit(off) and src.context_weight(off) == 0.0
    with pytest.raises(ValidationError):
        AffinitySource(snap, explicit_boost=0.5)
    with pytest.raises(ValidationError):
        AffinitySource(snap, focus_boost=0.5)


def test_a_focused_session_ranks_the_specific_category_first_and_is_boosted(world: Any) -> None:
    """Three views in one leaf category: that (most specific) category key leads, and the source is boosted."""
    snap = world.snapshot
    src: AffinitySource = world.sources["affinity"]
    rng = np.random.default_rng(5)
    leaves = sorted({path[-1] for path in snap.category_paths if len(path) > 1})
    checked = 0
    for leaf in rng.permutation(leaves)[:10]:
        members = np.flatnonzero(snap.category_mask(str(leaf)))
        if members.size < 3:
            continue
        chosen = [int(i) for i in rng.choice(members, size=3, replace=False)]
        aff: dict[str, float] = {}
        for i in chosen:
            for k in snap.affinity_keys(i):
                aff[k] = aff.get(k, 0.0) + 1.5  # clicks
        ctx = Context(ContextRequest(), now_ms=0, recent_items=tuple(snap.item_ids[i] for i in chosen), affinities=aff)
        top = src.top_keys(ctx)[0][0]
        assert src.key_share(top) <= src.key_share(f"cat:{str(leaf).strip().lower()}") + 1e-12, (leaf, top)
        if top.startswith("cat:"):
            assert src.focused(ctx) and src.context_weight(ctx) == pytest.approx(src.focus_boost)
            checked += 1
    assert checked >= 3


def _clicked(snap: CatalogSnapshot, chosen: list[int]) -> Context:
    aff: dict[str, float] = {}
    for i in chosen:
        for k in snap.affinity_keys(i):
            aff[k] = aff.get(k, 0.0) + 1.5  # clicks: the same weight on every key of the item
    return Context(ContextRequest(), now_ms=0, recent_items=tuple(snap.item_ids[i] for i in chosen), affinities=aff)


def test_a_mission_keeps_the_affinity_list_inside_its_category(world: Any) -> None:
    """Three clicks on members of one variant group tie the group, brand, attributes and every category level;
    the group leads the keys, the mission is the most specific category the three share, and the focused
    source lists only that category's items (without ``focus_only`` it lists siblings too)."""
    snap = world.snapshot
    src: AffinitySource = world.sources["affinity"]
    broad = AffinitySource(snap, focus_only=False)
    groups = Counter(int(g) for g in snap.group if g >= 0)
    checked = 0
    for g, size in sorted(groups.items()):
        if size < 3 or checked >= 5:
            continue
        members = [int(i) for i in np.flatnonzero(snap.group == g)[:3]]
        ctx = _clicked(snap, members)
        shared = set.intersection(*({k for k in snap.affinity_keys(i) if k.startswith("cat:")} for i in members))
        want = min(shared, key=lambda k: (src.key_share(k), k))
        assert src.mission(ctx) == want and src.focused(ctx), (members, src.top_keys(ctx)[:3])
        everyone = np.ones(snap.n, dtype=np.bool_)
        idx, _ = src.retrieve_arrays([ctx], [everyone], 200)[0]
        inside = src.key_mask(want)
        assert len(idx) == min(200, int(inside.sum())) and inside[idx].all()
        wide, _ = broad.retrieve_arrays([ctx], [everyone], 200)[0]
        if inside.sum() < 200:
            assert not inside[wide].all(), "without focus_only the list reaches beyond the mission"
        checked += 1
    assert checked >= 3


def test_no_mission_without_a_shared_category_or_three_items(world: Any) -> None:
    snap = world.snapshot
    src: AffinitySource = world.sources["affinity"]
    tops = {snap.category_paths[i][0]: i for i in range(snap.n) if snap.category_paths[i]}
    assert len(tops) >= 3
    spread = _clicked(snap, list(tops.values())[:3])  # three departments: no category all three hold
    assert src.mission(spread) is None and not src.focused(spread)
    same = [int(i) for i in np.flatnonzero(snap.category_mask(snap.category_paths[0][0]))[:2]]
    assert src.mission(_clicked(snap, same)) is None  # two items are not a mission yet


@pytest.mark.parametrize("k", [3, 20, 200])
def test_affinity_retrieval_equals_a_naive_per_item_scoring(world: Any, k: int) -> None:
    """The code/level scoring and its pruning of hopeless rows give exactly what scoring every eligible
    item key by key gives: the same items, order (ties to the lower index) and float scores."""
    snap = world.snapshot
    rng = np.random.default_rng(k)
    prior = rng.gamma(0.5, size=snap.n)
    prior[rng.random(snap.n) < 0.3] = 0.0
    prior[:50] = prior.max()  # ties at the top of the prior
    source = AffinitySource(snap, prior=prior)
    scaled = prior / prior.max()
    for trial in range(25):
        aff: dict[str, float] = {}
        for i in rng.integers(snap.n, size=int(rng.integers(1, 6))):
            for key in snap.affinity_keys(int(i)):
                aff[key] = aff.get(key, 0.0) + float(rng.choice([1.0, 2.0, 0.5]))  # equal weights tie
        ctx = Context(ContextRequest(surface="home"), now_ms=0, affinities=aff)
        mask = rng.random(snap.n) < (0.95 if trial % 2 else 0.4)
        idx, val = source.retrieve_arrays([ctx], [mask], k)[0]
        keys = source.top_keys(ctx)
        holds = [source.key_mask(key) for key, _ in keys]
        naive = []
        for i in np.flatnonzero(mask).tolist():
            if not any(h[i] for h in holds):
                continue
            match = 0.0
            for j, (_key, w) in enumerate(keys):
                match += (w / keys[0][1]) * source.key_discount**j * float(holds[j][i])
            naive.append((-(match + source.prior_weight * scaled[i]), i))
        naive.sort()
        assert idx.tolist() == [i for _, i in naive[:k]], (trial, keys)
        assert val.tolist() == [-s for s, _ in naive[:k]]
