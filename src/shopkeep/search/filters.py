"""Parsed constraints → a boolean mask over the snapshot, and relaxation when nothing matches.

Combination: categories AND (every named level must be on the path); brands OR; attribute values
of a list attribute (``skin_type``) AND, of a scalar attribute (``color``) OR; numeric and price
bounds AND; availability AND. Items with an unknown value never satisfy a constraint on it.

Relaxation (:func:`relax`) drops one constraint at a time, least important first —
availability, then numeric, attribute, price, brand, category (``query.KINDS``; within a kind the
last-parsed goes first) — until the mask is non-empty, and reports what it dropped. A sort intent
is never a filter, so it is never relaxed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shopkeep.catalog.snapshot import CatalogSnapshot, Mask
from shopkeep.search.attributes import AttributeTable
from shopkeep.search.query import KINDS, Constraint, ParsedQuery
from shopkeep.search.vocab import words

__all__ = ["MaskCache", "Relaxation", "constraints_mask", "pickup_mask", "relax"]

_OPS = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal, "==": np.equal}


def _category_index(snapshot: CatalogSnapshot) -> dict[str, npt.NDArray[np.int64]]:
    """Word key of every category level name → rows whose path holds it (one pass per snapshot)."""
    keys: dict[str, str] = {}
    rows: dict[str, list[int]] = {}
    for i, path in enumerate(snapshot.category_paths):
        for level in path:
            key = keys.get(level)
            if key is None:
                key = keys[level] = " ".join(words(level))
            found = rows.setdefault(key, [])
            if not found or found[-1] != i:
                found.append(i)
    return {k: np.asarray(v, dtype=np.int64) for k, v in rows.items()}


def pickup_mask(snapshot: CatalogSnapshot, location: str | None) -> Mask:
    """Items with a same-day pickup option holding units (at ``location``, or at any location)."""
    out = np.zeros(snapshot.n, dtype=np.bool_)
    for i, it in enumerate(snapshot.items):
        for opt in it.fulfillment:
            if opt.kind == "pickup" and opt.same_day and (location is None or opt.location == location):
                loc = opt.location
                if loc is None or it.inventory.get(loc, 0) > 0:
                    out[i] = True
                    break
    return out


class MaskCache:
    """Memoized masks of one snapshot (category and pickup scans are per snapshot, not per query)."""

    def __init__(self, snapshot: CatalogSnapshot, table: AttributeTable) -> None:
        self.snapshot = snapshot
        self.table = table
        self._memo: dict[tuple[str, str], Mask] = {}
        self._categories = _category_index(snapshot)

    def category(self, value: str) -> Mask:
        """Items with a category level whose word key is ``value``."""
        out = np.zeros(self.snapshot.n, dtype=np.bool_)
        rows = self._categories.get(value)
        if rows is not None:
            out[rows] = True
        return out

    def _get(self, kind: str, value: str, fn: object) -> Mask:
        key = (kind, value)
        if key not in self._memo:
            self._memo[key] = fn()  # type: ignore[operator]
        return self._memo[key]

    def one(self, c: Constraint, store: str | None) -> Mask:
        snap, table = self.snapshot, self.table
        if c.kind == "category":
            return self._get("category", str(c.value), lambda: self.category(str(c.value)))
        if c.kind == "brand":
            return snap.brand_mask(str(c.value))
        if c.kind == "attribute":
            out = np.zeros(snap.n, dtype=np.bool_)
            for key in c.key.split("|"):
                out |= table.mask(key, c.value)
            return out
        if c.kind == "numeric":
            col = table.numeric(c.key)
            with np.errstate(invalid="ignore"):
                found: Mask = _OPS[c.op](col, float(c.value)) & ~np.isnan(col)
            return found
        if c.kind == "price":
            price = snap.price_minor
            return (price >= 0) & _OPS[c.op](price, int(c.value))
        if c.key == "store":
            loc = snap.locations.index(str(c.value)) if c.value in snap.locations else -1
            return snap.stock[:, loc].copy() if loc >= 0 else np.zeros(snap.n, dtype=np.bool_)
        if c.key == "pickup":
            return self._get("pickup", store or "", lambda: pickup_mask(snap, store))
        return snap.in_stock(None)


def _relative_price(snapshot: CatalogSnapshot, c: Constraint, others: Mask) -> Mask:
    price = snapshot.price_minor
    known = others & (price >= 0)
    if not known.any():
        return np.zeros(snapshot.n, dtype=np.bool_)
    cut = float(np.quantile(price[known], float(c.value)))
    return (price >= 0) & ((price <= cut) if c.op == "cheap" else (price >= cut))


def constraints_mask(masks: MaskCache, parsed: ParsedQuery, base: Mask, store: str | None = None) -> Mask:
    """Items of ``base`` that satisfy every constraint of ``parsed`` (see the module docstring)."""
    out = base.copy()
    relative: list[Constraint] = []
    stores = [str(c.value) for c in parsed.constraints if c.key == "store"]
    pickup_at = stores[0] if stores else store
    brands = np.zeros(masks.snapshot.n, dtype=np.bool_)
    any_brand = False
    scalar: dict[str, Mask] = {}
    for c in parsed.constraints:
        if c.op in ("cheap", "premium"):
            relative.append(c)
        elif c.kind == "brand":
            brands |= masks.one(c, None)
            any_brand = True
        elif c.kind == "attribute" and not any(k in masks.table.list_keys for k in c.key.split("|")) \
                and not isinstance(c.value, bool):
            scalar[c.key] = scalar.get(c.key, np.zeros(masks.snapshot.n, dtype=np.bool_)) | masks.one(c, None)
        else:
            out &= masks.one(c, pickup_at)
    if any_brand:
        out &= brands
    for m in scalar.values():
        out &= m
    for c in relative:
        out &= _relative_price(masks.snapshot, c, out)
    return out


@dataclass(frozen=True)
class Relaxation:
    """The query actually answered, its mask, and the constraints dropped (in drop order)."""

    parsed: ParsedQuery
    mask: Mask
    dropped: tuple[Constraint, ...]


def relax(masks: MaskCache, parsed: ParsedQuery, base: Mask, store: str | None = None,
          order: Sequence[str] = KINDS) -> Relaxation:
    """Drop constraints, least important first, until some item of ``base`` matches."""
    mask = constraints_mask(masks, parsed, base, store)
    dropped: list[Constraint] = []
    while not mask.any() and parsed.constraints:
        rank = {k: n for n, k in enumerate(order)}
        victim = min(reversed(parsed.constraints), key=lambda c: rank.get(c.kind, -1))
        parsed = parsed.without(victim)
        dropped.append(victim)
        mask = constraints_mask(masks, parsed, base, store)
    return Relaxation(parsed, mask, tuple(dropped))
