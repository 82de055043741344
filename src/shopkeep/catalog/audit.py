"""Catalog audit: missing and inconsistent attributes, near-duplicate SKUs, prices under cost or MAP,
and out-of-range values. Read-only: :func:`audit_catalog` answers findings and changes nothing.

Finding kinds (severity in brackets):

* ``missing_field`` [warning] — no brand, no price, or no category on an active item.
* ``missing_attribute`` [info] — a key that at least ``coverage`` (80 %) of the item's category carry.
* ``inconsistent_group`` [error] — a variant group (``group_id``) whose items name different brands.
* ``type_mismatch`` [warning] — an attribute whose value type differs from the majority type of its
  key within the category (e.g. ``spf`` "30" among numbers).
* ``duplicate`` [warning] — a different id with the same brand and a title whose token set has
  Jaccard similarity ≥ ``jaccard`` (0.9); found with prefix filtering, never all pairs.
* ``price_below_cost`` / ``price_below_map`` [error]; ``zero_price`` [error]; ``price_outlier``
  [warning] — under 1/``outlier_ratio`` or over ``outlier_ratio``× the category median (≥ 5 priced).
* ``out_of_range`` [error] — negative or zero sizes, SPF outside 1–100, rating outside 0–5, negative
  rating counts or inventory.

>>> from shopkeep.types import Item, Money
>>> report = audit_catalog([
...     Item("a", "Hydra Cream 50 ml", brand="Lumen", category=("Skin",), price=Money(900, "USD"),
...          cost=Money(1200, "USD"), attributes={"spf": 150}),
...     Item("b", "Hydra Cream 50 ml", brand="LUMEN", category=("Skin",), price=Money(2500, "USD"))])
>>> sorted((f.kind, f.item_ids) for f in report.findings)
[('duplicate', ('a', 'b')), ('out_of_range', ('a',)), ('price_below_cost', ('a',))]
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shopkeep.catalog.snapshot import active_items
from shopkeep.errors import ValidationError
from shopkeep.types import AttributeValue, Item, Money

__all__ = ["SEVERITIES", "AuditReport", "Finding", "audit_catalog"]

SEVERITIES = ("error", "warning", "info")
_TOKEN = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")
_SIZE_KEY = re.compile(r"(^|_)(size|ml|volume|weight|oz|grams?|length|width|height)($|_)")


@dataclass(frozen=True, slots=True)
class Finding:
    """One audit finding."""

    kind: str
    item_ids: tuple[str, ...]
    field: str
    value: Any
    severity: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {"kind": self.kind, "item_ids": list(self.item_ids), "field": self.field, "value": value,
                "severity": self.severity, "message": self.message}


@dataclass(frozen=True, slots=True)
class AuditReport:
    """All findings of one audit, errors first, and how many items were checked."""

    n_items: int
    findings: tuple[Finding, ...]
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"n_items", "counts", "findings"}``."""
        return {"n_items": self.n_items, "counts": dict(self.counts),
                "findings": [f.to_dict() for f in self.findings]}


def _cat(item: Item) -> str:
    return " > ".join(item.category) if item.category else "(none)"


def _type_name(value: AttributeValue) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "list" if isinstance(value, tuple | list) else "str"


def _missing(items: Sequence[Item], coverage: float) -> list[Finding]:
    out: list[Finding] = []
    by_cat: dict[str, list[Item]] = defaultdict(list)
    for it in items:
        by_cat[_cat(it)].append(it)
        for name, value in (("brand", it.brand), ("price", it.price), ("category", it.category or None)):
            if value is None:
                out.append(Finding("missing_field", (it.item_id,), name, None, "warning",
                                   f"item {it.item_id!r} has no {name}"))
    for cat, group in by_cat.items():
        if len(group) < 5:
            continue
        keys = Counter(k for it in group for k in it.attributes)
        common = [k for k, c in keys.items() if c >= coverage * len(group)]
        for it in group:
            for key in common:
                if key not in it.attributes:
                    out.append(Finding("missing_attribute", (it.item_id,), key, None, "info",
                                       f"{keys[key]}/{len(group)} items of {cat!r} have {key!r}; this one lacks it"))
    return out


def _inconsistent(items: Sequence[Item]) -> list[Finding]:
    out: list[Finding] = []
    groups: dict[str, list[Item]] = defaultdict(list)
    types: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for it in items:
        if it.group_id is not None:
            groups[it.group_id].append(it)
        for key, value in it.attributes.items():
            types[(_cat(it), key)][_type_name(value)] += 1
    for gid, members in groups.items():
        brands = sorted({(m.brand or "").strip().lower() for m in members})
        if len(brands) > 1:
            out.append(Finding("inconsistent_group", tuple(m.item_id for m in members), "brand",
                               tuple(brands), "error", f"variant group {gid!r} mixes brands {brands}"))
    for it in items:
        for key, value in it.attributes.items():
            counts = types[(_cat(it), key)]
            major, n_major = counts.most_common(1)[0]
            mine = _type_name(value)
            if mine != major and n_major > counts[mine]:
                out.append(Finding("type_mismatch", (it.item_id,), key, value, "warning",
                                   f"{key!r} is a {mine} here but a {major} in {n_major} items of {_cat(it)!r}"))
    return out


def _tokens(item: Item) -> frozenset[str]:
    return frozenset(_TOKEN.findall(item.title.lower()))


def _duplicates(items: Sequence[Item], jaccard: float) -> list[Finding]:
    sets = [_tokens(it) for it in items]
    df = Counter(t for s in sets for t in s)
    index: dict[tuple[str, str], list[int]] = defaultdict(list)
    seen: set[tuple[int, int]] = set()
    out: list[Finding] = []
    for i, (it, toks) in enumerate(zip(items, sets, strict=True)):
        if not toks:
            continue
        brand = (it.brand or "").strip().lower()
        ordered = sorted(toks, key=lambda t: (df[t], t))
        prefix = ordered[:len(ordered) - math.ceil(jaccard * len(ordered)) + 1]
        for tok in prefix:
            for j in index[(brand, tok)]:
                if (j, i) in seen or items[j].item_id == it.item_id:
                    continue
                seen.add((j, i))
                other = items[j]
                if it.group_id is not None and it.group_id == other.group_id and it.attributes != other.attributes:
                    continue  # variants of one product
                sim = len(toks & sets[j]) / len(toks | sets[j])
                if sim >= jaccard:
                    out.append(Finding("duplicate", (other.item_id, it.item_id), "title", round(sim, 3), "warning",
                                       f"{other.item_id!r} and {it.item_id!r} look like one SKU "
                                       f"(same brand, title Jaccard {sim:.2f})"))
            index[(brand, tok)].append(i)
    return out


def _prices(items: Sequence[Item], outlier_ratio: float) -> list[Finding]:
    out: list[Finding] = []
    by_cat: dict[tuple[str, str], list[int]] = defaultdict(list)
    for it in items:
        p = it.price
        if p is None:
            continue
        if p.amount == 0:
            out.append(Finding("zero_price", (it.item_id,), "price", 0, "error", f"{it.item_id!r} is priced at 0"))
        else:
            by_cat[(_cat(it), p.currency)].append(p.amount)
        for name, floor in (("cost", it.cost), ("map_price", it.map_price)):
            if floor is not None and floor.currency == p.currency and p.amount < floor.amount:
                kind = "price_below_cost" if name == "cost" else "price_below_map"
                out.append(Finding(kind, (it.item_id,), "price", p.amount, "error",
                                   f"price {p.format()} is under {name} {floor.format()}"))
    medians = {k: statistics.median(v) for k, v in by_cat.items() if len(v) >= 5}
    for it in items:
        p = it.price
        med = medians.get((_cat(it), p.currency)) if p is not None and p.amount > 0 else None
        if p is None or med is None:
            continue
        if p.amount > outlier_ratio * med or p.amount * outlier_ratio < med:
            median = Money(round(med), p.currency).format()
            out.append(Finding("price_outlier", (it.item_id,), "price", p.amount, "warning",
                               f"price {p.format()} vs category median {median} ({_cat(it)!r})"))
    return out


def _number(value: AttributeValue) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _ranges(items: Sequence[Item]) -> list[Finding]:
    out: list[Finding] = []

    def bad(it: Item, name: str, value: Any, why: str) -> None:
        out.append(Finding("out_of_range", (it.item_id,), name, value, "error", f"{name}={value!r}: {why}"))

    for it in items:
        if it.rating_avg is not None and not 0.0 <= it.rating_avg <= 5.0:
            bad(it, "rating_avg", it.rating_avg, "ratings are between 0 and 5")
        if it.rating_count < 0:
            bad(it, "rating_count", it.rating_count, "must be >= 0")
        for loc, units in it.inventory.items():
            if units < 0:
                bad(it, f"inventory.{loc}", units, "units on hand must be >= 0")
        for key, value in it.attributes.items():
            num = _number(value)
            if num is None:
                continue
            low = key.lower()
            if low == "spf" and not 1 <= num <= 100:
                bad(it, key, value, "SPF is between 1 and 100")
            elif _SIZE_KEY.search(low) and num <= 0:
                bad(it, key, value, "a size must be positive")
            elif not math.isfinite(num):
                bad(it, key, value, "must be finite")
    return out


def audit_catalog(items: Iterable[Item], *, jaccard: float = 0.9, coverage: float = 0.8,
                  outlier_ratio: float = 20.0) -> AuditReport:
    """Audit ``items`` (active ones; inactive items are skipped) and answer every finding."""
    if not 0.0 < jaccard <= 1.0:
        raise ValidationError("jaccard", jaccard, "must be in (0, 1]")
    if not 0.0 < coverage <= 1.0:
        raise ValidationError("coverage", coverage, "must be in (0, 1]")
    if not outlier_ratio > 1.0:
        raise ValidationError("outlier_ratio", outlier_ratio, "must be > 1")
    active = list(active_items(items))
    findings = [*_inconsistent(active), *_prices(active, outlier_ratio), *_ranges(active),
                *_duplicates(active, jaccard), *_missing(active, coverage)]
    findings.sort(key=lambda f: (SEVERITIES.index(f.severity), f.kind, f.item_ids))
    return AuditReport(len(active), tuple(findings), dict(Counter(f.kind for f in findings)))
