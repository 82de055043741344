"""Hard eligibility: the rules no ranking, boost or pin may override, vectorized over a snapshot.

Each hard rule becomes a :class:`HardCheck` (an "ok" mask plus the reason an item fails it);
:func:`eligibility_mask` ANDs them. Masks that depend only on (snapshot, policy) — exclusions,
MAP hiding — and those that depend on a few request values — store, region, age gate — are cached
per snapshot (weakly, so a replaced snapshot frees its cache).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from shopkeep.catalog.snapshot import CatalogSnapshot, Mask, normalize_value
from shopkeep.features.context import Context
from shopkeep.policy.model import (
    DAY_MS,
    AvoidRule,
    ConsentRule,
    ExcludeRule,
    InventoryRule,
    MapRule,
    PolicySet,
    RegulatedRule,
    RepurchaseRule,
    Selector,
)

__all__ = ["HardCheck", "allowed_sources", "eligibility_mask", "hard_checks", "map_mode", "selector_mask"]

_CACHE: weakref.WeakKeyDictionary[CatalogSnapshot, dict[Hashable, Mask]] = weakref.WeakKeyDictionary()
_CACHE_LIMIT = 512
DEFAULT_NON_PERSONAL = ("popular", "trending")


@dataclass(frozen=True, slots=True)
class HardCheck:
    """One hard rule evaluated for a request: ``ok[i]`` is False where item ``i`` fails it."""

    rule_id: str
    kind: str
    ok: Mask
    reason: str


def _cached(snapshot: CatalogSnapshot, key: Hashable, build: Callable[[], Mask]) -> Mask:
    table = _CACHE.setdefault(snapshot, {})
    found = table.get(key)
    if found is None:
        if len(table) >= _CACHE_LIMIT:  # request values (stores, regions) are unbounded input
            table.clear()
        found = build()
        found.flags.writeable = False
        table[key] = found
    return found


def selector_mask(snapshot: CatalogSnapshot, sel: Selector) -> Mask:
    """Items matching ``sel`` (AND across fields, OR within a field); cached per snapshot."""
    return _cached(snapshot, ("sel", sel), lambda: _selector_mask(snapshot, sel))


def _selector_mask(snapshot: CatalogSnapshot, sel: Selector) -> Mask:
    out = np.ones(snapshot.n, dtype=np.bool_)
    if sel.item_ids:
        idx = snapshot.indices(sel.item_ids)
        m = np.zeros(snapshot.n, dtype=np.bool_)
        m[idx[idx >= 0]] = True
        out &= m
    for key, values in sel.attributes:
        out &= snapshot.attribute_mask(key, list(values))
    if sel.categories:
        out &= np.logical_or.reduce([snapshot.category_mask(c) for c in sel.categories])
    if sel.brands:
        out &= np.logical_or.reduce([snapshot.brand_mask(b) for b in sel.brands])
    if sel.group_ids:
        codes = [i for i, g in enumerate(snapshot.groups) if g in set(sel.group_ids)]
        out &= np.isin(snapshot.group, np.asarray(codes, dtype=np.int32))
    return out


def map_mode(policy: PolicySet) -> tuple[str, str]:
    """(rule id, mode) of the first MAP rule, or ("map-default", "raise") without one."""
    rules = policy.of(MapRule)
    return (rules[0].id, rules[0].mode) if rules else ("map-default", "raise")


def _regulated(snapshot: CatalogSnapshot, rule: RegulatedRule, region: str | None, verified: bool) -> Mask:
    want = (rule.regulated_class or "").strip().lower()
    codes = [i for i, c in enumerate(snapshot.regulated_classes) if c.strip().lower() == want]
    of_class = np.isin(snapshot.regulated, np.asarray(codes, dtype=np.int32))
    if rule.select is not None:
        of_class = of_class | selector_mask(snapshot, rule.select)
    if rule.min_age is not None and verified:
        return np.ones(snapshot.n, dtype=np.bool_)
    if region is None:
        if rule.unknown_region == "allow":
            return np.ones(snapshot.n, dtype=np.bool_)
        here = of_class if rule.regions is not None else of_class & _has_regions(snapshot)
    elif rule.regions is not None:
        listed = region.strip().lower() in {r.strip().lower() for r in rule.regions}
        here = of_class if listed else np.zeros(snapshot.n, dtype=np.bool_)
    else:
        here = of_class & snapshot.region_mask(region)
    out: Mask = ~here
    return out


def _has_regions(snapshot: CatalogSnapshot) -> Mask:
    return _cached(snapshot, ("has_regions",),
                   lambda: np.fromiter((bool(it.regulated_regions) for it in snapshot.items), np.bool_, snapshot.n))


def _avoid(snapshot: CatalogSnapshot, context: Context, aliases: dict[str, Selector]) -> tuple[Mask, str]:
    hit = np.zeros(snapshot.n, dtype=np.bool_)
    said: list[str] = []
    for key, values in sorted(context.avoid.items()):
        k = key.strip().lower()
        for value in values:
            alias = aliases.get(f"{k}={normalize_value(value)}")
            if alias is not None:
                m = selector_mask(snapshot, alias)
            elif k == "brand":
                m = snapshot.brand_mask(value)
            elif k == "category":
                m = snapshot.category_mask(value)
            elif k in ("item", "item_id"):
                m = selector_mask(snapshot, Selector(item_ids=(value,)))
            else:
                m = snapshot.attribute_mask(key, value)
            hit |= m
            said.append(f"{k}={value}")
    out: Mask = ~hit
    return out, "stated avoid: " + ", ".join(said)


def _interval_days(rule: RepurchaseRule, path: tuple[str, ...]) -> float | None:
    table = dict(rule.categories)
    for level in reversed(path):
        name = level.strip().lower()
        if name in table:
            return table[name]
    return rule.default_days


def _repurchase(snapshot: CatalogSnapshot, context: Context, rule: RepurchaseRule) -> Mask:
    hit = np.zeros(snapshot.n, dtype=np.bool_)
    groups: list[int] = []
    for item_id, ms in context.purchased.items():
        i = snapshot.index.get(item_id)
        if i is None:
            continue
        days = _interval_days(rule, snapshot.category_paths[i])
        if days is not None and context.now_ms - ms >= days * DAY_MS:
            continue  # replenishable and its interval has passed
        hit[i] = True
        if rule.include_group and snapshot.group[i] >= 0:
            groups.append(int(snapshot.group[i]))
    if groups:
        hit |= np.isin(snapshot.group, np.asarray(groups, dtype=np.int32))
    out: Mask = ~hit
    return out


def _not_selected(snapshot: CatalogSnapshot, sel: Selector) -> Mask:
    def build() -> Mask:
        out: Mask = ~selector_mask(snapshot, sel)
        return out

    return _cached(snapshot, ("not", sel), build)


def _regulated_cached(snapshot: CatalogSnapshot, key: tuple[str, str], rule: RegulatedRule, region: str | None,
                      verified: bool) -> Mask:
    return _cached(snapshot, (*key, region, verified), lambda: _regulated(snapshot, rule, region, verified))


def hard_checks(snapshot: CatalogSnapshot, context: Context, policy: PolicySet) -> list[HardCheck]:
    """Every hard rule for this request, in precedence order (inactive first)."""
    h = policy.version.hash
    checks = [HardCheck("catalog", "inactive", snapshot.active, "inactive item")]
    for rule in policy.rules:
        if isinstance(rule, ExcludeRule):
            checks.append(HardCheck(rule.id, rule.kind, _not_selected(snapshot, rule.select),
                                    "excluded by merchant rule"))
        elif isinstance(rule, RegulatedRule):
            region = context.region
            ok = _regulated_cached(snapshot, (h, rule.id), rule, region, context.age_verified)
            need = "needs age verification" if rule.min_age is not None else "not sold"
            what = rule.regulated_class or "selected items"
            checks.append(HardCheck(rule.id, rule.kind, ok, f"regulated ({what}) {need} in region {region!r}"))
        elif isinstance(rule, InventoryRule):
            ok = _cached(snapshot, ("stock", context.store), lambda: snapshot.in_stock(context.store))
            where = f"at {context.store!r}" if context.store else "anywhere"
            checks.append(HardCheck(rule.id, rule.kind, ok, f"out of stock {where} and not shippable"))
        elif isinstance(rule, RepurchaseRule) and context.purchased:
            checks.append(HardCheck(rule.id, rule.kind, _repurchase(snapshot, context, rule),
                                    "recently purchased (item or its variant group)"))
    rule_id, mode = map_mode(policy)
    if mode == "hide":
        ok = _cached(snapshot, ("map_hide",), lambda: ~((snapshot.map_minor >= 0) & (snapshot.price_minor >= 0)
                                                        & (snapshot.price_minor < snapshot.map_minor)))
        checks.append(HardCheck(rule_id, "map", ok, "price below MAP (hidden)"))
    if context.avoid:
        avoid = policy.of(AvoidRule)
        aliases = {name: sel for r in avoid for name, sel in r.aliases}
        ok, why = _avoid(snapshot, context, aliases)
        checks.append(HardCheck(avoid[0].id if avoid else "avoid-default", "avoid", ok, why))
    return checks


def eligibility_mask(snapshot: CatalogSnapshot, context: Context, policy: PolicySet) -> Mask:
    """Items that pass every hard rule for ``context`` (a fresh array; push it into retrieval).

    Hard rules: inactive items, exclusions, regulated class vs region/age gate, inventory at the
    shopper's store or shippable, recent purchases (per-category repurchase intervals, variant
    groups), MAP hiding and stated avoid preferences."""
    out = np.ones(snapshot.n, dtype=np.bool_)
    for check in hard_checks(snapshot, context, policy):
        out &= check.ok
    return out


def allowed_sources(context: Context, policy: PolicySet) -> frozenset[str] | None:
    """Candidate sources allowed for ``context``: None = all; without personalization consent only
    the consent rule's non-personal sources (``popular``/``trending`` by default)."""
    if context.personalize:
        return None
    rules = policy.of(ConsentRule)
    return frozenset(rules[0].non_personal_sources if rules else DEFAULT_NON_PERSONAL)


def describe_now(now_ms: int) -> str:
    """The UTC date of ``now_ms`` as YYYY-MM-DD (pacing counters are per day)."""
    return datetime.fromtimestamp(now_ms / 1000, UTC).strftime("%Y-%m-%d")
