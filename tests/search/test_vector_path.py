"""Dense retrieval through the shared vector index: the HNSW kind (forced on a tiny catalog) answers
the same rows as the exact one, also after an incremental snapshot update reorders the index rows."""

from __future__ import annotations

import dataclasses
import importlib.util

import pytest
from tests.search.conftest import tiny_items

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.search import SearchConfig, Searcher, SearchRequest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("faiss") is None, reason="needs faiss (ml extra)")


def _dense_ids(searcher: Searcher, query: str) -> list[str]:
    """Dense hits with a positive score (zero-score ties are ordered by index row, which differs by kind)."""
    res = searcher.search(SearchRequest(query, k=8, mode="dense", use_constraints=False))
    return [h.item_id for h in res.items if h.sources.get("dense", (0.0, 0))[0] > 0]


def test_hnsw_and_exact_agree_before_and_after_an_update() -> None:
    items = tiny_items()
    exact = Searcher(SearchConfig(encoder="hashing", cache_dir=None)).fit(CatalogSnapshot.from_items(items))
    ann = Searcher(SearchConfig(encoder="hashing", cache_dir=None, ann_above=5)).fit(CatalogSnapshot.from_items(items))
    assert type(ann.vindex_).__name__ == "HNSWIndex" and type(exact.vindex_).__name__ == "ExactIndex"
    for q in ("red silk dress", "hiking boot", "moisturizer"):
        assert _dense_ids(ann, q) == _dense_ids(exact, q) != []
    changed = [dataclasses.replace(it, title="Red Silk Ballgown") if it.item_id == "m1" else it for it in items]
    snap = CatalogSnapshot.from_items(changed)
    ann2, exact2 = ann.with_snapshot(snap), exact.with_snapshot(snap)
    assert ann2.vindex_.ids != ann.vindex_.ids  # HNSW moved the replaced item to a new row
    for q in ("ballgown in red silk", "moisturizer", "sunscreen"):
        assert _dense_ids(ann2, q) == _dense_ids(exact2, q) != []
    assert _dense_ids(ann2, "ballgown in red silk")[0] == "m1"
