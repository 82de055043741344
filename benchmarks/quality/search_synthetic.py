"""Hybrid vs parts on the SYNTHETIC store: nDCG@10 of BM25 alone, dense alone and the hybrid, with a
judge derived from the catalog's ground-truth attributes.

Queries are generated from the catalog (seeded), one per (product type, constraint) pair, in words
shoppers use — including words that are not in the titles ("unscented" for fragrance-free, "crimson"
for red; titles name colors as "Emerald", "Ivory"...). An item is relevant when its leaf category is
the query's type AND its ground-truth attribute satisfies the constraint (bool flag true, color equal,
skin type listed, fit/material/size equal, price at most the stated amount). Retrieval only: parsed
constraints shape the keyword text but never filter. The dense weight is chosen on the validation half
(hash of the query text) and the three modes are reported on the held-out half (search_fusion.py).

    .venv/bin/python benchmarks/quality/search_synthetic.py [--items 3000] [--queries 240] [--encoder ...]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.evaluation.environment import hardware_summary
from shopkeep.models.content import MINILM
from shopkeep.search import SearchConfig, Searcher
from shopkeep.simulate import StoreConfig, generate_store
from shopkeep.types import Item

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_fusion import tuned_report

#: How shoppers say a ground-truth value (several phrasings; one is drawn per query).
COLOR_WORDS = {"red": ("red", "crimson", "scarlet"), "black": ("black",), "white": ("white", "ivory"),
               "blue": ("blue", "navy"), "green": ("green", "emerald", "olive"), "brown": ("brown", "tan"),
               "grey": ("grey", "gray", "charcoal"), "pink": ("pink", "blush")}
BOOL_WORDS = {"fragrance_free": ("fragrance-free {n}", "unscented {n}", "{n} without fragrance"),
              "vegan": ("vegan {n}", "{n} with no animal ingredients"), "cruelty_free": ("cruelty-free {n}",),
              "organic": ("organic {n}",), "gluten_free": ("gluten-free {n}", "{n} for celiacs"),
              "waterproof": ("waterproof {n}", "{n} for rain")}
Judge = Callable[[Item], bool]


def _value(it: Item, key: str) -> object:
    return it.attributes.get(key)


def candidates(items: Sequence[Item]) -> list[tuple[str, str, Judge]]:
    """Every (query text, constraint description, judge) the catalog supports, before sampling."""
    by_type: dict[str, list[Item]] = {}
    for it in items:
        by_type.setdefault(it.category[-1], []).append(it)
    out: list[tuple[str, str, Judge]] = []
    for leaf, group in sorted(by_type.items()):
        noun = leaf.lower()

        def of_type(it: Item, leaf: str = leaf) -> bool:
            return bool(it.category) and it.category[-1] == leaf

        keys = {k for it in group for k in it.attributes}
        for key, phrasings in BOOL_WORDS.items():
            if key in keys and any(_value(it, key) is True for it in group):
                for p in phrasings:
                    out.append((p.format(n=noun), f"{leaf}/{key}",
                                lambda it, key=key, t=of_type: t(it) and _value(it, key) is True))
        if "color" in keys:
            for color, words in COLOR_WORDS.items():
                if any(_value(it, "color") == color for it in group):
                    for w in words:
                        out.append((f"{w} {noun}", f"{leaf}/color={color}",
                                    lambda it, c=color, t=of_type: t(it) and _value(it, "color") == c))
        if "skin_type" in keys:
            for skin in ("dry", "oily", "sensitive", "combination"):
                out.append((f"{noun} for {skin} skin", f"{leaf}/skin={skin}",
                            lambda it, s=skin, t=of_type: t(it) and s in (_value(it, "skin_type") or ())))
        for key, fmt in (("fit", "{v} fit {n}"), ("material", "{v} {n}")):
            for v in sorted({str(_value(it, key)) for it in group if key in it.attributes}):
                out.append((fmt.format(v=v, n=noun), f"{leaf}/{key}={v}",
                            lambda it, k=key, v=v, t=of_type: t(it) and str(_value(it, k)) == v))
        prices = sorted(it.price.amount for it in group if it.price is not None)
        if prices:
            cap = max(5, round(prices[len(prices) // 2] / 100 / 5) * 5)
            out.append((f"{noun} under ${cap}", f"{leaf}/price<={cap}",
                        lambda it, cap=cap, t=of_type: t(it) and it.price is not None and it.price.amount <= cap * 100))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=3000)
    ap.add_argument("--queries", type=int, default=240)
    ap.add_argument("--encoder", default=MINILM, choices=[MINILM, "hashing"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(f"{hardware_summary()}; seed {args.seed}")
    items = generate_store(StoreConfig(n_items=args.items, n_shoppers=5, n_days=1, seed=args.seed)).items
    snap = CatalogSnapshot.from_items(items)
    start = time.perf_counter()
    searcher = Searcher(SearchConfig(encoder=args.encoder, progress=True)).fit(snap)
    took = time.perf_counter() - start
    print(f"synthetic store: {snap.n} items, index built in {took:.1f} s, encoder {args.encoder}")
    pool = candidates(snap.items)
    rng = random.Random(args.seed)
    chosen = rng.sample(pool, min(args.queries, len(pool)))
    judged = [(text, ok) for text, _, ok in chosen if any(ok(it) for it in snap.items)]
    print(f"{len(judged)} queries sampled from {len(pool)} (type, constraint, phrasing) candidates, e.g. "
          + "; ".join(repr(t) for t, _ in judged[:6]))
    tuned_report(searcher, snap, judged)
    return 0


if __name__ == "__main__":
    sys.exit(main())
