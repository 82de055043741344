"""Hypothesis strategies for policy property tests, and an independent invariant checker.

Importable by other suites (Engine, HTTP): ``scenarios()`` draws a whole case
(items, context, policy document, ranked list, k); ``check_invariants`` asserts every policy
invariant on a result using a plain-Python oracle of the hard rules (not the vectorized code).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from shopkeep.catalog.snapshot import CatalogSnapshot, normalize_value
from shopkeep.features.context import Context, ContextRequest, ScoredItem
from shopkeep.policy import PolicyResult, PolicySet
from shopkeep.policy.model import (
    DAY_MS,
    AvoidRule,
    ConsentRule,
    DiversityRule,
    ExcludeRule,
    InventoryRule,
    MapRule,
    PinRule,
    RegulatedRule,
    RepurchaseRule,
    Selector,
)
from shopkeep.types import FulfillmentOption, Item, Money

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
BRANDS = ("Acme", "Lumen", "Knit", None)
PATHS = (("Beauty", "Hair", "Shampoo"), ("Beauty", "Fragrance", "Perfume"), ("Apparel", "Tops", "Tee"),
         ("Grocery", "Snacks", "Chips"), ())
LOCATIONS = ("warehouse", "store-01", "store-02")
REGIONS = ("US-CA", "US-UT", "EU-DE")
SOURCES = ("popular", "trending", "sasrec", "covisit")


@st.composite
def items(draw: st.DrawFn, *, max_items: int = 24) -> list[Item]:
    """A small random catalog: brands, paths, groups, prices with and without MAP, stock, regulation."""
    n = draw(st.integers(1, max_items))
    out = []
    for i in range(n):
        price = draw(st.one_of(st.none(), st.integers(0, 5000)))
        map_price = draw(st.one_of(st.none(), st.integers(0, 5000))) if price is not None else None
        inventory = draw(st.one_of(st.just({}), st.fixed_dictionaries({loc: st.integers(0, 2) for loc in LOCATIONS})))
        ship = draw(st.booleans())
        reg = draw(st.sampled_from((None, None, "alcohol", "retinoid")))
        out.append(Item(
            item_id=f"i{i}", title=f"Item {i}", group_id=draw(st.sampled_from((None, "g0", "g1", "g2", "g3"))),
            brand=draw(st.sampled_from(BRANDS)), category=draw(st.sampled_from(PATHS)),
            attributes={"vegan": draw(st.booleans()), "spf": draw(st.sampled_from((15, 30, 50))),
                        "skin_type": tuple(draw(st.sets(st.sampled_from(("dry", "oily", "normal")), max_size=2)))},
            price=None if price is None else Money(price, "USD"),
            map_price=None if map_price is None else Money(map_price, "USD"),
            regulated_class=reg, regulated_regions=tuple(draw(st.sets(st.sampled_from(REGIONS)))) if reg else (),
            inventory=inventory,
            fulfillment=(FulfillmentOption("ship", "warehouse", sla_days=2),) if ship else (),
            created_at=NOW - timedelta(days=draw(st.integers(0, 90))),
            active=draw(st.booleans().map(lambda b: b or draw(st.booleans()))),
        ))
    return out


def _selector(draw: st.DrawFn, ids: Sequence[str]) -> dict[str, Any]:
    kind = draw(st.sampled_from(("item_ids", "brands", "categories", "attributes")))
    if kind == "item_ids":
        return {"item_ids": draw(st.lists(st.sampled_from(ids), min_size=1, max_size=3, unique=True))}
    if kind == "brands":
        return {"brands": [draw(st.sampled_from([b for b in BRANDS if b]))]}
    if kind == "categories":
        return {"categories": [draw(st.sampled_from(("beauty", "Hair", "tops", "Snacks")))]}
    return {"attributes": {"vegan": draw(st.booleans())} if draw(st.booleans()) else {"skin_type": ["dry"]}}


@st.composite
def policy_docs(draw: st.DrawFn, ids: Sequence[str]) -> dict[str, Any]:
    """A random valid policy document over item ids ``ids``."""
    rules: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(0, 2))):
        rules.append({"kind": "exclude", "select": _selector(draw, ids)})
    if draw(st.booleans()):
        rules.append({"kind": "regulated", "class": draw(st.sampled_from(("alcohol", "retinoid"))),
                      "min_age": draw(st.sampled_from((None, 21))),
                      "regions": draw(st.sampled_from((None, ["US-UT"]))),
                      "unknown_region": draw(st.sampled_from(("restrict", "allow")))})
    if draw(st.booleans()):
        rules.append({"kind": "regulated", "select": {"categories": ["Fragrance"]}, "regions": ["EU-DE"],
                      "min_age": 18})
    if draw(st.booleans()):
        rules.append({"kind": "inventory"})
    if draw(st.booleans()):
        rules.append({"kind": "map", "mode": draw(st.sampled_from(("raise", "hide")))})
    if draw(st.booleans()):
        rules.append({"kind": "repurchase", "categories": {"shampoo": 30, "grocery": 14, "apparel": None},
                      "default_days": draw(st.sampled_from((None, 60))), "include_group": draw(st.booleans())})
    if draw(st.booleans()):
        rules.append({"kind": "consent", "non_personal_sources": ["popular"]})
    if draw(st.booleans()):
        rules.append({"kind": "avoid", "aliases": {"ingredients=fragrance": {"categories": ["Fragrance"]}}})
    positions = draw(st.lists(st.integers(0, 6), max_size=3, unique=True))
    pinned = draw(st.lists(st.sampled_from(ids), min_size=len(positions), max_size=len(positions), unique=True)) \
        if len(ids) >= len(positions) else []
    for pos, item_id in zip(positions, pinned, strict=False):
        window = draw(st.sampled_from((None, {"start": "2026-11-01", "end": "2026-12-01"},
                                       {"start": "2027-01-01"})))
        rules.append({"kind": "pin", "item_id": item_id, "position": pos, **({"window": window} if window else {})})
    for _ in range(draw(st.integers(0, 2))):
        rules.append({"kind": "boost", "select": _selector(draw, ids), "multiply": draw(st.sampled_from((0.5, 2.0))),
                      "add": draw(st.sampled_from((0.0, 1.0))), "max_share": draw(st.sampled_from((None, 0.5)))})
    for by in draw(st.sets(st.sampled_from(("brand", "category", "group")))):
        rules.append({"kind": "diversity", "by": by, "max_per": draw(st.integers(1, 3)),
                      "top_k": draw(st.integers(1, 8)), "level": draw(st.sampled_from((0, -1)))})
    if draw(st.booleans()):
        rules.append({"kind": "novelty", "lambda": draw(st.sampled_from((0.0, 0.5, 1.0))), "top_k": 6})
    if draw(st.booleans()):
        rules.append({"kind": "new_items", "max_age_days": draw(st.sampled_from((7, 30))),
                      "min_slots": draw(st.integers(1, 3)), "top_k": draw(st.integers(1, 8))})
    return {"name": "random", "rules": [{**r, "id": f"r{i}"} for i, r in enumerate(rules)]}


@st.composite
def contexts(draw: st.DrawFn, ids: Sequence[str]) -> Context:
    """A random request context: region, store, age gate, consent, purchases, stated avoids."""
    purchased = {i: NOW_MS - draw(st.integers(0, 90)) * DAY_MS for i in draw(st.lists(st.sampled_from(ids),
                                                                                       max_size=3, unique=True))}
    avoid = draw(st.sampled_from(({}, {"brand": ("acme",)}, {"category": ("Tops",)}, {"vegan": ("false",)},
                                  {"ingredients": ("fragrance",)})))
    surface = draw(st.sampled_from(("home", "pdp", "cart")))
    return Context(request=ContextRequest(surface=surface), now_ms=NOW_MS,
                   region=draw(st.sampled_from((None, *REGIONS))), store=draw(st.sampled_from((None, *LOCATIONS[1:]))),
                   age_verified=draw(st.booleans()), personalize=draw(st.booleans()), purchased=purchased, avoid=avoid)


@st.composite
def ranked_lists(draw: st.DrawFn, ids: Sequence[str]) -> list[ScoredItem]:
    """A ranked list over ``ids`` (and sometimes an unknown id and a duplicate), best first."""
    chosen = draw(st.lists(st.sampled_from([*ids, "ghost"]), max_size=len(ids) + 2))
    scores = draw(st.lists(st.floats(-5, 5, allow_nan=False), min_size=len(chosen), max_size=len(chosen)))
    out = []
    for rank, (item_id, score) in enumerate(sorted(zip(chosen, scores, strict=True), key=lambda t: -t[1])):
        srcs = draw(st.sets(st.sampled_from(SOURCES), min_size=1, max_size=2))
        out.append(ScoredItem(item_id, score, {s: (score, rank) for s in sorted(srcs)}))
    return out


@dataclass(frozen=True)
class Scenario:
    """One drawn case."""

    items: list[Item]
    context: Context
    policy: dict[str, Any]
    ranked: list[ScoredItem]
    k: int


@st.composite
def scenarios(draw: st.DrawFn, *, max_items: int = 24) -> Scenario:
    """A whole random case for ``apply_policy``."""
    its = draw(items(max_items=max_items))
    ids = [it.item_id for it in its]
    return Scenario(its, draw(contexts(ids)), draw(policy_docs(ids)), draw(ranked_lists(ids)), draw(st.integers(0, 12)))


# ------------------------------------------------------------------ oracle


def _sel(it: Item, sel: Selector) -> bool:
    ok = True
    if sel.item_ids:
        ok &= it.item_id in sel.item_ids
    for key, values in sel.attributes:
        v = it.attributes.get(key)
        have = {normalize_value(x) for x in (v if isinstance(v, tuple) else (v,))} if key in it.attributes else set()
        ok &= bool(have & set(values))
    if sel.categories:
        ok &= bool({c.lower() for c in it.category} & {c.lower() for c in sel.categories})
    if sel.brands:
        ok &= it.brand is not None and it.brand.lower() in {b.lower() for b in sel.brands}
    if sel.group_ids:
        ok &= it.group_id in sel.group_ids
    return ok


def _regulated_blocks(it: Item, rule: RegulatedRule, ctx: Context) -> bool:
    matches = (rule.regulated_class is not None and it.regulated_class == rule.regulated_class) or \
        (rule.select is not None and _sel(it, rule.select))
    if not matches or (rule.min_age is not None and ctx.age_verified):
        return False
    if ctx.region is None:
        return rule.unknown_region == "restrict" and (rule.regions is not None or bool(it.regulated_regions))
    regions = rule.regions if rule.regions is not None else it.regulated_regions
    return ctx.region.lower() in {r.lower() for r in regions}


def _in_stock(it: Item, store: str | None) -> bool:
    if not it.inventory:
        return True
    ships = any(f.kind == "ship" and it.inventory.get(f.location or "", 0) > 0 for f in it.fulfillment)
    if not it.fulfillment:
        ships = it.inventory.get("warehouse", 0) > 0
    if store is None:
        return ships or any(q > 0 for q in it.inventory.values())
    return ships or it.inventory.get(store, 0) > 0


def _purchase_blocks(it: Item, rule: RepurchaseRule, ctx: Context, by_id: Mapping[str, Item]) -> bool:
    table = dict(rule.categories)
    for bought_id, ms in ctx.purchased.items():
        bought = by_id[bought_id]
        days = next((table[c.lower()] for c in reversed(bought.category) if c.lower() in table), rule.default_days)
        if days is not None and ctx.now_ms - ms >= days * DAY_MS:
            continue
        if bought.item_id == it.item_id or (rule.include_group and bought.group_id and bought.group_id == it.group_id):
            return True
    return False


def _avoid_blocks(it: Item, ctx: Context, policy: PolicySet) -> bool:
    aliases = {n: s for r in policy.of(AvoidRule) for n, s in r.aliases}
    for key, values in ctx.avoid.items():
        for v in values:
            alias = aliases.get(f"{key.lower()}={normalize_value(v)}")
            if alias is not None:
                hit = _sel(it, alias)
            elif key == "brand":
                hit = it.brand is not None and it.brand.lower() == v.lower()
            elif key == "category":
                hit = v.lower() in {c.lower() for c in it.category}
            else:
                hit = _sel(it, Selector(attributes=((key, (normalize_value(v),)),)))
            if hit:
                return True
    return False


def violates_hard(it: Item, ctx: Context, policy: PolicySet, by_id: Mapping[str, Item]) -> str | None:
    """The first hard rule ``it`` breaks for ``ctx`` (plain Python, independent of the masks), or None."""
    if not it.active:
        return "inactive"
    for rule in policy.rules:
        if isinstance(rule, ExcludeRule) and _sel(it, rule.select):
            return rule.id
        if isinstance(rule, RegulatedRule) and _regulated_blocks(it, rule, ctx):
            return rule.id
        if isinstance(rule, InventoryRule) and not _in_stock(it, ctx.store):
            return rule.id
        if isinstance(rule, RepurchaseRule) and _purchase_blocks(it, rule, ctx, by_id):
            return rule.id
    maps = policy.of(MapRule)
    if maps and maps[0].mode == "hide" and it.price and it.map_price and it.price.amount < it.map_price.amount:
        return "map"
    return "avoid" if _avoid_blocks(it, ctx, policy) else None


def _cap_key(it: Item, rule: DiversityRule) -> str | None:
    if rule.by == "brand":
        return it.brand
    if rule.by == "group":
        return it.group_id
    path = it.category
    return path[rule.level].lower() if -len(path) <= rule.level < len(path) else None


def _breaks_cap(it: Item, above: Sequence[Item], rules: Sequence[DiversityRule], p: int) -> bool:
    for r in rules:
        key = _cap_key(it, r)
        if p < r.top_k and key is not None and sum(_cap_key(a, r) == key for a in above[: r.top_k]) >= r.max_per:
            return True
    return False


def check_invariants(s: Scenario, snapshot: CatalogSnapshot, policy: PolicySet, result: PolicyResult) -> None:
    """Assert every policy invariant on ``result`` for scenario ``s``."""
    by_id = {it.item_id: it for it in s.items}
    ctx = s.context
    out = [by_id[p.item_id] for p in result.items]
    assert [p.position for p in result.items] == list(range(len(result.items)))
    assert len({p.item_id for p in result.items}) == len(result.items)
    for p, it in zip(result.items, out, strict=True):
        assert violates_hard(it, ctx, policy, by_id) is None, (p.item_id, violates_hard(it, ctx, policy, by_id))
        if it.price is None:
            assert p.display_price_minor is None
        else:
            assert p.display_price_minor is not None and p.display_price_minor >= it.price.amount
            if it.map_price is not None:
                assert p.display_price_minor >= it.map_price.amount
    non_personal = {"popular", "trending"} if not policy.of(ConsentRule) else set(
        policy.of(ConsentRule)[0].non_personal_sources)
    if not ctx.personalize:
        assert all(set(p.sources) <= non_personal for p in result.items)
    pins = [r for r in policy.of(PinRule) if r.window.contains(ctx.now_ms)]
    first = list({r.item_id: r for r in reversed(s.ranked)}.values())  # the first copy of an id counts
    eligible_ranked = {r.item_id for r in first if r.item_id in by_id
                       and violates_hard(by_id[r.item_id], ctx, policy, by_id) is None
                       and (ctx.personalize or set(r.sources) & non_personal)}
    eligible_pins = {r.item_id for r in pins if violates_hard(by_id[r.item_id], ctx, policy, by_id) is None}
    assert len(result.items) == min(s.k, len(eligible_ranked | eligible_pins))
    ids = [p.item_id for p in result.items]
    for r in pins:
        if r.item_id in eligible_pins and r.position < len(ids):
            assert ids[r.position] == r.item_id, ("pin", r, ids)
        if r.item_id not in eligible_pins:
            assert r.item_id not in ids
    caps = policy.of(DiversityRule)
    pinned = {r.item_id for r in pins}
    for pos, it in enumerate(out):
        if it.item_id in pinned or not _breaks_cap(it, out[:pos], caps, pos):
            continue
        rest = [by_id[i] for i in eligible_ranked - set(ids[:pos]) - pinned]
        assert all(_breaks_cap(c, out[:pos], caps, pos) for c in rest), ("cap broken needlessly", pos, ids)
        assert any(f.kind == "diversity" and f.item_id == it.item_id and "relaxed" in f.effect for f in result.trace)
