"""Askable facets of a candidate set (category, budget band, list/boolean/scalar attributes).

Each facet's buckets are masks over the candidate rows; each answer maps to the constraints it adds
(``[]`` for answers that add none, such as "no" to "must it be vegan?"). A facet whose slot is already
stated, or that fewer than half of the candidates carry a value for, is not offered.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.concierge.questions import Facet
from shopkeep.search import AttributeTable, Constraint
from shopkeep.search.vocab import words

__all__ = ["build_facets", "constraint_from_dict", "constraint_to_dict"]

_TEXT = {"category": "What kind of product are you looking for?", "budget": "What is your budget?",
         "skin_type": "What is your skin type?", "size": "What size do you need?", "fit": "Which fit do you prefer?",
         "color": "Which colour would you like?", "shade_family": "Which shade family suits you?"}
_MAX_VALUES = 8
Answers = dict[str, dict[str, list[Constraint]]]


def constraint_to_dict(c: Constraint) -> dict[str, Any]:
    """Storage form of a constraint."""
    return {"kind": c.kind, "key": c.key, "op": c.op, "value": c.value, "text": c.text}


def constraint_from_dict(d: Mapping[str, Any]) -> Constraint:
    """A constraint from its storage form."""
    return Constraint(str(d["kind"]), str(d["key"]), str(d["op"]), d["value"], str(d.get("text", "")))


def _money(minor: int) -> str:
    return f"${minor // 100}" if minor % 100 == 0 else f"${minor / 100:.2f}"


def _category(snap: CatalogSnapshot, rows: npt.NDArray[np.int64]) -> tuple[Facet, dict[str, list[Constraint]]]:
    leaves = [snap.category_paths[r][-1] if snap.category_paths[r] else "" for r in rows.tolist()]
    top = [v for v, _ in Counter(v for v in leaves if v).most_common(_MAX_VALUES)]
    arr = np.asarray(leaves, dtype=object)
    buckets = {v.lower(): arr == v for v in top}
    answers = {v.lower(): [Constraint("category", "category", "=", " ".join(words(v)), v.lower())] for v in top}
    return Facet("category", _TEXT["category"], buckets), answers


def _budget(snap: CatalogSnapshot, rows: npt.NDArray[np.int64]) -> tuple[Facet, dict[str, list[Constraint]]] | None:
    price = snap.price_minor[rows]
    known = price[price >= 0]
    if known.size < 3:
        return None
    lo, hi = (math.ceil(float(np.quantile(known, q)) / 100.0) * 100 for q in (1 / 3, 2 / 3))
    if hi <= lo:
        return None
    under, mid, over = f"under {_money(lo)}", f"{_money(lo)} to {_money(hi)}", f"over {_money(hi)}"
    buckets = {under: (price >= 0) & (price <= lo), mid: (price > lo) & (price <= hi), over: price > hi}
    answers = {under: [Constraint("price", "price", "<=", lo, under)],
               mid: [Constraint("price", "price", ">=", lo + 1, mid), Constraint("price", "price", "<=", hi, mid)],
               over: [Constraint("price", "price", ">=", hi + 1, over)]}
    return Facet("budget", _TEXT["budget"], buckets), answers


_Found = tuple[Facet, dict[str, list[Constraint]]]


def _attribute(table: AttributeTable, key: str, rows: npt.NDArray[np.int64]) -> _Found | None:
    name = key.replace("_", " ")
    if key in table.bool_keys:
        yes = table.mask(key, True)[rows]
        known = yes | table.mask(key, False)[rows]
        if known.mean() < 0.5 or yes.all() or not yes.any():
            return None
        label = key.replace("_", "-")
        return (Facet(key, f"Does it need to be {label}?", {"yes": yes, "no": ~yes}),
                {"yes": [Constraint("attribute", key, "=", True, label)], "no": []})
    values = table.values(key)
    if not 2 <= len(values) <= 40:
        return None
    masks = {v: table.mask(key, v)[rows] for v in values}
    covered = np.zeros(rows.size, dtype=np.bool_)
    for m in masks.values():
        covered |= m
    if covered.mean() < 0.5:
        return None
    top = sorted((v for v in masks if masks[v].any()), key=lambda v: -int(masks[v].sum()))[:_MAX_VALUES]
    if len(top) < 2:
        return None
    buckets = {v: masks[v] for v in top}
    answers = {v: [Constraint("attribute", key, "=", v, f"{v} {name}")] for v in top}
    return Facet(key, _TEXT.get(key, f"Which {name} do you need?"), buckets), answers


def build_facets(table: AttributeTable, snap: CatalogSnapshot, rows: npt.NDArray[np.int64],
                 slots: Sequence[Constraint]) -> tuple[list[Facet], Answers]:
    """The facets worth considering for the candidate ``rows`` given the stated ``slots``."""
    stated = {c.key for c in slots if c.kind == "attribute"} | {k for c in slots if c.kind == "attribute"
                                                               for k in c.key.split("|")}
    facets: list[Facet] = []
    answers: Answers = {}
    found: list[tuple[Facet, dict[str, list[Constraint]]] | None] = []
    if not any(c.kind == "category" for c in slots):
        found.append(_category(snap, rows))
    if not any(c.kind == "price" for c in slots):
        found.append(_budget(snap, rows))
    numeric = set(table.numeric_keys())
    for key in table.filter_keys():
        if key not in stated and key not in numeric:
            found.append(_attribute(table, key, rows))
    for entry in found:
        if entry is not None:
            facets.append(entry[0])
            answers[entry[0].slot] = entry[1]
    return facets, answers
