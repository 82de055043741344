"""Hybrid vs parts with an honest fusion weight: choose the dense weight on validation queries, report
nDCG@10 of BM25 alone, dense alone and the hybrid on held-out test queries.

Queries are split by a hash of their text (``sha256(text) < 0.5`` → validation), so the split does not
depend on order or on any result. Retrieval only: parsed constraints shape the keyword text but do not
filter (``use_constraints=False``), so the score measures ranking, not the filters. Shared by
search_sephora.py and search_synthetic.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Callable, Sequence

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.search import Searcher, SearchRequest
from shopkeep.types import Item

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
Judged = tuple[str, Callable[[Item], bool]]


def is_validation(text: str) -> bool:
    """The deterministic split: half of the query texts by hash."""
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16) / 2**32 < 0.5


def ndcg(ranked: Sequence[bool], n_relevant: int, k: int = 10) -> float:
    """Binary nDCG@k."""
    dcg = sum(1.0 / math.log2(i + 2) for i, rel in enumerate(ranked[:k]) if rel)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, n_relevant)))
    return dcg / ideal if ideal > 0 else 0.0


def mean_ndcg(searcher: Searcher, snap: CatalogSnapshot, queries: Sequence[Judged], mode: str,
              dense_weight: float = 0.5) -> float:
    """Mean nDCG@10 of one mode (the hybrid with ``dense_weight``; BM25's weight is 1)."""
    before = searcher.config
    searcher.config = dataclasses.replace(before, weights={"bm25": 1.0, "dense": dense_weight})
    try:
        scores = []
        for text, ok in queries:
            n_rel = sum(1 for it in snap.items if ok(it))
            res = searcher.search(SearchRequest(text, k=10, mode=mode, use_constraints=False))
            scores.append(ndcg([ok(snap.items[snap.index[h.item_id]]) for h in res.items], n_rel))
    finally:
        searcher.config = before
    return sum(scores) / max(len(scores), 1)


def tuned_report(searcher: Searcher, snap: CatalogSnapshot, queries: Sequence[Judged],
                 weights: Sequence[float] = WEIGHTS) -> dict[str, object]:
    """Sweep the dense weight on validation, then score the three modes on test (and print both)."""
    val = [q for q in queries if is_validation(q[0])]
    test = [q for q in queries if not is_validation(q[0])]
    sweep = {w: mean_ndcg(searcher, snap, val, "hybrid", w) for w in weights}
    best = max(sweep, key=lambda w: (sweep[w], -abs(w - 0.5)))
    print(f"validation: {len(val)} queries; hybrid nDCG@10 by dense weight: "
          + "  ".join(f"{w:g}: {v:.4f}" for w, v in sweep.items()) + f"  -> chosen {best:g}")
    val_parts = {m: mean_ndcg(searcher, snap, val, m, best) for m in ("bm25", "dense")}
    print(f"validation: bm25 {val_parts['bm25']:.4f}  dense {val_parts['dense']:.4f}  hybrid {sweep[best]:.4f}")
    out = {m: mean_ndcg(searcher, snap, test, m, best) for m in ("bm25", "dense", "hybrid")}
    print(f"TEST (held out, {len(test)} queries, dense weight {best:g}): "
          + "  ".join(f"{m} {v:.4f}" for m, v in out.items())
          + f"  -> hybrid beats both: {out['hybrid'] > max(out['bm25'], out['dense'])}")
    return {"weight": best, "sweep": sweep, "test": out, "n_val": len(val), "n_test": len(test)}
