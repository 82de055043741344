"""Search intents: a query a shopper would type for a product type, with the constraint it implies.

Queries come from the shopper's own preferences ("fragrance-free moisturizer", "red dress under $80",
"wide fit hiking boots"), so search logs carry the same signal as the shopper's tastes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from shopkeep.simulate import taxonomy as tx
from shopkeep.simulate.catalog import COLOR_NAMES, CatalogArrays
from shopkeep.simulate.shoppers import Shopper

__all__ = ["Intent", "make_intent"]

_Option = tuple[float, str, np.ndarray | None, tuple[tuple[str, str], ...]]


@dataclass(frozen=True)
class Intent:
    """A search: the query text, the items (of one type's row range) it matches, and filters applied."""

    query: str
    mask: np.ndarray | None
    filters: tuple[tuple[str, str], ...]


def _plural(noun: str) -> str:
    return noun if noun.endswith(("s", "Water", "water", "Oil", "oil", "Milk", "milk", "Tea", "tea")) else noun + "s"


def _style_options(r: random.Random, s: Shopper, cat: CatalogArrays, spec: tx.TypeSpec, sl: slice) -> list[_Option]:
    a, noun = cat.attrs, spec.noun.lower()
    out: list[_Option] = []
    if spec.department == "footwear":
        if s.wide_feet:
            out.append((3.0, f"wide fit {_plural(noun)}", a["fit"][sl] == 3, (("fit", "wide"),)))
        if s.prefs["waterproof"] > 0.8 or (spec.key == "hiking_boot" and r.random() < 0.5):
            out.append((3.0, f"waterproof {noun}", a["waterproof"][sl] == 1, (("waterproof", "true"),)))
    color = s.colors[0]
    cap = max(10, round(spec.price * s.budget * 1.15 / 10.0) * 10)
    mask = (a["color"][sl] == COLOR_NAMES.index(color)) & (cat.price[sl] <= cap * 100)
    out.append((2.0 * s.prefs["color"], f"{color} {noun} under ${cap}", mask,
                (("color", color), ("price_max", str(cap)))))
    size = s.apparel_size if spec.department == "apparel" else str(s.shoe_size)
    size_val = tx.APPAREL_SIZES.index(size) if spec.department == "apparel" else s.shoe_size
    out.append((1.0, f"{noun} size {size.lower()}", a["size"][sl] == size_val, (("size", size),)))
    return out


def _care_options(r: random.Random, s: Shopper, cat: CatalogArrays, spec: tx.TypeSpec, sl: slice) -> list[_Option]:
    a, noun = cat.attrs, spec.noun.lower()
    out: list[_Option] = []
    if spec.category == "Skincare":
        if s.prefs["fragrance_free"] > 0.8:
            out.append((3.0, f"fragrance-free {noun}", a["ff"][sl] == 1, (("fragrance_free", "true"),)))
        bit = 1 << tx.SKIN_TYPES.index(s.skin_type)
        out.append((1.0, f"{noun} for {s.skin_type} skin", (a["skin"][sl] >= 0) & ((a["skin"][sl] & bit) > 0),
                    (("skin_type", s.skin_type),)))
    if spec.key == "sunscreen":
        spf = r.choice((30, 50))
        text = f"spf {spf} sunscreen" if r.random() < 0.5 else f"sunscreen spf {spf}+"
        out.append((2.0, text, a["spf"][sl] >= spf, (("spf", f">={spf}"),)))
    for key, col, word in (("vegan", "vegan", "vegan"), ("organic", "organic", "organic"),
                           ("gluten_free", "gluten_free", "gluten-free")):
        if s.prefs[key] > 0.8 and bool((a[col][sl] >= 0).any()):
            out.append((2.0, f"{word} {noun}", a[col][sl] == 1, ((key, "true"),)))
    return out


def make_intent(r: random.Random, s: Shopper, cat: CatalogArrays, t: int, lo: int, hi: int) -> Intent:
    """Draw a query for type ``t`` (rows ``lo:hi``) from the shopper's preferences."""
    spec = tx.TYPES[t]
    sl = slice(lo, hi)
    noun = spec.noun.lower()
    if spec.department in ("apparel", "footwear"):
        options = _style_options(r, s, cat, spec, sl)
    else:
        options = _care_options(r, s, cat, spec, sl)
    brands = cat.brand[sl]
    fav = int(brands[int(np.argmax(s.brand_affinity[brands]))])
    options.append((0.8, f"{cat.brands[fav].name.lower()} {noun}", brands == fav, ()))
    options.append((2.5, noun if r.random() < 0.6 else _plural(noun), None, ()))
    _, query, mask, filters = r.choices(options, [o[0] for o in options])[0]
    if mask is not None and not bool(mask.any()):
        mask = None
    return Intent(query, mask, filters if r.random() < 0.4 else ())
