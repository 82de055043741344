"""Derived attributes and the per-key attribute columns that search filters on.

**Attribute extraction** (:func:`derive_attributes`) adds facts a catalog states only in text, so
that constraints such as "fragrance-free" or "SPF 30+" can be hard filters on any catalog. An item's
own attributes always win; a derived key is added only when the item lacks it.

* ``<x>_free`` (``fragrance_free``, ``paraben_free``, ``sulfate_free``, ``silicone_free``,
  ``phthalate_free``) from an ingredient list — a string attribute whose key contains
  ``ingredients`` (or is ``inci``). The list must be *known* (the rule and the fragrance terms live in
  :mod:`shopkeep.catalog.extract`): placeholders such as "Visit the … boutique",
  "No Info", "#NAME?", footnote-only texts ("*Certified Organic") or texts without letters leave
  the flags unset (unknown, so never matched). Known lists get ``True`` when none of the terms
  appear (case-insensitive substring): fragrance ← fragrance, parfum, perfume; paraben ← paraben;
  sulfate ← sulfate, sulphate; silicone ← dimethicone, methicone, siloxane, silicone;
  phthalate ← phthalate. Otherwise ``False``.
* ``spf`` from "SPF 30" / "SPF30" in the title, ``size_ml`` from "50 ml" / "50ml" in the title.

>>> from shopkeep.types import Item
>>> derive_attributes(Item("a", "Day Cream SPF 30, 50 ml", attributes={"ingredients": "Water, Glycerin, Parfum."}))
{'fragrance_free': False, 'paraben_free': True, 'sulfate_free': True, 'silicone_free': True, \
'phthalate_free': True, 'spf': 30, 'size_ml': 50}
>>> derive_attributes(Item("b", "Mask", attributes={"ingredients": "Visit the Dior boutique"}))
{}
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from shopkeep.catalog.extract import FRAGRANCE_TERMS, ingredient_text, ingredients_known
from shopkeep.catalog.snapshot import CatalogSnapshot, Mask, normalize_value
from shopkeep.types import AttributeValue, Item

__all__ = ["FREE_FROM", "AttributeTable", "derive_attributes", "enrich_items", "ingredients_known"]

#: ``<x>_free`` flag → ingredient substrings whose presence makes it False.
FREE_FROM: dict[str, tuple[str, ...]] = {
    "fragrance_free": FRAGRANCE_TERMS,
    "paraben_free": ("paraben",),
    "sulfate_free": ("sulfate", "sulphate"),
    "silicone_free": ("dimethicone", "methicone", "siloxane", "silicone"),
    "phthalate_free": ("phthalate",),
}
_SPF = re.compile(r"\bspf\s*(\d{1,3})\b", re.IGNORECASE)
_ML = re.compile(r"\b(\d{1,5}(?:\.\d+)?)\s*ml\b", re.IGNORECASE)


def derive_attributes(item: Item) -> dict[str, AttributeValue]:
    """The attributes extraction adds to ``item`` (keys it already has are left out)."""
    out: dict[str, AttributeValue] = {}
    text = ingredient_text(item)
    if text is not None and ingredients_known(text):
        low = text.lower()
        for key, terms in FREE_FROM.items():
            out[key] = not any(t in low for t in terms)
    spf = _SPF.search(item.title)
    if spf:
        out["spf"] = int(spf.group(1))
    ml = _ML.search(item.title)
    if ml:
        value = float(ml.group(1))
        out["size_ml"] = int(value) if value == int(value) else value
    return {k: v for k, v in out.items() if k not in item.attributes}


def enrich_items(items: Iterable[Item]) -> list[Item]:
    """``items`` with :func:`derive_attributes` merged in (unchanged items are returned as they are)."""
    out = []
    for it in items:
        extra = derive_attributes(it)
        out.append(replace(it, attributes={**extra, **dict(it.attributes)}) if extra else it)
    return out


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))


class AttributeTable:
    """Per-key columns of the *effective* attributes (own ∪ derived) of a snapshot's items."""

    def __init__(self, snapshot: CatalogSnapshot, derive: bool = True) -> None:
        self.snapshot = snapshot
        self.n = snapshot.n
        self._values: dict[str, dict[str, list[int]]] = {}
        self._numbers: dict[str, tuple[list[int], list[float]]] = {}
        self.bool_keys: set[str] = set()
        self.long_text_keys: set[str] = set()
        self.list_keys: set[str] = set()
        for i, it in enumerate(snapshot.items):
            attrs: Mapping[str, AttributeValue] = it.attributes
            if derive:
                extra = derive_attributes(it)
                if extra:
                    attrs = {**extra, **dict(attrs)}
            for key, value in attrs.items():
                self._add(i, key.strip().lower(), value)
        self._cache: dict[tuple[str, str], Mask] = {}
        self._columns: dict[str, npt.NDArray[np.float64]] = {}

    def _add(self, i: int, key: str, value: AttributeValue) -> None:
        if isinstance(value, bool):
            self.bool_keys.add(key)
        elif isinstance(value, int | float) and _is_number(value):
            rows, vals = self._numbers.setdefault(key, ([], []))
            rows.append(i)
            vals.append(float(value))
        elif isinstance(value, str) and len(value) > 60:
            self.long_text_keys.add(key)
            return
        if isinstance(value, tuple | list):
            self.list_keys.add(key)
        values = value if isinstance(value, tuple | list) else (value,)
        table = self._values.setdefault(key, {})
        for v in values:
            table.setdefault(normalize_value(v), []).append(i)

    def filter_keys(self) -> tuple[str, ...]:
        """Every filterable key (long free-text attributes such as ingredient lists excluded)."""
        return tuple(sorted(k for k in self._values if k not in self.long_text_keys))

    def values(self, key: str) -> tuple[str, ...]:
        """The normalized values ``key`` takes."""
        return tuple(sorted(self._values.get(key, {})))

    def numeric_keys(self) -> tuple[str, ...]:
        """Keys with numeric values."""
        return tuple(sorted(self._numbers))

    def mask(self, key: str, value: object) -> Mask:
        """Items whose ``key`` holds ``value`` (normalized; list attributes: membership)."""
        norm = normalize_value(value)
        found = self._cache.get((key, norm))
        if found is None:
            found = np.zeros(self.n, dtype=np.bool_)
            rows = self._values.get(key, {}).get(norm)
            if rows:
                found[np.asarray(rows, dtype=np.int64)] = True
            found.flags.writeable = False
            self._cache[(key, norm)] = found
        return found

    def numeric(self, key: str) -> npt.NDArray[np.float64]:
        """The numeric column of ``key`` (NaN where unknown; built once, read-only)."""
        found = self._columns.get(key)
        if found is None:
            found = np.full(self.n, np.nan)
            rows, vals = self._numbers.get(key, ([], []))
            if rows:
                found[np.asarray(rows, dtype=np.int64)] = np.asarray(vals)
            found.flags.writeable = False
            self._columns[key] = found
        return found

    def attributes(self, i: int) -> dict[str, AttributeValue]:
        """Effective attributes of item row ``i`` (own ∪ derived)."""
        it = self.snapshot.items[i]
        return {**derive_attributes(it), **dict(it.attributes)}
